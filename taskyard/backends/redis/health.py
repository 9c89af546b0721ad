"""Queue statistics and the health source that ``taskyard rqworker --health-port`` serves
(the same endpoints as ``taskyard worker``: liveness, readiness, monitoring, metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from taskyard.backends.redis.keys import as_str
from taskyard.backends.redis.levels import expand_levels
from taskyard.backends.redis.quarantine import quarantined_count
from taskyard.worker.health import Metrics, QueueStats, monitoring_payload, queue_metrics


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
            try:
                age = max(0.0, now - utcparse(text).timestamp())
            except ValueError:  # a damaged job: the worker sets it aside when it reaches it
                continue
            current = stats[base].oldest_waiting_seconds
            stats[base].oldest_waiting_seconds = age if current is None else max(current, age)
    return stats


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
        counters: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.client = client
        self._counters = counters
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
            quarantined = quarantined_count(self.client)
        except Exception as exc:
            return False, f"Redis unreachable: {type(exc).__name__}"
        if quarantined:
            # the worker works on; the damaged jobs were failed and set aside, not retried
            return True, (
                f"ok, but {quarantined} job(s) whose stored data could not be read were failed "
                "and set aside in the last 7 days (taskyard:quarantined)"
            )
        return True, "ok"

    def monitoring(self) -> dict[str, Any]:
        data = monitoring_payload(queue_stats(self.client, self.bases))
        data["processes"] = self._processes()
        return data

    def metrics(self) -> Metrics:
        stats = queue_stats(self.client, self.bases)
        metrics: Metrics = {
            **queue_metrics(stats, "Jobs in rq's failed registries, per queue"),
            "taskyard_worker_processes": ("gauge", "Worker processes", float(self._processes())),
            "taskyard_tasks_quarantined": (
                "gauge",
                "Jobs whose stored data could not be read, failed and set aside (last 7 days)",
                float(quarantined_count(self.client)),
            ),
        }
        if self._counters is not None:
            succeeded, failed = self._counters()
            metrics["taskyard_worker_processed_total"] = (
                "counter",
                "Jobs (attempts) this worker finished",
                float(succeeded + failed),
            )
            metrics["taskyard_worker_succeeded_total"] = (
                "counter",
                "Jobs (attempts) that succeeded",
                float(succeeded),
            )
            metrics["taskyard_worker_failed_total"] = (
                "counter",
                "Jobs (attempts) that failed, as rq counts them",
                float(failed),
            )
        return metrics
