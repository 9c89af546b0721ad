"""Bulk enqueue on Redis: ``taskyard.enqueue_many`` beside rq's ``Queue.enqueue_many``.

``python bench/bench_enqueue_many.py [--n 20000] [--repeats 5] [--url redis://…]`` starts a
private ``redis-server`` (unless ``--url`` is given; that database is flushed between runs),
enqueues ``--n`` no-op tasks in one call with each, and prints tasks/s (median and every run).
Both sides store ordinary rq jobs with rq's JSON serializer, the same Redis, the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_redis import private_redis


def taskyard_bulk(url: str) -> Callable[[int], int]:
    import taskyard
    from bench.core_tasks import noop

    taskyard.configure(url=url)

    def run(n: int) -> int:
        return len(taskyard.enqueue_many([noop.prepare() for _ in range(n)]))

    return run


def rq_bulk(url: str) -> Callable[[int], int]:
    import redis
    from rq import Queue
    from rq.serializers import JSONSerializer

    queue = Queue("plain", connection=redis.Redis.from_url(url), serializer=JSONSerializer)

    def run(n: int) -> int:
        data = [Queue.prepare_data("bench.core_tasks.noop_function") for _ in range(n)]
        return len(queue.enqueue_many(data))

    return run


def measure(url: str, n: int, repeats: int) -> dict[str, list[float]]:
    import redis

    client = redis.Redis.from_url(url)
    subjects = {"taskyard enqueue_many": taskyard_bulk(url), "rq Queue.enqueue_many": rq_bulk(url)}
    rates: dict[str, list[float]] = {label: [] for label in subjects}
    for _ in range(repeats):
        for label, run in subjects.items():  # interleaved: both see the same machine load
            client.flushdb()
            started = time.perf_counter()
            stored = run(n)
            rates[label].append(n / (time.perf_counter() - started))
            assert stored == n and client.dbsize() >= n, (label, stored, client.dbsize())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--url", default=None, help="use this Redis (its database is flushed)")
    args = parser.parse_args()
    if args.url:
        rates = measure(args.url, args.n, args.repeats)
    else:
        with private_redis() as url:
            rates = measure(url, args.n, args.repeats)
    print(f"bulk enqueue of {args.n} no-op tasks, medians of {args.repeats} runs:")
    for label, runs in rates.items():
        every = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"  {label:<24} {statistics.median(runs):>9,.0f} tasks/s   ({every})")


if __name__ == "__main__":
    main()
