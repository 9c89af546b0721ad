"""Contract-suite harnesses for the Redis backend: ``redis`` (fakeredis, runs everywhere) and
``redis_real`` (the real server from ``TASKYARD_TEST_REDIS_URL``) on rq's SimpleWorker class;
``redis_batch`` and ``redis_batch_real`` on the batching worker (``BatchRedisHarness``).

Nothing runs until ``drain()``, which runs an in-process rq worker (taskyard's SimpleWorker, in
burst mode, with rq's scheduler so deferred and retried jobs move) plus a reaper pass, again and
again until no due work is left. ``background()`` runs the same worker in a thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskyard.backends.redis import RedisBackend
from taskyard.backends.redis.maintenance import sweep_orphaned_dependents
from taskyard.backends.redis.recovery import reap_leases as reap
from taskyard.tasks.results import TaskResult
from tests.contract.conftest import Harness
from tests.redis_fixtures import (
    HarnessWorker,
    ThreadWorker,
    due_jobs,
    new_fake_url,
    real_redis,
    redis_entry,
)


class RedisHarness(Harness):
    # rq's worker classes run one job at a time (the batching worker, below, runs many)
    async_overlap = False
    async_cancel = False

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        super().__init__(redis_entry(url, LEASE=5.0))
        self._background: threading.Thread | None = None

    @property
    def redis(self) -> RedisBackend:
        backend = self.backend
        assert isinstance(backend, RedisBackend)
        return backend

    def run_once(self) -> None:
        client = self.redis.connection()
        reap(client)
        sweep_orphaned_dependents(client)
        in_main = threading.current_thread() is threading.main_thread()
        worker = (HarnessWorker if in_main else ThreadWorker)(self.queues, connection=client)
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")

    def drain(self, timeout: float = 15.0) -> None:
        if self._background is not None:
            return
        deadline = time.monotonic() + timeout
        client = self.redis.connection()
        while True:
            self.run_once()
            if not due_jobs(client) or time.monotonic() > deadline:
                return
            time.sleep(0.05)  # a retry backoff or a reaped lease is due in a moment

    def wait(self, result: TaskResult[Any], timeout: float = 15.0) -> TaskResult[Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.drain(max(0.0, deadline - time.monotonic()))
            result.refresh()
            if result.is_finished or time.monotonic() > deadline:
                return result
            time.sleep(0.05)

    @contextlib.contextmanager
    def background(self) -> Iterator[object]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                self.run_once()
                stop.wait(0.02)

        thread = threading.Thread(target=loop, daemon=True)
        self._background = thread
        thread.start()
        try:
            yield thread
        finally:
            stop.set()
            thread.join(15)
            self._background = None


@pytest.fixture
def harness_redis() -> Iterator[Harness]:
    harness = RedisHarness("redis", new_fake_url())
    yield harness
    harness.redis.close()


@pytest.fixture
def harness_redis_real() -> Iterator[Harness]:
    harness = RedisHarness("redis_real", real_redis())
    yield harness
    harness.redis.connection().flushdb()
    harness.redis.close()


class BatchRedisHarness(RedisHarness):
    """The batching worker (``taskyard rqworker --worker-class batch``): ``drain()`` runs it in
    burst mode in this process, with rq's scheduler and a reaper pass, until nothing is due."""

    async_overlap = True  # async tasks run as coroutines on the worker's event loop
    async_cancel = True  # the lease keeper delivers cancel requests at the next await

    def run_once(self) -> None:
        from taskyard.backends.redis.batch_worker import BatchWorker

        client = self.redis.connection()
        reap(client)
        sweep_orphaned_dependents(client)
        BatchWorker(
            client,
            self.queues,
            f"harness-batch:{threading.get_ident()}",
            sender=RedisBackend,
            threads=4,
            lease=self.redis._lease,
            burst=True,
            with_scheduler=True,
            reap_interval=0,
            logging_level="WARNING",
            handle_signals=False,
        ).run()


@pytest.fixture
def harness_redis_batch() -> Iterator[Harness]:
    harness = BatchRedisHarness("redis_batch", new_fake_url())
    yield harness
    harness.redis.close()


@pytest.fixture
def harness_redis_batch_real() -> Iterator[Harness]:
    harness = BatchRedisHarness("redis_batch_real", real_redis())
    yield harness
    harness.redis.connection().flushdb()
    harness.redis.close()
