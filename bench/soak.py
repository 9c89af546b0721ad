"""Soak (``make soak``): drain ``--n`` tasks with ``retries=0`` while faults a production
deployment sees every week hit the workers and the store; nothing may be lost, nothing FAILED
that never ran, no success discarded, and every duplicate execution explained by an
interrupted attempt.

PostgreSQL (``soak_postgres``): three ``taskyard worker`` processes on a private cluster; SIGKILL
of a worker, every worker connection cut, a warm-shutdown deploy of every worker with tasks
longer than the shutdown timeout, ``pg_ctl restart -m fast``, a crash (``stop -m immediate``)
and an outage longer than the lease. Redis (``soak_redis``): three ``taskyard rqworker``
processes (simple, forking, simple) on a private ``redis-server`` with AOF; SIGKILL of whole rq
workers, SIGKILL of work horses, Redis ``SHUTDOWN`` + restart. Each task records its executions
outside the queue.

Reports per store and per fault: tasks lost, FAILED that never ran, successes discarded,
duplicates (and how many an interrupted attempt explains), time to resume (see
``soak_core``). Writes ``docs/soak.json`` (runs of the other store are kept with ``--only``)
and re-renders ``docs/benchmarks.md``; exits 1 when the promise was broken.

    python bench/soak.py [--n 20000] [--kills 10] [--horse-kills 10] [--redis-restarts 2]
                         [--only postgresql|redis] [--seed 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT
from bench.soak_core import drain, failed
from bench.soak_postgres import PostgresStore
from bench.soak_redis import RedisStore

SOAK_JSON = ROOT / "docs" / "soak.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--retries", type=int, default=0, help="retries of every task (0)")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs of a whole worker")
    parser.add_argument("--horse-kills", type=int, default=10, help="SIGKILLs of a work horse")
    parser.add_argument("--redis-restarts", type=int, default=2, help="Redis SHUTDOWN + start")
    parser.add_argument("--redis-down", type=float, default=1.0, help="seconds Redis is away")
    parser.add_argument("--pg-cuts", type=int, default=1, help="pg_terminate_backend rounds")
    parser.add_argument("--deploys", type=int, default=2, help="warm-shutdown deploys")
    parser.add_argument("--pg-restarts", type=int, default=1, help="pg_ctl restart -m fast")
    parser.add_argument("--pg-crashes", type=int, default=1, help="pg_ctl stop -m immediate")
    parser.add_argument("--pg-outages", type=int, default=1, help="outages of 2.5 leases")
    parser.add_argument("--pg-task-ms", type=int, default=40, help="each task sleeps 0..this")
    parser.add_argument("--redis-task-ms", type=int, default=10)
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
        pg_store = PostgresStore(args, tmp)
        try:
            runs.append(drain(pg_store, args, rng, tmp))
        finally:
            pg_store.close()
    if args.only in ("", "redis"):
        store = RedisStore(args, tmp)
        try:
            run = drain(store, args, rng, tmp)
            run["left_in_redis"] = store.stranded()
            print(f"   left in Redis's lists and registries: {run['left_in_redis']}", flush=True)
            runs.append(run)
        finally:
            store.close()
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
    broken = [r["store"] for r in runs if failed(r)]
    print("\nsoak " + (f"FAILED on {', '.join(broken)}" if broken else "passed"), flush=True)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
