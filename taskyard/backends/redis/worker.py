"""rq worker classes for taskyard jobs: ordinary rq workers plus priority levels, a reaper, and
taskyard's rules on what runs and what counts as an attempt.

* ``TaskyardWorker`` (forking, rq's ``Worker``) and ``TaskyardSimpleWorker`` (rq's
  ``SimpleWorker``, in-process) listen to every priority level of their queue names, highest
  first (``default:p50``, ``default:p10``, ``default``, ``default:p-5``, ...; levels are found
  in Redis and re-read every ``level_refresh`` seconds), run rq's scheduler over all levels,
  and run a reaper thread (``recovery``) every ``reap_interval`` seconds.
* They take jobs without ever losing one (``dequeue.TaskyardQueue``), run only what
  ``policy`` allows (``allow_rq_jobs`` for plain rq jobs), and treat an attempt stopped by a
  dead work horse or a shutdown as interrupted, not failed (``horse.HorseKeeping``,
  ``settle``). ``shutdown_timeout`` bounds a warm shutdown: past it, the running attempt is
  stopped and handed back.

Plain rq workers also run taskyard jobs (``rq worker --serializer json default``); these classes
are what they miss, and can be passed to them with ``--worker-class``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from rq.job import Job
from rq.queue import Queue
from rq.registry import StartedJobRegistry
from rq.worker import SimpleWorker, Worker

import taskyard.backends.redis.job  # noqa: F401 - imported here, not in every forked horse
from taskyard.backends.redis.clients import fresh_client, pin_driver_info
from taskyard.backends.redis.dequeue import TaskyardQueue
from taskyard.backends.redis.horse import HorseKeeping
from taskyard.backends.redis.keys import DEFAULT_LEASE, F_STATUS
from taskyard.backends.redis.levels import LevelScheduler, expand_levels, queue_names
from taskyard.backends.redis.maintenance import sweep_orphaned_dependents
from taskyard.backends.redis.policy import GuardedJob, JobRefused, guarded_job_class, refusal
from taskyard.backends.redis.quarantine import CorruptJob, describe, quarantine
from taskyard.backends.redis.recovery import Recovery
from taskyard.backends.redis.scripts import preload
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.backends.redis.settle import refuse
from taskyard.exceptions import WorkerInterrupted

logger = logging.getLogger("taskyard.backends.redis")

SWEEP_EVERY = 30.0

TaskyardJob = GuardedJob
"""The job class of taskyard's workers (``policy.GuardedJob``); kept under its old name."""


class Reaper:
    """A daemon thread running ``recovery.Recovery`` every ``interval`` seconds (jobs stranded
    for ``grace`` seconds are moved on; see ``recovery``)."""

    def __init__(self, client: Any, interval: float, grace: float = DEFAULT_LEASE) -> None:
        self.client = client
        self.interval = interval
        self.recovery = Recovery(client, grace)
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
                self.reaped += len(self.recovery.run())
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + SWEEP_EVERY
                    sweep_orphaned_dependents(self.client)
            except Exception as exc:
                logger.warning("reaper: %s: %s", type(exc).__name__, exc)


def _taskyard_queue_class(queue_class: Any) -> type[Queue]:
    """``TaskyardQueue``, combined with a launcher's own queue class when it passes one."""
    if isinstance(queue_class, str):
        from rq.utils import import_attribute

        queue_class = import_attribute(queue_class)
    if queue_class is None or queue_class is Queue or issubclass(queue_class, TaskyardQueue):
        return queue_class if queue_class not in (None, Queue) else TaskyardQueue
    return type(f"Taskyard{queue_class.__name__}", (TaskyardQueue, queue_class), {})


class PlainStartedJobRegistry(StartedJobRegistry):
    """rq's started registry whose clean-up leaves taskyard's jobs to taskyard's reaper."""

    def get_expired_job_ids(self, timestamp: float | None = None) -> list[str]:
        ids: list[str] = super().get_expired_job_ids(timestamp)
        if not ids:
            return ids
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hexists(Job.key_for(job_id), F_STATUS)
            ours = pipe.execute()
        return [job_id for job_id, taskyard in zip(ids, ours, strict=True) if not taskyard]


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
    allow_rq_jobs: bool = False
    """Also run plain rq jobs (and callbacks from declared task modules); see ``policy``."""
    lease: float = DEFAULT_LEASE
    """The backend's ``LEASE``: how long the reaper waits before judging a job stranded."""
    shutdown_timeout: float | None = None
    """Seconds a warm shutdown waits for the running attempt before stopping it and handing it
    back (``None``: as long as it takes, rq's behaviour)."""
    queue_class: type[Queue] = TaskyardQueue

    # set by rq's BaseWorker
    connection: Any
    job_class: type[Job]
    serializer: Any
    death_penalty_class: Any
    worker_ttl: int
    scheduler: Any
    queues: list[Queue]
    log: logging.Logger
    last_cleaned_at: Any

    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        self._taskyard_bases = queue_names(queues)
        self._taskyard_names: list[str] = []
        self._taskyard_read_at = -1e9
        self._taskyard_reaper: Reaper | None = None
        # taskyard writes JSON jobs: launchers that pass rq's default (pickle) serializer, as
        # django-rq's rqworker always does, still get JSON here.
        kwargs["serializer"] = JSONSerializer
        job_class: Any = kwargs.get("job_class")
        if isinstance(job_class, str):
            from rq.utils import import_attribute

            job_class = import_attribute(job_class)
        kwargs["job_class"] = guarded_job_class(job_class, self.allow_rq_jobs)
        kwargs["queue_class"] = _taskyard_queue_class(kwargs.get("queue_class"))
        self._taskyard_job: Job | None = None
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
            client = fresh_client(self.connection)
            self._taskyard_reaper = Reaper(client, self.reap_interval, self.lease)
            self._taskyard_reaper.start()

    # -- what runs, and how it starts ----------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run ``job`` if ``policy`` allows it; otherwise fail it without importing or calling
        anything it names. A job whose data cannot be read is set aside."""
        from rq.exceptions import DeserializationError

        try:
            why = refusal(job, self.connection, self.allow_rq_jobs)
        except (DeserializationError, ValueError, TypeError) as exc:
            why = f"job {job.id}: stored data cannot be read ({describe(exc)})"
            quarantine(self.connection, job.id, why)
            return
        if why is not None:
            try:
                refuse(self.connection, job.id, JobRefused(f"job {job.id} {why}"))
            except CorruptJob as exc:
                quarantine(self.connection, job.id, str(exc))
            self.log.warning("job %s refused: %s", job.id, why)
            return
        self._taskyard_job = job
        try:
            super().execute_job(job, queue)  # type: ignore[misc]
        finally:
            self._taskyard_job = None

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """rq's preparation, always leaving the intermediate list (rq leaves it only when the
        worker listens to one queue; taskyard's workers take every job through it)."""
        super().prepare_job_execution(job, True)  # type: ignore[misc]

    def clean_registries(self) -> None:
        """rq's registry clean-ups, except the two that taskyard's reaper does better: rq fails
        jobs stuck in an intermediate list (taskyard hands them back) and treats running taskyard
        attempts as abandoned when rq's own heartbeat lapses (taskyard's lease decides)."""
        from rq import worker_registration
        from rq.registry import (
            DeferredJobRegistry,
            FailedJobRegistry,
            FinishedJobRegistry,
            ReadyJobRegistry,
        )
        from rq.utils import now

        for queue in self.queues:
            if not queue.acquire_maintenance_lock():
                continue
            options = {"connection": queue.connection, "serializer": JSONSerializer}
            for registry in (FinishedJobRegistry, FailedJobRegistry, DeferredJobRegistry):
                registry(queue.name, **options).cleanup()  # type: ignore[arg-type]
            ReadyJobRegistry(queue.name, **options).cleanup()  # type: ignore[arg-type]
            PlainStartedJobRegistry(
                queue.name,
                job_class=self.job_class,
                **options,  # type: ignore[arg-type]
            ).cleanup(exception_handlers=self._exc_handlers)  # type: ignore[attr-defined]
            worker_registration.clean_worker_registry(queue)
            queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
        self.last_cleaned_at = now()

    # -- shutdown ---------------------------------------------------------------------------

    def request_stop(self, signum: int, frame: Any) -> None:
        """rq's warm shutdown; with ``shutdown_timeout``, a cold one once it has passed."""
        if self.shutdown_timeout is not None and self._taskyard_job is not None:
            timer = threading.Timer(max(self.shutdown_timeout, 1.1), self._past_shutdown_timeout)
            timer.daemon = True
            timer.start()
        super().request_stop(signum, frame)  # type: ignore[misc]

    def _past_shutdown_timeout(self) -> None:
        if self._taskyard_job is not None:
            logger.warning(
                "shutdown timeout of %gs passed with job %s running: stopping it",
                self.shutdown_timeout,
                self._taskyard_job.id,
            )
            os.kill(os.getpid(), signal.SIGTERM)  # the main thread's cold-shutdown handler

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


class TaskyardWorker(HorseKeeping, PriorityLevelsMixin, Worker):
    """rq's forking ``Worker`` with taskyard's priority levels, scheduler and reaper; a work
    horse past its task's timeout is killed, and one that dies mid-attempt is an interruption."""

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """rq's cold shutdown (the work horse is killed), with the attempt handed back."""
        from rq.utils import now

        requested = self._shutdown_requested_date
        if requested is not None and (now() - requested).total_seconds() < 1:
            return  # rq's rule: a duplicate signal within a second is ignored
        self.log.warning("Worker %s: cold shut down", self.name)
        job = self._taskyard_job
        if self.horse_pid:
            self.kill_horse()
            self.wait_for_horse()
        if job is not None:
            self.settle_abandoned(job, None, None, "its worker was shut down (cold)")
        raise SystemExit()


class TaskyardSimpleWorker(PriorityLevelsMixin, SimpleWorker):
    """rq's ``SimpleWorker`` (jobs run in the worker process) with taskyard's additions."""

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """rq's cold shutdown; a running task is interrupted (``WorkerInterrupted``) and handed
        back by its own attempt instead of being failed."""
        from rq.utils import now

        requested = self._shutdown_requested_date
        if requested is not None and (now() - requested).total_seconds() < 1:
            return
        self.log.warning("Worker %s: cold shut down", self.name)
        if self._taskyard_job is not None:
            raise WorkerInterrupted("the worker was shut down while the task ran")
        raise SystemExit()


WORKER_CLASSES: dict[str, type[Worker] | type[SimpleWorker]] = {
    "forking": TaskyardWorker,
    "simple": TaskyardSimpleWorker,
}


__all__ = [
    "WORKER_CLASSES",
    "PriorityLevelsMixin",
    "Reaper",
    "TaskyardJob",
    "TaskyardSimpleWorker",
    "TaskyardWorker",
    "expand_levels",
    "fresh_client",
    "pin_driver_info",
]
