"""rq worker classes for taskyard jobs: ordinary rq workers plus priority levels and a reaper.

* ``TaskyardWorker`` (forking, rq's ``Worker``) and ``TaskyardSimpleWorker`` (rq's
  ``SimpleWorker``, in-process) listen to every priority level of their queue names, highest
  first (``default:p50``, ``default:p10``, ``default``, ``default:p-5``, ...; levels are found
  in Redis and re-read every ``level_refresh`` seconds), run rq's scheduler over all levels,
  and run a reaper thread that hands back attempts whose lease ran out (a worker killed with
  SIGKILL) every ``reap_interval`` seconds.
* ``TaskyardJob`` calls nothing but taskyard's entry point: ``taskyard rqworker`` uses it so a
  job naming any other function fails without running (``--allow-rq-jobs`` lifts that).

Plain rq workers also run taskyard jobs (``rq worker --serializer json default``); these classes
are what they miss, and can be passed to them with ``--worker-class``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker, Worker

import taskyard.backends.redis.job  # noqa: F401 - imported here, not in every forked horse
from taskyard.backends.redis.keys import RUN_JOB, as_str, level_queue, levels_key
from taskyard.backends.redis.maintenance import reap, sweep_orphaned_dependents
from taskyard.backends.redis.scripts import preload
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.exceptions import InvalidTask

logger = logging.getLogger("taskyard.backends.redis")

SWEEP_EVERY = 30.0


class TaskyardJob(Job):
    """An rq ``Job`` that refuses to call anything but ``run_job``."""

    @property
    def func(self) -> Any:
        name = self.func_name
        if name != RUN_JOB:
            raise InvalidTask(
                f"job {self.id} calls {name!r}, which is not a taskyard task: taskyard rqworker "
                "runs only taskyard tasks (start it with --allow-rq-jobs to run plain rq jobs)"
            )
        return super().func


def _queue_names(queues: Any) -> list[str]:
    if isinstance(queues, str | Queue):
        queues = [queues]
    return [q.name if isinstance(q, Queue) else str(q) for q in queues]


def expand_levels(client: Any, bases: Sequence[str]) -> list[str]:
    """The rq queues of ``bases`` at every priority level in use, highest priority first
    (then in the order of ``bases``)."""
    with client.pipeline(transaction=False) as pipe:
        for base in bases:
            pipe.smembers(levels_key(base))
        replies = pipe.execute()
    entries: list[tuple[int, int, str]] = []
    for index, (base, members) in enumerate(zip(bases, replies, strict=True)):
        levels = {0} | {int(as_str(m) or 0) for m in members}
        entries.extend((-level, index, level_queue(base, level)) for level in levels)
    return [name for _, _, name in sorted(entries)]


class LevelScheduler(RQScheduler):
    """rq's scheduler over every priority level of its queue names (found as they appear)."""

    def __init__(self, queues: Iterable[Any], connection: Any, **kwargs: Any) -> None:
        self._taskyard_bases = _queue_names(queues)
        super().__init__(self._taskyard_bases, connection=connection, **kwargs)

    def _expanded(self) -> set[str] | None:
        try:
            return set(expand_levels(self.connection, self._taskyard_bases))
        except Exception as exc:  # Redis away: keep the queues already known
            logger.debug("scheduler could not read priority levels: %s", exc)
            return None

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        names = self._expanded()
        if names is not None:
            self._queue_names = names
        acquired: set[str] = super().acquire_locks(auto_start)  # type: ignore[no-untyped-call]
        return acquired

    @property
    def should_reacquire_locks(self) -> bool:
        names = self._expanded()
        if names is not None and names - self._queue_names:
            self._queue_names = names
            return True
        return bool(super().should_reacquire_locks)


class Reaper:
    """A daemon thread running ``maintenance.reap`` every ``interval`` seconds."""

    def __init__(self, client: Any, interval: float) -> None:
        self.client = client
        self.interval = interval
        self.reaped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskyard-redis-reaper", daemon=True)

    def start(self) -> Reaper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_EVERY
        while not self._stop.wait(self.interval):
            try:
                self.reaped += len(reap(self.client))
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    sweep_orphaned_dependents(self.client)
            except Exception as exc:
                logger.warning("reaper: %s: %s", type(exc).__name__, exc)


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


class PriorityLevelsMixin:
    """What taskyard adds to an rq worker class (see the module docstring)."""

    level_refresh: float = 1.0
    """Seconds between reads of the priority levels in use."""
    idle_poll: int = 1
    """Seconds an idle worker blocks on its queues before looking for new levels again."""
    reap_interval: float = 1.0
    """Seconds between reaper passes (0: no reaper thread)."""
    max_connection_wait_time: float = 5.0
    """Longest pause between reconnection attempts when Redis is away (rq's default is 60)."""

    # set by rq's BaseWorker
    connection: Any
    queue_class: type[Queue]
    job_class: type[Job]
    serializer: Any
    death_penalty_class: Any
    worker_ttl: int
    scheduler: Any
    queues: list[Queue]
    log: logging.Logger

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        self._taskyard_bases = _queue_names(queues)
        self._taskyard_names: list[str] = []
        self._taskyard_read_at = -1e9
        self._taskyard_reaper: Reaper | None = None
        # taskyard writes JSON jobs: launchers that pass rq's default (pickle) serializer, as
        # django-rq's rqworker always does, still get JSON here.
        kwargs["serializer"] = JSONSerializer
        super().__init__(self._taskyard_bases, *args, **kwargs)  # type: ignore[call-arg]

    @property
    def _ordered_queues(self) -> list[Queue]:
        self._refresh_levels()
        return self._taskyard_ordered

    @_ordered_queues.setter
    def _ordered_queues(self, value: list[Queue]) -> None:
        self._taskyard_ordered = list(value)

    def _refresh_levels(self) -> None:
        now = time.monotonic()
        if now - self._taskyard_read_at < self.level_refresh:
            return
        self._taskyard_read_at = now
        self._revive_scheduler()
        try:
            names = expand_levels(self.connection, self._taskyard_bases)
        except Exception as exc:  # Redis away: rq's own dequeue reports and backs off
            logger.debug("could not read priority levels: %s", exc)
            return
        if names == self._taskyard_names:
            return
        known = {q.name: q for q in self.queues}
        self.queues = [
            known.get(name)
            or self.queue_class(
                name,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
            for name in names
        ]
        self._taskyard_ordered = list(self.queues)
        if self._taskyard_names and getattr(self, "birth_date", None) is not None:
            logger.info("now listening on %s", ", ".join(names))
            try:
                from rq import worker_registration

                worker_registration.register(self)  # type: ignore[arg-type]
                self.connection.hset(self.key, "queues", ",".join(names))  # type: ignore[attr-defined]
            except Exception as exc:  # pragma: no cover - bookkeeping only
                logger.debug("could not register new queues: %s", exc)
        self._taskyard_names = names

    def _revive_scheduler(self) -> None:
        """Restart a scheduler process that died (Redis went away under it) now, not at rq's
        next maintenance run (up to ``maintenance_interval``, 10 minutes, later)."""
        scheduler = self.scheduler
        process = getattr(scheduler, "_process", None)
        if process is None or process.is_alive():
            return
        try:
            scheduler.acquire_locks(auto_start=True)
        except Exception as exc:
            logger.debug("could not restart the scheduler yet: %s", exc)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """rq's heartbeat, its three writes sent in one round trip instead of three."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
            return
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)  # type: ignore[misc]
            pipe.execute()

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(self.worker_ttl - 15, self.idle_poll))

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        pin_driver_info(self.connection)
        super().bootstrap(*args, **kwargs)  # type: ignore[misc]
        preload(self.connection)
        if self.reap_interval > 0 and self._taskyard_reaper is None:
            self._taskyard_reaper = Reaper(fresh_client(self.connection), self.reap_interval)
            self._taskyard_reaper.start()

    def teardown(self) -> None:
        if self._taskyard_reaper is not None:
            self._taskyard_reaper.stop()
            self._taskyard_reaper = None
        super().teardown()  # type: ignore[misc]

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """taskyard already logged a task's failure (with its traceback) in its lifecycle log:
        rq's own log line stays short for those; other errors keep rq's full report."""
        from taskyard.backends.redis.job import TaskFailed, TaskNotRun

        if isinstance(exc_info[1], TaskFailed | TaskNotRun):
            self.log.info("job %s: %s", job.id, exc_info[1])
            from rq.job_lifecycle import call_exception_handlers

            call_exception_handlers(self._exc_handlers, job, *exc_info)  # type: ignore[attr-defined]
            return
        super().handle_exception(job, *exc_info)  # type: ignore[misc]

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = "%H:%M:%S",
        log_format: str = "%(asctime)s %(message)s",
    ) -> None:
        """rq's scheduler, over every priority level (rq's own sees only the names given)."""
        scheduler = LevelScheduler(
            self._taskyard_bases,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler = scheduler
        if not scheduler.acquire_locks():
            return  # another scheduler holds every lock
        if not burst:
            scheduler.start()  # type: ignore[no-untyped-call]
            return
        try:
            scheduler.register_birth()
            scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
        finally:
            scheduler.release_locks()  # type: ignore[no-untyped-call]
            scheduler.register_death()


class TaskyardWorker(PriorityLevelsMixin, Worker):
    """rq's forking ``Worker`` with taskyard's priority levels, scheduler and reaper."""


class TaskyardSimpleWorker(PriorityLevelsMixin, SimpleWorker):
    """rq's ``SimpleWorker`` (jobs run in the worker process) with taskyard's additions."""


WORKER_CLASSES: dict[str, type[Worker] | type[SimpleWorker]] = {
    "forking": TaskyardWorker,
    "simple": TaskyardSimpleWorker,
}
