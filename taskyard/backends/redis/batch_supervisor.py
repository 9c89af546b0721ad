"""``taskyard rqworker --worker-class batch`` runs its batching worker in a child process watched
by this small parent, so that no task can take the worker down with it:

* a task that holds the GIL in one long C call past its timeout freezes every thread of the
  child (its own timeout machinery included). The child writes a heartbeat to shared memory
  every second; when it goes silent, the parent looks in Redis at the child's running
  executions (``rq:worker:<name>:executions``), and if one is past its task's ``timeout`` plus
  ``STUCK_GRACE``, kills the child, records ``TaskTimeout`` for that attempt
  (``settle.time_out``), hands the others back as interrupted (``settle.interrupt``) and starts
  a new child — within timeout + 5 s. A long GIL-holding call with no timeout is left alone;
* a child that dies (a task calling ``os._exit``, SIGKILL of the child, the OOM killer) has its
  attempts handed back at once — not after their leases — and is replaced;
* a child that stops itself because a thread could not be interrupted at its timeout (exit
  status 75) is replaced.

SIGTERM/SIGINT go to the child (warm, then cold shutdown); the parent exits with its status.
Killing the parent with SIGKILL leaves the child running without supervision until it ends;
killing both is recovered by any other worker's reaper, as for every worker class.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import signal
import struct
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from taskyard.backends.redis.keys import F_ATTEMPT, F_RECORD, F_STATUS, as_str
from taskyard.backends.redis.settle import interrupt, time_out
from taskyard.worker.stopping import EXIT_REPLACE, STUCK_GRACE

logger = logging.getLogger("taskyard.backends.redis")

SILENT_AFTER = 3.0
"""Seconds without a heartbeat after which the parent looks for an attempt past its timeout."""
CHECK_EVERY = 0.5


class Heartbeat:
    """A monotonic timestamp in memory shared across ``fork()``."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 8)
        self.beat()

    def beat(self) -> None:
        self._map[:8] = struct.pack("d", time.monotonic())

    def age(self) -> float:
        value: float = struct.unpack("d", self._map[:8])[0]
        return time.monotonic() - value


class BatchSupervisor:
    """Runs ``run_child(heartbeat)`` (the batching worker) in a child process; see above."""

    def __init__(self, client: Any, name: str, run_child: Callable[[Heartbeat], int]) -> None:
        self.client = client
        self.name = name
        self.run_child = run_child
        self.heartbeat = Heartbeat()
        self.child = 0
        self.stopping = False
        self.replaced = 0
        self._signals: list[int] = []

    def alive(self) -> bool:
        return self.child > 0

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        backoff = 0.2
        while True:
            started = time.monotonic()
            self.child = self._spawn()
            status = self._watch()
            self.child = 0
            code = os.waitstatus_to_exitcode(status)
            if self.stopping or code == 0:
                return code if code >= 0 else 1
            why = f"exit status {code}" if code > 0 else f"signal {signal.Signals(-code).name}"
            if code != EXIT_REPLACE:
                logger.error("batch worker process ended (%s): handing its tasks back", why)
                self._recover(f"its worker process ended ({why})")
            self.replaced += 1
            if time.monotonic() - started < 10:
                time.sleep(backoff)  # dying fast: do not spin
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = 0.2
            logger.warning("starting a new batch worker process")

    def _spawn(self) -> int:
        self.heartbeat.beat()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.setpgid(0, 0)  # a terminal's Ctrl-C reaches the parent, which passes it on
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                code = self.run_child(self.heartbeat)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logger.exception("batch worker process failed")
            finally:
                logging.shutdown()
                os._exit(code)
        return pid

    def _forward(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.child > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signum)

    def _watch(self) -> int:
        while True:
            pid, status = os.waitpid(self.child, os.WNOHANG)
            if pid:
                return status
            if self.heartbeat.age() > SILENT_AFTER:
                overdue = self._overdue()
                if overdue:
                    return self._replace_stuck(overdue)
            time.sleep(CHECK_EVERY)

    # -- Redis: the child's executions ------------------------------------------------------

    def _executions(self) -> list[tuple[str, int, float | None, float | None]]:
        """(job id, attempt, timeout, seconds since the attempt began) of each running
        execution of this worker."""
        from rq.job import Job
        from rq.worker import Worker

        from taskyard.backends.redis.record import load_record

        key = f"{Worker.redis_worker_namespace_prefix}{self.name}:executions"
        ids = sorted({(as_str(m) or "").split(":", 1)[0] for m in self.client.smembers(key)})
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(Job.key_for(job_id), "data", F_ATTEMPT, F_RECORD, F_STATUS)
            rows = pipe.execute()
        out = []
        for job_id, (data, attempt, record, status) in zip(ids, rows, strict=True):
            if as_str(status) != "RUNNING":
                continue
            timeout = age = None
            try:
                call = json.loads(zlib.decompress(data))
                timeout = call[2][3].get("timeout")
                began = load_record(record).get("last_attempted_at")
                if began:
                    age = time.time() - datetime.fromisoformat(began).timestamp()
            except Exception:  # unreadable: handed back like any other
                pass
            out.append((job_id, int(attempt or 0), timeout, age))
        return out

    def _overdue(self) -> list[tuple[str, int, float]]:
        try:
            return [
                (job_id, attempt, float(timeout))
                for job_id, attempt, timeout, age in self._executions()
                if timeout is not None and age is not None and age > float(timeout) + STUCK_GRACE
            ]
        except Exception as exc:
            logger.warning("could not read the worker's executions: %s", exc)
            return []

    def _replace_stuck(self, overdue: list[tuple[str, int, float]]) -> int:
        """Kill the child, record the overdue attempts' timeouts, hand the rest back; returns
        a wait status that makes ``run`` start a new child."""
        for job_id, _, timeout in overdue:
            logger.error(
                "task %s ran past its timeout of %gs and holds its process (a C call that "
                "never returns to Python): replacing the batch worker process",
                job_id,
                timeout,
            )
        os.kill(self.child, signal.SIGKILL)
        os.waitpid(self.child, 0)
        for job_id, attempt, timeout in overdue:
            try:
                time_out(self.client, job_id, attempt, timeout)
            except Exception:
                logger.exception("could not record the timeout of %s", job_id)
        self._recover("its worker process was replaced: another task could not be stopped")
        return EXIT_REPLACE << 8  # as if the child had exited with EXIT_REPLACE

    def _recover(self, why: str) -> None:
        """Hand back every attempt the dead child held, and clear its rq registration."""
        from rq.worker import Worker

        try:
            for job_id, attempt, _, _ in self._executions():
                interrupt(self.client, job_id, attempt, why, worker=self.name)
            key = f"{Worker.redis_worker_namespace_prefix}{self.name}"
            self.client.delete(key, f"{key}:executions")
            self.client.srem(Worker.redis_workers_keys, key)
        except Exception:
            logger.exception("could not hand back the tasks of the ended process; the reaper will")


__all__ = ["BatchSupervisor", "Heartbeat"]
