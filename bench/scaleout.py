"""The scale-out scenario of ``bench/run_all.py`` (``--only scaleout``): a no-op drain with 1,
2 and 4 worker processes started side by side against one PostgreSQL or one Redis.

Each task carries a token (0..n-1) and its body calls ``bench.peers.recorder.executed`` with
it, which appends the token to a file of the executing process; after the run the harness
counts executions per token: a token seen twice is a task that ran twice (there are no faults
in these runs, so the expected count is 0), a token never seen is a task that did not run
within the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import running, wait_for
from bench.peers import recorder
from bench.peers.base import Context, Subject

if TYPE_CHECKING:
    from bench.run_all import Results

PROCESSES = (1, 2, 4)


def command(argv: list[str]) -> str:
    """The worker's command line as a reader would type it (no interpreter path, no URL)."""
    words = [Path(argv[0]).name, *(a for a in argv[1:] if "://" not in a)]
    if words[0].startswith("python") and words[1:2] == ["-m"]:
        words = words[2:]
    return " ".join(w for w in words if w != "--url")


def scale_run(
    subject: Subject, ctx: Context, processes: int, n: int, budget: float, tag: str
) -> tuple[float, int, int, int]:
    """(tasks/s, finished, executions counted, duplicated executions) for one drain."""
    ids_dir = ctx.tmp / f"ids-{subject.key}-{processes}-{tag}"
    ids_dir.mkdir(parents=True, exist_ok=True)
    subject.reset()
    subject.fill_ids(n)
    env = subject.scaleout_env(ids_dir)
    log = ctx.tmp / "logs" / f"scaleout-{subject.key}.log"
    log.parent.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        for _ in range(processes):
            stack.enter_context(running(subject.scaleout_argv(), env, log))
        wait_for(lambda: subject.done_count() >= n, budget, 0.1)
        time.sleep(0.2)
        done, span = subject.span()
    # what the workers executed (forked work horses write before they report the job done)
    wait_for(lambda: sum(recorder.executions(ids_dir).values()) >= done, 5, 0.1)
    counts = recorder.executions(ids_dir)
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    if done == 0 or span <= 0:
        raise RuntimeError(f"{subject.key}: no task finished with {processes} processes")
    return done / span, done, sum(counts.values()), duplicates


def step_scaleout(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    n, budget = args.scale_n, args.scale_budget
    for subject in subjects:
        if not subject.scaleout:
            continue
        for processes in PROCESSES:
            runs, finished, duplicates = [], [], 0
            for round_ in range(args.repeats):
                try:
                    rate, done, executed, dup = scale_run(
                        subject, ctx, processes, n, budget, str(round_)
                    )
                except Exception as exc:  # one failure does not end the whole run
                    print(f"    scaleout {subject.key} x{processes} FAILED: {exc!r}")
                    continue
                runs.append(rate)
                finished.append(done)
                duplicates += dup
                print(
                    f"    scaleout {subject.key} x{processes}: {rate:,.0f}/s, {done:,} done, "
                    f"{executed:,} executions, {dup} duplicates",
                    flush=True,
                )
            if not runs:
                continue
            word = "process" if processes == 1 else "processes"
            note = (
                f"{processes} worker {word}: {command(subject.scaleout_argv())}; "
                f"{duplicates} duplicate executions over {args.repeats} runs"
            )
            if min(finished) < n:
                note += f"; stopped after {budget:.0f} s: {min(finished):,} of {n:,} finished"
            res.add(
                "scaleout",
                f"{subject.scaleout_label} \u00d7{processes}",
                runs,
                note,
                ours=subject.ours,
                key=f"{subject.key}x{processes}",
            )
            res.figures[-1].update(
                store=subject.store, base=subject.key, processes=processes, duplicates=duplicates
            )
            res.save()
