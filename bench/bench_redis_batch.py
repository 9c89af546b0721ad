"""The batching Redis worker (``taskyard rqworker --worker-class batch``) beside rq's own
SimpleWorker, in one run on one Redis.

* no-op drain: ``--n`` tasks queued, then one worker process in burst mode; the rate comes from
  the jobs' own rq ``started_at``/``ended_at`` (worker start-up is not counted): taskyard's
  batching worker, taskyard on rq's SimpleWorker class, and plain rq (a plain function, rq's
  ``SimpleWorker``, JSON serializer);
* worker round trips per task: the batching worker run in this process over ``--n`` tasks,
  every request it sends to Redis counted on the client side (a pipeline or a script is one
  round trip), its lease keeper and reaper included; beside it the Redis commands per task
  from ``INFO commandstats`` (commands run inside its scripts included);
* idle pickup: an idle worker, one task enqueued at a time; time from the enqueue call to the
  attempt's start.

By default a private ``redis-server`` (no persistence) on a free port; ``--url`` uses another
server instead (it is flushed: give it a database of its own).

    python bench/bench_redis_batch.py [--n 20000] [--repeats 3] [--latency-samples 200]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_redis import (  # noqa: E402
    PlainRQ,
    Subject,
    Taskyard,
    command_count,
    private_redis,
    run_worker,
    span,
)


def drain(subject: Subject, cls: str, n: int, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        subject.client.flushdb()
        ids = subject.enqueue_bulk(n)
        started = time.perf_counter()
        run_worker(subject, cls)
        wall = time.perf_counter() - started
        rate = n / span(subject.client, ids)
        print(f"    {n / wall:8.0f}/s wall (with start-up), {rate:8.0f}/s by job times", flush=True)
        rates.append(rate)
    return rates


def round_trips(subject: Taskyard, n: int) -> tuple[float, float]:
    """(round trips, Redis commands) per task of one batching worker draining ``n`` tasks."""
    import redis.connection

    from taskyard.backends.redis import RedisBackend
    from taskyard.backends.redis.batch_worker import BatchWorker

    subject.client.flushdb()
    subject.enqueue_bulk(n)
    counter = itertools.count()
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        next(counter)
        original(self, command, check_health)

    client = redis.Redis.from_url(subject.url)
    client.ping()
    before = command_count(subject.client)
    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        BatchWorker(
            client,
            ["default"],
            "bench-batch",
            sender=RedisBackend,
            burst=True,
            handle_signals=False,
            logging_level="WARNING",
        ).run()
        sent = next(counter)
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
    commands = command_count(subject.client) - before - 1  # the INFO call itself
    return sent / n, commands / n


def pickup(subject: Taskyard, cls: str, samples: int) -> list[float]:
    subject.client.flushdb()
    worker = subprocess.Popen(
        subject.worker_argv(cls, burst=False),
        env=subject.worker_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subject.enqueue_one(1)
        time.sleep(2.0)
        out = []
        for _ in range(samples):
            before = time.time()
            job_id = subject.enqueue_one(1)[0]
            deadline = time.monotonic() + 10
            started = None
            while started is None and time.monotonic() < deadline:
                started = subject.started_at(job_id)
                if started is None:
                    time.sleep(0.0001)
            if started is not None:
                out.append((started - before) * 1000)
            time.sleep(0.02)
        return out
    finally:
        worker.terminate()
        worker.wait(30)


def line(label: str, runs: list[float], unit: str) -> None:
    if not runs:
        print(f"  {label:<58} (no data)")
        return
    low, high = min(runs), max(runs)
    print(f"  {label:<58} {statistics.median(runs):10.2f} {unit}  [{low:.2f} .. {high:.2f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rq-n", type=int, default=3_000, help="tasks for rq's SimpleWorker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.url:
        run(args.url, args)
    else:
        with private_redis() as url:
            run(url, args)


def run(url: str, args: argparse.Namespace) -> None:
    taskyard = Taskyard(url)
    plain = PlainRQ(url)
    print(f"no-op drain, one worker process (n={args.n}; rq n={args.rq_n})", flush=True)
    batch = drain(taskyard, "batch", args.n, args.repeats)
    simple = drain(taskyard, "simple", args.rq_n, args.repeats)
    rq_simple = drain(plain, "simple", args.rq_n, args.repeats)
    trips, commands = round_trips(taskyard, args.n)
    print("idle pickup", flush=True)
    lat_batch = pickup(taskyard, "batch", args.latency_samples)
    lat_simple = pickup(taskyard, "simple", max(20, args.latency_samples // 4))
    print()
    print("Results (median [min .. max])")
    line("drain: taskyard rqworker --worker-class batch", batch, "tasks/s")
    line("drain: taskyard rqworker --worker-class simple", simple, "tasks/s")
    line("drain: plain rq, rq worker (SimpleWorker), JSON", rq_simple, "tasks/s")
    ratio = statistics.median(batch) / statistics.median(rq_simple)
    print(f"  batch worker / plain rq SimpleWorker: {ratio:.1f}x")
    print(f"  batch worker round trips per task: {trips:.3f}")
    print(f"  batch worker Redis commands per task (in scripts included): {commands:.1f}")
    line("idle pickup: batch worker", lat_batch, "ms")
    line("idle pickup: taskyard simple worker", lat_simple, "ms")


if __name__ == "__main__":
    main()
