"""The I/O-bound scenario of ``bench/run_all.py`` (``--only iobound``): tasks that each wait
100 ms, drained by one worker process.

* async tasks (``await asyncio.sleep(0.1)``) on every subject that runs them as coroutines,
  each at the concurrency that was fastest in a small sweep on this machine (the sweep is
  recorded beside the figure);
* sync tasks (``time.sleep(0.1)``) at 100 threads (or greenlets);
* the worker's peak resident memory while it drains 1,000 async tasks of 2 s at a concurrency
  of 1,000 (so about 1,000 coroutines are in flight);
* idle pickup latency of an async task, taskyard on PostgreSQL.

A run stops after ``--io-budget`` seconds even if the queue is not empty (a subject that runs
one task at a time would take 1,000 s for 10,000): the rate is then what finished divided by
the time it took, and the note says how many finished.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench.harness import rss_mib, running, wait_for
from bench.peers.base import Context, IoMode, Subject

if TYPE_CHECKING:
    from bench.run_all import Results

SECONDS = 0.1  # what each task waits
RSS_TASKS, RSS_SECONDS = 1000, 2.0


def io_run(
    subject: Subject,
    ctx: Context,
    mode: IoMode,
    concurrency: int,
    n: int,
    budget: float,
    seconds: float = SECONDS,
) -> tuple[float, int]:
    """(tasks/s, tasks finished) for one drain of ``n`` waiting tasks."""
    from bench.run_all import worker_log

    subject.reset()
    subject.io_fill(n, mode.kind, seconds)
    env = mode.env(concurrency) if mode.env else subject.worker_env()
    with running(mode.argv(concurrency), env, worker_log(subject, ctx)):
        wait_for(lambda: subject.done_count() >= n, budget, 0.1)
        time.sleep(0.2)  # the recorders write every 50 ms
        done, span = subject.span()
    if done == 0 or span <= 0:
        raise RuntimeError(f"{subject.key}: no task finished (see {ctx.tmp}/logs)")
    return done / span, done


def io_rss(subject: Subject, ctx: Context, mode: IoMode) -> tuple[float, float, int]:
    """(resident MiB before any task, peak MiB during the drain, tasks finished) with
    ``RSS_TASKS`` async tasks of ``RSS_SECONDS`` at a concurrency of ``RSS_TASKS``."""
    from bench.run_all import worker_log

    subject.reset()
    env = mode.env(RSS_TASKS) if mode.env else subject.worker_env()
    with running(mode.argv(RSS_TASKS), env, worker_log(subject, ctx)) as proc:
        time.sleep(3.0)  # started and idle
        idle = rss_mib(proc.pid)
        subject.io_fill(RSS_TASKS, "async", RSS_SECONDS)
        peak = idle
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and subject.done_count() < RSS_TASKS:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.05)
        return idle, peak, subject.done_count()


def step_iobound(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    for subject in subjects:
        for mode in subject.io_modes():
            try:
                io_mode(subject, mode, ctx, res, args)
            except Exception as exc:  # one peer's failure does not end the whole run
                print(f"    iobound {subject.key}{mode.suffix} {mode.kind} FAILED: {exc!r}")
    step_io_rss(subjects, ctx, res)
    step_io_latency(subjects, ctx, res, args)


def io_mode(
    subject: Subject, mode: IoMode, ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    n, sweep_n, budget = args.io_n, args.io_sweep_n, args.io_budget
    key, label = subject.key + mode.suffix, mode.title or subject.label + mode.label
    sweep: dict[int, float] = {}
    # enough tasks that the largest concurrency is filled twice over
    points = max(sweep_n, 2 * max(mode.sweep))
    if len(mode.sweep) > 1:
        for concurrency in mode.sweep:
            rate, _ = io_run(subject, ctx, mode, concurrency, points, budget)
            sweep[concurrency] = rate
            print(f"    iobound sweep {key} {mode.kind} c={concurrency}: {rate:,.0f}/s")
    best = max(sweep, key=lambda c: sweep[c]) if sweep else mode.sweep[0]
    runs, finished = [], []
    for _ in range(args.repeats):
        rate, done = io_run(subject, ctx, mode, best, n, budget)
        runs.append(rate)
        finished.append(done)
    note = mode.note(best)
    if min(finished) < n:
        note += f"; stopped after {budget:.0f} s: {min(finished):,} of {n:,} finished"
    if sweep:
        note += "; sweep of " + ", ".join(f"{c}: {r:,.0f}/s" for c, r in sorted(sweep.items()))
        note += f" ({points:,} tasks each)"
    scenario = "io_async" if mode.kind == "async" else "io_sync"
    res.add(scenario, label, runs, note, ours=subject.ours, key=key)
    res.figures[-1].update(store=subject.store, concurrency=best, sweep=sweep)
    res.save()


def step_io_rss(subjects: list[Subject], ctx: Context, res: Results) -> None:
    for subject in subjects:
        for mode in subject.io_modes():
            if mode.kind != "async" or not mode.rss or mode.suffix:
                continue
            try:
                idle, peak, done = io_rss(subject, ctx, mode)
            except Exception as exc:  # one peer's failure does not end the whole run
                print(f"    iobound RSS {subject.key} FAILED: {exc!r}")
                continue
            note = f"idle {idle:.1f} MiB before; {mode.note(RSS_TASKS)}"
            if done < RSS_TASKS:
                note += f"; {done:,} of {RSS_TASKS:,} finished within 120 s"
            res.add(
                "io_rss_1000",
                mode.title or subject.label + mode.label,
                [peak],
                note,
                ours=subject.ours,
                key=subject.key + mode.suffix,
            )
            res.figures[-1].update(store=subject.store, idle=idle)
            res.save()


def step_io_latency(
    subjects: list[Subject], ctx: Context, res: Results, args: argparse.Namespace
) -> None:
    """Idle pickup latency of an async task (``astamp``) on taskyard's PostgreSQL worker."""
    from bench.run_all import latencies

    for subject in subjects:
        if subject.key != "taskyard-pg":
            continue
        probe = _async_probe(subject)
        values = latencies(probe, ctx, args.latency_samples, args.latency_gap)
        note = f"async probe task, {len(values)} samples; {subject.worker_note}"
        res.add("io_latency_p50", subject, [statistics.median(values)], note)
        res.figures[-1]["samples"] = values
        res.save()


def _async_probe(subject: Subject) -> Any:
    base = type(subject)

    class AsyncProbe(base):  # type: ignore[valid-type, misc]
        key = subject.key

        def enqueue_stamp(self, token: int, port: int) -> float:
            return float(self.enqueue_astamp(token, port))

    return AsyncProbe(subject.ctx)
