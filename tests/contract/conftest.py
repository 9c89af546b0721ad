"""The contract suite's backends. A backend joins the suite with one ``harness_<name>`` fixture
and its name in ``BACKENDS``.

A harness configures the backend as the ``default`` alias and knows how to make enqueued work
happen: ``drain()`` runs/waits for everything pending, ``hold()`` keeps new tasks from starting
(for ordering and cancellation tests).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import taskyard
from taskyard import testing
from taskyard.backends.base import Backend
from taskyard.config import backends
from taskyard.tasks.results import TaskResult
from tests import tasks

BACKENDS = [
    "immediate",
    "dummy",
    "threadpool",
    "sqlite",
    "postgres",
    "redis",
    "redis_real",
    "redis_batch",
    "redis_batch_real",
]


class Harness:
    name = "base"
    runs_inline = False  # tasks run inside enqueue(): nothing is ever pending
    async_overlap = True  # async tasks run concurrently (an event loop of the worker's)
    async_cancel = True  # a running coroutine can be cancelled at its next await
    queues = ["default", "other"]

    def __init__(self, entry: dict[str, Any]) -> None:
        entry = {**entry, "QUEUES": self.queues}
        taskyard.configure({"default": entry})

    @property
    def backend(self) -> Backend:
        return backends["default"]

    def drain(self, timeout: float = 15.0) -> None:
        """Make every pending task finish."""

    def wait(self, result: TaskResult[Any], timeout: float = 15.0) -> TaskResult[Any]:
        self.drain(timeout)
        result.wait(timeout)
        return result

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Inside the block, enqueued tasks do not start."""
        yield

    @contextlib.contextmanager
    def background(self) -> Iterator[object]:
        """Inside the block, enqueued tasks run concurrently with the test."""
        if self.runs_inline or self.name == "dummy":
            pytest.skip(f"the {self.name} backend runs nothing concurrently with the test")
        yield None


class ImmediateHarness(Harness):
    name = "immediate"
    runs_inline = True

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        pytest.skip("the Immediate backend runs tasks inside enqueue(): nothing can be held")
        yield


class DummyHarness(Harness):
    name = "dummy"

    def drain(self, timeout: float = 15.0) -> None:
        testing.run_enqueued(include_deferred=False)


class ThreadPoolHarness(Harness):
    name = "threadpool"

    def drain(self, timeout: float = 15.0) -> None:
        """Wait for every task that is due (deferred ones are left waiting)."""
        backend = self.backend
        now = datetime.now(UTC)
        for result in list(backend._results.values()):  # type: ignore[attr-defined]
            run_after = result.task.run_after
            if not result.is_finished and (run_after is None or run_after <= now):
                result.wait(timeout)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        # One worker thread, occupied by a gate task until the block ends.
        name = f"hold-{uuid.uuid4()}"
        tasks.GATES[name] = gate = threading.Event()
        blocker = tasks.gate.using(priority=100).enqueue(name)
        while blocker.status is taskyard.TaskResultStatus.READY:
            time.sleep(0.001)
        try:
            yield
        finally:
            gate.set()
            blocker.wait(10)


@pytest.fixture
def harness_immediate() -> Harness:
    return ImmediateHarness({"BACKEND": "taskyard.backends.immediate.ImmediateBackend"})


@pytest.fixture
def harness_dummy() -> Harness:
    return DummyHarness({"BACKEND": "taskyard.backends.dummy.DummyBackend"})


@pytest.fixture
def harness_threadpool() -> Iterator[Harness]:
    h = ThreadPoolHarness(
        {
            "BACKEND": "taskyard.backends.threadpool.ThreadPoolBackend",
            "OPTIONS": {"MAX_WORKERS": 1},
        }
    )
    yield h
    h.backend.close(wait=False, timeout=5)  # type: ignore[call-arg]


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.getfixturevalue(f"harness_{request.param}")  # type: ignore[no-any-return]


# Backends defined in their own modules join here (pytest finds fixtures in this namespace).
from tests.contract.database_harness import harness_postgres, harness_sqlite  # noqa: E402, F401
from tests.contract.redis_harness import (  # noqa: E402, F401
    harness_redis,
    harness_redis_batch,
    harness_redis_batch_real,
    harness_redis_real,
)
