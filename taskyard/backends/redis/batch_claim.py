"""The batching worker's claim: up to N due jobs per round trip (``lua/batch_claim.lua``), each
started in rq's view and begun as a taskyard attempt in the same script, then checked against
taskyard's policy here before anything is imported or run.

The script begins only jobs that carry taskyard's fields and no rq callbacks. Python then
decides the rest with the same code as rq's worker classes: ``policy.refusal`` (a job that is
not a taskyard task, an instance call, webhooks, repeats, dependencies on plain rq jobs),
``quarantine`` for data that cannot be read, ``settle`` for a job that cannot run now (an
interrupted earlier attempt, a job already finished). What is left is a list of ``Claimed``
attempts ready to run.

An idle worker waits with ``BLMOVE q q LEFT LEFT`` on its first queue: Redis wakes it the moment
a job is pushed, and the job stays where it is (the list is rotated onto itself), so a plain rq
worker on the same queue, or a claim racing with this one, never loses it.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskyard.backends.redis.keys import (
    F_ATTEMPT,
    F_RECORD,
    F_STATUS,
    F_TOKEN,
    LEASES_KEY,
    RUN_JOB,
    as_str,
    split_level_queue,
)
from taskyard.backends.redis.policy import JobRefused, refusal
from taskyard.backends.redis.quarantine import CorruptJob, describe, quarantine
from taskyard.backends.redis.record import apply_record, load_record, task_from_options
from taskyard.backends.redis.scripts import script
from taskyard.backends.redis.settle import finalize, interrupt, refuse
from taskyard.exceptions import InvalidTask, TaskCancelled
from taskyard.tasks import registry
from taskyard.tasks.execution import Outcome, fail_without_running, record_failure
from taskyard.tasks.results import TaskResult, TaskResultStatus
from taskyard.tasks.task import Task

logger = logging.getLogger("taskyard.backends.redis")

S = TaskResultStatus
PER_JOB = 11
DATA = 7  # the one binary item of each job in the claim's reply
EXECUTION_TTL = 120
"""Seconds an rq execution hash lives without a heartbeat (the worker renews it every second)."""


@dataclass(slots=True)
class Claimed:
    """One attempt the claim began: what runs, and what its outcome is recorded against."""

    job_id: str
    origin: str
    exec_id: str
    started: float
    attempt: int
    task: Task[Any, Any]
    result: TaskResult[Any]
    result_ttl: int
    failure_ttl: int
    #: an outcome decided without running (refused, cancelled before it started, deferred)
    decided: Outcome | None = None
    #: hand it back uncounted, due at this epoch second (0: now; -1: now, at the front)
    undo_due: int | None = None
    is_async: bool = False
    #: the lease of this attempt (the enqueuer's ``LEASE``, carried in the job's options)
    lease: float = 10.0


def rq_now() -> str:
    """Now in rq's date format (``utcformat``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Claimer:
    """Claims jobs for one batching worker (see the module docstring)."""

    def __init__(self, client: Any, worker_name: str, lease: float, sender: type) -> None:
        self.client = client
        self.worker_name = worker_name
        self.lease = lease
        self.sender = sender
        from rq.defaults import RQ_KEY_PREFIX

        self.prefix = RQ_KEY_PREFIX
        self.quarantined = 0
        self.refused = 0
        self._lost: list[str] = []

    # -- waiting ----------------------------------------------------------------------------

    def wait(self, queue_keys: list[str], timeout: float) -> bool:
        """Block until a job is waiting on the first queue key (or ``timeout`` passes); the
        job is left in place. True when one arrived."""
        anchor = _anchor(queue_keys)
        reply = self.client.blmove(anchor, anchor, max(timeout, 0.01), "LEFT", "LEFT")
        return reply is not None

    # -- claiming ---------------------------------------------------------------------------

    def claim(self, queue_keys: list[str], most: int) -> list[Claimed]:
        """Up to ``most`` attempts, begun and ready to run (one round trip on the usual path)."""
        if most <= 0 or not queue_keys:
            return []
        now = time.time()
        adopted = self._adopt(now) if self._lost else []
        if adopted:
            return adopted
        return self._parse(self._run("batch_claim", queue_keys, most, now, []), now)

    @property
    def clean(self) -> bool:
        """No claim reply was lost (``cycle`` may be used)."""
        return not self._lost

    def cycle(
        self, queue_keys: list[str], most: int, outcomes: list[Any]
    ) -> tuple[Any, list[Claimed]]:
        """Outcomes (``finish_jobs``' arguments) written and the next claim, in one round trip
        (``batch_cycle.lua``). Returns (the outcomes' reply, the claimed attempts)."""
        now = time.time()
        reply = self._run("batch_cycle", queue_keys, most, now, outcomes)
        return reply[0], self._parse(reply[1], now)

    def _run(self, name: str, keys: list[str], most: int, now: float, more: list[Any]) -> Any:
        exec_prefix = uuid.uuid4().hex[:24]
        try:
            return self._claim_script(name, keys, most, now, exec_prefix, more)
        except Exception:
            # the script may have run with its reply lost: its jobs are found by this prefix
            self._lost.append(exec_prefix)
            raise

    def _claim_script(
        self, name: str, queue_keys: list[str], most: int, now: float, prefix: str, more: list[Any]
    ) -> Any:
        return script(self.client, name)(
            keys=queue_keys,
            args=[
                most,
                self.worker_name,
                rq_now(),
                repr(now),
                repr(now + self.lease),
                datetime.now(UTC).isoformat(),
                prefix,
                EXECUTION_TTL,
                self.prefix,
                LEASES_KEY,
                *more,
            ],
        )

    def _parse(self, reply: Any, now: float) -> list[Claimed]:
        out: list[Claimed] = []
        flat = [as_str(v) if i % PER_JOB != DATA else v for i, v in enumerate(reply or ())]
        for at in range(0, len(flat), PER_JOB):
            entry = flat[at : at + PER_JOB]
            job_id = str(entry[0])
            try:
                claimed = self._open(entry, now)
            except CorruptJob as exc:
                quarantine(self.client, job_id, str(exc))
                self.quarantined += 1
                continue
            except Exception as exc:  # never let one job stop the claim
                logger.exception("job %s: could not be opened", job_id)
                quarantine(self.client, job_id, f"job {job_id}: {describe(exc)}")
                self.quarantined += 1
                continue
            if claimed is not None:
                out.append(claimed)
        return out

    def _open(self, entry: list[Any], now: float) -> Claimed | None:
        job_id, origin, exec_id, code, attempt, record, _status, data = entry[:8]
        result_ttl, failure_ttl, unusual = entry[8:]
        if code == "-3":
            raise CorruptJob(f"job {job_id}: {record}")
        if code == "-1":  # taskyard finished it; rq's view catches up, nothing runs
            finalize(self.client, job_id)
            return None
        if code == "3":  # the previous attempt was interrupted: handed back (or failed)
            lost = "its worker stopped before recording an outcome"
            interrupt(self.client, job_id, int(attempt), lost, lease_ended_by=time.time())
            return None
        try:
            func_name, instance, args, _kwargs = json.loads(_decompress(data or b""))
        except (ValueError, TypeError, zlib.error) as exc:
            raise CorruptJob(f"job {job_id}: stored data cannot be read ({describe(exc)})") from exc
        why = None
        if unusual or func_name != RUN_JOB or instance is not None:
            why = self._refusal(job_id)
        if code == "x":
            if why is not None:
                refuse(self.client, job_id, JobRefused(f"job {job_id} {why}"))
                self.refused += 1
                logger.warning("job %s refused: %s", job_id, why)
                return None
            # a taskyard call written without taskyard's fields (rq's own enqueue): begun here,
            # by the same script rq-class workers begin it with
            code, attempt, record = self._begin(job_id, exec_id, now)
            if code not in ("1", "2"):
                return self._open([job_id, origin, exec_id, code, attempt, record, *entry[6:]], now)
        if not isinstance(args, list) or len(args) != 4:
            raise CorruptJob(f"job {job_id}: its arguments are not taskyard's")
        module_path, task_args, task_kwargs, options = args
        options = options if isinstance(options, dict) else {}
        task: Task[Any, Any] | None = None
        problem: BaseException | None = None
        try:
            if why is not None:
                self.refused += 1
                raise JobRefused(f"job {job_id} {why}")
            if not isinstance(module_path, str):
                raise InvalidTask(f"job data names {module_path!r}, not a task path")
            if not isinstance(task_args, list) or not isinstance(task_kwargs, dict):
                raise InvalidTask(f"job {job_id}: arguments are not a JSON list and object")
            task = task_from_options(
                module_path, {k: v for k, v in options.items() if k[:1] != "_"}
            )
        except (InvalidTask, ValueError, TypeError) as exc:
            problem = exc
            path = module_path if isinstance(module_path, str) else repr(module_path)
            task = registry.placeholder(path)
        try:
            loaded = load_record(record)
        except ValueError as exc:
            raise CorruptJob(f"job {job_id}: the record cannot be read ({exc})") from exc
        result: TaskResult[Any] = TaskResult(
            task=task,
            id=job_id,
            status=S.RUNNING,
            args=task_args if isinstance(task_args, list) else [],
            kwargs=task_kwargs if isinstance(task_kwargs, dict) else {},
            backend=task.backend if problem is None else str(options.get("backend", "default")),
        )
        try:
            apply_record(result, loaded)
        except (ValueError, TypeError, AttributeError) as exc:
            raise CorruptJob(f"job {job_id}: the record cannot be read ({exc})") from exc
        claimed = Claimed(
            job_id=job_id,
            origin=origin,
            exec_id=exec_id,
            started=now,
            attempt=int(attempt),
            task=task,
            result=result,
            result_ttl=_int(result_ttl, 500),
            failure_ttl=_int(failure_ttl, 31_536_000),
            is_async=task.is_async,
            lease=_lease(options.get("_lease"), self.lease),
        )
        if problem is not None:
            fail_without_running(result, problem)
            claimed.decided = Outcome(S.FAILED, exception=problem)
        elif code == "2":
            claimed.decided = record_failure(
                task, result, TaskCancelled("cancelled before it started"), cancel_requested=True
            )
        elif task.run_after is not None and task.run_after.timestamp() > time.time():
            claimed.undo_due = math.ceil(task.run_after.timestamp())  # released early
        return claimed

    def _adopt(self, now: float) -> list[Claimed]:
        """The jobs of claims whose reply was lost (Redis went away as it answered): found in
        this worker's rq executions by their execution id prefix, and run as if the reply had
        come."""
        from rq.job import Job
        from rq.worker import Worker

        key = f"{Worker.redis_worker_namespace_prefix}{self.worker_name}:executions"
        lost = tuple(self._lost)
        found = []
        for member in self.client.smembers(key):
            job_id, _, exec_id = (as_str(member) or "").partition(":")
            if exec_id.startswith(lost):
                found.append((job_id, exec_id))
        if not found:
            self._lost = []
            return []
        fields = (
            *(F_STATUS, F_TOKEN, F_ATTEMPT, F_RECORD, "origin", "data"),
            *("result_ttl", "failure_ttl", "webhooks", "repeats_left", "dependency_ids"),
        )
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, _ in found:
                pipe.hmget(Job.key_for(job_id), fields)
            rows = pipe.execute()
        self._lost = []
        reply: list[Any] = []
        for (job_id, exec_id), row in zip(found, rows, strict=True):
            status, token, attempt, record, origin, data, rttl, fttl, *odd = row
            if as_str(status) != "RUNNING" or as_str(token) != exec_id:
                continue  # moved on meanwhile (the reaper): not this worker's any more
            unusual = "1" if any(odd) else ""
            reply += [job_id, origin, exec_id, "1", attempt, record, status, data, rttl, fttl]
            reply.append(unusual)
        logger.warning("adopted %d job(s) of a claim whose reply was lost", len(reply) // PER_JOB)
        return self._parse(reply, now)

    def _begin(self, job_id: str, exec_id: str, now: float) -> tuple[str, str, str]:
        from rq.job import Job

        code, attempt, record, _status = script(self.client, "begin")(
            keys=[Job.key_for(job_id), LEASES_KEY],
            args=[
                "",
                "",
                self.worker_name,
                datetime.now(UTC).isoformat(),
                repr(now + self.lease),
                job_id,
                exec_id,
                repr(now),
            ],
        )
        return str(code), as_str(attempt) or "0", as_str(record) or ""

    def _refusal(self, job_id: str) -> str | None:
        """``policy.refusal``, for a job that carries anything beyond a plain taskyard call
        (the usual job is decided without building rq's ``Job``)."""
        from rq.job import Job

        from taskyard.backends.redis.serializer import JSONSerializer

        job = Job(job_id, connection=self.client, serializer=JSONSerializer)
        job.restore(self.client.hgetall(job.key))
        return refusal(job, self.client, False)


def _decompress(raw: bytes) -> bytes:
    try:
        return zlib.decompress(raw)
    except zlib.error:
        return raw


def _int(raw: str | None, default: int) -> int:
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def _lease(value: Any, default: float) -> float:
    try:
        lease = float(value) if value is not None else default
    except (TypeError, ValueError):
        return default
    return lease if lease > 0 else default


def _anchor(keys: list[str]) -> str:
    """The queue an idle worker blocks on: the plain (priority 0) level of its first name."""
    for key in keys:
        if split_level_queue(key)[1] == 0:
            return key
    return keys[0]


__all__ = ["EXECUTION_TTL", "Claimed", "Claimer", "rq_now"]
