"""Redis clients for taskyard's workers: a pool of their own, driver information resolved once."""

from __future__ import annotations

from typing import Any


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
    """A client with the same settings as ``client`` and a pool of its own."""
    from redis import ConnectionPool
    from rq.connections import parse_connection

    client_class, connection_class, kwargs = parse_connection(client)
    return client_class(connection_pool=ConnectionPool(connection_class=connection_class, **kwargs))


__all__ = ["fresh_client", "pin_driver_info"]
