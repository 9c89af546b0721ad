"""The common part of the Redis peers whose client API is async (SAQ, arq, taskiq): the
harness drives it on an event loop of its own, and their workers record start and finish
times through ``bench.peers.recorder`` (each peer's own hook or middleware)."""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from bench.peers.base import RecordedSubject

T = TypeVar("T")


class AsyncRedisPeer(RecordedSubject):
    """A peer on the private Redis with an async client. Subclasses name their app module
    (reloaded with ``$BENCH_REDIS_URL`` set) and implement ``_enqueue``."""

    store = "redis"
    app_module = ""

    def module(self) -> Any:
        os.environ["BENCH_REDIS_URL"] = self.ctx.redis_url
        os.environ.pop("BENCH_RECORDER", None)
        app = importlib.import_module(self.app_module)
        if self.ctx.redis_url != app.URL:
            app = importlib.reload(app)
            self._connected = False
        return app

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not hasattr(self, "_loop"):
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    async def _connect(self) -> None:
        """Open the client (once per app module)."""

    async def _disconnect(self) -> None:
        """Close the client."""

    async def _enqueue(self, name: str, **kwargs: Any) -> None:
        """Enqueue one call of the task ``name`` with keyword arguments."""
        raise NotImplementedError

    async def _ready(self) -> None:
        self.module()
        if not getattr(self, "_connected", False):
            await self._connect()
            self._connected = True

    async def _timed(self, name: str, n: int, **kwargs: Any) -> float:
        await self._ready()
        started = time.perf_counter()
        for _ in range(n):
            await self._enqueue(name, **kwargs)
        return time.perf_counter() - started

    def reset(self) -> None:
        import redis

        redis.Redis.from_url(self.ctx.redis_url).flushdb()
        self.clear_records()

    def enqueue_one(self, n: int) -> float:
        return self.run(self._timed("noop", n))

    def enqueue_stamp(self, token: int, port: int) -> float:
        async def one() -> float:
            await self._ready()
            before = time.time()
            await self._enqueue("stamp", token=token, port=port)
            return before

        return self.run(one())

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        name = "sleep_async" if kind == "async" else "sleep_sync"
        self.run(self._timed(name, n, seconds=seconds))

    def fill_ids(self, n: int) -> None:
        async def fill() -> None:
            await self._ready()
            for token in range(n):
                await self._enqueue("noop_id", token=token)

        self.run(fill())

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_REDIS_URL": self.ctx.redis_url}

    def close(self) -> None:
        if getattr(self, "_connected", False):
            self.run(self._disconnect())
            self._connected = False
        if hasattr(self, "_loop"):
            self._loop.close()
            del self._loop
