"""Dramatiq for the benchmark: ``RedisBroker`` on ``$BENCH_REDIS_URL`` with its ``AsyncIO``
middleware (async actors run on one event loop per worker process; each still holds a worker
thread while it awaits), the actors, and start and finish times recorded by a middleware."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, Middleware

from bench.peers import recorder
from bench.peers.probe import send_stamp

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

broker = RedisBroker(url=URL)
broker.add_middleware(AsyncIO())


class Recorder(Middleware):
    def before_process_message(self, broker: Any, message: Any) -> None:
        recorder.started()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        recorder.finished()


if recorder.install():
    broker.add_middleware(Recorder())
dramatiq.set_broker(broker)

OPTIONS: dict[str, Any] = {"queue_name": "bench", "max_retries": 0}


@dramatiq.actor(actor_name="noop", **OPTIONS)
def noop() -> None:
    return None


@dramatiq.actor(actor_name="stamp", **OPTIONS)
def stamp(token: int, port: int) -> None:
    send_stamp(token, port)


@dramatiq.actor(actor_name="sleep_async", **OPTIONS)
async def sleep_async(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dramatiq.actor(actor_name="sleep_sync", **OPTIONS)
def sleep_sync(seconds: float) -> None:
    time.sleep(seconds)


@dramatiq.actor(actor_name="noop_id", **OPTIONS)
def noop_id(token: int) -> None:
    recorder.executed(token)


ACTORS = {a.actor_name: a for a in (noop, stamp, sleep_async, sleep_sync, noop_id)}
