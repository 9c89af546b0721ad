"""The soak's PostgreSQL leg: three ``taskyard worker`` processes (4 threads, lease 3 s,
shutdown timeout 1 s) on a private PostgreSQL cluster the soak starts (``tests.servers``), so
it may restart, crash and stop it. Executions are recorded in files (a store outage must not
stop a task from recording that it ran). About 1 % of the tasks run longer than the shutdown
timeout, so a deploy interrupts some.

Faults: SIGKILL of a worker (restarted at once); every worker connection cut with
``pg_terminate_backend``; a warm-shutdown deploy of every worker (SIGTERM, then started again);
``pg_ctl restart -m fast``; ``pg_ctl stop -m immediate`` (a crash) and start; an outage longer
than the lease (stopped for 2.5 leases)."""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import ENV, pg
from bench.soak_core import Execution, Fault, FaultKind, Fleet
from bench.soak_tasks import read_records

LEASE = 3.0
SHUTDOWN_TIMEOUT = 1.0


class PostgresStore:
    name = "postgresql"
    slots = 3
    lease = LEASE

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        from tests.servers import PrivatePostgres

        self.args, self.tmp = args, tmp
        self.server = PrivatePostgres()
        self.url = self.server.url
        self.records = tmp / "records-postgresql"
        self._done = 0

    def describe(self) -> dict[str, Any]:
        return {
            "workers": f"{self.slots} x taskyard worker, 4 threads",
            "lease_s": LEASE,
            "shutdown_timeout_s": SHUTDOWN_TIMEOUT,
            "server": "private PostgreSQL cluster (initdb), fsync off",
        }

    def setup(self) -> None:
        from bench.peers.taskyard_db import activate

        self.server.init().start()
        self.records.mkdir(exist_ok=True)
        activate(self.url)

    def close(self) -> None:
        self.server.close()

    def enqueue(self, n: int) -> list[str]:
        return enqueue_many(n, self.args.pg_task_ms, self.args.retries)

    def worker_argv(self, slot: int, worker_id: str) -> list[str]:
        return [
            *(sys.executable, "-m", "taskyard", "worker", "--url", self.url, "--queues", "*"),
            *("--lease", str(LEASE), "--threads", "4", "--batch-size", "10"),
            *("--shutdown-timeout", str(SHUTDOWN_TIMEOUT), "--connect-retries", "30"),
            *("--worker-id", worker_id, "--import", "bench.soak_tasks", "--log-level", "WARNING"),
        ]

    def env(self) -> dict[str, str]:
        return {**ENV, "SOAK_RECORD_DIR": str(self.records)}

    def done(self) -> int:
        with contextlib.suppress(Exception):  # the server may be down: keep the last count
            self._done = int(
                pg(
                    "SELECT count(*) FROM taskyard_task "
                    "WHERE status IN ('SUCCESSFUL', 'FAILED', 'CANCELLED')",
                    url=self.url,
                )[0][0]
            )
        return self._done

    # -- faults --------------------------------------------------------------------------------

    def fault_kinds(self) -> list[FaultKind]:
        a = self.args
        return [
            FaultKind("sigkill-worker", "SIGKILL of a taskyard worker (restarted at once)",
                      a.kills, self._kill_worker),
            FaultKind("pg-terminate-backend", "every worker connection cut (pg_terminate_backend)",
                      a.pg_cuts, self._cut_connections),
            FaultKind("deploy", f"warm shutdown of every worker (--shutdown-timeout "
                      f"{SHUTDOWN_TIMEOUT:g}), then started again", a.deploys, self._deploy),
            FaultKind("pg-restart", "pg_ctl restart -m fast", a.pg_restarts, self._restart),
            FaultKind("pg-crash", "pg_ctl stop -m immediate, then start", a.pg_crashes,
                      self._crash),
            FaultKind("pg-outage", f"PostgreSQL stopped for {2.5 * LEASE:g} s (2.5 leases)",
                      a.pg_outages, self._outage),
        ]  # fmt: skip

    def _held(self, worker_id: str | None = None) -> list[str]:
        sql = "SELECT id FROM taskyard_task WHERE status = 'RUNNING'"
        params: list[Any] = []
        if worker_id is not None:
            sql += " AND worker_id = %s"
            params.append(worker_id)
        with contextlib.suppress(Exception):
            return [str(r[0]) for r in pg(sql, params, url=self.url)]
        return []

    def _kill_worker(self, fleet: Fleet, rng: random.Random) -> Fault:
        worker_id = fleet.ids[0]
        held = self._held(worker_id)
        pids = fleet.kill(0)
        at = time.time()  # once it is dead: a task it started meanwhile was interrupted too
        time.sleep(rng.uniform(0.0, 0.5))
        fleet.start(0)
        return Fault("sigkill-worker", at, f"worker {worker_id}", pids, held)

    def _cut_connections(self, fleet: Fleet, rng: random.Random) -> Fault:
        at = time.time()
        rows = pg(
            "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'taskyard%%' AND pid <> pg_backend_pid()",
            url=self.url,
        )
        by_app = dict(Counter(r[0] for r in rows))
        return Fault(
            "pg-terminate-backend",
            at,
            f"{sum(1 for r in rows if r[1])} connections ({by_app})",
            extra={"terminated": sum(1 for r in rows if r[1]), "by_application": by_app},
        )

    def _deploy(self, fleet: Fleet, rng: random.Random) -> Fault:
        """A deploy: SIGTERM to every worker, each finishes what it can within the shutdown
        timeout and hands the rest back; then a new worker in every slot."""
        held = self._held()
        at = time.time()
        pids = {pid for slot in range(len(fleet.procs)) for pid in fleet.session(slot)}
        for proc in fleet.procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in fleet.procs]
        for slot in range(len(fleet.procs)):
            fleet.start(slot)
        return Fault("deploy", at, f"exit codes {codes}", pids, held)

    def _restart(self, fleet: Fleet, rng: random.Random) -> Fault:
        at = time.time()
        self.server.restart("fast")
        return Fault("pg-restart", at, "pg_ctl restart -m fast", back_at=time.time())

    def _crash(self, fleet: Fleet, rng: random.Random) -> Fault:
        at = time.time()
        self.server.stop("immediate")
        self.server.start()
        return Fault("pg-crash", at, "pg_ctl stop -m immediate + start", back_at=time.time())

    def _outage(self, fleet: Fleet, rng: random.Random) -> Fault:
        at = time.time()
        self.server.stop("fast")
        time.sleep(2.5 * LEASE)
        self.server.start()
        return Fault("pg-outage", at, f"down {time.time() - at:.1f} s", back_at=time.time())

    # -- what ran ------------------------------------------------------------------------------

    def executions(self) -> list[Execution]:
        return [Execution(*record) for record in read_records(str(self.records))]

    def final_states(self, ids: list[str]) -> dict[str, str]:
        return {str(r[0]): r[1] for r in pg("SELECT id, status FROM taskyard_task", url=self.url)}


def enqueue_many(n: int, max_ms: int, retries: int) -> list[str]:
    """``n`` tasks sleeping up to ``max_ms``; one in a hundred up to three seconds instead
    (longer than the workers' shutdown timeout)."""
    import taskyard
    from bench.soak_tasks import record

    task = record.using(retries=retries)
    ids: list[str] = []
    for start in range(0, n, 5000):
        size = min(5000, n - start)
        calls = (task.prepare(3000 if (start + i) % 100 == 99 else max_ms) for i in range(size))
        ids.extend(r.id for r in taskyard.enqueue_many(calls))
    return ids
