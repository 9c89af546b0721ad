"""Timing helpers shared by the bench scripts: repeated runs, medians, spreads, tables."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    scenario: str
    subject: str
    unit: str
    runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def spread(self) -> tuple[float, float]:
        return (min(self.runs), max(self.runs)) if self.runs else (float("nan"), float("nan"))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["median"] = self.median
        data["min"], data["max"] = self.spread
        return data


def rate(fn: Callable[[int], None], n: int, repeats: int) -> list[float]:
    """Run ``fn(n)`` ``repeats`` times; return items per second for each run."""
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn(n)
        out.append(n / (time.perf_counter() - started))
    return out


def machine() -> str:
    import os

    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def print_table(figures: list[Figure]) -> None:
    """Print each scenario's figures; the first of a scenario is the reference (taskyard) and
    every other line shows how many times the reference's figure it is."""
    by_scenario: dict[str, list[Figure]] = {}
    for figure in figures:
        by_scenario.setdefault(figure.scenario, []).append(figure)
    for scenario, group in by_scenario.items():
        print(f"\n{scenario}")
        base = group[0]
        for figure in group:
            low, high = figure.spread
            if figure is base:
                ratio = "(reference)"
            else:
                ratio = f"reference is x{base.median / figure.median:.2f} this"
            print(
                f"  {figure.subject:<52} {figure.median:>10,.0f} {figure.unit:<8} "
                f"(min {low:,.0f}, max {high:,.0f}, n={len(figure.runs)})  {ratio}"
                + (f"  [{figure.note}]" if figure.note else "")
            )


def dump(figures: list[Figure]) -> str:
    return json.dumps([f.as_dict() for f in figures])


def load(text: str) -> list[Figure]:
    out = []
    for item in json.loads(text):
        out.append(
            Figure(item["scenario"], item["subject"], item["unit"], item["runs"], item["note"])
        )
    return out
