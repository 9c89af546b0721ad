"""arq for the benchmark, on ``$BENCH_REDIS_URL``: the tasks (async functions taking arq's
context first) and ``WorkerSettings`` with ``$BENCH_CONCURRENCY`` jobs at once (``max_jobs``);
start and finish times recorded through arq's ``on_job_start``/``after_job_end`` hooks."""

from __future__ import annotations

import asyncio
import os
from typing import Any, ClassVar

from arq.connections import RedisSettings

from bench.peers import recorder
from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "10"))
#: seconds between polls of the queue (arq's default is 0.5 s; it has no blocking pop)
POLL_DELAY = 0.01


async def noop(ctx: Any) -> None:
    return None


async def stamp(ctx: Any, *, token: int, port: int) -> None:
    send_stamp(token, port)


async def sleep_async(ctx: Any, *, seconds: float) -> None:
    await asyncio.sleep(seconds)


async def noop_id(ctx: Any, *, token: int) -> None:
    recorder.executed(token)


async def on_job_start(ctx: Any) -> None:
    recorder.started()


async def after_job_end(ctx: Any) -> None:
    recorder.finished()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop, stamp, sleep_async, noop_id]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = CONCURRENCY
    poll_delay = POLL_DELAY
    on_job_start = on_job_start if recorder.install() else None
    after_job_end = after_job_end if recorder.install() else None
