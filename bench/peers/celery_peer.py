"""Celery with the Redis broker and Redis result backend, one worker process with the
threads pool (``-P threads``). Start and finish times come from Celery's
``task_prerun``/``task_postrun`` signals (``bench.peers.recorder``)."""

from __future__ import annotations

import os
import time
from typing import Any

from bench.peers.base import IoMode, RecordedSubject, bin_path

#: the fastest of 1, 2 and 4 in a tuning run on this machine ($BENCH_PEER_CONCURRENCY overrides)
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "2"))


class Celery(RecordedSubject):
    key = "celery"
    label = "Celery, Redis broker, threads pool"
    store = "redis"
    worker_note = f"celery worker -P threads -c {CONCURRENCY}, Redis result backend"

    def module(self) -> Any:
        import importlib

        os.environ["BENCH_REDIS_URL"] = self.ctx.redis_url
        os.environ.pop("BENCH_RECORDER", None)
        import bench.peers.celery_app as app

        if self.ctx.redis_url != app.URL:
            app = importlib.reload(app)
        return app

    def reset(self) -> None:
        import redis

        redis.Redis.from_url(self.ctx.redis_url).flushdb()
        self.clear_records()

    def enqueue_one(self, n: int) -> float:
        delay = self.module().noop.delay
        started = time.perf_counter()
        for _ in range(n):
            delay()
        return time.perf_counter() - started

    def enqueue_stamp(self, token: int, port: int) -> float:
        delay = self.module().stamp.delay
        before = time.time()
        delay(token, port)
        return before

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        assert kind == "sync"
        delay = self.module().sleep_sync.delay
        for _ in range(n):
            delay(seconds)

    def fill_ids(self, n: int) -> None:
        delay = self.module().noop_id.delay
        for token in range(n):
            delay(token)

    def io_modes(self) -> list[IoMode]:
        return [
            IoMode(
                "sync",
                "",
                "",
                (100,),
                self.argv,
                lambda c: f"celery worker -P threads -c {c}, Redis result backend",
            )
        ]

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(CONCURRENCY)

    def argv(self, concurrency: int) -> list[str]:
        return [
            bin_path("celery"),
            "-A",
            "bench.peers.celery_app",
            "worker",
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-Q",
            "bench",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]

    def worker_env(self) -> dict[str, str]:
        return {
            **super().worker_env(),
            "BENCH_REDIS_URL": self.ctx.redis_url,
        }

    def versions(self) -> str:
        from importlib.metadata import version

        return f"celery {version('celery')}, kombu {version('kombu')}"
