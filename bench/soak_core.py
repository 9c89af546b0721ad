"""The soak's machinery, shared by every store (``bench/soak.py`` runs it).

A *store* (``soak_postgres.PostgresStore``, ``soak_redis.RedisStore``) knows its workers, how
to read what ran and how to inject its *faults*; this module drains ``--n`` tasks with them,
fires each fault at a random moment of the drain, and reports per fault kind:

* **lost** — tasks not SUCCESSFUL at the end (must be 0);
* **FAILED that never ran** — tasks FAILED with no execution recorded (must be 0);
* **successes discarded** — an execution that returned, whose task then ran again (or did not
  end SUCCESSFUL) although no fault hit the process between its return and the re-run: its
  outcome was thrown away (must be 0);
* **duplicates** — executions after the first, each *explained* when a fault killed the
  process running the earlier execution before it could record its outcome (an interrupted
  attempt); unexplained ones fail the soak;
* **time to resume** — from the fault until the work it stopped runs again (the tasks a killed
  process held start again; after a store restart, the first task starts).

Each problem is attributed to the fault that explains it, or to the latest fault before it.
Adding a fault to a store: a ``FaultKind`` in its ``fault_kinds()`` whose ``inject`` returns a
``Fault``; the drain, the analysis and the report pick it up.

Every task records each execution (task id, attempt, process id, start and end time) outside
the queue, so what ran is known even when the queue's own record is wrong.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.harness import ROOT


@dataclass
class Execution:
    """One run of a task's function, as the task recorded it."""

    task_id: str
    attempt: int
    pid: int
    started: float
    ended: float | None = None


@dataclass
class Fault:
    """One fault fired during the drain."""

    kind: str
    at: float
    detail: str = ""
    #: processes the fault killed (their executions were interrupted)
    pids: set[int] = field(default_factory=set)
    #: task ids the killed processes held (claimed or running) at the fault
    held: list[str] = field(default_factory=list)
    #: when the store was back, for faults that take it away (a restart)
    back_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FaultKind:
    """A fault a store can fire: how many times, and how."""

    name: str
    description: str
    count: int
    inject: Callable[[Fleet, random.Random], Fault | None]


class Store(Protocol):
    name: str
    slots: int
    lease: float

    def setup(self) -> None: ...
    def enqueue(self, n: int) -> list[str]: ...
    def worker_argv(self, slot: int, worker_id: str) -> list[str]: ...
    def env(self) -> dict[str, str]: ...
    def done(self) -> int: ...
    def fault_kinds(self) -> list[FaultKind]: ...
    def executions(self) -> list[Execution]: ...
    def final_states(self, ids: list[str]) -> dict[str, str]: ...
    def describe(self) -> dict[str, Any]: ...


class Fleet:
    """The store's worker processes, one per slot, each in a session of its own."""

    def __init__(
        self, argv: Callable[[int, str], list[str]], env: dict[str, str], logs: Path, slots: int
    ) -> None:
        self.argv, self.env, self.logs = argv, env, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ids: list[str] = []
        self.started_at: list[float] = []
        self.generation = 0
        for slot in range(slots):
            self.start(slot)

    def start(self, slot: int) -> None:
        worker_id = f"soak-{slot}-{self.generation}"
        self.generation += 1
        with open(self.logs / f"{worker_id}.log", "wb") as log:
            proc = subprocess.Popen(
                self.argv(slot, worker_id),
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if slot < len(self.procs):
            self.procs[slot], self.ids[slot] = proc, worker_id
            self.started_at[slot] = time.monotonic()
        else:
            self.procs.append(proc)
            self.ids.append(worker_id)
            self.started_at.append(time.monotonic())

    def session(self, slot: int) -> list[int]:
        """Process ids in the slot's session: the worker, a work horse, a scheduler."""
        sid = self.procs[slot].pid
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                found.append(int(entry))
        return found

    def kill(self, slot: int, pids: list[int] | None = None) -> set[int]:
        """SIGKILL ``pids`` (default: the slot's whole session); returns the pids killed."""
        targets = pids if pids is not None else self.session(slot)
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.procs[slot].pid in targets:
            self.procs[slot].wait(10)
        return set(targets)

    def alive(self, slot: int) -> bool:
        return self.procs[slot].poll() is None

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for index, proc in enumerate(self.procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(index)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)


# -- the run ----------------------------------------------------------------------------------


def drain(store: Store, args: Any, rng: random.Random, tmp: Path) -> dict[str, Any]:
    """Enqueue ``args.n`` tasks, drain them while firing the store's faults, report."""
    n = args.n
    kinds = [k for k in store.fault_kinds() if k.count > 0]
    plan = [(k.name, rng.uniform(0.05, 0.9) * n) for k in kinds for _ in range(k.count)]
    plan.sort(key=lambda event: event[1])
    by_name = {k.name: k for k in kinds}
    print(
        f"\n== soak on {store.name}: {n:,} tasks (retries={args.retries}), {store.slots} "
        f"workers; faults: " + ", ".join(f"{k.name} x{k.count}" for k in kinds),
        flush=True,
    )
    store.setup()
    ids = store.enqueue(n)
    logs = tmp / f"logs-{store.name}"
    logs.mkdir(exist_ok=True)
    fleet = Fleet(store.worker_argv, store.env(), logs, store.slots)
    faults: list[Fault] = []
    started = time.time()
    last_progress, last_done = time.monotonic(), -1
    try:
        while True:
            done = store.done()
            if done != last_done:
                last_done, last_progress = done, time.monotonic()
            if done >= n:
                break
            if time.monotonic() - last_progress > args.stall_timeout:
                print(f"   no progress for {args.stall_timeout:.0f} s at {done:,}", flush=True)
                break
            if plan and done >= plan[0][1] and min(fleet.started_at) < time.monotonic() - 1.5:
                name, _ = plan.pop(0)
                fault = by_name[name].inject(fleet, rng)
                if fault is not None:
                    faults.append(fault)
                    print(
                        f"   {fault.at - started:6.1f} s  {fault.kind}: {fault.detail} at "
                        f"{done:,} done, {len(fault.held)} task(s) held",
                        flush=True,
                    )
            time.sleep(0.02)
        for kind in kinds:  # faults the drain was too quick for still happen, at the end
            missing = kind.count - sum(1 for f in faults if f.kind == kind.name)
            if missing > 0:
                print(f"   ({missing} {kind.name} not fired: the drain ended first)", flush=True)
    finally:
        fleet.stop()
    return analyse(store, ids, faults, time.time() - started, kinds, args)


def analyse(
    store: Store,
    ids: list[str],
    faults: list[Fault],
    duration: float,
    kinds: list[FaultKind],
    args: Any,
) -> dict[str, Any]:
    executions = store.executions()
    states = store.final_states(ids)
    runs: dict[str, list[Execution]] = {}
    for ex in executions:
        runs.setdefault(ex.task_id, []).append(ex)
    for task_runs in runs.values():
        task_runs.sort(key=lambda e: e.started)
    faults.sort(key=lambda f: f.at)
    per: dict[str, Counter[str]] = {k.name: Counter() for k in kinds}
    per["(no fault)"] = Counter()
    unexplained: list[dict[str, Any]] = []

    def blame(moment: float) -> str:
        before = [f for f in faults if f.at <= moment]
        return before[-1].kind if before else "(no fault)"

    for task_id, task_runs in runs.items():
        for earlier, later in itertools.pairwise(task_runs):
            # explained: a fault killed the process running the earlier execution before the
            # later one began — the attempt was interrupted (while it ran, or after it returned
            # but before its outcome was stored)
            killer = next(
                (
                    f
                    for f in faults
                    if earlier.pid in f.pids and earlier.started <= f.at <= later.started
                ),
                None,
            )
            kind = killer.kind if killer is not None else blame(later.started)
            per[kind]["duplicates"] += 1
            if killer is not None:
                per[kind]["explained"] += 1
                continue
            if earlier.ended is not None:
                per[kind]["successes_discarded"] += 1
            unexplained.append({"task": task_id, "earlier": vars(earlier), "later": vars(later)})
    lost = [t for t in ids if states.get(t) != "SUCCESSFUL"]
    never_ran = [t for t in lost if states.get(t) == "FAILED" and t not in runs]
    for task_id in lost:
        task_runs = runs.get(task_id, [])
        held_by = next((f for f in faults if task_id in f.held), None)
        kind = held_by.kind if held_by else blame(task_runs[-1].started if task_runs else 0.0)
        per[kind]["lost"] += 1
        if task_id in never_ran:
            per[kind]["failed_never_ran"] += 1
        if any(e.ended is not None for e in task_runs):
            per[kind]["successes_discarded"] += 1
    resumes: dict[str, list[float]] = {}
    for fault in faults:
        took = resume_time(fault, runs, executions)
        if took == took:  # not NaN: it resumed
            resumes.setdefault(fault.kind, []).append(took)
    fault_report = {}
    for kind in kinds:
        counts, times = per[kind.name], sorted(resumes.get(kind.name, []))
        fault_report[kind.name] = {
            "description": kind.description,
            "fired": sum(1 for f in faults if f.kind == kind.name),
            "held": sum(len(f.held) for f in faults if f.kind == kind.name),
            "lost": counts["lost"],
            "failed_never_ran": counts["failed_never_ran"],
            "successes_discarded": counts["successes_discarded"],
            "duplicates": counts["duplicates"],
            "duplicates_explained": counts["explained"],
            "resume_s_max": round(max(times), 3) if times else None,
            "resume_s_median": round(statistics.median(times), 3) if times else None,
        }
    result = {
        "store": store.name,
        "n": len(ids),
        "retries": args.retries,
        "duration_s": round(duration, 1),
        **store.describe(),
        "executions": len(executions),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "failed_never_ran": len(never_ran),
        "successes_discarded": sum(c["successes_discarded"] for c in per.values()),
        "duplicates": sum(c["duplicates"] for c in per.values()),
        "unexplained_duplicates": len(unexplained),
        "unexplained": unexplained[:20],
        "unattributed": dict(per["(no fault)"]),
        "faults": fault_report,
        "fault_log": [
            {
                "kind": f.kind,
                "at_s": round(f.at - (faults[0].at if faults else 0), 2),
                "detail": f.detail,
                "held": len(f.held),
                "resume_s": _finite(resume_time(f, runs, executions)),
                **f.extra,
            }
            for f in faults
        ],
        "final_states": dict(Counter(states.get(t, "MISSING") for t in ids)),
    }
    print_summary(result)
    return result


def resume_time(fault: Fault, runs: dict[str, list[Execution]], every: list[Execution]) -> float:
    """Seconds from ``fault`` until what it stopped runs again: each task its killed processes
    held starts again (the slowest), or, when it held none, the next task starts (after the
    store is back, for a restart)."""
    if fault.held:
        again = [
            min((e.started for e in runs.get(t, []) if e.started > fault.at), default=None)
            for t in fault.held
        ]
        starts = [s for s in again if s is not None]
        return max(starts) - fault.at if starts else float("nan")
    after = fault.back_at or fault.at
    first = min((e.started for e in every if e.started > after), default=None)
    return first - fault.at if first is not None else float("nan")


def _finite(value: float) -> float | None:
    return round(value, 3) if value == value else None


def print_summary(result: dict[str, Any]) -> None:
    print(
        f"   {result['store']}: {result['lost']} lost, {result['failed_never_ran']} FAILED that "
        f"never ran, {result['successes_discarded']} successes discarded, "
        f"{result['duplicates']} duplicates ({result['unexplained_duplicates']} unexplained); "
        f"final states {result['final_states']}; {result['duration_s']:.0f} s",
        flush=True,
    )
    for name, fault in result["faults"].items():
        print(
            f"     {name:>16}: x{fault['fired']}, held {fault['held']}, lost {fault['lost']}, "
            f"FAILED never ran {fault['failed_never_ran']}, successes discarded "
            f"{fault['successes_discarded']}, duplicates {fault['duplicates']} "
            f"({fault['duplicates_explained']} explained), resume max "
            f"{fault['resume_s_max']} s, median {fault['resume_s_median']} s",
            flush=True,
        )


def failed(result: dict[str, Any]) -> bool:
    """Did the run break the promise (anything lost, failed unrun, discarded or unexplained)?"""
    return bool(
        result["lost"]
        or result.get("failed_never_ran")
        or result.get("successes_discarded")
        or result["unexplained_duplicates"]
    )


__all__ = ["Execution", "Fault", "FaultKind", "Fleet", "Store", "drain", "failed"]
