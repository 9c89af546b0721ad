"""Core benchmark: Immediate and ThreadPool backends beside Django's own and django-tasks-local.

Run with ``make bench-core``. Every figure is a median over repeated runs in the same process,
printed beside its peer with the ratio. Peers that need another interpreter (Django 6 and
django-tasks-local need Python >= 3.12) are measured by running this script again under that
interpreter, where taskyard is measured too, so each ratio compares like with like.

    python bench/bench_core.py [--n 50000] [--repeats 5] [--peer-python /path/to/python3.13]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Figure, dump, load, machine, print_table, rate

IMMEDIATE = "Immediate backend: no-op enqueue-and-run calls per second"
THREADPOOL = "ThreadPool backend: no-op tasks per second, enqueue to finished"
LATENCY = "ThreadPool backend: idle pickup latency, enqueue call to task start (ms)"


def scenario(name: str) -> str:
    return f"{name} [Python {sys.version_info.major}.{sys.version_info.minor}]"


def _python_tag() -> str:
    return f"py{sys.version_info.major}.{sys.version_info.minor}"


def setup_django() -> tuple[str, Any] | None:
    """Configure Django for its own Immediate backend; return (label, task) or None."""
    try:
        import django
        from django.conf import settings
    except ImportError:
        return None
    if sys.version_info >= (3, 12) and django.VERSION >= (6, 0):
        immediate = "django.tasks.backends.immediate.ImmediateBackend"
        label = f"Django {django.get_version()} django.tasks ImmediateBackend"
    else:
        try:
            import django_tasks  # noqa: F401
        except ImportError:
            return None
        immediate = "django_tasks.backends.immediate.ImmediateBackend"
        label = f"Django {django.get_version()} + django_tasks ImmediateBackend"
    tasks_setting: dict[str, Any] = {"default": {"BACKEND": immediate}}
    try:
        import django_tasks_local  # noqa: F401

        tasks_setting["local"] = {
            "BACKEND": "django_tasks_local.ThreadPoolBackend",
            "OPTIONS": {"MAX_WORKERS": 10, "MAX_RESULTS": 1_000_000},
        }
    except ImportError:
        pass
    settings.configure(INSTALLED_APPS=[], TASKS=tasks_setting, USE_TZ=True)
    django.setup()
    if immediate.startswith("django.tasks"):
        from django.tasks import task as django_task
    else:
        from django_tasks import task as django_task
    from bench.core_tasks import noop_function

    return label, django_task(noop_function)


def _pickup(enqueue_stamp: Any, samples: int) -> list[float]:
    """Median idle pickup latency (ms) of ``samples`` probes, 20 ms apart, as a one-run list."""
    import statistics
    import time

    from bench.harness import Stamps

    stamps = Stamps()
    try:
        out = []
        for token in range(-1, samples):
            before = time.time()
            enqueue_stamp(token, stamps.port)
            at = stamps.wait(token, 10)
            if at is not None and token >= 0:
                out.append((at - before) * 1000)
            time.sleep(0.02)
        return [statistics.median(out)]
    finally:
        stamps.close()


def measure(n: int, repeats: int, latency: int = 0) -> list[Figure]:
    import taskyard
    from bench.core_tasks import noop
    from taskyard.config import backends

    logging.disable(logging.WARNING)
    tag = _python_tag()
    figures: list[Figure] = []
    django_peer = setup_django()

    taskyard.configure(url="immediate:")

    def taskyard_immediate(count: int) -> None:
        enqueue = noop.enqueue
        for _ in range(count):
            enqueue()

    figures.append(
        Figure(
            scenario(IMMEDIATE),
            f"taskyard ImmediateBackend ({tag})",
            "calls/s",
            rate(taskyard_immediate, n, repeats),
        )
    )
    if django_peer is not None:
        label, django_noop = django_peer

        def django_immediate(count: int) -> None:
            enqueue = django_noop.enqueue
            for _ in range(count):
                enqueue()

        figures.append(
            Figure(
                scenario(IMMEDIATE),
                f"{label} ({tag})",
                "calls/s",
                rate(django_immediate, n, repeats),
            )
        )

    taskyard.configure(url="threadpool:?max_workers=10")

    def taskyard_pool(count: int) -> None:
        enqueue = noop.enqueue
        for _ in range(count):
            enqueue()
        backends["default"].close(wait=True)  # type: ignore[call-arg]

    figures.append(
        Figure(
            scenario(THREADPOOL),
            f"taskyard ThreadPoolBackend, 10 threads ({tag})",
            "tasks/s",
            rate(taskyard_pool, n, repeats),
        )
    )
    if latency:
        from bench.core_tasks import stamp

        figures.append(
            Figure(
                scenario(LATENCY),
                f"taskyard ThreadPoolBackend, 10 threads ({tag})",
                "ms",
                _pickup(stamp.enqueue, latency),
                f"{latency} tasks 20 ms apart",
            )
        )
        backends["default"].close(wait=True)  # type: ignore[call-arg]
    if django_peer is not None and "local" in _django_tasks_aliases():
        from django.tasks import task as django_task
        from django.tasks import task_backends

        from bench.core_tasks import noop_function
        from bench.peers.probe import send_stamp

        local_noop = django_task(noop_function, backend="local")

        def local_pool(count: int) -> None:
            enqueue = local_noop.enqueue
            for _ in range(count):
                enqueue()
            task_backends["local"].close()  # shuts the executor down, waiting for every task
            del task_backends["local"]  # the next run gets a fresh executor

        figures.append(
            Figure(
                scenario(THREADPOOL),
                f"django-tasks-local ThreadPoolBackend, 10 threads ({tag})",
                "tasks/s",
                rate(local_pool, n, repeats),
            )
        )
        if latency:
            local_stamp = django_task(send_stamp, backend="local")
            figures.append(
                Figure(
                    scenario(LATENCY),
                    f"django-tasks-local ThreadPoolBackend, 10 threads ({tag})",
                    "ms",
                    _pickup(local_stamp.enqueue, latency),
                    f"{latency} tasks 20 ms apart",
                )
            )
            task_backends["local"].close()
    return figures


def _django_tasks_aliases() -> set[str]:
    from django.conf import settings

    return set(getattr(settings, "TASKS", {}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="tasks per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--peer-python", default="", help="a Python >= 3.12 with Django 6")
    parser.add_argument("--json", action="store_true", help="print figures as JSON only")
    parser.add_argument("--latency", type=int, default=0, help="also ThreadPool pickup latency")
    args = parser.parse_args()

    figures = measure(args.n, args.repeats, args.latency)
    if args.json:
        print(dump(figures))
        return 0
    if args.peer_python:
        done = subprocess.run(
            [
                args.peer_python,
                __file__,
                "--n",
                str(args.n),
                "--repeats",
                str(args.repeats),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            figures.extend(load(done.stdout.strip().splitlines()[-1]))
        else:
            print(f"peer interpreter failed:\n{done.stderr}", file=sys.stderr)
    print(
        f"taskyard core benchmark — {machine()}; {args.n:,} no-op tasks per run, "
        f"median of {args.repeats} runs"
    )
    print_table(sorted(figures, key=lambda f: f.scenario))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
