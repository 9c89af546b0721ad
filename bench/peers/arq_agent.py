"""The arq client for the harness, run under the Python that has arq (``.venv-bench-aio``:
arq pins a redis-py older than rq's): JSON requests on stdin, answers on stdout, as
``bench.peers.agent``. ``$BENCH_REDIS_URL`` names the Redis."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from typing import Any


async def main() -> None:
    from arq import create_pool

    from bench.peers import arq_app

    pool = await create_pool(arq_app.WorkerSettings.redis_settings)

    async def enqueue(name: str, n: int, kwargs: dict[str, Any]) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await pool.enqueue_job(name, **kwargs)
        return time.perf_counter() - started

    async def enqueue_stamp(token: int, port: int) -> float:
        before = time.time()
        await pool.enqueue_job("stamp", token=token, port=port)
        return before

    async def fill_ids(n: int) -> float:
        started = time.perf_counter()
        for token in range(n):
            await pool.enqueue_job("noop_id", token=token)
        return time.perf_counter() - started

    async def version() -> str:
        from importlib.metadata import version

        return f"arq {version('arq')}, redis-py {version('redis')}"

    ops = {"enqueue": enqueue, "enqueue_stamp": enqueue_stamp, "fill_ids": fill_ids}
    ops["version"] = version
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        try:
            answer = {"value": await ops[request.pop("op")](**request)}
        except Exception:
            answer = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    await pool.aclose()


if __name__ == "__main__":
    asyncio.run(main())
