"""``RedisBackend``: taskyard tasks as ordinary rq jobs (JSON, never pickle).

The job id is the ``TaskResult`` id. The job's function is ``taskyard.backends.redis.job.run_job``
with JSON arguments, so any rq worker with a JSON serializer runs it; ``taskyard rqworker``
adds priority levels, a reaper for lost attempts and health endpoints. See
``docs/backends/redis.md`` for the full design.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from taskyard.backends.base import Backend, Option, not_negative, positive
from taskyard.backends.redis.clients import (
    DEFAULT_FAILOVER_TIMEOUT,
    describe_sentinel,
    make_client,
    sentinel_settings,
    sentinels_check,
)
from taskyard.backends.redis.keys import (
    DEFAULT_LEASE,
    DEFAULT_MAX_INTERRUPTIONS,
    as_str,
    bad_queue_name,
    level_queue,
    levels_key,
    require_rq,
)
from taskyard.backends.redis.maintenance import cancel_job, dependency_failed
from taskyard.backends.redis.record import (
    result_from_hash,
)
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.backends.redis.store import JobStore
from taskyard.exceptions import (
    BackendUnavailable,
    InvalidTask,
    InvalidTaskBackend,
    NotReplicated,
    TaskCancelled,
    TaskResultDoesNotExist,
)
from taskyard.tasks.hooks import announce_enqueued, announce_finished
from taskyard.tasks.results import TaskResult
from taskyard.tasks.task import PreparedCall, Task

T = TypeVar("T")
NoneType = type(None)


WAIT_MARKER = "taskyard:replicated"
"""The counter ``MIN_REPLICAS`` increments before ``WAIT`` (its value means nothing)."""

DEFAULT_SOCKET_TIMEOUT = 10.0
"""Seconds a Redis reply may take by default (workers raise it above their blocking reads)."""


def _ttl(value: Any) -> str | None:
    return None if value >= -1 else "must be seconds >= 0, or -1 to keep forever"


class RedisBackend(Backend):
    """Tasks as rq jobs in Redis, run by rq workers (``taskyard rqworker``, django-rq, ``rq``).

    ``OPTIONS``: ``URL`` (``redis://``/``rediss://``; or ``HOST``, ``PORT``, ``DB``,
    ``USERNAME``, ``PASSWORD``, ``SSL``), socket timeouts, ``CONNECTION_CLASS`` and
    ``CONNECTION_KWARGS`` for the client, ``RESULT_TTL``/``FAILURE_TTL`` (retention),
    ``LEASE`` (how long a silent attempt keeps its job before a reaper hands it back) and
    ``TIMEOUT_GRACE`` (added to a task's timeout for rq's hard limit). Qualifiers are refused.
    """

    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True
    supports_retries = True
    supports_timeout = True
    supports_depends_on = True
    supports_limit = True
    supports_cancel = True
    requires_importable_tasks = True

    options_schema = {
        "URL": Option((str, NoneType), None, "redis:// or rediss:// URL; wins over HOST etc."),
        "HOST": Option(str, "127.0.0.1", "Redis host (without URL)"),
        "PORT": Option(int, 6379, "Redis port (without URL)", positive),
        "DB": Option(int, 0, "Redis database number (without URL)", not_negative),
        "USERNAME": Option((str, NoneType), None, "Redis ACL user (without URL)"),
        "PASSWORD": Option((str, NoneType), None, "Redis password (without URL)"),
        "SSL": Option(bool, False, "use TLS (without URL; with a URL use rediss://)"),
        "SOCKET_TIMEOUT": Option(
            (float, NoneType),
            DEFAULT_SOCKET_TIMEOUT,
            "seconds to wait for a Redis reply (None: forever); a frozen Redis raises "
            "BackendUnavailable after this long",
            positive,
        ),
        "SOCKET_CONNECT_TIMEOUT": Option(float, 5.0, "seconds to connect to Redis", positive),
        "CONNECTION_RETRIES": Option(
            int,
            1,
            "times a command is retried on a new connection after a connection error (never "
            "after a timeout: the command may have run)",
            not_negative,
        ),
        "SENTINELS": Option(
            (list, NoneType),
            None,
            "Sentinel: list of (host, port) of the sentinels (with MASTER_NAME; django-rq's name)",
            sentinels_check,
        ),
        "MASTER_NAME": Option((str, NoneType), None, "Sentinel: the master's service name"),
        "SENTINEL_KWARGS": Option(
            dict, {}, "Sentinel: keyword arguments for the connections to the sentinels"
        ),
        "FAILOVER_TIMEOUT": Option(
            float,
            DEFAULT_FAILOVER_TIMEOUT,
            "Sentinel: seconds a command keeps retrying connection errors (a failover in "
            "progress) before BackendUnavailable",
            not_negative,
        ),
        "MIN_REPLICAS": Option(
            int,
            0,
            "replicas that must acknowledge a stored task (WAIT) before enqueue returns; "
            "fewer raise NotReplicated",
            not_negative,
        ),
        "MIN_REPLICAS_TIMEOUT": Option(
            float, 1.0, "seconds enqueue waits for MIN_REPLICAS acknowledgements", positive
        ),
        "CONNECTION_CLASS": Option(
            str, "redis.Redis", "dotted path of a redis.Redis-compatible client class"
        ),
        "CONNECTION_KWARGS": Option(dict, {}, "extra keyword arguments for the client"),
        "RESULT_TTL": Option(
            int, 86_400, "seconds a succeeded job and its result are kept (-1: forever)", _ttl
        ),
        "FAILURE_TTL": Option(
            int, 604_800, "seconds a failed or cancelled job is kept (-1: forever)", _ttl
        ),
        "LEASE": Option(
            float,
            DEFAULT_LEASE,
            "seconds an attempt whose worker went silent keeps its job before a reaper "
            "hands it back (the worker renews it every third of that)",
            positive,
        ),
        "MAX_INTERRUPTIONS": Option(
            int,
            DEFAULT_MAX_INTERRUPTIONS,
            "times an attempt interrupted by its worker's death or shutdown is run again "
            "(whatever retries says); one more and the task fails with WorkerLost",
            not_negative,
        ),
        "TIMEOUT_GRACE": Option(
            float, 30.0, "seconds added to a task's timeout for rq's hard job limit", not_negative
        ),
    }

    def __init__(self, alias: str, params: Mapping[str, Any]) -> None:
        super().__init__(alias, params)
        for queue in self.queues:
            problem = bad_queue_name(queue)
            if problem:
                raise InvalidTaskBackend(f"backend {alias!r} ({self.describe()}): {problem}")
        kwargs = self.options["CONNECTION_KWARGS"]
        if kwargs.get("decode_responses"):
            raise InvalidTaskBackend(
                f"backend {alias!r}: OPTIONS['CONNECTION_KWARGS'] sets decode_responses, which "
                "rq cannot work with"
            )
        sentinel_settings(alias, self.options)  # contradictions are refused now, not later
        socket_timeout = self.options["SOCKET_TIMEOUT"]
        if (
            self.options["MIN_REPLICAS"]
            and socket_timeout is not None
            and self.options["MIN_REPLICAS_TIMEOUT"] >= socket_timeout
        ):
            raise InvalidTaskBackend(
                f"backend {alias!r}: MIN_REPLICAS_TIMEOUT must be shorter than "
                "SOCKET_TIMEOUT (the WAIT reply would time out first)"
            )
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._queues: dict[str, Any] = {}
        self._lease: float = self.options["LEASE"]
        self._max_interruptions: int = self.options["MAX_INTERRUPTIONS"]
        self._store = JobStore(self)
        self._grace: float = self.options["TIMEOUT_GRACE"]

    # -- connection ---------------------------------------------------------------------------

    def connection(self) -> Any:
        """The Redis client (built on first use; rq workers get their own from ``new_client``)."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.new_client()
                client = self._client
        return client

    def new_client(self) -> Any:
        """A new Redis client from the settings (no I/O until first used): plain, or the
        master named by Sentinel (see ``clients.make_client``, which every taskyard client
        goes through)."""
        require_rq()
        return make_client(self.alias, self.options)

    def describe_connection(self) -> str:
        sentinel = sentinel_settings(self.alias, self.options)
        if sentinel is not None:
            return describe_sentinel(sentinel)
        url = self.options["URL"]
        if url:
            from taskyard.config import _redact

            return _redact(url)
        return f"redis://{self.options['HOST']}:{self.options['PORT']}/{self.options['DB']}"

    def _guard(self, call: Callable[..., T], *args: Any) -> T:
        """Run ``call``; Redis being unreachable becomes ``BackendUnavailable``."""
        _, redis = require_rq()
        try:
            return call(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailable(
                f"backend {self.alias!r}: Redis at {self.describe_connection()} is unreachable: "
                f"{exc}"
            ) from exc

    def queue(self, name: str) -> Any:
        """The rq ``Queue`` called ``name`` (a level queue such as ``default:p10`` too)."""
        found = self._queues.get(name)
        if found is None:
            from rq.queue import Queue

            found = self._queues[name] = Queue(
                name, connection=self.connection(), serializer=JSONSerializer
            )
        return found

    # -- validation ---------------------------------------------------------------------------

    def validate_task(self, task: Task[Any, Any]) -> None:
        if task._checked_by is self:
            return
        problem = bad_queue_name(task.queue_name)
        if problem:
            raise InvalidTask(f"{task.module_path}: {problem}")
        super().validate_task(task)

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(
        self, task: Task[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult[Any]:
        self.validate_task(task)
        result = self.new_result(task, args, kwargs)
        if task.limit is not None or task.depends_on is not None:
            self._guard(self._store.store_guarded, result)
        else:
            self._guard(self._store.store_plain, [result])
        self._announce([result])  # stored (and may run) even if too few replicas have it yet
        self._guard(self.await_replicas, [result])
        return result

    def enqueue_many(self, calls: Sequence[PreparedCall]) -> list[TaskResult[Any]]:
        """Enqueue ``calls`` in one pipeline (one round trip); tasks with ``limit`` or
        ``depends_on`` need a watched transaction each and are stored one by one."""
        results = []
        for call in calls:
            self.validate_task(call.task)
            results.append(self.new_result(call.task, call.args, call.kwargs, normalized=True))
        plain = [r for r in results if r.task.limit is None and r.task.depends_on is None]
        if plain:
            self._guard(self._store.store_plain, plain)
        for result in results:
            if result.task.limit is not None or result.task.depends_on is not None:
                self._guard(self._store.store_guarded, result)
        self._announce(results)
        self._guard(self.await_replicas, results)
        return results

    def await_replicas(self, results: Sequence[TaskResult[Any]]) -> None:
        """With ``MIN_REPLICAS``: block until that many replicas have everything this process
        wrote so far (one ``INCR`` of a marker then ``WAIT`` on the same connection: the
        replication stream is ordered, so a replica that acknowledged the marker has the
        tasks), or raise ``NotReplicated`` after ``MIN_REPLICAS_TIMEOUT``."""
        wanted: int = self.options["MIN_REPLICAS"]
        if not wanted or not results:
            return
        timeout_ms = max(1, int(self.options["MIN_REPLICAS_TIMEOUT"] * 1000))
        with self.connection().pipeline(transaction=False) as pipe:
            pipe.incr(WAIT_MARKER)
            pipe.execute_command("WAIT", wanted, timeout_ms)
            _, acknowledged = pipe.execute()
        if int(acknowledged) < wanted:
            ids = [r.id for r in results]
            raise NotReplicated(
                f"backend {self.alias!r}: {len(ids)} task(s) stored on the Redis master but "
                f"only {acknowledged} of the {wanted} replica(s) MIN_REPLICAS requires "
                f"acknowledged them within {self.options['MIN_REPLICAS_TIMEOUT']:g}s; a "
                f"failover now could lose them (ids: {', '.join(ids[:5])}"
                f"{', …' if len(ids) > 5 else ''})",
                ids,
                int(acknowledged),
            )

    def _announce(self, results: list[TaskResult[Any]]) -> None:
        sender = type(self)
        for result in results:
            announce_enqueued(sender, result)
            if result.is_finished:
                announce_finished(sender, result)

    # -- for other taskyard parts that store a task inside their own transaction (cron) ------

    def build_job(self, result: TaskResult[Any]) -> Any:
        """The rq ``Job`` for a new ``result`` (from ``new_result``), not stored yet."""
        return self._store.job(result)

    def queue_job_commands(self, pipe: Any, job: Any, result: TaskResult[Any]) -> None:
        """Add the commands storing ``job`` to ``pipe`` (in ``MULTI``; watching first when the
        task has a dependency). Call ``announce_enqueued_results`` after ``EXEC``."""
        self._store.push(pipe, job, result)

    def check_limit(self, pipe: Any, task: Task[Any, Any], key: str) -> list[str]:
        """With ``pipe`` watching ``limit_key(key)``: raise ``TaskLimitError`` when ``task``'s
        limit is reached, else return the ids in the set that are no longer pending."""
        return self._store.check_limit(pipe, task, key)

    def announce_enqueued_results(self, results: list[TaskResult[Any]]) -> None:
        """Fire the enqueued (and, for tasks cancelled at once, finished) hooks, then wait for
        ``MIN_REPLICAS`` (if set; ``NotReplicated`` if too few replicas acknowledge)."""
        self._announce(results)
        self._guard(self.await_replicas, results)

    # -- results ------------------------------------------------------------------------------

    def _fetch(self, result_id: str) -> tuple[dict[bytes, bytes], list[Any]]:
        from rq.job import Job
        from rq.results import Result

        with self.connection().pipeline(transaction=False) as pipe:
            pipe.hgetall(Job.key_for(result_id))
            results_key = Result.get_key(result_id)  # type: ignore[no-untyped-call]
            pipe.xrevrange(results_key, "+", "-", count=10)
            fields, entries = pipe.execute()
        return fields, entries

    def get_result(self, result_id: str) -> TaskResult[Any]:
        if not isinstance(result_id, str) or not result_id:
            raise TaskResultDoesNotExist(f"no result {result_id!r} in backend {self.alias!r}")
        return self._guard(self._get_result, result_id)

    def _get_result(self, result_id: str) -> TaskResult[Any]:
        return self._read(result_id)[0]

    def _read(self, result_id: str) -> tuple[TaskResult[Any], bytes]:
        """The result, and the id of the newest entry in rq's result stream (for XREAD)."""
        fields, entries = self._fetch(result_id)
        if not fields:
            raise TaskResultDoesNotExist(f"no result {result_id!r} in backend {self.alias!r}")
        if as_str(fields.get(b"status")) == "deferred" and fields.get(b"dependency_ids"):
            failed = dependency_failed(self.connection(), json.loads(fields[b"dependency_ids"]))
            if failed is not None:
                reason = InvalidTask(f"cancelled because dependency {failed[0]} ended {failed[1]}")
                cancel_job(self.connection(), result_id, reason)
                fields, entries = self._fetch(result_id)
        latest = entries[0][1] if entries else None
        success = next((e for _, e in entries if e.get(b"type") == b"1"), None)
        result = result_from_hash(result_id, fields, latest, success, self.alias, self)
        return result, entries[0][0] if entries else b"0-0"

    def wait_for(self, result: TaskResult[Any], timeout: float | None) -> None:
        """Block until ``result`` finished: sleeps on rq's result stream (``XREAD BLOCK``), so
        a finished task wakes the waiter at once; re-reads at least every second."""
        from rq.results import Result

        deadline = None if timeout is None else time.monotonic() + timeout
        key = Result.get_key(result.id)  # type: ignore[no-untyped-call]
        while True:
            fresh, last = self._guard(self._read, result.id)
            result._copy_from(fresh)
            if result.is_finished:
                return
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"task {result.id} had not finished after {timeout}s "
                    f"(status {result.status.value})"
                )
            block = max(1, int(min(left, 1.0) * 1000))
            self._guard(self.connection().xread, {key: last}, None, block)

    def cancel(self, result: TaskResult[Any]) -> bool:
        reason = TaskCancelled("cancelled before it started")
        outcome, cancelled = self._guard(cancel_job, self.connection(), result.id, reason)
        if outcome == "missing":
            raise TaskResultDoesNotExist(f"no result {result.id!r} in backend {self.alias!r}")
        if outcome == "finished":
            self.refresh_result(result)
            return False
        if outcome == "requested":
            result._cancel_requested = True
            return True
        self.refresh_result(result)
        sender = type(self)
        for job_id in cancelled:
            try:
                announce_finished(
                    sender, result if job_id == result.id else self.get_result(job_id)
                )
            except TaskResultDoesNotExist:  # pragma: no cover - expired meanwhile
                continue
        return True

    def pending_count(self, queue_names: Sequence[str]) -> int:
        """Jobs waiting in the rq queues (every priority level) of ``queue_names``."""
        client = self.connection()
        total = 0
        for name in queue_names:
            levels = [int(x) for x in client.smembers(levels_key(name))]
            for level in [0, *levels]:
                total += int(client.llen(self.queue(level_queue(name, level)).key))
        return total

    # -- the rest -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
            self._queues = {}
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def check(self) -> list[str]:
        try:
            require_rq()
        except ImportError as exc:
            return [str(exc)]
        try:
            self._guard(self.connection().ping)
        except BackendUnavailable as exc:
            return [str(exc)]
        return []


__all__ = ["RedisBackend"]
