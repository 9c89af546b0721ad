"""Health, monitoring and metrics of the Database backend, for the worker's health port and for
``taskyard health`` / ``taskyard status`` (and the Django views)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskyard.backends.base import Backend
from taskyard.backends.database.backend import DatabaseBackend
from taskyard.backends.database.worker_ops import QueueOps
from taskyard.exceptions import BackendUnavailable, InvalidTaskBackend
from taskyard.tasks.task import task
from taskyard.worker.health import Metrics, QueueStats, monitoring_payload
from taskyard.worker.health import queue_metrics as shared_queue_metrics

if TYPE_CHECKING:
    from taskyard.tasks.loop import AsyncRunner
    from taskyard.worker.worker import Worker


@task(priority=100)
def ping() -> str:
    """The end-to-end probe: enqueued by readiness checks, answered by any worker."""
    return "pong"


def probe(backend: Backend, queue: str, timeout: float) -> tuple[bool, str]:
    """Enqueue ``ping`` on ``queue`` and wait for a worker to run it."""
    started = time.monotonic()
    try:
        result = ping.using(backend=backend.alias, queue_name=queue).enqueue()
        result.wait(timeout)
    except TimeoutError:
        return False, f"probe task not run within {timeout:g}s on queue {queue!r}"
    except (BackendUnavailable, InvalidTaskBackend) as exc:
        return False, f"probe could not be enqueued: {exc}"
    if result.status != "SUCCESSFUL":
        return False, f"probe task ended {result.status}"
    return True, f"probe answered in {time.monotonic() - started:.3f}s"


def monitoring(ops: QueueOps) -> dict[str, Any]:
    """The ``/processor/monitoring`` JSON for a Database backend's queues."""
    return monitoring_payload(ops.stats())


def queue_metrics(stats: Mapping[str, QueueStats]) -> Metrics:
    """Prometheus gauges of a Database backend's queues, labelled by queue name."""
    return shared_queue_metrics(stats, "FAILED results kept, per queue")


class KnownQueues:
    """The queues a worker's health endpoints report: its own (when it names them) and every
    queue that has held pending or failed tasks since it started; one that empties stays, at 0,
    so its gauges do not vanish."""

    def __init__(self, ops: QueueOps, queues: Sequence[str] | None = None) -> None:
        self.ops = ops
        self.names: set[str] = set(queues or ())
        self._lock = threading.Lock()
        with contextlib.suppress(BackendUnavailable, InvalidTaskBackend):
            self.stats()  # the queues holding tasks as the worker starts

    def stats(self) -> dict[str, QueueStats]:
        current = self.ops.stats()
        with self._lock:
            self.names.update(current)
            return {name: current.get(name, QueueStats()) for name in sorted(self.names)}


def live_workers(ops: QueueOps, lease: float = 20.0) -> list[dict[str, Any]]:
    """Workers whose last heartbeat is recent (within twice the heartbeat period plus slack)."""
    limit = max(5.0, lease)
    return [w for w in ops.workers() if w["seen_ago"] is not None and w["seen_ago"] <= limit]


def health_check(
    backend: DatabaseBackend,
    *,
    require_workers: bool,
    probe_queue: str | None,
    probe_timeout: float,
) -> list[tuple[str, bool, str]]:
    """The checks of ``taskyard health``: (name, ok, detail) each."""
    ops = QueueOps(backend)
    checks: list[tuple[str, bool, str]] = []
    try:
        ops.ping()
        have, latest = backend.schema_status()
        ok = have >= latest
        checks.append(("database", ok, f"{backend.connector.describe()}, schema {have}/{latest}"))
    except (BackendUnavailable, InvalidTaskBackend) as exc:
        return [("database", False, str(exc))]
    if require_workers:
        live = live_workers(ops)
        checks.append(("workers", bool(live), f"{len(live)} worker(s) heartbeating"))
    if probe_queue is not None:
        ok, detail = probe(backend, probe_queue, probe_timeout)
        checks.append(("probe", ok, detail))
    return checks


def loop_metrics(runner: AsyncRunner | None) -> Metrics:
    """Gauges and counters of a worker's event loop (none without one)."""
    if runner is None:
        return {}
    lag, runner.max_lag = runner.max_lag, runner.lag
    return {
        "taskyard_worker_async_in_flight": (
            "gauge",
            "Async tasks running as coroutines on the worker's event loop",
            runner.in_flight(),
        ),
        "taskyard_worker_loop_lag_seconds": (
            "gauge",
            "Longest delay of the event loop's 50 ms tick since the last scrape",
            round(lag, 4),
        ),
        "taskyard_worker_loop_blocked_total": (
            "counter",
            "Times an async task blocked the event loop for more than 0.5 s",
            runner.blocked_total,
        ),
    }


def loop_stale_after(worker: Worker) -> float:
    """Seconds after which a worker loop that has not come round is deemed dead (liveness).

    One turn of the loop records finished attempts and claims: two database round trips, each
    bounded by the backend (PostgreSQL: a reconnection within ``CONNECT_TIMEOUT`` and a
    statement within ``STATEMENT_TIMEOUT`` + 2 s; SQLite: ``BUSY_TIMEOUT``). A loop waiting
    out those bounds — a frozen or unreachable database — is alive, and restarting it would
    not help: readiness reports the database instead.
    """
    options = worker.backend.options
    if worker.ops.c.dialect == "postgresql":
        one = float(options.get("CONNECT_TIMEOUT") or 5) + float(
            options.get("STATEMENT_TIMEOUT") or 10.0
        )
        one += 2.0
    else:
        one = float(options.get("BUSY_TIMEOUT") or 10.0)
    return max(10.0, worker.config.interval * 10, 2 * one + 5.0)


class WorkerHealth:
    """``HealthSource`` for a running ``Worker``."""

    def __init__(self, worker: Worker, probe_timeout: float | None = None) -> None:
        self.worker = worker
        self.probe_timeout = probe_timeout
        self._probe_cache: tuple[float, bool, str] | None = None
        self.queues = KnownQueues(worker.ops, worker.config.queues)

    def is_alive(self) -> bool:
        if not self.worker.can_execute():
            return False  # it cannot run tasks any more: let the supervisor restart it
        stale_after = loop_stale_after(self.worker)
        return time.monotonic() - self.worker.loop_seen < stale_after or self.worker.stopping

    def readiness(self) -> tuple[bool, str]:
        worker = self.worker
        if not worker.can_execute():
            return False, f"cannot execute tasks: {worker.problem}"
        if worker.stopping:
            return False, "shutting down"
        if time.monotonic() - worker.db_ok_at > max(2 * worker.config.lease, 10.0):
            return False, "database unreachable"
        if worker.problem_data is not None:
            return False, f"stored task data cannot be read: {worker.problem_data}"
        if self.probe_timeout is not None:
            return self._probe()
        return True, "ok"

    def _probe(self) -> tuple[bool, str]:
        cached = self._probe_cache
        if cached is not None and time.monotonic() - cached[0] < 10.0:
            return cached[1], cached[2]
        queues = self.worker.config.queues
        queue = queues[0] if queues else "default"
        ok, detail = probe(self.worker.backend, queue, self.probe_timeout or 5.0)
        self._probe_cache = (time.monotonic(), ok, detail)
        return ok, detail

    def monitoring(self) -> dict[str, Any]:
        data = monitoring_payload(self.queues.stats())
        data["worker"] = {
            "id": self.worker.worker_id,
            "state": self.worker.state,
            "processed": self.worker.processed,
            "failed": self.worker.failed,
            "set_aside": self.worker.quarantined,
        }
        return data

    def metrics(self) -> Mapping[str, tuple[str, str, float | Mapping[str, float]]]:
        worker = self.worker
        return {
            **queue_metrics(self.queues.stats()),
            "taskyard_worker_processed_total": (
                "counter",
                "Attempts this worker finished",
                worker.processed,
            ),
            "taskyard_worker_succeeded_total": (
                "counter",
                "Attempts that succeeded",
                worker.succeeded,
            ),
            "taskyard_worker_failed_total": (
                "counter",
                "Tasks that ended FAILED here",
                worker.failed,
            ),
            "taskyard_worker_reaped_total": (
                "counter",
                "Expired leases this worker reaped",
                worker.maintenance.reaped,
            ),
            **loop_metrics(worker.runner),
        }
