"""Task functions for the benchmarks (module-level, importable by every peer): no-op, the
latency probe, the I/O-bound sleeps and the scale-out task that counts its executions."""

import asyncio
import time

from bench.peers import recorder
from bench.peers.probe import send_stamp
from taskyard import task


def noop_function() -> None:
    return None


async def astamp_function(token: int, port: int) -> None:
    send_stamp(token, port)


async def sleep_async_function(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep_sync_function(seconds: float) -> None:
    time.sleep(seconds)


def noop_id_function(token: int) -> None:
    recorder.executed(token)


noop = task(noop_function)
stamp = task(send_stamp)
astamp = task(astamp_function)
sleep_async = task(sleep_async_function)
sleep_sync = task(sleep_sync_function)
noop_id = task(noop_id_function)
