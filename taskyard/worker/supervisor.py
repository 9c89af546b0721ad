"""Process mode (``taskyard worker --processes N``): N self-polling child workers, respawned.

A child with one thread runs its task on its main thread, where a timeout interrupts blocking
calls (``SIGALRM``). The supervisor knows what each child is running: a child that overruns a
task's timeout by ``TIMEOUT_GRACE`` is killed and replaced, and the attempt is recorded as
``TaskTimeout`` (a failed attempt, retried if ``retries`` allow); a child that dies mid-task (a
poison task, the OOM killer) has the attempt handed back as interrupted (run again whatever
``retries`` says, up to ``MAX_INTERRUPTIONS``) and its other claims handed back uncounted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.rows import result_from_row, task_for_row
from taskyard.backends.database.worker_ops import Finished, QueueOps
from taskyard.exceptions import BackendUnavailable, InvalidTask, TaskTimeout
from taskyard.tasks import registry
from taskyard.tasks.execution import announce_outcome, record_failure
from taskyard.worker.stopping import EXIT_REPLACE
from taskyard.worker.worker import WorkerConfig

logger = logging.getLogger("taskyard.worker")

TIMEOUT_GRACE = 5.0


@dataclass
class Child:
    process: Any
    conn: Connection
    started: float
    worker_id: str
    # task id -> (attempt, kill deadline) for each task the child is running
    current: dict[str, tuple[int, float | None]] = field(default_factory=dict)


def _child_main(
    settings: Mapping[str, Any],
    alias: str,
    imports: tuple[list[str], list[str]],
    config: WorkerConfig,
    conn: Connection,
    log_level: int,
) -> None:
    """Entry point of a child process (spawned: imports and configuration are redone)."""
    from taskyard.config import backends
    from taskyard.worker.worker import Worker

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor coordinates Ctrl-C
    # The parent resolved flags and environment already: use its settings as they are.
    backends.configure(settings)
    modules, allowed = imports
    registry.allow_imports(allowed)
    for module in modules:
        registry.import_declared(module)
    backend = backends[alias]
    assert isinstance(backend, DatabaseBackend)
    worker = Worker(
        backend,
        replace(
            config,
            worker_id=f"{socket.gethostname()}:{os.getpid()}",
            inline=config.threads == 1,
            on_stuck="exit",
        ),
        on_start=lambda result, timeout: conn.send(
            ("start", result.id, result._attempt or result.attempts, timeout)
        ),
        on_end=lambda result: conn.send(("end", result.id, result.status.value)),
    )
    code = worker.run()
    conn.close()
    raise SystemExit(code)


class Supervisor:
    """Keep ``processes`` child workers running until told to stop."""

    def __init__(
        self,
        backend: DatabaseBackend,
        settings: Mapping[str, Any],
        imports: list[str],
        config: WorkerConfig,
        processes: int,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.imports = imports
        self.config = config
        self.processes = processes
        self.ops = QueueOps(backend)
        self.children: dict[int, Child] = {}
        self.state = "starting"
        self.stopping = False
        self.cold = False
        self.exit_code = 0
        self.respawns = 0
        self.killed_for_timeout = 0
        self._crash_delay = 0.0
        self._finished = 0  # children that ended a --burst run: not replaced
        self._context = multiprocessing.get_context("spawn")
        self.processed = 0
        self.succeeded = 0
        self.failed = 0
        self.loop_seen = time.monotonic()

    def _spawn(self) -> None:
        parent, child = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            args=(
                self.settings,
                self.backend.alias,
                (self.imports, list(registry.allowed_imports())),
                self.config,
                child,
                logging.getLogger().level,
            ),
            name="taskyard-worker",
        )
        process.start()
        child.close()
        assert process.pid is not None
        worker_id = f"{socket.gethostname()}:{process.pid}"
        self.children[process.pid] = Child(process, parent, time.monotonic(), worker_id)
        logger.info("started worker process %s", worker_id)

    def run(self) -> int:
        def handler(signum: int, frame: object) -> None:
            if not self.stopping:
                logger.warning("%s: stopping child workers (warm)", signal.Signals(signum).name)
                self.stopping = True
            else:
                logger.warning("%s: stopping child workers now (cold)", signal.Signals(signum).name)
                self.cold = True
            for child in self.children.values():
                if child.process.is_alive():
                    os.kill(child.process.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        for _ in range(self.processes):
            self._spawn()
        self.state = "running"
        while self.children:
            self.loop_seen = time.monotonic()
            self._step(timeout=0.2)
            if not self.stopping and len(self.children) + self._finished < self.processes:
                if self._crash_delay:
                    time.sleep(self._crash_delay)
                self._spawn()
                self.respawns += 1
        self.state = "stopped"
        return self.exit_code

    def _step(self, timeout: float) -> None:
        conns = {child.conn: child for child in self.children.values()}
        sentinels = {child.process.sentinel: child for child in self.children.values()}
        for ready in wait([*conns, *sentinels], timeout):
            if ready in conns:
                self._receive(conns[ready])
        now = time.monotonic()
        for child in list(self.children.values()):
            if not child.process.is_alive():
                self._reap(child)
            else:
                for task_id, (_, deadline) in list(child.current.items()):
                    if deadline is not None and now > deadline:
                        self._kill_for_timeout(child, task_id)
                        break

    def _receive(self, child: Child) -> None:
        try:
            while child.conn.poll():
                message = child.conn.recv()
                if message[0] == "start":
                    _, task_id, attempt, timeout = message
                    deadline = (
                        None if timeout is None else time.monotonic() + timeout + TIMEOUT_GRACE
                    )
                    child.current[task_id] = (attempt, deadline)
                elif message[0] == "end":
                    child.current.pop(message[1], None)
                    self.processed += 1
                    outcome = message[2] if len(message) > 2 else None
                    if outcome == "SUCCESSFUL":
                        self.succeeded += 1
                    elif outcome == "FAILED":
                        self.failed += 1
        except (EOFError, OSError):
            pass

    def _kill_for_timeout(self, child: Child, task_id: str) -> None:
        attempt, _ = child.current.pop(task_id)
        logger.error(
            "worker process %s overran the timeout of task %s by %ss: killing it",
            child.worker_id,
            task_id,
            TIMEOUT_GRACE,
        )
        child.process.kill()
        child.process.join(5)
        self.killed_for_timeout += 1
        self._record(
            child,
            task_id,
            attempt,
            TaskTimeout(
                f"task ran past its timeout and did not stop within {TIMEOUT_GRACE:g}s more: its "
                f"worker process {child.worker_id} was killed"
            ),
        )

    def _reap(self, child: Child) -> None:
        child.process.join()
        self._receive(child)
        code = child.process.exitcode
        if self.stopping and code == -signal.SIGTERM:
            # The forwarded SIGTERM reached a child still starting, before its worker handled
            # signals: it had claimed nothing, so that is a clean exit.
            code = 0
        self.children.pop(child.process.pid, None)
        if child.current:
            self._interrupted(child, code)
        self._hand_back(child)
        lived = time.monotonic() - child.started
        if code == 0:
            self._crash_delay = 0.0
            if self.config.burst:
                self._finished += 1
                return
            if not self.stopping:
                logger.info(
                    "worker process %s exited (max tasks reached); replacing it", child.worker_id
                )
            return
        if code == EXIT_REPLACE:
            self._crash_delay = 0.0
            logger.warning(
                "worker process %s exited to be replaced (a task could not be stopped at its "
                "timeout)",
                child.worker_id,
            )
            return
        if self.stopping:
            self.exit_code = 1
        self._crash_delay = min(30.0, max(0.5, self._crash_delay * 2)) if lived < 2 else 0.0
        logger.warning(
            "worker process %s exited with code %s after %.1fs", child.worker_id, code, lived
        )

    def _interrupted(self, child: Child, code: int | None) -> None:
        """The attempts a dead child was running were interrupted: hand them back to run
        again (not charged to ``retries``; counted against ``MAX_INTERRUPTIONS``)."""
        ids = list(child.current)
        child.current.clear()
        reason = f"worker process {child.worker_id} died (exit code {code}) while running it"
        try:
            self.ops.abandon_running(child.worker_id, ids, reason)
        except BackendUnavailable as exc:
            logger.warning(
                "could not hand back the running tasks of %s (%s): their leases will expire",
                child.worker_id,
                exc,
            )

    def _hand_back(self, child: Child) -> None:
        """A dead child's claimed-but-unstarted tasks go back to the queue at once."""
        try:
            held = self.ops.held_by(child.worker_id)
            if held:
                self.ops.release_unstarted(child.worker_id, held)
                logger.info("handed back %d task(s) claimed by %s", len(held), child.worker_id)
        except BackendUnavailable as exc:
            logger.warning(
                "could not hand back the tasks of %s (%s): their leases will expire",
                child.worker_id,
                exc,
            )

    def _record(self, child: Child, task_id: str, attempt: int, error: BaseException) -> None:
        """Record the end of a child's attempt it could not record itself (fenced)."""
        try:
            rows = self.ops.c.run("get", {"id": task_id})
            if not rows:
                return
            row = rows[0]
            if row["status"] != "RUNNING" or row["worker_id"] != child.worker_id:
                return
            try:
                task = task_for_row(row, self.ops.c)
            except InvalidTask:
                task = registry.placeholder(row["task_path"])
            result = result_from_row(row, self.ops.c, self.backend, task=task)
            if (result._attempt or result.attempts) != attempt:
                return
            outcome = record_failure(task, result, error)
            if self.ops.complete(child.worker_id, [Finished(result, outcome)]):
                announce_outcome(type(self.backend), result, outcome)
                self.processed += 1
                if outcome.status.value == "FAILED":
                    self.failed += 1
        except BackendUnavailable as exc:
            logger.warning(
                "could not record the lost attempt of %s (%s): its lease will "
                "expire and the reaper will recover it",
                task_id,
                exc,
            )
