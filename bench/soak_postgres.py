"""The soak's PostgreSQL leg: three ``taskyard worker`` processes (4 threads, lease 3 s) on the
benchmark's own database. Faults: SIGKILL of a worker (restarted at once), and every worker
connection cut with ``pg_terminate_backend``. More Database faults (restarts, outages longer
than the lease, deploys) are ``FaultKind``s added to ``fault_kinds``."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import ENV, PG_URL, ensure_database, pg
from bench.soak_core import Execution, Fault, FaultKind, Fleet

LEASE = 3.0


class PostgresStore:
    name = "postgresql"
    slots = 3
    lease = LEASE

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp

    def describe(self) -> dict[str, Any]:
        return {"workers": f"{self.slots} x taskyard worker, 4 threads", "lease_s": LEASE}

    def setup(self) -> None:
        from bench.peers.taskyard_db import activate

        ensure_database()
        activate(PG_URL)
        pg("DELETE FROM taskyard_task")
        pg("DELETE FROM taskyard_worker")
        pg(
            "CREATE TABLE IF NOT EXISTS soak_execution (task_id uuid NOT NULL, "
            "attempt integer NOT NULL, pid integer NOT NULL, started double precision NOT NULL)"
        )
        pg("ALTER TABLE soak_execution ADD COLUMN IF NOT EXISTS ended double precision")
        pg("TRUNCATE soak_execution")

    def enqueue(self, n: int) -> list[str]:
        return enqueue_many(n, self.args.pg_task_ms, self.args.retries)

    def worker_argv(self, slot: int, worker_id: str) -> list[str]:
        return [
            *(sys.executable, "-m", "taskyard", "worker", "--url", PG_URL, "--queues", "*"),
            *("--lease", str(LEASE), "--threads", "4", "--batch-size", "10"),
            *("--worker-id", worker_id, "--import", "bench.soak_tasks", "--log-level", "WARNING"),
        ]

    def env(self) -> dict[str, str]:
        return {**ENV, "SOAK_STORE": "postgresql", "SOAK_STORE_URL": PG_URL}

    def done(self) -> int:
        return int(
            pg(
                "SELECT count(*) FROM taskyard_task "
                "WHERE status IN ('SUCCESSFUL', 'FAILED', 'CANCELLED')"
            )[0][0]
        )

    # -- faults --------------------------------------------------------------------------------

    def fault_kinds(self) -> list[FaultKind]:
        return [
            FaultKind(
                "sigkill-worker",
                "SIGKILL of a taskyard worker (restarted at once)",
                self.args.kills,
                self._kill_worker,
            ),
            FaultKind(
                "pg-terminate-backend",
                "every worker connection cut with pg_terminate_backend",
                self.args.pg_cuts,
                self._cut_connections,
            ),
        ]

    def _kill_worker(self, fleet: Fleet, rng: random.Random) -> Fault:
        worker_id = fleet.ids[0]
        held = [
            str(r[0])
            for r in pg(
                "SELECT id FROM taskyard_task WHERE status = 'RUNNING' AND worker_id = %s",
                [worker_id],
            )
        ]
        at = time.time()
        pids = fleet.kill(0)
        time.sleep(rng.uniform(0.0, 0.5))
        fleet.start(0)
        return Fault("sigkill-worker", at, f"worker {worker_id}", pids, held)

    def _cut_connections(self, fleet: Fleet, rng: random.Random) -> Fault:
        at = time.time()
        rows = pg(
            "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'taskyard%%' AND datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        by_app = dict(Counter(r[0] for r in rows))
        return Fault(
            "pg-terminate-backend",
            at,
            f"{sum(1 for r in rows if r[1])} connections ({by_app})",
            extra={"terminated": sum(1 for r in rows if r[1]), "by_application": by_app},
        )

    # -- what ran ------------------------------------------------------------------------------

    def executions(self) -> list[Execution]:
        return [
            Execution(str(r[0]), int(r[1]), int(r[2]), float(r[3]), r[4])
            for r in pg("SELECT task_id, attempt, pid, started, ended FROM soak_execution")
        ]

    def final_states(self, ids: list[str]) -> dict[str, str]:
        return {str(r[0]): r[1] for r in pg("SELECT id, status FROM taskyard_task")}


def enqueue_many(n: int, max_ms: int, retries: int) -> list[str]:
    import taskyard
    from bench.soak_tasks import record

    task = record.using(retries=retries)
    ids: list[str] = []
    for start in range(0, n, 5000):
        done = taskyard.enqueue_many(task.prepare(max_ms) for _ in range(min(5000, n - start)))
        ids.extend(r.id for r in done)
    return ids
