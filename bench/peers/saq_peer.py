"""SAQ (async-native, Redis): one ``saq`` worker process, async tasks. Start and finish
times come from its hooks (``bench.peers.recorder``)."""

from __future__ import annotations

import os
from typing import Any

from bench.peers.aio import AsyncRedisPeer
from bench.peers.base import IoMode, bin_path

#: jobs at once for no-op tasks: the fastest of 10, 50 and 100 in a tuning run on this machine
#: ($BENCH_PEER_CONCURRENCY overrides)
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "50"))


class SAQ(AsyncRedisPeer):
    key = "saq"
    label = "SAQ"
    drain_n = 5000  # a run under a minute here
    app_module = "bench.peers.saq_app"
    worker_note = f"saq --workers 1, concurrency {CONCURRENCY}, async tasks"

    async def _enqueue(self, name: str, **kwargs: Any) -> None:
        await self.module().queue.enqueue(name, **kwargs)

    async def _connect(self) -> None:
        await self.module().queue.connect()

    async def _disconnect(self) -> None:
        await self.module().queue.disconnect()

    def argv(self, concurrency: int) -> list[str]:
        return [bin_path("saq"), "bench.peers.saq_app.settings", "--workers", "1", "--quiet"]

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(CONCURRENCY)

    def worker_env(self) -> dict[str, str]:
        return self.env(CONCURRENCY)

    def env(self, concurrency: int) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_CONCURRENCY": str(concurrency)}

    def io_modes(self) -> list[IoMode]:
        return [
            IoMode(
                "async",
                "",
                "",
                (50, 100, 500, 1000),
                self.argv,
                lambda c: f"saq --workers 1, concurrency {c}",
                env=self.env,
            )
        ]

    def versions(self) -> str:
        from importlib.metadata import version

        return f"saq {version('saq')}"
