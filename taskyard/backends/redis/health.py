"""Queue statistics and the health source that ``taskyard rqworker --health-port`` serves
(the same endpoints as ``taskyard worker``: liveness, readiness, monitoring, metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from taskyard.backends.redis.keys import as_str
from taskyard.backends.redis.worker import expand_levels


@dataclass
class QueueStats:
    """Counts for one taskyard queue name, all priority levels together."""

    waiting: int = 0
    scheduled: int = 0
    running: int = 0
    failed: int = 0
    oldest_waiting_seconds: float | None = None


def queue_stats(client: Any, bases: Sequence[str]) -> dict[str, QueueStats]:
    """Counts per queue name, read in two pipelined round trips."""
    from rq.job import Job
    from rq.queue import Queue
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    prefix = Queue.redis_queue_namespace_prefix

    levels = {base: expand_levels(client, [base]) for base in bases}
    with client.pipeline(transaction=False) as pipe:
        for names in levels.values():
            for name in names:
                pipe.llen(f"{prefix}{name}")
                pipe.zcard(ScheduledJobRegistry(name, connection=client).key)  # type: ignore[no-untyped-call]
                pipe.zcard(StartedJobRegistry(name, connection=client).key)
                pipe.zcard(FailedJobRegistry(name, connection=client).key)
                pipe.lindex(f"{prefix}{name}", 0)
        replies = iter(pipe.execute())
    stats: dict[str, QueueStats] = {}
    heads: list[tuple[str, str]] = []
    for base, names in levels.items():
        entry = stats[base] = QueueStats()
        for _ in names:
            entry.waiting += int(next(replies))
            entry.scheduled += int(next(replies))
            entry.running += int(next(replies))
            entry.failed += int(next(replies))
            head = as_str(next(replies))
            if head:
                heads.append((base, head))
    if heads:
        with client.pipeline(transaction=False) as pipe:
            for _, job_id in heads:
                pipe.hget(Job.key_for(job_id), "enqueued_at")
            stamps = pipe.execute()
        from rq.utils import utcparse

        now = time.time()
        for (base, _), stamp in zip(heads, stamps, strict=True):
            text = as_str(stamp)
            if not text:
                continue
            age = max(0.0, now - utcparse(text).timestamp())
            current = stats[base].oldest_waiting_seconds
            stats[base].oldest_waiting_seconds = age if current is None else max(current, age)
    return stats


def monitoring(stats: dict[str, QueueStats]) -> dict[str, Any]:
    """``waiting`` first (the Flagsmith endpoint's field), then the rest; counts only."""
    oldest = [s.oldest_waiting_seconds for s in stats.values() if s.oldest_waiting_seconds]
    return {
        "waiting": sum(s.waiting for s in stats.values()),
        "scheduled": sum(s.scheduled for s in stats.values()),
        "running": sum(s.running for s in stats.values()),
        "failed": sum(s.failed for s in stats.values()),
        "oldest_waiting_seconds": max(oldest) if oldest else None,
        "queues": {
            name: {
                "waiting": s.waiting,
                "scheduled": s.scheduled,
                "running": s.running,
                "failed": s.failed,
                "oldest_waiting_seconds": s.oldest_waiting_seconds,
            }
            for name, s in sorted(stats.items())
        },
    }


class RQHealth:
    """``HealthSource`` for ``taskyard rqworker``.

    ``alive`` and ``stopping`` are callables supplied by the command (they read the worker's or
    the pool's state); readiness also needs Redis to answer a ``PING``.
    """

    def __init__(
        self,
        client: Any,
        bases: Sequence[str],
        alive: Callable[[], bool],
        stopping: Callable[[], bool],
        processes: Callable[[], int] = lambda: 1,
    ) -> None:
        self.client = client
        self.bases = list(bases)
        self._alive = alive
        self._stopping = stopping
        self._processes = processes

    def is_alive(self) -> bool:
        return self._alive()

    def readiness(self) -> tuple[bool, str]:
        if self._stopping():
            return False, "shutting down"
        if not self._alive():
            return False, "worker not running"
        try:
            self.client.ping()
        except Exception as exc:
            return False, f"Redis unreachable: {type(exc).__name__}"
        return True, "ok"

    def monitoring(self) -> dict[str, Any]:
        data = monitoring(queue_stats(self.client, self.bases))
        data["processes"] = self._processes()
        return data

    def metrics(self) -> dict[str, tuple[str, str, float | dict[str, float]]]:
        stats = queue_stats(self.client, self.bases)
        return {
            "taskyard_tasks_waiting": (
                "gauge",
                "Tasks due and not started, per queue",
                {q: float(s.waiting) for q, s in stats.items()},
            ),
            "taskyard_tasks_scheduled": (
                "gauge",
                "Tasks waiting for run_after or a retry backoff, per queue",
                {q: float(s.scheduled) for q, s in stats.items()},
            ),
            "taskyard_tasks_running": (
                "gauge",
                "Tasks running, per queue",
                {q: float(s.running) for q, s in stats.items()},
            ),
            "taskyard_tasks_failed": (
                "gauge",
                "Jobs in rq's failed registries, per queue",
                {q: float(s.failed) for q, s in stats.items()},
            ),
            "taskyard_oldest_waiting_seconds": (
                "gauge",
                "Age of the oldest waiting task, per queue",
                {q: float(s.oldest_waiting_seconds or 0.0) for q, s in stats.items()},
            ),
            "taskyard_worker_processes": ("gauge", "Worker processes", float(self._processes())),
        }
