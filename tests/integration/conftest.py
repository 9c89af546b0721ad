"""Fixtures for the Database backend's integration and fault tests, on both dialects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import taskyard
from taskyard.backends.database import DatabaseBackend
from taskyard.config import backends
from taskyard.tasks.results import TaskResult
from taskyard.worker.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/queue.sqlite3"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[DatabaseBackend]:
    """The Database backend on ``db_url`` as the default alias, schema applied."""
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {"URL": db_url, "AUTO_MIGRATE": True},
            }
        }
    )
    backend = backends["default"]
    assert isinstance(backend, DatabaseBackend)
    backend.migrate()
    yield backend
    backend.close()


class WorkerProcess:
    """``taskyard worker`` in a subprocess, with its output captured to a file."""

    def __init__(self, url: str, *args: str, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKYARD_LOG_LEVEL": "INFO"}
        env.pop("TASKYARD_SETTINGS", None)
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taskyard",
                "worker",
                "--url",
                url,
                "--import",
                "tests.tasks",
                "--queues",
                "*",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@pytest.fixture
def worker_process(db_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        process = WorkerProcess(db_url, *args, log=tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status_of(result: TaskResult[Any]) -> str:
    result.refresh()
    return result.status.value


def burst(db: DatabaseBackend, **changes: Any) -> Worker:
    """Run an in-process ``taskyard worker --burst`` on ``db`` (2 threads unless changed)."""
    config = WorkerConfig(
        queues=None, threads=2, burst=True, interval=0.05, lease=5, handle_signals=False
    )
    for key, value in changes.items():
        setattr(config, key, value)
    worker = Worker(db, config)
    worker.run()
    return worker
