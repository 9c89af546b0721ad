"""Procrastinate for the benchmark, on ``$BENCH_POSTGRES_URL``: the no-op and latency-probe
tasks as async tasks (Procrastinate's native kind; a sync task would run in a thread)."""

from __future__ import annotations

import asyncio
import os

from procrastinate import App, PsycopgConnector

from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/taskyard_bench")
app = App(connector=PsycopgConnector(conninfo=URL))


@app.task(name="noop", queue="bench")
async def noop() -> None:
    return None


@app.task(name="stamp", queue="bench")
async def stamp(token: int, port: int) -> None:
    send_stamp(token, port)


@app.task(name="sleep_async", queue="bench")
async def sleep_async(seconds: float) -> None:
    await asyncio.sleep(seconds)
