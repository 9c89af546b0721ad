"""``run_job``: the function every taskyard rq job calls.

A taskyard job is an ordinary rq job whose function is ``taskyard.backends.redis.job.run_job``
and whose arguments are JSON: ``(task module path, args, kwargs, options)``. Any rq worker
configured with a JSON serializer runs it — ``taskyard rqworker``, ``rq worker --serializer
json``, django-rq's ``rqworker`` — with no special job class. ``run_job`` resolves the task
(only real tasks: ``os.system`` or a missing module becomes a FAILED result, nothing runs),
then runs one attempt with taskyard's own execution semantics (``taskyard.tasks.execution``:
timeouts, retries with backoff, context, hooks) and tells rq what happened:

* success: the return value (rq stores it and releases dependent jobs);
* a retry: an ``rq.Retry`` whose interval brings the same job (same id) back through rq's
  scheduler no earlier than the backoff asks;
* failure or cancellation: an exception (``TaskFailed``/``TaskNotRun``), so rq lists the job as
  failed; taskyard's record says which.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from taskyard.backends.redis.control import KEEPER, RedisControl
from taskyard.backends.redis.horse import executing
from taskyard.backends.redis.keys import (
    DEFAULT_LEASE,
    DEFAULT_MAX_INTERRUPTIONS,
    F_ATTEMPT,
    F_RECORD,
    F_RETURN,
    LEASES_KEY,
    limit_key,
)
from taskyard.backends.redis.maintenance import cancel_dependents
from taskyard.backends.redis.quarantine import quarantine
from taskyard.backends.redis.record import (
    apply_record,
    dump_record,
    load_record,
    progress_meta,
    task_from_options,
)
from taskyard.backends.redis.scripts import script
from taskyard.exceptions import InvalidTask, TaskCancelled, WorkerInterrupted, WorkerLost
from taskyard.tasks import registry
from taskyard.tasks.execution import (
    Outcome,
    announce_outcome,
    error_from_exception,
    execute,
    fail_without_running,
    interruptions,
    record_failure,
    utcnow,
)
from taskyard.tasks.results import TaskResult, TaskResultStatus, process_identity

logger = logging.getLogger("taskyard.backends.redis")

S = TaskResultStatus
RETRY_FOREVER = 2**31 - 1  # rq's Retry.max: taskyard, not rq, decides when retries stop
PERSIST_MAX_DELAY = 5.0
"""Longest pause between tries to store an outcome while Redis is away (it is tried until Redis
answers: a finished outcome is never dropped because Redis was away)."""


class TaskFailed(Exception):
    """Raised to rq when a taskyard task ended FAILED; the task's own error is the cause."""


class TaskNotRun(Exception):
    """Raised to rq when a job was not run: cancelled, already finished or superseded."""


def run_job(
    module_path: str, args: list[Any], kwargs: dict[str, Any], options: dict[str, Any]
) -> Any:
    """Run one attempt of a taskyard task inside the current rq job (see the module docstring)."""
    from rq.job import get_current_job

    job = get_current_job()
    if job is None:
        raise RuntimeError("run_job() runs taskyard tasks inside an rq worker only")
    attempt = _Attempt(job, module_path, args, kwargs, options)
    try:
        return attempt.run()
    except WorkerInterrupted:
        if attempt.attempt_began:
            raise  # its lease runs out and the reaper hands it back, recorded as interrupted
        logger.warning("task %s: the worker is shutting down before it began: handed back", job.id)
        return attempt._retry_at(utcnow(), immediately=True)  # uncounted: it never began


def _sender() -> type:
    from taskyard.backends.redis.backend import RedisBackend

    return RedisBackend


class _Attempt:
    def __init__(self, job: Any, module_path: Any, args: Any, kwargs: Any, options: Any) -> None:
        self.job = job
        self.client = job.connection
        self.key: str = job.key
        self.id: str = job.id
        self.module_path = module_path
        self.args = args
        self.kwargs = kwargs
        self.options = options if isinstance(options, dict) else {}
        self.lease = float(self.options.get("_lease", DEFAULT_LEASE))
        self.max_interruptions = int(
            self.options.get("_max_interruptions", DEFAULT_MAX_INTERRUPTIONS)
        )
        self.worker_id: str = (
            job.worker_name or os.environ.get("RQ_WORKER_ID") or process_identity()
        )
        self.sender = _sender()
        self.token = uuid.uuid4().hex
        self.attempt = 0
        self.attempt_began = False

    # -- the attempt ---------------------------------------------------------------------------

    def run(self) -> Any:
        try:
            if not isinstance(self.module_path, str):
                raise InvalidTask(f"job data names {self.module_path!r}, not a task path")
            if not isinstance(self.args, list) or not isinstance(self.kwargs, dict):
                raise InvalidTask(f"job {self.id}: arguments are not a JSON list and object")
            task = task_from_options(
                self.module_path, {k: v for k, v in self.options.items() if k[:1] != "_"}
            )
        except (InvalidTask, ValueError, TypeError) as exc:
            return self._unrunnable(exc)
        if task.run_after is not None and task.run_after.timestamp() > time.time():
            return self._retry_at(task.run_after)  # released early (e.g. by a dependency)
        now = utcnow()
        code, raw, status = self._begin("", "", now)
        if code == -3:
            return self._corrupt(raw)
        result: TaskResult[Any] = TaskResult(
            task=task,
            id=self.id,
            status=S.READY,
            args=self.args,
            kwargs=self.kwargs,
            backend=task.backend,
        )
        try:
            apply_record(result, load_record(raw))
        except (ValueError, TypeError, AttributeError) as exc:
            return self._corrupt(f"the record cannot be read ({exc})")
        if code == 1:  # the usual path: started in one round trip
            result._status = S.RUNNING
            return self._execute(task, result)
        if code == 3:  # the previous attempt never recorded an outcome: it was interrupted
            if self._record_interruption(result, "its worker stopped before recording an outcome"):
                return self._fail(result)
            return self._claim(task, result, now)
        return self._not_started(code, result, status)

    def _begin(self, expected: str, record: str, now: datetime) -> tuple[int, str, str]:
        reply = self._persist(
            "begin",
            [self.key, LEASES_KEY],
            [
                expected,
                record,
                self.worker_id,
                now.isoformat(),
                time.time() + self.lease,
                self.id,
                self.token,
                time.time(),
            ],
        )
        code, attempt, raw, status = reply
        self.attempt = int(attempt)
        self.attempt_began = self.attempt_began or int(code) == 1
        return int(code), _text(raw), _text(status)

    def _claim(self, task: Any, result: TaskResult[Any], now: datetime) -> Any:
        """Start an attempt whose record this process computed (after a lost attempt)."""
        saved = (result._started_at, result._last_attempted_at)
        result._status = S.RUNNING
        result._started_at = result._started_at or now
        result._last_attempted_at = now
        result._worker_ids.append(self.worker_id)
        code, _, status = self._begin(str(self.attempt), dump_record(result), now)
        if code == 1:
            return self._execute(task, result)
        result._worker_ids.pop()
        result._started_at, result._last_attempted_at = saved
        result._status = S.READY
        return self._not_started(code, result, status)

    def _not_started(self, code: int, result: TaskResult[Any], status: str) -> Any:
        if code == 2:
            return self._cancel_before_start(result)
        if code == -1:
            if status == "SUCCESSFUL":  # rq's view catches up with taskyard's: no run
                raw = self.client.hget(self.key, F_RETURN)
                return json.loads(raw) if raw else None
            return self._not_run(f"job {self.id} already finished; not run again")
        if code == -2:
            return self._not_run(f"job {self.id} no longer exists; not run")
        return self._not_run(f"job {self.id} was claimed by another attempt; not run here")

    def _execute(self, task: Any, result: TaskResult[Any]) -> Any:
        # The lease is held until the outcome is stored: while Redis is away the attempt keeps
        # trying to store it, and once Redis is back its lease is renewed before any reaper
        # judges it (reapers wait a lease after an outage).
        KEEPER.hold(self.client, self.id, self.lease)
        try:
            return self._run_and_store(task, result)
        finally:
            KEEPER.release(self.id)

    def _run_and_store(self, task: Any, result: TaskResult[Any]) -> Any:
        outcome: Outcome | None = None
        try:
            with _own_alarm(task.timeout), executing(task.timeout, self.attempt):
                outcome = execute(
                    task,
                    result,
                    worker_id=self.worker_id,
                    sender=self.sender,
                    control=RedisControl(self.client, self.job, self.lease),
                    claimed=True,
                )
        except WorkerInterrupted:
            logger.warning("task %s: attempt %d interrupted by a shutdown", self.id, self.attempt)
        if outcome is None:
            return self._interrupted(result)
        self._finish(result, outcome)
        if outcome.status is S.SUCCESSFUL:
            return result._return_value
        if outcome.status is S.READY:
            assert outcome.retry_at is not None
            return self._retry_at(outcome.retry_at, immediately=outcome.retry_delay <= 0)
        raise self._rq_error(result) from outcome.exception

    def _interrupted(self, result: TaskResult[Any]) -> Any:
        """The worker is shutting down under a running attempt: hand the task back (recorded in
        its history), or fail it if it was interrupted more often than its bound."""
        if self._record_interruption(result, "its worker was shut down while it ran"):
            return self._fail(result)
        result._status = S.READY
        now = utcnow()
        self._finish(result, Outcome(S.READY, retry_at=now))
        return self._retry_at(now, immediately=True)

    # -- outcomes without a run ------------------------------------------------------------------

    def _record_interruption(self, result: TaskResult[Any], why: str) -> bool:
        """Record the current attempt as interrupted; True when that is one interruption more
        than the task's bound (it must then fail rather than run again)."""
        worker = result.worker_ids[-1] if result.worker_ids else "?"
        count = interruptions(result) + 1
        over = count > self.max_interruptions
        lost = WorkerLost(
            f"attempt {result.attempts} on worker {worker} was interrupted ({why}); "
            + (
                f"the task was interrupted {count} times, more than MAX_INTERRUPTIONS "
                f"({self.max_interruptions}), so it is failed rather than run again"
                if over
                else f"interruption {count} of at most {self.max_interruptions}: it runs again"
            )
        )
        result._errors.append(error_from_exception(lost))
        logger.warning("task %s: %s", self.id, lost)
        return over

    def _fail(self, result: TaskResult[Any]) -> Any:
        result._status = S.FAILED
        result._finished_at = utcnow()
        self._finish(result, Outcome(S.FAILED))
        raise self._rq_error(result)

    def _corrupt(self, why: str) -> Any:
        """The job's stored record cannot be read: set it aside as FAILED, run nothing."""
        quarantine(self.client, self.id, f"job {self.id}: {why}")
        self.job.retries_left = 0
        raise TaskFailed(f"job {self.id} cannot run: {why}")

    def _unrunnable(self, exc: BaseException) -> Any:
        raw_record, raw_attempt = self.client.hmget(self.key, F_RECORD, F_ATTEMPT)
        try:
            self.attempt = int(raw_attempt or 0)
            record = load_record(raw_record)
        except (ValueError, TypeError) as damaged:
            return self._corrupt(f"{exc}; and its stored record cannot be read ({damaged})")
        path = self.module_path if isinstance(self.module_path, str) else repr(self.module_path)
        result: TaskResult[Any] = TaskResult(
            task=registry.placeholder(path),
            id=self.id,
            status=S.READY,
            args=self.args if isinstance(self.args, list) else [],
            kwargs=self.kwargs if isinstance(self.kwargs, dict) else {},
            backend=str(self.options.get("backend", "default")),
        )
        apply_record(result, record)
        fail_without_running(result, exc)
        self._finish(result, Outcome(S.FAILED, exception=exc))
        self.job.retries_left = 0
        raise TaskFailed(f"job {self.id} cannot run: {exc}") from exc

    def _cancel_before_start(self, result: TaskResult[Any]) -> Any:
        record_failure(
            result.task,
            result,
            TaskCancelled("cancelled before it started"),
            cancel_requested=True,
        )
        self._finish(result, Outcome(S.CANCELLED))
        return self._not_run(f"job {self.id} was cancelled before it started")

    def _not_run(self, why: str) -> Any:
        self.job.retries_left = 0
        raise TaskNotRun(why)

    def _retry_at(self, when: datetime, immediately: bool = False) -> Any:
        from rq.job import Retry

        # rq schedules in whole seconds, rounding down: ask for the first whole second at or
        # after ``when`` so the job never runs early.
        interval = (
            0 if immediately else max(1, math.ceil(when.timestamp() - math.floor(time.time())))
        )
        return Retry(max=RETRY_FOREVER, interval=interval)

    def _rq_error(self, result: TaskResult[Any]) -> Exception:
        self.job.retries_left = 0  # rq must not retry what taskyard decided is final
        error = result.errors[-1].message if result.errors else "-"
        if result.status is S.CANCELLED:
            return TaskNotRun(f"{result.task.module_path} [{self.id}] cancelled: {error}")
        return TaskFailed(
            f"{result.task.module_path} [{self.id}] failed after {result.attempts} "
            f"attempt(s): {error}"
        )

    # -- writing -------------------------------------------------------------------------------

    def _finish(self, result: TaskResult[Any], outcome: Outcome) -> None:
        """Store the outcome (fenced by the attempt number), then announce it."""
        key = result.task.effective_limit_key if result.is_finished else None
        written = self._persist(
            "finish",
            [self.key, LEASES_KEY, limit_key(key) if key else self.key],
            [
                self.attempt,
                result.status.value,
                dump_record(result),
                self.id,
                progress_meta(result.progress) if result.progress else "",
                "1" if key else "0",
                json.dumps(result._return_value) if result.status is S.SUCCESSFUL else "",
            ],
        )
        if int(written) != 1:
            logger.warning(
                "task %s: attempt %d was superseded (its lease ran out and the job was handed "
                "to another attempt); its outcome %s is not recorded",
                self.id,
                self.attempt,
                result.status.value,
            )
            self._not_run(f"attempt {self.attempt} of {self.id} was superseded")
        announce_outcome(self.sender, result, outcome)
        if result.status in (S.FAILED, S.CANCELLED):
            for cancelled in cancel_dependents(self.client, self.id, result.status.value):
                logger.info("task %s cancelled: dependency %s did not succeed", cancelled, self.id)

    def _persist(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script, retrying until Redis answers: an attempt that ran keeps its
        outcome however long Redis is away (the scripts are fenced, so a retry that repeats a
        write that did land changes nothing)."""
        from redis.exceptions import ConnectionError, TimeoutError

        delay = 0.25
        while True:
            try:
                return script(self.client, name)(keys=keys, args=args)
            except (ConnectionError, TimeoutError) as exc:
                logger.warning(
                    "task %s: Redis unreachable (%s); trying again in %.1fs", self.id, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, PERSIST_MAX_DELAY)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def _own_alarm(timeout: float | None) -> Iterator[None]:
    """Let taskyard's timeout use ``SIGALRM`` while the task runs.

    rq arms ``SIGALRM`` around every job as its hard limit (set to the task's timeout plus a
    grace period). While the task runs, taskyard takes the signal so that its own, exact
    ``timeout`` interrupts even a blocking call and is recorded as ``TaskTimeout``; rq's alarm
    is re-armed with the time it had left afterwards.
    """
    if (
        timeout is None
        or not hasattr(signal, "SIGALRM")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    previous = signal.getsignal(signal.SIGALRM)
    remaining = signal.alarm(0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        if remaining:
            signal.alarm(max(1, remaining - int(time.monotonic() - started)))


__all__ = ["TaskFailed", "TaskNotRun", "run_job"]
