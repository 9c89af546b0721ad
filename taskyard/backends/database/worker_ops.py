"""The Database backend's worker-facing operations: claim, complete, leases, reaping, stats.

Every write that records an attempt's end is fenced by (worker id, attempt number): once a
lease has been reaped or the task re-claimed, a late write from the old worker changes nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from taskyard.backends.database.connectors import Row, dumps
from taskyard.tasks.execution import Outcome, utcnow
from taskyard.tasks.results import Progress, TaskResult, TaskResultStatus
from taskyard.worker.health import QueueStats

if TYPE_CHECKING:
    from taskyard.backends.database.backend import DatabaseBackend

SUCCESSFUL = TaskResultStatus.SUCCESSFUL


@dataclass(slots=True)
class Finished:
    """An attempt that ended: the result as the worker left it and what happens next."""

    result: TaskResult[Any]
    outcome: Outcome


def _claim_order(row: Row) -> tuple[int, str, str]:
    """Sort key for claimed rows: higher priority first, then the oldest, then the id; total
    (never raises) whatever a corrupt row holds: a priority that is not a whole number counts
    as 0."""
    priority = row["priority"]
    if not isinstance(priority, int) or isinstance(priority, bool):
        priority = 0
    available_at = row["available_at"]
    if isinstance(available_at, datetime):  # PostgreSQL: fixed-width UTC text orders as time
        if available_at.tzinfo is not None:
            available_at = available_at.astimezone(UTC)
        at = available_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    else:  # SQLite: the stored text, ordered as the claim statement orders it
        at = str(available_at)
    return -priority, at, str(row["id"])


class QueueOps:
    """Operations ``taskyard worker`` and the operations commands run against one backend."""

    def __init__(self, backend: DatabaseBackend) -> None:
        self.backend = backend
        self.c = backend.connector

    def _now(self) -> Any:
        return self.c.time(utcnow())

    def _until(self, seconds: float) -> Any:
        return self.c.time(utcnow() + timedelta(seconds=seconds))

    # -- claim and complete ----------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        lease: float,
        qualifiers: Mapping[str, str],
        excluded: Sequence[str] = (),
        async_limit: int | None = None,
    ) -> list[Row]:
        """Claim up to ``limit`` due sync tasks and ``async_limit`` due async tasks (default:
        ``limit`` too), higher priority first, for ``worker_id``, from ``queues`` (None: any)
        except ``excluded``."""
        c = self.c
        params = {
            "worker_id": worker_id,
            "limit": limit,
            "async_limit": limit if async_limit is None else async_limit,
            "lease": lease,
            "lease_until": self._until(lease),
            "now": self._now(),
            "qualifiers": dumps(dict(qualifiers)),
            "any_queue": queues is None,
            "queues": c.text_list(list(queues or [])),
            "excluded": c.text_list(list(excluded)),
        }
        with c.write():
            rows = c.run("claim", params)
        # The claim is committed: from here nothing may raise, or these rows stay RUNNING under
        # this worker's lease (renewed while it lives) and never run. SQLite keeps whatever a
        # column is given (text in `priority`), so the order is computed from what can be read.
        if len(rows) > 1:
            rows.sort(key=_claim_order)
        return rows

    def complete(self, worker_id: str, finished: Sequence[Finished]) -> set[str]:
        """Record finished attempts in one statement (PostgreSQL) or one transaction (SQLite).

        Returns the ids actually written; the others had been reaped or re-claimed meanwhile.
        """
        c = self.c
        items: list[dict[str, Any]] = []
        for done in finished:
            result, outcome = done.result, done.outcome
            status = outcome.status
            items.append(
                {
                    "id": result.id,
                    "attempt": result._attempt or result.attempts,
                    "status": status.value,
                    "finished_at": c.time(result.finished_at),
                    "available_at": c.time(outcome.retry_at),
                    "return_value": dumps(result._return_value) if status is SUCCESSFUL else None,
                    "error": None
                    if status is SUCCESSFUL or not result.errors
                    else dumps(result.errors[-1].to_json()),
                    "progress": dumps(result.progress.to_json()) if result.progress else None,
                }
            )
        written: list[Row] = []
        # PostgreSQL: one statement, atomic on its own (dependents are settled after it, and
        # by the maintenance safety net should the worker die in between).
        with c.write():
            if c.dialect == "postgresql":
                arrays: dict[str, Any] = {
                    name: [item[name] for item in items]
                    for name in (
                        "id",
                        "attempt",
                        "status",
                        "finished_at",
                        "available_at",
                        "return_value",
                        "progress",
                    )
                }
                arrays["errors"] = [
                    "[]" if item["error"] is None else f"[{item['error']}]" for item in items
                ]
                arrays["worker_id"] = worker_id
                written = c.run("complete", arrays)
            else:
                for item in items:
                    item["worker_id"] = worker_id
                    written.extend(c.run("complete", item))
            self._settle(written)
        return {str(row["id"]) for row in written}

    def _settle(self, rows: Sequence[Row]) -> None:
        """Release or cancel the dependents of rows that just finished. Transaction held."""
        succeeded = [
            str(r["id"]) for r in rows if r["has_dependents"] and r["status"] == "SUCCESSFUL"
        ]
        failed = [
            str(r["id"])
            for r in rows
            if r["has_dependents"] and r["status"] in ("FAILED", "CANCELLED")
        ]
        if succeeded:
            self.c.run("release_dependents", {"ids": self.c.ids(succeeded)})
        if failed:
            self.c.run("cancel_dependents", {"ids": self.c.ids(failed), "now": self._now()})

    # -- leases ---------------------------------------------------------------------------------

    def extend_leases(self, worker_id: str, ids: Sequence[str], lease: float) -> dict[str, bool]:
        """Extend this worker's leases; return ``{id: cancel_requested}`` for those still held."""
        if not ids:
            return {}
        rows = self.c.run(
            "extend_leases",
            {
                "ids": self.c.ids(ids),
                "worker_id": worker_id,
                "lease": lease,
                "lease_until": self._until(lease),
            },
        )
        return {str(r["id"]): bool(r["cancel_requested"]) for r in rows}

    @property
    def max_interruptions(self) -> int:
        return int(self.backend.options.get("MAX_INTERRUPTIONS", 3))

    def reap_expired(self, reaper: str | None = None) -> list[Row]:
        """Attempts whose lease expired were interrupted: back to READY to run again (not
        charged against ``retries``), or FAILED past ``MAX_INTERRUPTIONS``. A worker passes its
        own id as ``reaper``: its own leases are not reaped."""
        with self.c.transaction():
            rows = self.c.run(
                "reap_expired",
                {
                    "now": self._now(),
                    "max_interruptions": self.max_interruptions,
                    "worker_id": reaper,
                },
            )
            self._settle(rows)
        return rows

    def quarantine(self) -> list[Row]:
        """Set aside pending rows whose stored data cannot be read: READY ones end FAILED,
        RUNNING ones get the unreadable columns reset. Returns the rows changed."""
        with self.c.transaction():
            rows = self.c.run("quarantine", {"now": self._now()})
            self._settle(rows)
        return rows

    def release_unstarted(self, worker_id: str, ids: Sequence[str]) -> int:
        """Hand claimed-but-unstarted tasks back (their attempt is not counted)."""
        if not ids:
            return 0
        return len(
            self.c.run("release_unstarted", {"ids": self.c.ids(ids), "worker_id": worker_id})
        )

    def autovacuum_off(self) -> bool:
        """PostgreSQL: True when autovacuum will not clean the task table (every finished
        attempt leaves dead rows behind, and claims slow down as they pile up)."""
        return self.c.dialect == "postgresql" and not self.c.run("autovacuum")[0]["enabled"]

    def held_by(self, worker_id: str) -> list[str]:
        """Ids of the tasks ``worker_id`` holds (running or claimed)."""
        return [str(r["id"]) for r in self.c.run("held_by", {"worker_id": worker_id})]

    def abandon_running(
        self, worker_id: str, ids: Sequence[str], reason: str, charge: bool = True
    ) -> int:
        """Give up running attempts as interrupted (``reason`` recorded) so another worker runs
        them again; ``charge=False`` does not count the interruption against the bound."""
        if not ids:
            return 0
        with self.c.transaction():
            rows = self.c.run(
                "abandon_running",
                {
                    "ids": self.c.ids(ids),
                    "worker_id": worker_id,
                    "reason": reason,
                    "now": self._now(),
                    "charge": charge,
                    "max_interruptions": self.max_interruptions,
                },
            )
            self._settle(rows)
        return len(rows)

    def set_progress(
        self, worker_id: str, task_id: str, progress: Progress, lease: float
    ) -> bool | None:
        """Store progress (extending the lease); the cancel flag, or None if no longer ours."""
        rows = self.c.run(
            "set_progress",
            {
                "id": task_id,
                "worker_id": worker_id,
                "progress": dumps(progress.to_json()),
                "lease": lease,
                "lease_until": self._until(lease),
            },
        )
        return bool(rows[0]["cancel_requested"]) if rows else None

    def settle_dependents(self) -> None:
        """Safety net: release dependents of succeeded tasks, cancel those of failed ones."""
        with self.c.transaction():
            self.c.run("settle_dependents")
            failed = [str(r["id"]) for r in self.c.run("failed_dependencies")]
            if failed:
                self.c.run("cancel_dependents", {"ids": self.c.ids(failed), "now": self._now()})

    # -- waiting ----------------------------------------------------------------------------------

    def next_available_at(self, queues: Sequence[str] | None) -> datetime | None:
        rows = self.c.run(
            "next_available_at",
            {"any_queue": queues is None, "queues": self.c.text_list(list(queues or []))},
        )
        return self.c.parse_time(rows[0]["at"]) if rows else None

    def wait_for_work(self, timeout: float, stop: Callable[[], bool]) -> bool:
        return self.c.wait_for_notification(timeout, stop)

    # -- workers ----------------------------------------------------------------------------------

    def heartbeat(
        self,
        worker_id: str,
        queues: Sequence[str] | None,
        threads: int,
        state: str,
        processed: int,
        failed: int,
        pid: int,
    ) -> None:
        self.c.run(
            "worker_upsert",
            {
                "worker_id": worker_id,
                "hostname": socket.gethostname(),
                "pid": pid,
                "queues": ",".join(queues) if queues is not None else "*",
                "threads": threads,
                "state": state,
                "processed": processed,
                "failed": failed,
                "now": self._now(),
            },
        )

    def forget_worker(self, worker_id: str) -> None:
        self.c.run("worker_delete", {"worker_id": worker_id})

    def forget_stale_workers(self, older_than: float) -> None:
        self.c.run(
            "forget_stale_workers",
            {
                "seconds": older_than,
                "before": self.c.time(utcnow() - timedelta(seconds=older_than)),
            },
        )

    def workers(self) -> list[dict[str, Any]]:
        """Every registered worker with ``seen_ago`` (seconds since its last heartbeat)."""
        out = []
        for row in self.c.run("workers", {"now": self._now()}):
            seen = self.c.parse_time(row["last_seen_at"])
            db_now = self.c.parse_time(row["db_now"])
            item = dict(row)
            item["seen_ago"] = (db_now - seen).total_seconds() if seen and db_now else None
            out.append(item)
        return out

    # -- statistics -------------------------------------------------------------------------------

    def stats(self) -> dict[str, QueueStats]:
        """Per queue: waiting (due now), scheduled (later or blocked), running, failed."""
        now = utcnow()
        out: dict[str, QueueStats] = {}
        for row in self.c.run("pending_counts", {"now": self._now()}):
            oldest = self.c.parse_time(row["oldest_waiting_at"])
            out[row["queue_name"]] = QueueStats(
                int(row["waiting"]),
                int(row["scheduled"]),
                int(row["running"]),
                0,
                (now - oldest).total_seconds() if oldest else None,
            )
        for row in self.c.run("failed_counts"):
            stats = out.setdefault(row["queue_name"], QueueStats(0, 0, 0, 0, None))
            stats.failed = int(row["n"])
        return out

    def counts(self) -> dict[tuple[str, str], int]:
        """(queue, status) -> number of rows (a full scan: for ``taskyard status``)."""
        return {(r["queue_name"], r["status"]): int(r["n"]) for r in self.c.run("counts")}

    def prune(
        self,
        before: datetime,
        statuses: Sequence[str],
        queues: Sequence[str] | None,
        batch: int,
        dry_run: bool,
    ) -> int:
        """Delete finished rows older than ``before`` in batches; return how many (would be)."""
        c = self.c
        params = {
            "before": c.time(before),
            "statuses": c.text_list(list(statuses)),
            "any_queue": queues is None,
            "queues": c.text_list(list(queues or [])),
            "batch": batch,
        }
        if dry_run:
            return int(c.run("prune_count", params)[0]["n"])
        total = 0
        while True:
            with c.transaction():
                deleted = len(c.run("prune", params))
            total += deleted
            if deleted < batch:
                return total

    def apply_retention(
        self, result_retention: float | None, failed_retention: float | None
    ) -> int:
        """Delete results older than the configured retention (the worker calls this)."""
        deleted = 0
        now = utcnow()
        if result_retention is not None:
            deleted += self.prune(
                now - timedelta(seconds=result_retention),
                ["SUCCESSFUL", "CANCELLED"],
                None,
                1000,
                dry_run=False,
            )
        failed_after = failed_retention if failed_retention is not None else result_retention
        if failed_after is not None:
            deleted += self.prune(
                now - timedelta(seconds=failed_after), ["FAILED"], None, 1000, dry_run=False
            )
        return deleted

    def ping(self) -> None:
        self.c.run("ping")
