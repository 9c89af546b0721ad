"""Huey: ``SqliteHuey``, ``RedisHuey`` and ``PostgresHuey``, each with one ``huey_consumer``
process (``-w 4`` threads). Huey keeps no start or finish times: they come from its signals
(``bench.peers.recorder``)."""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any, ClassVar

from bench.peers.base import IoMode, RecordedSubject, bin_path

#: worker threads per storage: the fastest of 1, 2 and 4 in a tuning run on this machine
#: ($BENCH_PEER_CONCURRENCY overrides)
WORKERS = {"sqlite": 1, "redis": 2, "postgresql": 2}
OVERRIDE = os.environ.get("BENCH_PEER_CONCURRENCY")


def workers(store: str) -> int:
    return int(OVERRIDE) if OVERRIDE else WORKERS[store]


class HueyBase(RecordedSubject):
    store: ClassVar[str] = ""

    @property
    def worker_note(self) -> str:  # type: ignore[override]
        return f"huey_consumer -w {workers(self.store)} (threads)"

    def url(self) -> str:
        raise NotImplementedError

    def module(self) -> Any:
        """``bench.peers.huey_app`` bound to this subject's storage (imported afresh)."""
        os.environ["BENCH_HUEY_URL"] = self.url()
        os.environ.pop("BENCH_RECORDER", None)
        import bench.peers.huey_app as app

        if self.url() != app.URL:
            app = importlib.reload(app)
        return app

    def reset(self) -> None:
        self.module().huey.flush()
        self.clear_records()

    def enqueue_one(self, n: int) -> float:
        noop = self.module().noop
        started = time.perf_counter()
        for _ in range(n):
            noop()
        return time.perf_counter() - started

    def enqueue_stamp(self, token: int, port: int) -> float:
        stamp = self.module().stamp
        before = time.time()
        stamp(token, port)
        return before

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(workers(self.store))

    def argv(self, workers: int, kind: str = "thread") -> list[str]:
        program = (
            [sys.executable, "-m", "bench.peers.huey_gevent"]
            if kind == "greenlet"
            else [bin_path("huey_consumer")]
        )
        return [*program, "bench.peers.huey_app.huey", "-w", str(workers), "-k", kind, "-q"]

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        assert kind == "sync"
        call = self.module().sleep_sync
        for _ in range(n):
            call(seconds)

    def fill_ids(self, n: int) -> None:
        call = self.module().noop_id
        for token in range(n):
            call(token)

    def worker_env(self) -> dict[str, str]:
        return {
            **super().worker_env(),
            "BENCH_HUEY_URL": self.url(),
        }

    def versions(self) -> str:
        from importlib.metadata import version

        return f"huey {version('huey')}"


class SqliteHuey(HueyBase):
    key = "huey-sqlite"
    label = "Huey SqliteHuey"
    store = "sqlite"

    def url(self) -> str:
        return f"sqlite:///{self.ctx.tmp}/huey.sqlite3"


class RedisHuey(HueyBase):
    key = "huey-redis"
    label = "Huey RedisHuey"
    store = "redis"
    scaleout = True

    def io_modes(self) -> list[IoMode]:
        return [
            IoMode(
                "sync",
                "",
                ", thread workers",
                (100,),
                self.argv,
                lambda c: f"huey_consumer -k thread -w {c}",
            ),
            IoMode(
                "sync",
                "-greenlet",
                ", greenlet workers (gevent)",
                (100,),
                lambda c: self.argv(c, "greenlet"),
                lambda c: f"huey_consumer -k greenlet -w {c} (gevent's monkey-patch applied first)",
            ),
        ]

    def scaleout_argv(self) -> list[str]:
        return self.argv(workers(self.store))

    def url(self) -> str:
        return self.ctx.redis_url


class PostgresHuey(HueyBase):
    key = "huey-pg"
    label = "Huey PostgresHuey"
    store = "postgresql"

    def url(self) -> str:
        return self.ctx.pg_url
