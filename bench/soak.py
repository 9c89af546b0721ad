"""Soak (``make soak``): kill workers during a drain and check that nothing is lost and every
duplicate execution is explained by a killed worker.

PostgreSQL: ``--n`` tasks (each records its execution in ``soak_execution``, then sleeps up to
``--pg-task-ms``), three ``taskyard worker`` processes with ``--lease 3``. One of them — the
victim — is killed with SIGKILL ``--kills`` times at random moments of the drain and restarted;
midway, every connection of every worker (``application_name LIKE 'taskyard%'`` in the
benchmark's own database) is cut with ``pg_terminate_backend``.

Redis: the same with three ``taskyard rqworker`` processes (``--redis-worker-class``, lease 3 s,
reap interval 0.5 s) on a private ``redis-server``, executions recorded in a Redis list.

Reports per store: tasks lost (not SUCCESSFUL at the end: must be 0), duplicate executions
(each must have started after a SIGKILL of the worker process that ran the earlier execution,
which had started before that kill), the slowest reclaim (kill to the re-run of a task the
killed worker held) and the final state of every task. Writes ``docs/soak.json``; exits 1 on a
lost task or an unexplained duplicate.

    python bench/soak.py [--n 20000] [--kills 10] [--only postgresql|redis] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ENV, PG_URL, ROOT, ensure_database, pg, private_redis

SOAK_JSON = ROOT / "docs" / "soak.json"
LEASE = 3.0


@dataclass
class Kill:
    at: float
    pid: int
    worker_id: str
    held: list[str] = field(default_factory=list)
    #: task id -> seconds from the kill until the dead worker's lease no longer held it
    reclaimed: dict[str, float] = field(default_factory=dict)


@dataclass
class Execution:
    task_id: str
    attempt: int
    pid: int
    started: float


class Fleet:
    """Three worker processes; slot 0 is the victim."""

    def __init__(self, argv: Callable[[str], list[str]], env: dict[str, str], logs: Path) -> None:
        self.argv, self.env, self.logs = argv, env, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ids: list[str] = []
        self.generation = 0
        self.started_at: list[float] = []

    def start(self, slot: int) -> None:
        worker_id = f"soak-{'victim' if slot == 0 else 'steady'}-{slot}-{self.generation}"
        self.generation += 1
        log = open(self.logs / f"{worker_id}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            self.argv(worker_id),
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if slot < len(self.procs):
            self.procs[slot], self.ids[slot] = proc, worker_id
            self.started_at[slot] = time.monotonic()
        else:
            self.procs.append(proc)
            self.ids.append(worker_id)
            self.started_at.append(time.monotonic())

    def kill_victim(self) -> tuple[int, str]:
        proc, worker_id = self.procs[0], self.ids[0]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return proc.pid, worker_id

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


# -- the stores -----------------------------------------------------------------------------------


class PostgresStore:
    name = "postgresql"

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp

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
        pg("TRUNCATE soak_execution")

    def enqueue(self, n: int) -> list[str]:
        return _enqueue_many(n, self.args.pg_task_ms)

    def worker_argv(self, worker_id: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "taskyard",
            "worker",
            "--url",
            PG_URL,
            "--queues",
            "*",
            "--lease",
            str(LEASE),
            "--threads",
            "4",
            "--batch-size",
            "10",
            "--worker-id",
            worker_id,
            "--import",
            "bench.soak_tasks",
            "--log-level",
            "WARNING",
        ]

    def env(self) -> dict[str, str]:
        return {**ENV, "SOAK_STORE": "postgresql", "SOAK_STORE_URL": PG_URL}

    def done(self) -> int:
        return int(pg("SELECT count(*) FROM taskyard_task WHERE status = 'SUCCESSFUL'")[0][0])

    def held_by(self, worker_id: str, pid: int) -> list[str]:
        """Tasks the worker has claimed (started or not) and not finished."""
        return [
            str(r[0])
            for r in pg(
                "SELECT id FROM taskyard_task WHERE status = 'RUNNING' AND worker_id = %s",
                [worker_id],
            )
        ]

    def still_held(self, worker_id: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` the (dead) worker's lease still holds."""
        return {
            str(r[0])
            for r in pg(
                "SELECT id FROM taskyard_task WHERE id = ANY(%s::uuid[]) AND status = 'RUNNING' "
                "AND worker_id = %s",
                [ids, worker_id],
            )
        }

    def cut_connections(self) -> dict[str, Any]:
        rows = pg(
            "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'taskyard%%' AND datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return {
            "terminated": sum(1 for r in rows if r[1]),
            "by_application": dict(Counter(r[0] for r in rows)),
        }

    def executions(self) -> list[Execution]:
        return [
            Execution(str(r[0]), int(r[1]), int(r[2]), float(r[3]))
            for r in pg("SELECT task_id, attempt, pid, started FROM soak_execution")
        ]

    def final_states(self, ids: list[str]) -> dict[str, str]:
        return {str(r[0]): r[1] for r in pg("SELECT id, status FROM taskyard_task")}


class RedisStore:
    name = "redis"

    def __init__(self, args: argparse.Namespace, tmp: Path, url: str) -> None:
        self.args, self.tmp, self.url = args, tmp, url
        import redis

        self.client = redis.Redis.from_url(url)

    def setup(self) -> None:
        from bench.peers.taskyard_db import activate

        self.client.flushdb()
        activate(f"{self.url}?lease={LEASE:g}")

    def enqueue(self, n: int) -> list[str]:
        self.n = n
        return _enqueue_many(n, self.args.redis_task_ms)

    def worker_argv(self, worker_id: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "taskyard",
            "rqworker",
            "--url",
            f"{self.url}?lease={LEASE:g}",
            "--worker-class",
            self.args.redis_worker_class,
            "--reap-interval",
            "0.5",
            "--name",
            worker_id,
            "--import",
            "bench.soak_tasks",
            "--log-level",
            "WARNING",
        ]

    def env(self) -> dict[str, str]:
        return {**ENV, "SOAK_STORE": "redis", "SOAK_STORE_URL": self.url}

    def done(self) -> int:
        """Tasks no longer queued, leased or scheduled (the final states are checked after)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen("rq:queue:default")
            pipe.zcard("taskyard:leases")
            pipe.zcard("rq:scheduled:default")
            remaining = sum(int(x) for x in pipe.execute())
        return self.n - remaining

    def held_by(self, worker_id: str, pid: int) -> list[str]:
        """The task the worker's process is running: its latest execution, if still leased."""
        self._scores: dict[str, float] = getattr(self, "_scores", {})
        for raw in reversed(self.client.lrange("soak:exec", -200, -1)):
            task_id, _, ran_by, _ = raw.decode().split()
            if int(ran_by) == pid:
                score = self.client.zscore("taskyard:leases", task_id)
                if score is None:
                    return []
                self._scores[task_id] = score
                return [task_id]
        return []

    def still_held(self, worker_id: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` still carry the lease the dead process last renewed."""
        return {t for t in ids if self.client.zscore("taskyard:leases", t) == self._scores[t]}

    def cut_connections(self) -> dict[str, Any]:
        return {}

    def executions(self) -> list[Execution]:
        out = []
        for raw in self.client.lrange("soak:exec", 0, -1):
            task_id, attempt, pid, started = raw.decode().split()
            out.append(Execution(task_id, int(attempt), int(pid), float(started)))
        return out

    def final_states(self, ids: list[str]) -> dict[str, str]:
        from bench.soak_tasks import record

        return {task_id: record.get_result(task_id).status.value for task_id in ids}


def _enqueue_many(n: int, max_ms: int) -> list[str]:
    import taskyard
    from bench.soak_tasks import record

    ids: list[str] = []
    for start in range(0, n, 5000):
        done = taskyard.enqueue_many(record.prepare(max_ms) for _ in range(min(5000, n - start)))
        ids.extend(r.id for r in done)
    return ids


# -- the run --------------------------------------------------------------------------------------


def soak(store: Any, args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    n = args.n
    print(f"\n== soak on {store.name}: {n:,} tasks, 3 workers, {args.kills} kills", flush=True)
    store.setup()
    ids = store.enqueue(n)
    logs = store.tmp / f"logs-{store.name}"
    logs.mkdir(exist_ok=True)
    fleet = Fleet(store.worker_argv, store.env(), logs)
    thresholds = sorted(int(rng.uniform(0.05, 0.9) * n) for _ in range(args.kills))
    cut_at = n // 2 if store.name == "postgresql" else None
    kills: list[Kill] = []
    cut: dict[str, Any] = {}
    started = time.time()
    for slot in range(3):
        fleet.start(slot)
    last_progress, last_done = time.monotonic(), -1
    try:
        while True:
            done = store.done()
            if done != last_done:
                last_done, last_progress = done, time.monotonic()
            check_reclaims(store, kills)
            if done >= n:
                break
            if time.monotonic() - last_progress > args.stall_timeout:
                print(f"   no progress for {args.stall_timeout:.0f} s at {done:,}", flush=True)
                break
            # a random moment: the next threshold of finished tasks, once the victim has run
            # long enough to hold work (a worker killed while starting up tests nothing)
            if (
                thresholds
                and done >= thresholds[0]
                and (time.monotonic() - fleet.started_at[0] > 1.5)
            ):
                thresholds.pop(0)
                held = store.held_by(fleet.ids[0], fleet.procs[0].pid)
                at = time.time()
                pid, worker_id = fleet.kill_victim()
                kills.append(Kill(at, pid, worker_id, held))
                print(
                    f"   {at - started:6.1f} s  SIGKILL worker {pid} ({worker_id}) at "
                    f"{done:,} done, {len(held)} task(s) held",
                    flush=True,
                )
                time.sleep(rng.uniform(0.0, 0.5))
                fleet.start(0)
            if cut_at is not None and not cut and done >= cut_at:
                cut = store.cut_connections()
                cut["at_s"] = round(time.time() - started, 2)
                print(
                    f"   {cut['at_s']:6.1f} s  pg_terminate_backend: {cut['by_application']}",
                    flush=True,
                )
            time.sleep(0.02)
        deadline = time.monotonic() + 4 * LEASE + 10
        while any(len(k.reclaimed) < len(k.held) for k in kills) and time.monotonic() < deadline:
            check_reclaims(store, kills)
            time.sleep(0.02)
    finally:
        fleet.stop()
    duration = time.time() - started
    return analyse(store, ids, kills, cut, duration, args)


def check_reclaims(store: Any, kills: list[Kill]) -> None:
    for kill in kills:
        pending = [t for t in kill.held if t not in kill.reclaimed]
        if pending:
            now = time.time()
            for task_id in set(pending) - store.still_held(kill.worker_id, pending):
                kill.reclaimed[task_id] = now - kill.at


def analyse(
    store: Any,
    ids: list[str],
    kills: list[Kill],
    cut: dict[str, Any],
    duration: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    executions = store.executions()
    states = store.final_states(ids)
    by_task: dict[str, list[Execution]] = {}
    for ex in executions:
        by_task.setdefault(ex.task_id, []).append(ex)
    final = Counter(states.get(task_id, "MISSING") for task_id in ids)
    lost = [task_id for task_id in ids if states.get(task_id) != "SUCCESSFUL"]
    never_ran = [t for t in ids if states.get(t) == "SUCCESSFUL" and t not in by_task]
    duplicates, unexplained, reruns = 0, [], []
    for task_id, runs in by_task.items():
        runs.sort(key=lambda e: e.started)
        for earlier, later in itertools.pairwise(runs):
            duplicates += 1
            kill = next(
                (
                    k
                    for k in kills
                    if k.pid == earlier.pid and earlier.started <= k.at <= later.started
                ),
                None,
            )
            if kill is None:
                unexplained.append(
                    {"task": task_id, "earlier": vars(earlier), "later": vars(later)}
                )
            else:
                reruns.append(later.started - kill.at)
    # tasks the victim held (claimed, started or not) when it was killed
    reclaims = [d for k in kills for d in k.reclaimed.values()]
    unreclaimed = sum(len(k.held) - len(k.reclaimed) for k in kills)
    for kill in kills:
        for task_id in kill.held:
            after = [e.started for e in by_task.get(task_id, []) if e.started > kill.at]
            if after and task_id not in {e["task"] for e in unexplained}:
                reruns.append(min(after) - kill.at)
    result = {
        "store": store.name,
        "n": len(ids),
        "workers": 3,
        "lease_s": LEASE,
        "duration_s": round(duration, 1),
        "kills": len(kills),
        "kill_log": [
            {
                "at_s": round(k.at - (kills[0].at if kills else 0), 2),
                "pid": k.pid,
                "held": len(k.held),
                "slowest_reclaim_s": round(max(k.reclaimed.values(), default=0), 3),
            }
            for k in kills
        ],
        "pg_terminate_backend": cut,
        "executions": len(executions),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "never_ran_but_successful": len(never_ran),
        "duplicates": duplicates,
        "unexplained_duplicates": len(unexplained) + len(never_ran),
        "unexplained": unexplained[:20],
        "held_at_kills": sum(len(k.held) for k in kills),
        "not_reclaimed_in_time": unreclaimed,
        "slowest_reclaim_s": max(reclaims) if reclaims else 0.0,
        "median_reclaim_s": sorted(reclaims)[len(reclaims) // 2] if reclaims else 0.0,
        "reclaims_measured": len(reclaims),
        "slowest_rerun_s": max(reruns) if reruns else 0.0,
        "median_rerun_s": sorted(reruns)[len(reruns) // 2] if reruns else 0.0,
        "final_states": dict(final),
    }
    if store.name == "redis":
        result["worker_class"] = args.redis_worker_class
    print(
        f"   {store.name}: {result['lost']} lost, {duplicates} duplicate executions "
        f"({result['unexplained_duplicates']} unexplained); {result['held_at_kills']} tasks "
        f"held by killed workers, slowest reclaim {result['slowest_reclaim_s']:.2f} s (median "
        f"{result['median_reclaim_s']:.2f} s), slowest re-run {result['slowest_rerun_s']:.1f} s "
        f"(behind the backlog); final states {dict(final)}; {duration:.0f} s",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pg-task-ms", type=int, default=40, help="each task sleeps 0..this")
    parser.add_argument("--redis-task-ms", type=int, default=10)
    parser.add_argument("--redis-worker-class", default="simple", choices=["simple", "forking"])
    parser.add_argument("--stall-timeout", type=float, default=60.0)
    parser.add_argument("--only", default="", choices=["", "postgresql", "redis"])
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="taskyard-soak-"))
    print(f"taskyard soak (seed {seed}); worker logs in {tmp}", flush=True)
    runs = []
    if args.only in ("", "postgresql"):
        runs.append(soak(PostgresStore(args, tmp), args, rng))
    if args.only in ("", "redis"):
        with private_redis() as url:
            runs.append(soak(RedisStore(args, tmp, url), args, rng))
    out = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seed": seed,
        "args": vars(args),
        "runs": runs,
    }
    if SOAK_JSON.exists() and args.only:
        previous = json.loads(SOAK_JSON.read_text())
        out["runs"] = [r for r in previous.get("runs", []) if r["store"] != args.only] + runs
    SOAK_JSON.write_text(json.dumps(out, indent=1) + "\n")
    if (ROOT / "docs" / "benchmarks.json").exists():
        with contextlib.suppress(Exception):
            from bench import report

            report.render(ROOT / "docs" / "benchmarks.json")
    failed = [r["store"] for r in runs if r["lost"] or r["unexplained_duplicates"]]
    print("\nsoak " + (f"FAILED on {', '.join(failed)}" if failed else "passed"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
