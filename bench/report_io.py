"""The I/O-bound and scale-out parts of the report (``bench/report.py``): their tables, their
targets (issues 13 and 14) and the scale-out panel of the chart."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.report import Data

Target = tuple[str, str, bool | None]

#: peers the Redis no-op drain is held against (issue 14)
REDIS_RIVALS = ("huey-redis", "celery", "saq", "arq", "taskiq", "dramatiq")


def _best_peer_median(data: Data, scenario: str) -> tuple[str, float] | None:
    peers = [f for f in data.scenario(scenario) if not f["ours"] and f["median"]]
    if not peers:
        return None
    pick: Callable[..., Any] = max if peers[0]["better"] == "higher" else min
    best = pick(peers, key=lambda f: f["median"])
    return best["subject"], best["median"]


def io_targets(data: Data) -> list[Target]:
    out: list[Target] = []
    m = data.median

    def row(name: str, value: float | None, ok: Callable[[float], bool], text: str) -> None:
        if value is None:
            out.append((name, "not measured", None))
        else:
            out.append((name, text.format(value), ok(value)))

    if not data.scenario("io_async") and not data.scenario("scaleout"):
        return out
    row(
        "I/O-bound async drain on PostgreSQL ≥ 3,000 tasks/s",
        m("io_async", "taskyard-pg"),
        lambda v: v >= 3000,
        "{:,.0f} tasks/s",
    )
    for scenario, what in (("io_async", "async"), ("io_sync", "sync, 100 threads")):
        ours = [f["median"] for f in data.scenario(scenario) if f["ours"] and f["median"]]
        best = _best_peer_median(data, scenario)
        if ours and best:
            row(
                f"I/O-bound {what}: taskyard ahead of every peer",
                max(ours) / best[1],
                lambda v: v > 1,
                "{:.2f}\u00d7 the best peer (" + best[0] + ")",
            )
    row(
        "I/O-bound sync drain, 100 threads, PostgreSQL ≥ 800 tasks/s",
        m("io_sync", "taskyard-pg"),
        lambda v: v >= 800,
        "{:,.0f} tasks/s",
    )
    row(
        "Idle pickup of an async task on PostgreSQL, median < 10 ms",
        m("io_latency_p50", "taskyard-pg"),
        lambda v: v < 10,
        "{:.2f} ms",
    )
    scale = data.scenario("scaleout")
    if scale:
        duplicates = sum(int(f.get("duplicates", 0)) for f in scale)
        out.append(
            (
                "Scale-out: no task run twice",
                f"{duplicates} duplicate executions in {len(scale)} configurations",
                duplicates == 0,
            )
        )
    return out


def redis_targets(data: Data) -> list[Target]:
    """Issue 14's figures for the Redis no-op path."""
    out: list[Target] = []
    m = data.median
    # the default worker class of ``taskyard rqworker`` (the batching one, once it lands)
    key = "taskyard-redis-default" if m("drain", "taskyard-redis-default") else "taskyard-redis"
    ours = m("drain", key)
    if ours is None:
        return out
    name = "Redis drain ≥ 4,000 tasks/s (" + data.get("drain", key)["subject"] + ")"  # type: ignore[index]
    out.append((name, f"{ours:,.0f} tasks/s", ours >= 4000))
    rivals = [(k, m("drain", k)) for k in REDIS_RIVALS]
    present = [(k, v) for k, v in rivals if v]
    if present:
        top, value = max(present, key=lambda kv: kv[1] or 0)
        assert value
        out.append(
            (
                "Redis drain ahead of RedisHuey, Celery, SAQ, arq, taskiq and Dramatiq",
                f"{ours / value:.2f}\u00d7 the best of them ({top})",
                ours > value,
            )
        )
    rq = m("drain", "rq")
    if rq:
        name = "Redis drain ≥ 10\u00d7 plain rq's SimpleWorker"
        out.append((name, f"{ours / rq:.1f}\u00d7", ours >= 10 * rq))
    trips = data.get("redis_trips_per_task", key)
    if trips and trips.get("worker_trips") is not None:
        value = float(trips["worker_trips"])
        out.append(("Redis worker round trips per task ≤ 0.5", f"{value:.2f}", value <= 0.5))
    p50 = m("latency_p50", key)
    if p50 is not None:
        out.append(("Redis idle pickup median ≤ 1.5 ms", f"{p50:.2f} ms", p50 <= 1.5))
    return out


def scaleout_table(data: Data) -> list[str]:
    figures = data.scenario("scaleout")
    if not figures:
        return []
    bases: dict[str, dict[int, dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    for f in figures:
        base = f.get("base", f["key"])
        bases.setdefault(base, {})[int(f.get("processes", 1))] = f
        labels[base] = f["subject"].rsplit(" \u00d7", 1)[0]
    counts = sorted({p for one in bases.values() for p in one})
    lines = [
        "### Scale-out: no-op drain with 1, 2 and 4 worker processes (tasks/s, higher is better)",
        "",
        "Worker processes started side by side against the same store; each task records its "
        "token as it runs, and the harness counts executions per token: *duplicates* are tasks "
        "that ran more than once (no faults are injected, so 0 is expected). Medians of the "
        "runs; *scaling* is the largest count's rate over one process's",
        "",
        "| subject | " + " | ".join(f"\u00d7{p}" for p in counts) + " | scaling | duplicates |",
        "|---|" + "---:|" * len(counts) + "---:|---:|",
    ]
    order = sorted(bases, key=lambda b: (not next(iter(bases[b].values()))["ours"], b))
    for base in order:
        row = bases[base]
        cells = [_fmt_rate(row[p]["median"]) if p in row else "—" for p in counts]
        low, high = row.get(min(row)), row.get(max(row))
        scaling = (
            f"{high['median'] / low['median']:.2f}\u00d7"
            if low and high and low["median"] and high is not low
            else "—"
        )
        dup = sum(int(f.get("duplicates", 0)) for f in row.values())
        ours = next(iter(row.values()))["ours"]
        name = f"**{labels[base]}**" if ours else labels[base]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {scaling} | {dup} |")
    notes = [
        f"{f['subject']}: " + f["note"][f["note"].index("stopped after") :]
        for f in figures
        if "stopped after" in f["note"]
    ]
    lines += ["", *(f"- {n}." for n in notes)] if notes else []
    return [*lines, ""]


def _fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def scaleout_panel(ax: Any, data: Data) -> None:
    """Tasks/s against worker processes, one line per subject."""
    bases: dict[str, list[tuple[int, float, bool, str]]] = {}
    for f in data.scenario("scaleout"):
        if f["median"]:
            label = f["subject"].rsplit(" \u00d7", 1)[0]
            bases.setdefault(f.get("base", f["key"]), []).append(
                (int(f.get("processes", 1)), f["median"], f["ours"], label)
            )
    styles = ["-", "--", ":", "-."]
    for index, points in enumerate(bases.values()):
        points.sort()
        ours, label = points[0][2], points[0][3]
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            marker="os^D"[index % 4],
            linestyle=styles[index % 4],
            color="#e4572e" if ours else "#9aa5b1",
            linewidth=2 if ours else 1.2,
            label=label,
        )
        for p in points:
            ax.annotate(
                f"{p[1]:,.0f}", (p[0], p[1]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xticks(sorted({p[0] for pts in bases.values() for p in pts}))
    ax.set_xlabel("worker processes", fontsize=8)
    ax.set_title(
        "Scale-out, no-op drain (tasks/s), higher is better",
        fontsize=10.5,
        loc="left",
        fontweight="bold",
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
