"""Moving one job on when no attempt of it is running to do so: rq's view and taskyard's record
changed together in one optimistic transaction (``WATCH`` the job, read, ``MULTI``, write).

* ``hand_back`` — a job a worker took but never began (it sat in rq's intermediate list or was
  prepared by rq, and its worker died or Redis restarted): back to the front of its queue,
  uncounted.
* ``interrupt`` — an attempt that began and was interrupted by its worker's death or shutdown:
  recorded as a ``WorkerLost`` error in the task's history and the task queued again at the
  front, whatever ``retries`` says — unless the task was interrupted more than its bound
  (``MAX_INTERRUPTIONS``): then FAILED with ``WorkerLost``.
* ``time_out`` — an attempt a worker had to stop past its timeout by killing its process:
  recorded as ``TaskTimeout``, retried or failed like any failed attempt.
* ``refuse`` — a job taskyard's worker must not run (``policy``): FAILED with the reason.
* ``finalize`` — a job taskyard recorded as finished while rq still lists it as started (its
  worker stopped in between): rq's bookkeeping done, dependents released or cancelled.

A job whose stored data cannot be read is set aside by ``quarantine.quarantine``.

Each is fenced: it acts only if the job is still in the state the caller saw (the attempt
number it names, not finished), so a job that moved on meanwhile is left alone.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError, ShutDownImminentException, StopRequested

from taskyard.backends.redis.keys import (
    DEFAULT_MAX_INTERRUPTIONS,
    F_ATTEMPT,
    F_HANDBACKS,
    F_RECORD,
    F_STATUS,
    INTERMEDIATE_SUFFIX,
    LEASES_KEY,
    MAX_HANDBACKS,
    RUN_JOB,
    as_str,
    limit_key,
)
from taskyard.backends.redis.quarantine import CorruptJob, describe
from taskyard.backends.redis.record import FINISHED_NAMES, decode_call, load_record
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.exceptions import InvalidTask, TaskTimeout, WorkerLost
from taskyard.tasks.execution import INTERRUPTED_ERRORS, error_from_exception, utcnow

logger = logging.getLogger("taskyard.backends.redis")
lifecycle = logging.getLogger("taskyard.tasks")

_TRIES = 20


@dataclass
class Seen:
    """One consistent read of a taskyard job (inside ``WATCH``)."""

    job: Any
    rq_status: str | None
    status: str | None
    attempt: int
    record: dict[str, Any]
    module_path: str
    options: dict[str, Any]
    func_name: str | None = None
    started_entries: tuple[bytes, ...] = ()

    @property
    def ours(self) -> bool:
        """A taskyard task (written by taskyard, or naming its ``run_job``)."""
        return self.status is not None or self.func_name == RUN_JOB

    @property
    def max_interruptions(self) -> int:
        return int(self.options.get("_max_interruptions", DEFAULT_MAX_INTERRUPTIONS))

    @property
    def limit_key(self) -> str | None:
        if self.options.get("limit") is None:
            return None
        return str(self.options.get("limit_key") or self.module_path)


def _watch_error() -> type[Exception]:
    from redis.exceptions import WatchError

    return WatchError


#: Exceptions that can interrupt reading a job without saying anything about its data.
_NOT_CORRUPTION: tuple[type[BaseException], ...] = (
    StopRequested,
    ShutDownImminentException,
    RedisError,
    OSError,
)


def _read(pipe: Any, client: Any, job_id: str) -> Seen | None:
    """The job as stored, or ``None`` when it is gone. Raises ``CorruptJob`` when unreadable."""
    from rq.job import Job

    key = Job.key_for(job_id)
    rq_raw, status_raw, attempt_raw, record_raw, data = pipe.hmget(
        key, "status", F_STATUS, F_ATTEMPT, F_RECORD, "data"
    )
    if rq_raw is None and data is None:
        return None
    try:
        attempt = int(attempt_raw or 0)
        record = load_record(record_raw)
        func_name, call = decode_call(data) if data else (None, [])
        module_path, options = (call[0], call[3]) if len(call) == 4 else ("", {})
        if not isinstance(options, dict) or not isinstance(module_path, str):
            raise ValueError("its arguments are not taskyard's (path, args, kwargs, options)")
        job = Job.fetch(job_id, connection=client, serializer=JSONSerializer)
    except _NOT_CORRUPTION:
        raise  # a stop request (rq's signal handler) or Redis away: the data was never judged
    except NoSuchJobError:
        return None
    except Exception as exc:
        raise CorruptJob(f"job {job_id}: stored data cannot be read ({describe(exc)})") from exc
    status = as_str(status_raw)
    from rq.registry import StartedJobRegistry

    started = StartedJobRegistry(job.origin, connection=client)
    entries = tuple(
        e for e in pipe.zrange(started.key, 0, -1) if (as_str(e) or "").split(":", 1)[0] == job_id
    )
    return Seen(
        job, as_str(rq_raw), status, attempt, record, module_path, options, func_name, entries
    )


def _transact(
    client: Any, job_id: str, act: Callable[[Any, Seen], Callable[[], None] | None]
) -> bool:
    """Run ``act(pipe, seen)`` under ``WATCH``: it returns the writes to queue after ``MULTI``,
    or ``None`` to leave the job alone. Retried on conflict; True when written."""
    from rq.job import Job

    watch_error = _watch_error()
    for _ in range(_TRIES):
        with client.pipeline() as pipe:
            try:
                pipe.watch(Job.key_for(job_id), LEASES_KEY)
                seen = _read(pipe, client, job_id)
                if seen is None:
                    return False
                writes = act(pipe, seen)
                if writes is None:
                    return False
                pipe.multi()
                writes()
                pipe.execute()
                return True
            except watch_error:
                continue
    logger.warning("job %s kept changing; left for the next pass", job_id)
    return False


def _executions(job: Any) -> list[Any]:
    """The job's rq executions that still exist. rq's ``get_executions`` raises ValueError for
    an execution whose hash is gone (it expired, or the worker that had it removed it a moment
    ago), which must not pass for unreadable job data; such ids are skipped (their registry
    entries go with the job's started entries and the registry's own clean-up)."""
    from rq.executions import Execution, ExecutionRegistry

    found = []
    registry = ExecutionRegistry(job_id=job.id, connection=job.connection)
    for execution_id in registry.get_execution_ids():
        execution = Execution(id=execution_id, job_id=job.id, connection=job.connection)
        try:
            execution.refresh()  # type: ignore[no-untyped-call]
        except ValueError:
            continue
        found.append(execution)
    return found


def _leave_worker(pipe: Any, seen: Seen) -> None:
    """Drop every trace of the worker that had the job: its rq execution (started registry),
    rq's intermediate list, taskyard's lease."""
    from rq.queue import Queue
    from rq.registry import StartedJobRegistry

    job = seen.job
    for execution in _executions(job):
        execution.delete(job=job, pipeline=pipe)
    if seen.started_entries:  # entries of executions rq did not record (or already deleted)
        pipe.zrem(
            StartedJobRegistry(job.origin, connection=job.connection).key, *seen.started_entries
        )
    pipe.lrem(Queue(job.origin, connection=job.connection).key + INTERMEDIATE_SUFFIX, 0, job.id)
    pipe.zrem(LEASES_KEY, job.id)


def _requeue(pipe: Any, seen: Seen, at_front: bool = True) -> None:
    from rq.job import JobStatus
    from rq.queue import Queue

    job = seen.job
    job.set_status(JobStatus.QUEUED, pipeline=pipe)
    queue = Queue(job.origin, connection=job.connection, serializer=JSONSerializer)
    queue.push_job_id(job.id, pipeline=pipe, at_front=at_front)


def _fail_in_rq(pipe: Any, seen: Seen, exc: BaseException) -> None:
    import traceback

    from rq.job import JobStatus
    from rq.results import Result

    job = seen.job
    text = "".join(traceback.format_exception(exc))
    job.set_status(JobStatus.FAILED, pipeline=pipe)
    job.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=text, pipeline=pipe)
    Result.create_failure(job, job.failure_ttl, exc_string=text, pipeline=pipe)


def _record(seen: Seen, error: BaseException | None, finished: bool) -> str:
    record = dict(seen.record)
    if error is not None:
        errors = record.get("errors") or []
        record["errors"] = [*errors, error_from_exception(error).to_json()]
    if finished:
        record["finished_at"] = utcnow().isoformat()
    return json.dumps(record, separators=(",", ":"))


# -- the transitions --------------------------------------------------------------------------


def hand_back(client: Any, job_id: str, why: str) -> str | None:
    """Queue a job that was taken but never began again, at the front, uncounted.

    A taskyard job handed back more than ``MAX_HANDBACKS`` times (its worker keeps dying before
    the attempt begins) fails with ``WorkerLost``. Returns ``"requeued"``, ``"failed"`` or
    ``None`` (the job had moved on).
    """
    outcome: list[str] = []

    def act(pipe: Any, seen: Seen) -> Callable[[], None] | None:
        if seen.status in FINISHED_NAMES or seen.status == "RUNNING":
            return None
        if seen.rq_status not in ("queued", "started"):
            return None
        count = int(as_str(pipe.hget(seen.job.key, F_HANDBACKS)) or 0) + 1
        final = seen.ours and count > MAX_HANDBACKS
        lost = WorkerLost(
            f"taken by a worker {count} times and never begun ({why}): more than "
            f"{MAX_HANDBACKS} times, so it is failed rather than handed back again"
        )

        def writes() -> None:
            _leave_worker(pipe, seen)
            pipe.hset(seen.job.key, F_HANDBACKS, count)
            if final:
                pipe.hset(
                    seen.job.key,
                    mapping={F_STATUS: "FAILED", F_RECORD: _record(seen, lost, finished=True)},
                )  # only taskyard tasks reach this (``seen.ours``)
                _fail_in_rq(pipe, seen, lost)
                if seen.limit_key:
                    pipe.srem(limit_key(seen.limit_key), job_id)
            else:
                _requeue(pipe, seen)

        outcome.append("failed" if final else "requeued")
        return writes

    if not _transact(client, job_id, act):
        return None
    if outcome[-1] == "failed":
        _after_failure(client, job_id)
    logger.warning("job %s was taken but never began (%s): %s", job_id, why, outcome[-1])
    return outcome[-1]


def interrupt(
    client: Any,
    job_id: str,
    attempt: int,
    why: str,
    lease_ended_by: float | None = None,
    worker: str | None = None,
) -> str | None:
    """Hand back (or, past the bound, fail) attempt ``attempt`` of ``job_id``, interrupted.

    ``lease_ended_by``: only if the attempt's lease (read in the same transaction) is gone or
    ended by then — a reaper that read an expired lease must not interrupt a newer attempt that
    began meanwhile (with a lease of its own). ``worker``: only if that worker began the latest
    attempt. Returns ``"requeued"``, ``"failed"`` or ``None`` (the job had moved on).
    """
    outcome: list[str] = []

    def act(pipe: Any, seen: Seen) -> Callable[[], None] | None:
        if seen.status != "RUNNING" or seen.attempt != attempt:
            return None
        if lease_ended_by is not None:
            lease = pipe.zscore(LEASES_KEY, job_id)
            if lease is not None and float(lease) > lease_ended_by:
                return None  # renewed, or a newer attempt began: its lease is live
        if worker is not None and (seen.record.get("worker_ids") or [None])[-1] != worker:
            return None  # another worker began the latest attempt
        workers = seen.record.get("worker_ids") or ["?"]
        count = _interruptions(seen) + 1
        bound = seen.max_interruptions
        lost = WorkerLost(
            f"attempt {attempt} on worker {workers[-1]} was interrupted before it recorded an "
            f"outcome ({why}); interruption {count} of at most {bound}"
        )
        final = count > bound
        if final:
            lost = WorkerLost(
                f"attempt {attempt} on worker {workers[-1]} was interrupted ({why}): the task "
                f"was interrupted {count} times, more than MAX_INTERRUPTIONS ({bound}), so it "
                "is failed rather than run again (a task that kills its worker)"
            )

        def writes() -> None:
            _leave_worker(pipe, seen)
            pipe.hset(
                seen.job.key,
                mapping={
                    F_STATUS: "FAILED" if final else "READY",
                    F_RECORD: _record(seen, lost, finished=final),
                },
            )
            if final:
                _fail_in_rq(pipe, seen, lost)
                if seen.limit_key:
                    pipe.srem(limit_key(seen.limit_key), job_id)
            else:
                _requeue(pipe, seen)

        outcome.append("failed" if final else "requeued")
        return writes

    if not _transact(client, job_id, act):
        return None
    if outcome[-1] == "failed":
        lifecycle.error(
            "task failed id=%s attempts=%d error=WorkerLost: interrupted too often (%s)",
            job_id,
            attempt,
            why,
        )
        _after_failure(client, job_id)
    else:
        logger.warning(
            "attempt %d of task %s was interrupted (%s): queued again", attempt, job_id, why
        )
    return outcome[-1]


def time_out(client: Any, job_id: str, attempt: int, timeout: float) -> str | None:
    """Record attempt ``attempt`` of ``job_id`` as stopped past its ``timeout`` (its process was
    killed): retried like any failed attempt, or FAILED. Returns the new status or ``None``."""
    from rq.job import JobStatus
    from rq.registry import ScheduledJobRegistry

    from taskyard.backends.redis.record import apply_record, dump_record, task_from_options
    from taskyard.tasks.execution import record_failure
    from taskyard.tasks.results import TaskResult, TaskResultStatus

    outcome: list[str] = []
    error = TaskTimeout(
        f"task ran longer than its timeout of {timeout:g}s and was stopped (its process was "
        "killed: it did not return to Python in time)"
    )

    def act(pipe: Any, seen: Seen) -> Callable[[], None] | None:
        if seen.status != "RUNNING" or seen.attempt != attempt:
            return None
        try:
            task = task_from_options(
                seen.module_path, {k: v for k, v in seen.options.items() if k[:1] != "_"}
            )
        except InvalidTask:  # cannot be resolved here: no retry can be decided, so it fails
            task = _placeholder(seen.module_path)
        result: TaskResult[Any] = TaskResult(
            task=task, id=job_id, status=TaskResultStatus.RUNNING, args=[], kwargs={}, backend=""
        )
        apply_record(result, seen.record)
        decided = record_failure(task, result, error)
        final = not decided.will_retry

        def writes() -> None:
            _leave_worker(pipe, seen)
            pipe.hset(
                seen.job.key,
                mapping={F_STATUS: result.status.value, F_RECORD: dump_record(result)},
            )
            if final:
                _fail_in_rq(pipe, seen, error)
                if seen.limit_key:
                    pipe.srem(limit_key(seen.limit_key), job_id)
            elif decided.retry_delay <= 0 or decided.retry_at is None:
                _requeue(pipe, seen, at_front=False)
            else:
                seen.job.set_status(JobStatus.SCHEDULED, pipeline=pipe)
                registry = ScheduledJobRegistry(seen.job.origin, connection=client)  # type: ignore[no-untyped-call]
                pipe.zadd(registry.key, {job_id: math.ceil(decided.retry_at.timestamp())})

        outcome.append(result.status.value)
        return writes

    if not _transact(client, job_id, act):
        return None
    lifecycle.error("task timed out id=%s attempt=%d timeout=%gs", job_id, attempt, timeout)
    if outcome[-1] == "FAILED":
        _after_failure(client, job_id)
    return outcome[-1]


def refuse(client: Any, job_id: str, error: BaseException) -> bool:
    """Fail a job that must not run (it was never begun), with ``error``: nothing runs and
    nothing named by the job is imported."""

    def act(pipe: Any, seen: Seen) -> Callable[[], None] | None:
        if seen.status in FINISHED_NAMES or seen.status == "RUNNING":
            return None

        def writes() -> None:
            _leave_worker(pipe, seen)
            if seen.ours:  # a taskyard task: its record says why
                pipe.hset(
                    seen.job.key,
                    mapping={F_STATUS: "FAILED", F_RECORD: _record(seen, error, finished=True)},
                )
                if seen.limit_key:
                    pipe.srem(limit_key(seen.limit_key), job_id)
            _fail_in_rq(pipe, seen, error)

        return writes

    if not _transact(client, job_id, act):
        return False
    lifecycle.error("task failed id=%s error=%s: %s", job_id, type(error).__name__, error)
    _after_failure(client, job_id)
    return True


def finalize(client: Any, job_id: str) -> bool:
    """Bring rq's view of a job in line with taskyard's final record when its worker stopped
    between recording the outcome and rq's own bookkeeping (rq still says ``started``): rq's
    success or failure entries, and the dependents released or cancelled."""
    from rq.queue import Queue

    outcome: list[str] = []

    def act(pipe: Any, seen: Seen) -> Callable[[], None] | None:
        if seen.status not in FINISHED_NAMES or seen.rq_status != "started":
            return None
        job = seen.job

        def writes() -> None:
            _leave_worker(pipe, seen)
            if seen.status == "SUCCESSFUL":
                ttl = job.get_result_ttl(86_400)
                job._result = _return_value(client, job.key)
                job._handle_success(ttl, pipeline=pipe)
                job.cleanup(ttl, pipeline=pipe, remove_from_queue=False)
            else:
                errors = seen.record.get("errors") or [{}]
                text = str(errors[-1].get("traceback") or seen.status)
                _fail_in_rq(pipe, seen, WorkerLost(text))

        outcome.append(str(seen.status))
        return writes

    if not _transact(client, job_id, act):
        return False
    if outcome[-1] == "SUCCESSFUL":
        fresh = _read(client, client, job_id)
        if fresh is not None:
            Queue(
                fresh.job.origin, connection=client, serializer=JSONSerializer
            ).enqueue_dependents(fresh.job)
    else:
        _after_failure(client, job_id)
    logger.warning(
        "job %s had ended %s but rq still listed it as started: fixed", job_id, outcome[-1]
    )
    return True


# -- helpers ----------------------------------------------------------------------------------


def _interruptions(seen: Seen) -> int:
    errors = seen.record.get("errors") or []
    return sum(
        1
        for e in errors
        if isinstance(e, dict) and e.get("exception_class_path") in INTERRUPTED_ERRORS
    )


def _return_value(client: Any, key: str) -> Any:
    from taskyard.backends.redis.keys import F_RETURN

    raw = client.hget(key, F_RETURN)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _placeholder(module_path: str) -> Any:
    from taskyard.tasks import registry

    return registry.placeholder(module_path or "?")


def _after_failure(client: Any, job_id: str) -> None:
    from taskyard.backends.redis.maintenance import cancel_dependents

    for cancelled in cancel_dependents(client, job_id, "FAILED"):
        logger.info("task %s cancelled: dependency %s did not succeed", cancelled, job_id)


__all__ = ["CorruptJob", "finalize", "hand_back", "interrupt", "refuse", "time_out"]
