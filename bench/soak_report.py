"""The soak's part of ``docs/benchmarks.md``: its targets and its tables (per store, and per
fault: lost, FAILED that never ran, successes discarded, duplicates explained, time to
resume), rendered from ``docs/soak.json`` (written by ``bench/soak.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOAK_PATH = Path(__file__).resolve().parent.parent / "docs" / "soak.json"
STORE_NAMES = {"postgresql": "PostgreSQL", "redis": "Redis"}


def soak_targets() -> list[tuple[str, str, bool]]:
    """``(target, figure, met)`` per store of the last soak."""
    out: list[tuple[str, str, bool]] = []
    if SOAK_PATH.exists():
        soak = json.loads(SOAK_PATH.read_text())
        for run in soak.get("runs", []):
            ok = (
                run["lost"] == 0
                and run.get("failed_never_ran", 0) == 0
                and run.get("successes_discarded", 0) == 0
                and run["unexplained_duplicates"] == 0
            )
            faults = run.get("faults") or {}
            resume = max((f["resume_s_max"] or 0 for f in faults.values()), default=0.0)
            out.append(
                (
                    f"Soak on {run['store']}: 0 lost, 0 FAILED unrun, 0 successes discarded, "
                    "every duplicate explained",
                    f"{run['lost']} lost, {run.get('failed_never_ran', '?')} FAILED unrun, "
                    f"{run.get('successes_discarded', '?')} discarded, {run['duplicates']} "
                    f"duplicates ({run['unexplained_duplicates']} unexplained), slowest resume "
                    f"{resume or run.get('slowest_reclaim_s', 0):.1f} s ({soak.get('date', '')})",
                    ok,
                )
            )
    return out


def soak_table() -> list[str]:
    if not SOAK_PATH.exists():
        return []
    soak = json.loads(SOAK_PATH.read_text())
    runs = {r["store"]: r for r in soak["runs"]}
    order = [runs[k] for k in ("postgresql", "redis") if k in runs]
    lines = [
        f"### Soak (`make soak`, run of {soak.get('date', '?')}, seed {soak.get('seed')})",
        "",
        "| | " + " | ".join(STORE_NAMES.get(r["store"], r["store"]) for r in order) + " |",
        "|---|" + "---|" * len(order),
    ]

    def cells(fn: Callable[[dict[str, Any]], str]) -> str:
        return " | ".join(fn(r) for r in order)

    def get(key: str, bold: bool = False) -> Callable[[dict[str, Any]], str]:
        def cell(r: dict[str, Any]) -> str:
            value = r.get(key)
            text = "—" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
            return f"**{text}**" if bold else text

        return cell

    def workers(r: dict[str, Any]) -> str:
        described = r["workers"]
        if isinstance(described, int):  # a run from before per-fault reporting
            kind = "taskyard worker, 4 threads" if r["store"] == "postgresql" else "rqworker"
            described = f"{described} x {kind}"
        return f"{described}, lease {r['lease_s']:g} s"

    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("tasks (retries)", lambda r: f"{r['n']:,} ({r.get('retries', '?')})"),
        ("workers", workers),
        ("drain took", lambda r: f"{r['duration_s']:.0f} s"),
        ("**tasks lost** (not SUCCESSFUL at the end)", get("lost", True)),
        ("**tasks FAILED that never ran**", get("failed_never_ran", True)),
        ("**successes discarded**", get("successes_discarded", True)),
        ("executions recorded", get("executions")),
        ("duplicate executions", get("duplicates")),
        (
            "**unexplained duplicates** (no interrupted attempt before them)",
            get("unexplained_duplicates", True),
        ),
        (
            "final state of every task",
            lambda r: ", ".join(f"{k} {v:,}" for k, v in r["final_states"].items()),
        ),
    ]
    for name, fn in rows:
        lines.append(f"| {name} | {cells(fn)} |")
    lines += [
        "",
        "Per fault (duplicates: explained by an interrupted attempt / all; time to resume: from "
        "the fault until the tasks it interrupted run again, or the next task starts):",
        "",
        "| store | fault | fired | tasks held | lost | FAILED never ran | successes discarded "
        "| duplicates (explained) | time to resume, max (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in order:
        for f in (run.get("faults") or {}).values():
            resume = (
                "—"
                if f["resume_s_max"] is None
                else f"{f['resume_s_max']:.2f} s ({f['resume_s_median']:.2f} s)"
            )
            lines.append(
                f"| {STORE_NAMES.get(run['store'], run['store'])} | {f['description']} | "
                f"{f['fired']} | {f['held']} | **{f['lost']}** | **{f['failed_never_ran']}** | "
                f"**{f['successes_discarded']}** | {f['duplicates']} "
                f"({f['duplicates_explained']}) | {resume} |"
            )
        if not run.get("faults"):
            lines.append(
                f"| {STORE_NAMES.get(run['store'], run['store'])} | (a run from before per-fault "
                "reporting: see soak.json) | | | | | | | |"
            )
    return [*lines, ""]


__all__ = ["SOAK_PATH", "soak_table", "soak_targets"]
