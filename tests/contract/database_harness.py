"""Contract-suite harnesses for the Database backend on SQLite and on PostgreSQL.

``drain()`` runs an in-process ``taskyard worker --burst``; ``background()`` runs a worker in a
thread for tests that need a task running while the test acts on it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskyard.backends.database import DatabaseBackend
from taskyard.tasks.results import TaskResult
from taskyard.worker.worker import Worker, WorkerConfig
from tests.contract.conftest import Harness


class DatabaseHarness(Harness):
    def __init__(self, url: str) -> None:
        super().__init__(
            {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "OPTIONS": {"URL": url, "AUTO_MIGRATE": True},
            }
        )
        self._background: Worker | None = None

    @property
    def db(self) -> DatabaseBackend:
        backend = self.backend
        assert isinstance(backend, DatabaseBackend)
        return backend

    def worker(self, **changes: Any) -> Worker:
        config = WorkerConfig(
            queues=None,
            threads=1,
            burst=True,
            interval=0.05,
            lease=5,
            handle_signals=False,
            shutdown_timeout=5,
        )
        for key, value in changes.items():
            setattr(config, key, value)
        return Worker(self.db, config)

    def drain(self, timeout: float = 15.0) -> None:
        if self._background is None:
            self.worker().run()

    def wait(self, result: TaskResult[Any], timeout: float = 15.0) -> TaskResult[Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            result.refresh()
            if result.is_finished or time.monotonic() > deadline:
                return result
            time.sleep(0.05)

    @contextlib.contextmanager
    def background(self) -> Iterator[Worker]:
        worker = self.worker(burst=False, worker_id="background-worker", threads=2)
        thread = threading.Thread(target=worker.run, daemon=True)
        self._background = worker
        thread.start()
        try:
            yield worker
        finally:
            worker.stop()
            thread.join(10)
            self._background = None


@pytest.fixture
def harness_sqlite(tmp_path: Path) -> Iterator[Harness]:
    harness = DatabaseHarness(f"sqlite:///{tmp_path}/queue.sqlite3")
    yield harness
    harness.db.close()


@pytest.fixture
def harness_postgres(postgres_url: str) -> Iterator[Harness]:
    harness = DatabaseHarness(postgres_url)
    yield harness
    harness.db.close()
