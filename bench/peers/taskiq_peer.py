"""taskiq with taskiq-redis (``ListQueueBroker``, Redis result backend): one
``taskiq worker`` process, async tasks on its event loop. Start and finish times come from a
taskiq middleware (``bench.peers.recorder``)."""

from __future__ import annotations

import os
from typing import Any

from bench.peers.aio import AsyncRedisPeer
from bench.peers.base import IoMode, bin_path

#: async tasks at once for no-op tasks: the fastest of 10, 50 and 100 in a tuning run on this
#: machine ($BENCH_PEER_CONCURRENCY overrides)
CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "50"))


class Taskiq(AsyncRedisPeer):
    key = "taskiq"
    label = "taskiq, taskiq-redis ListQueueBroker"
    drain_n = 5000  # a run under a minute here
    app_module = "bench.peers.taskiq_app"
    worker_note = f"taskiq worker --workers 1 --max-async-tasks {CONCURRENCY}, async tasks"

    async def _connect(self) -> None:
        await self.module().broker.startup()

    async def _disconnect(self) -> None:
        await self.module().broker.shutdown()

    async def _enqueue(self, name: str, **kwargs: Any) -> None:
        await self.module().TASKS[name].kiq(**kwargs)

    def argv(self, concurrency: int, threads: int | None = None) -> list[str]:
        argv = [bin_path("taskiq"), "worker", "bench.peers.taskiq_app:broker"]
        argv += ["--workers", "1", "--max-async-tasks", str(concurrency), "--log-level", "WARNING"]
        argv += ["--no-configure-logging"]
        if threads:
            argv += ["--max-threadpool-threads", str(threads)]
        return argv

    def worker_argv(self, burst: bool) -> list[str]:
        return self.argv(CONCURRENCY)

    def io_modes(self) -> list[IoMode]:
        return [
            IoMode(
                "async",
                "",
                "",
                (50, 100, 500, 1000),
                self.argv,
                lambda c: f"taskiq worker --workers 1 --max-async-tasks {c}",
            ),
            IoMode(
                "sync",
                "",
                "",
                (100,),
                lambda c: self.argv(c, threads=c),
                lambda c: f"taskiq worker --max-threadpool-threads {c} --max-async-tasks {c}",
            ),
        ]

    def versions(self) -> str:
        from importlib.metadata import version

        return f"taskiq {version('taskiq')}, taskiq-redis {version('taskiq-redis')}"
