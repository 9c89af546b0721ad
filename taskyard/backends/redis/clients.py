"""Redis clients for taskyard: the one place a client is built from a backend's ``OPTIONS``
(enqueuers, every worker class, reapers, cron, health and the operations commands), plain or
through Sentinel; a pool of their own for workers; driver information resolved once."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from taskyard.exceptions import InvalidTaskBackend

T = TypeVar("T")

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
"""URL schemes of the Sentinel form: ``redis+sentinel://[[user]:password@]host:port[,host:port…]
/master_name[/db]`` (``rediss+sentinel`` for TLS to the master)."""

DEFAULT_FAILOVER_TIMEOUT = 20.0


def is_sentinel_url(url: str | None) -> bool:
    return bool(url) and str(url).split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> dict[str, Any]:
    """``SENTINELS``, ``MASTER_NAME``, ``DB``, ``USERNAME``, ``PASSWORD``, ``SSL`` of a
    ``redis+sentinel://`` URL (``InvalidTaskBackend`` naming what is wrong)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, port = item, "26379"
        if item.startswith("["):  # [::1]:26379
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or port
        elif ":" in item:
            host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidTaskBackend(f"Redis Sentinel URL: {item!r} is not host:port")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise InvalidTaskBackend(
            "Redis Sentinel URL: the path must be /<master name>[/<db number>], e.g. "
            "redis+sentinel://127.0.0.1:26379,10.0.0.2:26379/mymaster/0"
        )
    return {
        "SENTINELS": sentinels,
        "MASTER_NAME": unquote(path[0]),
        "DB": int(path[1]) if len(path) == 2 else 0,
        "USERNAME": unquote(parts.username) if parts.username else None,
        "PASSWORD": unquote(parts.password) if parts.password else None,
        "SSL": parts.scheme.lower() == "rediss+sentinel",
    }


def sentinels_check(value: Any) -> str | None:
    """``SENTINELS``: a list of (host, port) pairs (or ``None``)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value:
        return "must be a non-empty list of (host, port) pairs"
    for item in value:
        if not (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
        ):
            return f"must be a list of (host, port) pairs; {item!r} is not one"
    return None


def connection_retry(retries: int, failover_window: float = 0.0) -> Any:
    """redis-py's retry policy for taskyard's clients: ``retries`` quick retries on a new
    connection after a connection error, none after a timeout; with Sentinel, connection
    errors are retried for up to ``failover_window`` seconds as well (a failover in progress).

    redis-py 6+ retries every command up to ten times by default, timeouts included, so a
    frozen server held an ``enqueue`` for minutes; and a command that timed out may have run,
    so running it again could store a job twice.
    """
    from redis.backoff import EqualJitterBackoff
    from redis.exceptions import ConnectionError
    from redis.retry import Retry

    class FailoverRetry(Retry):
        """``Retry`` that also keeps retrying connection errors until ``window`` seconds have
        passed since the first one (Sentinel needs a few seconds to promote a replica; the
        client's pool asks the sentinels for the master on every new connection)."""

        window = failover_window

        def call_with_retry(
            self,
            do: Callable[[], T],
            fail: Callable[..., Any],
            is_retryable: Callable[[Exception], bool] | None = None,
            with_failure_count: bool = False,
        ) -> T:
            self._backoff.reset()  # type: ignore[no-untyped-call]
            failures = 0
            first = 0.0
            while True:
                try:
                    return do()
                except self._supported_errors as error:
                    if is_retryable and not is_retryable(error):
                        raise
                    failures += 1
                    if with_failure_count:
                        fail(error, failures)
                    else:
                        fail(error)
                    now = time.monotonic()
                    first = first or now
                    left = self.window - (now - first)
                    if failures > self._retries and left <= 0:
                        raise error
                    pause = self._backoff.compute(failures)
                    if failures > self._retries:
                        pause = min(pause, left)
                    if pause > 0:
                        time.sleep(pause)

    backoff = EqualJitterBackoff(cap=0.5, base=0.05)
    if failover_window > 0:
        return FailoverRetry(backoff, retries, (ConnectionError,))
    return Retry(backoff, retries, (ConnectionError,))


def client_class(alias: str, path: str) -> Any:
    module_name, _, class_name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidTaskBackend(
            f"backend {alias!r}: CONNECTION_CLASS {path!r} cannot be imported: {exc}"
        ) from exc


def sentinel_settings(alias: str, opts: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Sentinel settings of ``opts`` (from ``SENTINELS``/``MASTER_NAME`` or a
    ``redis+sentinel://`` URL), or ``None`` for a plain Redis. Contradictions are refused."""
    url = opts.get("URL")
    if opts.get("SENTINEL_KWARGS") and not (opts.get("SENTINELS") or is_sentinel_url(url)):
        raise InvalidTaskBackend(
            f"backend {alias!r}: SENTINEL_KWARGS is only used with Sentinel (SENTINELS and "
            "MASTER_NAME, or a redis+sentinel:// URL)"
        )
    if is_sentinel_url(url):
        if opts.get("SENTINELS"):
            raise InvalidTaskBackend(
                f"backend {alias!r}: give the sentinels either in a redis+sentinel:// URL or in "
                "SENTINELS, not both"
            )
        return parse_sentinel_url(str(url))
    if not opts.get("SENTINELS") and not opts.get("MASTER_NAME"):
        return None
    if url:
        raise InvalidTaskBackend(
            f"backend {alias!r}: SENTINELS/MASTER_NAME cannot be combined with a "
            f"{str(url).split(':', 1)[0]}:// URL; use a redis+sentinel:// URL or drop URL"
        )
    if not opts.get("SENTINELS") or not opts.get("MASTER_NAME"):
        raise InvalidTaskBackend(
            f"backend {alias!r}: Sentinel needs both SENTINELS (a list of (host, port)) and "
            "MASTER_NAME"
        )
    return {
        "SENTINELS": [(str(h), int(p)) for h, p in opts["SENTINELS"]],
        "MASTER_NAME": opts["MASTER_NAME"],
        "DB": opts["DB"],
        "USERNAME": opts["USERNAME"],
        "PASSWORD": opts["PASSWORD"],
        "SSL": opts["SSL"],
    }


def make_client(alias: str, opts: Mapping[str, Any]) -> Any:
    """A new Redis client for a Redis backend's ``OPTIONS`` (no I/O until first used).

    Every taskyard client is built here: plain (``URL`` or ``HOST``…) or, with ``SENTINELS``
    and ``MASTER_NAME`` or a ``redis+sentinel://`` URL, a client of the master Sentinel names
    (redis-py's ``Sentinel.master_for``: it asks the sentinels again after a connection error
    or a ``READONLY`` reply, so it follows a failover)."""
    cls = client_class(alias, opts["CONNECTION_CLASS"])
    try:
        from redis.cluster import RedisCluster
    except ImportError:  # pragma: no cover - redis-py without cluster support
        RedisCluster = None  # type: ignore[assignment,misc]  # noqa: N806
    if RedisCluster is not None and isinstance(cls, type) and issubclass(cls, RedisCluster):
        raise InvalidTaskBackend(
            f"backend {alias!r}: Redis Cluster is not supported (rq's jobs, queues and "
            "registries are keys its transactions and scripts touch together); use Sentinel "
            "or one Redis per group of queues (docs/backends/redis.md)"
        )
    sentinel = sentinel_settings(alias, opts)
    kwargs: dict[str, Any] = {
        "socket_timeout": opts["SOCKET_TIMEOUT"],
        "socket_connect_timeout": opts["SOCKET_CONNECT_TIMEOUT"],
        "retry": connection_retry(
            opts["CONNECTION_RETRIES"], opts["FAILOVER_TIMEOUT"] if sentinel else 0.0
        ),
        **opts["CONNECTION_KWARGS"],
    }
    if sentinel is not None:
        return _sentinel_client(cls, sentinel, opts, kwargs)
    if opts["URL"]:
        return cls.from_url(opts["URL"], **kwargs)
    if opts["SSL"]:
        kwargs["ssl"] = True
    return cls(
        host=opts["HOST"],
        port=opts["PORT"],
        db=opts["DB"],
        username=opts["USERNAME"],
        password=opts["PASSWORD"],
        **kwargs,
    )


def following_connection_class(ssl: bool) -> Any:
    """redis-py's Sentinel-managed connection class, made to ask the sentinels again whenever
    it reconnects.

    redis-py asks the sentinels only in ``connect()``; a connection that broke mid-command is
    reconnected by ``send_packed_command`` (``connect_check_health``) to the address it had, so
    a client caught in flight by a failover kept knocking on the dead master until its retries
    ran out (20 s here) while fresh connections had long found the new one."""
    from redis.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection

    base = SentinelManagedSSLConnection if ssl else SentinelManagedConnection
    found = _FOLLOWING.get(base)
    if found is None:

        def connect_check_health(
            self: Any, check_health: bool = True, retry_socket_connect: bool = True
        ) -> Any:
            if self._sock:
                return None
            if retry_socket_connect:  # a reconnect outside connect(): ask the sentinels again
                return self.connect()
            return base.connect_check_health(self, check_health, retry_socket_connect)

        found = _FOLLOWING[base] = type(
            f"Following{base.__name__}",
            (base,),
            {"connect_check_health": connect_check_health, "__module__": __name__},
        )
    return found


_FOLLOWING: dict[Any, Any] = {}


def _sentinel_client(
    cls: Any, sentinel: Mapping[str, Any], opts: Mapping[str, Any], kwargs: dict[str, Any]
) -> Any:
    from redis.sentinel import Sentinel

    sentinel_kwargs = {
        "socket_timeout": opts["SOCKET_CONNECT_TIMEOUT"],
        "socket_connect_timeout": opts["SOCKET_CONNECT_TIMEOUT"],
        **opts["SENTINEL_KWARGS"],
    }
    manager = Sentinel(sentinel["SENTINELS"], sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    kwargs.setdefault("connection_class", following_connection_class(sentinel["SSL"]))
    return manager.master_for(  # type: ignore[no-untyped-call]
        sentinel["MASTER_NAME"],
        redis_class=cls,
        db=sentinel["DB"],
        username=sentinel["USERNAME"],
        password=sentinel["PASSWORD"],
        **kwargs,
    )


def describe_sentinel(sentinel: Mapping[str, Any]) -> str:
    hosts = ",".join(f"{h}:{p}" for h, p in sentinel["SENTINELS"])
    scheme = "rediss+sentinel" if sentinel["SSL"] else "redis+sentinel"
    return f"{scheme}://{hosts}/{sentinel['MASTER_NAME']}/{sentinel['DB']}"


def pin_driver_info(client: Any) -> None:
    """Resolve redis-py's client-library version once, in this process, for every connection
    ``client``'s pool will open.

    redis-py looks its own version up in the installed package metadata (reading files) each
    time it creates a connection. A forking worker's work horse opens a fresh connection for
    every job, so that lookup ran once per job (about 0.8 ms of a 10 ms job here); with the
    resolved value in the pool's connection arguments, horses inherit it through fork.
    """
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return
    try:
        from redis.driver_info import resolve_driver_info
        from redis.utils import SENTINEL
    except ImportError:  # redis-py < 7: CLIENT SETINFO takes lib_name / lib_version
        if "lib_version" not in kwargs:
            from importlib.metadata import version

            kwargs["lib_version"] = version("redis")
        return
    if kwargs.get("driver_info", SENTINEL) is SENTINEL:
        kwargs["driver_info"] = resolve_driver_info(
            SENTINEL, kwargs.pop("lib_name", SENTINEL), kwargs.pop("lib_version", SENTINEL)
        )


def fresh_client(client: Any) -> Any:
    """A client with the same settings as ``client`` and a pool of its own (for a client of a
    Sentinel-managed master, a pool that asks the same sentinels)."""
    from redis import ConnectionPool
    from redis.sentinel import SentinelConnectionPool
    from rq.connections import parse_connection

    pool = client.connection_pool
    client_class_, connection_class, kwargs = parse_connection(client)
    if isinstance(pool, SentinelConnectionPool):
        kwargs.pop("connection_pool", None)
        return client_class_(
            connection_pool=type(pool)(
                pool.service_name,
                pool.sentinel_manager,
                connection_class=connection_class,
                is_master=pool.is_master,
                check_connection=pool.check_connection,
                **kwargs,
            )
        )
    return client_class_(
        connection_pool=ConnectionPool(connection_class=connection_class, **kwargs)
    )


__all__ = [
    "connection_retry",
    "describe_sentinel",
    "fresh_client",
    "make_client",
    "parse_sentinel_url",
    "pin_driver_info",
    "sentinel_settings",
]
