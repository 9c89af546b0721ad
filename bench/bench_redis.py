"""Redis benchmark: taskyard's Redis backend and ``taskyard rqworker`` beside plain rq and
django-tasks-rq, on the same Redis, in one run.

Run with ``make bench-redis`` (it builds ``.venv-bench-redis`` with Django 5.2, the django-tasks
backport and django-tasks-rq). By default the script starts a private ``redis-server`` (no
persistence) on a free port so that nothing else touches it while ``INFO commandstats`` counts
commands; ``--url`` uses another server instead (it is flushed: give it a database of its own).

Scenarios, each a median over ``--repeats`` runs with the spread:

* worker throughput: ``--n`` no-op jobs queued, then one worker process in burst mode; the rate
  is taken from the jobs' own start and end times (worker start-up is not counted). taskyard's
  ``taskyard rqworker`` beside rq's own ``rq worker`` running a plain function (same JSON
  serializer) and django-rq's ``rqworker`` with django-tasks-rq's job class, with rq's
  SimpleWorker and with its forking Worker;
* enqueue: ``--bulk-n`` no-op tasks, one call each and in bulk (``enqueue_many``: one pipeline);
* idle pickup latency: an idle worker, one task enqueued at a time; time from the enqueue call
  to the task starting;
* Redis commands per task (``INFO commandstats`` deltas): enqueue, the worker's share, and one
  result read.

    python bench/bench_redis.py [--n 2000] [--forking-n 300] [--repeats 5] [--url redis://...]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figure, machine, print_table  # noqa: E402

BIN = Path(sys.executable).parent
THROUGHPUT = "Worker throughput, no-op tasks, one worker process ({cls})"
ENQUEUE_ONE = "Enqueue, one call per task"
ENQUEUE_BULK = "Enqueue in bulk (one pipeline)"
LATENCY = "Idle pickup latency: enqueue call to task start (lower is better)"
COMMANDS = "Redis commands per task: {what} (lower is better)"


# -- the Redis server ---------------------------------------------------------------------------


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: pass --url redis://host:port/db")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                tmp,
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            import redis

            client = redis.Redis(port=port)
            for _ in range(100):
                with contextlib.suppress(redis.exceptions.ConnectionError):
                    client.ping()
                    break
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


# -- subjects ---------------------------------------------------------------------------------


class Subject:
    """One framework: how to enqueue no-op tasks, run a worker, and read a task's start."""

    label = ""

    def __init__(self, url: str) -> None:
        self.url = url
        import redis

        self.client = redis.Redis.from_url(url)

    def enqueue_one(self, n: int) -> list[str]:
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> list[str]:
        raise NotImplementedError

    def worker_argv(self, cls: str, burst: bool) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT)}

    def started_at(self, job_id: str) -> float | None:
        from rq.utils import utcparse

        raw = self.client.hget(f"rq:job:{job_id}", "started_at")
        return utcparse(raw.decode()).timestamp() if raw else None

    def read_result(self, job_id: str) -> None:
        raise NotImplementedError


class Taskyard(Subject):
    label = "taskyard RedisBackend + taskyard rqworker"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        import taskyard
        from bench.core_tasks import noop

        taskyard.configure(url=url)
        self.noop = noop

    def enqueue_one(self, n: int) -> list[str]:
        enqueue = self.noop.enqueue
        return [enqueue().id for _ in range(n)]

    def enqueue_bulk(self, n: int) -> list[str]:
        import taskyard

        prepare = self.noop.prepare
        return [r.id for r in taskyard.enqueue_many([prepare() for _ in range(n)])]

    def worker_argv(self, cls: str, burst: bool) -> list[str]:
        argv = [sys.executable, "-m", "taskyard", "rqworker", "--url", self.url]
        argv += ["--import", "bench.core_tasks", "--log-level", "WARNING", "--worker-class", cls]
        return [*argv, "--burst"] if burst else argv

    def started_at(self, job_id: str) -> float | None:
        import json

        raw = self.client.hget(f"rq:job:{job_id}", "taskyard")
        started = json.loads(raw).get("started_at") if raw else None
        if not started:
            return None
        from datetime import datetime

        return datetime.fromisoformat(started).timestamp()

    def read_result(self, job_id: str) -> None:
        self.noop.get_result(job_id)


class TaskyardOnRQWorker(Taskyard):
    """taskyard's jobs on rq's own worker class: isolates the cost of the job wrapper."""

    label = "taskyard RedisBackend + rq's own worker (rq worker)"

    def worker_argv(self, cls: str, burst: bool) -> list[str]:
        worker = {"simple": "rq.SimpleWorker", "forking": "rq.Worker"}[cls]
        argv = [str(BIN / "rq"), "worker", "--url", self.url, "--serializer", "json", "--quiet"]
        argv += ["--worker-class", worker, "-c", "bench.redis_rq_preload"]
        return [*argv, "--burst", "default"] if burst else [*argv, "default"]


class PlainRQ(Subject):
    label = "rq: plain function, rq worker, JSON serializer"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        from rq import Queue
        from rq.serializers import JSONSerializer

        self.queue = Queue("plain", connection=self.client, serializer=JSONSerializer)

    def enqueue_one(self, n: int) -> list[str]:
        enqueue = self.queue.enqueue
        return [enqueue("bench.core_tasks.noop_function").id for _ in range(n)]

    def enqueue_bulk(self, n: int) -> list[str]:
        from rq import Queue

        data = [Queue.prepare_data("bench.core_tasks.noop_function") for _ in range(n)]
        return [job.id for job in self.queue.enqueue_many(data)]

    def worker_argv(self, cls: str, burst: bool) -> list[str]:
        worker = {"simple": "rq.SimpleWorker", "forking": "rq.Worker"}[cls]
        argv = [str(BIN / "rq"), "worker", "--url", self.url, "--serializer", "json", "--quiet"]
        argv += ["--worker-class", worker, "-c", "bench.redis_rq_preload"]
        return [*argv, "--burst", "plain"] if burst else [*argv, "plain"]

    def read_result(self, job_id: str) -> None:
        from rq.job import Job
        from rq.serializers import JSONSerializer

        job = Job.fetch(job_id, connection=self.client, serializer=JSONSerializer)
        job.get_status()
        job.return_value()


class DjangoTasksRQ(Subject):
    label = "django-tasks-rq + django-rq rqworker (its job class)"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        os.environ["BENCH_REDIS_URL"] = url
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.redis_django_settings"
        import django

        django.setup()
        from bench.redis_django_tasks import noop

        self.noop = noop
        self.version = f"django-tasks-rq, Django {django.get_version()}"

    def enqueue_one(self, n: int) -> list[str]:
        enqueue = self.noop.enqueue
        return [enqueue().id for _ in range(n)]

    def enqueue_bulk(self, n: int) -> list[str]:
        return self.enqueue_one(n)  # django-tasks has no bulk enqueue

    def worker_argv(self, cls: str, burst: bool) -> list[str]:
        worker = {"simple": "rq.SimpleWorker", "forking": "rq.Worker"}[cls]
        argv = [sys.executable, "-m", "django", "rqworker", "dj", "-v", "0"]
        argv += ["--job-class", "django_tasks_rq.Job", "--worker-class", worker]
        return [*argv, "--burst"] if burst else argv

    def worker_env(self) -> dict[str, str]:
        return {
            **super().worker_env(),
            "BENCH_REDIS_URL": self.url,
            "DJANGO_SETTINGS_MODULE": "bench.redis_django_settings",
        }

    def read_result(self, job_id: str) -> None:
        self.noop.get_result(job_id)


# -- measurements -------------------------------------------------------------------------------


def run_worker(subject: Subject, cls: str) -> None:
    subprocess.run(
        subject.worker_argv(cls, burst=True),
        env=subject.worker_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=600,
    )


def span(client: Any, ids: list[str]) -> float:
    """Seconds from the first job's start to the last job's end (rq's own timestamps)."""
    from rq.utils import utcparse

    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at")
        rows = pipe.execute()
    starts = [utcparse(s.decode()).timestamp() for s, _ in rows if s]
    ends = [utcparse(e.decode()).timestamp() for _, e in rows if e]
    if len(ends) != len(ids):
        raise RuntimeError(f"only {len(ends)} of {len(ids)} jobs finished")
    return max(ends) - min(starts)


def throughput(subject: Subject, cls: str, n: int, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        subject.client.flushdb()
        ids = subject.enqueue_bulk(n)
        run_worker(subject, cls)
        rates.append(n / span(subject.client, ids))
    return rates


def enqueue_rate(
    subject: Subject, fn: Callable[[int], list[str]], n: int, repeats: int
) -> list[float]:
    rates = []
    for _ in range(repeats):
        subject.client.flushdb()
        started = time.perf_counter()
        fn(n)
        rates.append(n / (time.perf_counter() - started))
    return rates


def latencies(subject: Subject, samples: int) -> list[float]:
    subject.client.flushdb()
    worker = subprocess.Popen(
        subject.worker_argv("simple", burst=False),
        env=subject.worker_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subject.enqueue_one(1)  # warm up: the worker has started and is idle again after this
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
                    time.sleep(0.0002)
            if started is not None:
                out.append((started - before) * 1000)
            time.sleep(0.05)  # let the worker go back to waiting on its queues
        return out
    finally:
        worker.terminate()
        worker.wait(30)


def command_count(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(
        v["calls"]
        for k, v in stats.items()
        if k not in ("cmdstat_info", "cmdstat_flushdb", "cmdstat_ping")
    )


def commands_per_task(subject: Subject, n: int) -> tuple[float, float, float]:
    client = subject.client
    client.flushdb()
    before = command_count(client)
    ids = subject.enqueue_one(n)
    enqueued = command_count(client)
    run_worker(subject, "simple")
    ran = command_count(client)
    for job_id in ids:
        subject.read_result(job_id)
    read = command_count(client)
    return (enqueued - before) / n, (ran - enqueued) / n, (read - ran) / n


# -- main ----------------------------------------------------------------------------------------


def measure(url: str, args: argparse.Namespace) -> list[Figure]:
    logging.disable(logging.WARNING)
    subjects: list[Subject] = [Taskyard(url), PlainRQ(url)]
    try:
        subjects.append(DjangoTasksRQ(url))
    except ImportError as exc:
        print(f"(django-tasks-rq peer skipped: {exc}; run make bench-redis)", file=sys.stderr)
    figures: list[Figure] = []
    on_rq = TaskyardOnRQWorker(url)
    for cls, n in (("simple", args.n), ("forking", args.forking_n)):
        scenario = THROUGHPUT.format(cls="SimpleWorker" if cls == "simple" else "forking Worker")
        for subject in [subjects[0], on_rq, *subjects[1:]]:
            print(f"  {scenario}: {subject.label}", file=sys.stderr)
            runs = throughput(subject, cls, n, args.repeats)
            figures.append(Figure(scenario, subject.label, "tasks/s", runs, f"n={n}"))
    for subject in subjects:
        print(f"  enqueue: {subject.label}", file=sys.stderr)
        figures.append(
            Figure(
                ENQUEUE_ONE,
                subject.label,
                "tasks/s",
                enqueue_rate(subject, subject.enqueue_one, args.bulk_n // 4, args.repeats),
            )
        )
        if not isinstance(subject, DjangoTasksRQ):
            figures.append(
                Figure(
                    ENQUEUE_BULK,
                    subject.label,
                    "tasks/s",
                    enqueue_rate(subject, subject.enqueue_bulk, args.bulk_n, args.repeats),
                )
            )
    for subject in subjects:
        print(f"  latency: {subject.label}", file=sys.stderr)
        runs = latencies(subject, args.latency_samples)
        figures.append(Figure(LATENCY, subject.label, "ms", runs, "SimpleWorker, idle"))
    for subject in subjects:
        print(f"  commands: {subject.label}", file=sys.stderr)
        counts = [commands_per_task(subject, args.commands_n) for _ in range(min(3, args.repeats))]
        for index, what in enumerate(("enqueue", "worker (SimpleWorker)", "read the result")):
            runs = [c[index] for c in counts]
            figures.append(Figure(COMMANDS.format(what=what), subject.label, "commands", runs))
    return figures


def print_figures(figures: list[Figure]) -> None:
    """The table, with decimals for the small figures (latency, commands)."""
    by_scenario: dict[str, list[Figure]] = {}
    for figure in figures:
        by_scenario.setdefault(figure.scenario, []).append(figure)
    for scenario, group in by_scenario.items():
        if group[0].unit == "tasks/s":
            print_table(group)
            continue
        print(f"\n{scenario}")
        base = group[0]
        for figure in group:
            low, high = figure.spread
            ratio = (
                "(reference)"
                if figure is base
                else f"reference is x{base.median / figure.median:.2f} this"
            )
            print(
                f"  {figure.subject:<52} {figure.median:>10.2f} {figure.unit:<8} "
                f"(min {low:.2f}, max {high:.2f}, n={len(figure.runs)})  {ratio}"
            )


def summary(figures: list[Figure]) -> None:
    def median(scenario: str, label: str) -> float:
        for f in figures:
            if f.scenario == scenario and f.subject == label:
                return f.median
        return float("nan")

    print("\nTargets")
    for cls in ("SimpleWorker", "forking Worker"):
        scenario = THROUGHPUT.format(cls=cls)
        ours, rq = median(scenario, Taskyard.label), median(scenario, PlainRQ.label)
        on_rq = median(scenario, TaskyardOnRQWorker.label)
        cost = (rq / ours - 1) * 100
        wrapper = (rq / on_rq - 1) * 100
        print(
            f"  {cls}: taskyard rqworker {cost:+.1f}% time per task vs plain rq (target <= 10%); "
            f"the job wrapper alone, on rq's own worker: {wrapper:+.1f}%"
        )
    bulk = median(ENQUEUE_BULK, Taskyard.label)
    print(f"  bulk enqueue: {bulk:,.0f} tasks/s (target >= 10,000)")
    print(f"  idle pickup latency: {median(LATENCY, Taskyard.label):.2f} ms median (target < 10)")
    per_task = sum(
        median(COMMANDS.format(what=w), Taskyard.label)
        for w in ("enqueue", "worker (SimpleWorker)")
    )
    rq_task = sum(
        median(COMMANDS.format(what=w), PlainRQ.label) for w in ("enqueue", "worker (SimpleWorker)")
    )
    print(
        f"  Redis commands per task, enqueue + run: taskyard {per_task:.1f}, plain rq {rq_task:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="", help="a Redis to use (flushed!); default: private")
    parser.add_argument("--n", type=int, default=2000, help="jobs per SimpleWorker run")
    parser.add_argument("--forking-n", type=int, default=300, help="jobs per forking run")
    parser.add_argument("--bulk-n", type=int, default=20_000, help="tasks per bulk enqueue run")
    parser.add_argument("--latency-samples", type=int, default=60)
    parser.add_argument("--commands-n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(private_redis())
        figures = measure(url, args)
    import rq

    print(
        f"\ntaskyard Redis benchmark — {machine()}; rq {rq.VERSION}, same Redis for every "
        f"subject, median of {args.repeats} runs"
    )
    print_figures(figures)
    summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
