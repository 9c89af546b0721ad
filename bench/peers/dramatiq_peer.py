"""Dramatiq with its Redis broker: one ``dramatiq`` worker process (``--processes 1``), sync
actors on its threads; async actors through its AsyncIO middleware. Start and finish times
come from a Dramatiq middleware (``bench.peers.recorder``)."""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from bench.peers.base import IoMode, RecordedSubject, bin_path

#: worker threads for no-op tasks: the fastest of 1, 2, 4 and 8 in a tuning run on this
#: machine ($BENCH_PEER_CONCURRENCY overrides)
THREADS = int(os.environ.get("BENCH_PEER_CONCURRENCY", "4"))


class Dramatiq(RecordedSubject):
    key = "dramatiq"
    label = "Dramatiq, Redis broker"
    store = "redis"
    worker_note = f"dramatiq --processes 1 --threads {THREADS}, no result backend"

    def module(self) -> Any:
        os.environ["BENCH_REDIS_URL"] = self.ctx.redis_url
        os.environ.pop("BENCH_RECORDER", None)
        import bench.peers.dramatiq_app as app

        if self.ctx.redis_url != app.URL:
            app = importlib.reload(app)
        return app

    def reset(self) -> None:
        import redis

        redis.Redis.from_url(self.ctx.redis_url).flushdb()
        self.clear_records()

    def _send(self, name: str, n: int, **kwargs: Any) -> float:
        send = self.module().ACTORS[name].send
        started = time.perf_counter()
        for _ in range(n):
            send(**kwargs)
        return time.perf_counter() - started

    def enqueue_one(self, n: int) -> float:
        return self._send("noop", n)

    def enqueue_stamp(self, token: int, port: int) -> float:
        send = self.module().stamp.send
        before = time.time()
        send(token, port)
        return before

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        self._send("sleep_async" if kind == "async" else "sleep_sync", n, seconds=seconds)

    def fill_ids(self, n: int) -> None:
        send = self.module().noop_id.send
        for token in range(n):
            send(token)

    def argv(self, threads: int) -> list[str]:
        argv = [bin_path("dramatiq"), "bench.peers.dramatiq_app", "--processes", "1"]
        return [*argv, "--threads", str(threads), "--queues", "bench"]

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(THREADS)

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_REDIS_URL": self.ctx.redis_url}

    def io_modes(self) -> list[IoMode]:
        return [
            IoMode(
                "async",
                "",
                ", async actors (AsyncIO middleware)",
                (100, 250, 500),
                self.argv,
                lambda c: f"dramatiq --processes 1 --threads {c}, AsyncIO middleware",
                rss=False,
            ),
            IoMode(
                "sync",
                "",
                "",
                (100,),
                self.argv,
                lambda c: f"dramatiq --processes 1 --threads {c}",
            ),
        ]

    def versions(self) -> str:
        from importlib.metadata import version

        return f"dramatiq {version('dramatiq')}"
