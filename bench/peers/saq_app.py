"""SAQ for the benchmark, on ``$BENCH_REDIS_URL``: the tasks (SAQ's are async functions taking
its context first) and the worker settings, with ``$BENCH_CONCURRENCY`` jobs at once; start
and finish times recorded through SAQ's ``before_process``/``after_process`` hooks."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from redis import asyncio as aioredis
from saq.queue.redis import RedisQueue

from bench.peers import recorder
from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "10"))

# each job slot waits on its own connection (BLMOVE): redis-py's pool (100 by default) must
# be larger than the concurrency, or jobs fail with "Too many connections"
queue = RedisQueue(aioredis.from_url(URL, max_connections=CONCURRENCY + 100), name="bench")


async def noop(ctx: Any) -> None:
    return None


async def stamp(ctx: Any, *, token: int, port: int) -> None:
    send_stamp(token, port)


async def sleep_async(ctx: Any, *, seconds: float) -> None:
    await asyncio.sleep(seconds)


async def noop_id(ctx: Any, *, token: int) -> None:
    recorder.executed(token)


async def before_process(ctx: Any) -> None:
    recorder.started()


async def after_process(ctx: Any) -> None:
    recorder.finished()


settings: dict[str, Any] = {
    "queue": queue,
    "functions": [noop, stamp, sleep_async, noop_id],
    "concurrency": CONCURRENCY,
}
if recorder.install():
    settings.update(before_process=before_process, after_process=after_process)
