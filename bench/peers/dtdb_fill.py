"""Filling django-tasks-db's queue for the benchmark (run inside ``django shell``)."""

from __future__ import annotations

import time

from bench.peers.dtdb_tasks import noop


def fill(n: int) -> None:
    """Queue ``n`` no-op tasks through django-tasks-db's own enqueue."""
    for _ in range(n):
        noop.enqueue()


def timed_enqueue(n: int) -> None:
    started = time.perf_counter()
    fill(n)
    print(n / (time.perf_counter() - started))
