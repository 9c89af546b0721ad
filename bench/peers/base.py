"""What the orchestrator needs from each framework it measures (``Subject``), and ``Agent``:
a helper process for clients that need their own settings (Django peers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from bench.harness import ENV, ROOT


@dataclass(frozen=True)
class IoMode:
    """One way a subject runs the I/O-bound scenario's 100 ms tasks in one worker process.

    ``kind`` is "async" (``await asyncio.sleep``) or "sync" (``time.sleep``); ``sweep`` the
    concurrencies tried (the fastest is then measured in full); ``argv(concurrency)`` the
    worker's command line; ``note(concurrency)`` what the table says about it."""

    kind: str
    suffix: str  # appended to the subject's key ("" or "-greenlet")
    label: str  # appended to the subject's label
    sweep: tuple[int, ...]
    argv: Callable[[int], list[str]]
    note: Callable[[int], str]
    #: measured in the "1,000 coroutines in flight" memory run
    rss: bool = True
    #: the worker's environment for a concurrency (None: the subject's ``worker_env()``)
    env: Callable[[int], dict[str, str]] | None = None
    #: the whole label, instead of the subject's label followed by ``label``
    title: str = ""


@dataclass(frozen=True)
class Context:
    pg_url: str
    redis_url: str
    tmp: Path
    #: a Python with arq (whose redis-py pin conflicts with rq's): ``make .venv-bench-aio``
    aio_python: str = ""

    def with_pg(self, url: str) -> Context:
        return replace(self, pg_url=url)


class Subject:
    """One framework in one configuration, measured with one worker process."""

    key: ClassVar[str] = ""
    label: ClassVar[str] = ""
    ours: ClassVar[bool] = False
    store: ClassVar[str] = ""  # "postgresql", "sqlite" or "redis": where round trips go
    #: the worker exits by itself once the queue is empty
    burst: ClassVar[bool] = False
    #: tasks per drain run (slow peers get fewer so a run stays under a minute)
    drain_n: ClassVar[int | None] = None
    #: a database queue that can be given 1,000,000 finished rows
    history: ClassVar[bool] = False
    worker_note: ClassVar[str] = ""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def available(self) -> bool:
        """False when this machine lacks what the subject needs (it is then left out)."""
        return True

    # -- client side --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create schemas; called once per run before anything else."""

    def reset(self) -> None:
        """Empty the queue and forget results (keeping any prefilled history)."""
        raise NotImplementedError

    def enqueue_one(self, n: int) -> float:
        """Enqueue ``n`` no-op tasks one call each; return the seconds it took."""
        raise NotImplementedError

    def enqueue_bulk(self, n: int) -> float | None:
        """Enqueue ``n`` no-op tasks with the framework's bulk API (None: it has none)."""
        return None

    def fill(self, n: int) -> None:
        if self.enqueue_bulk(n) is None:
            self.enqueue_one(n)

    def enqueue_stamp(self, token: int, port: int) -> float:
        """Enqueue one latency probe; return ``time.time()`` taken just before the call."""
        raise NotImplementedError

    # -- the worker -----------------------------------------------------------------------------
    def worker_argv(self, burst: bool) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return dict(ENV)

    def done_count(self) -> int:
        """Tasks finished so far (polled while a non-burst worker drains)."""
        raise NotImplementedError

    def span(self) -> tuple[int, float]:
        """(finished no-op tasks, seconds from the first start to the last finish)."""
        raise NotImplementedError

    # -- I/O-bound and scale-out scenarios (optional) ------------------------------------------
    def io_modes(self) -> list[IoMode]:
        """The ways this subject runs the I/O-bound scenario (none: it is left out)."""
        return []

    def io_fill(self, n: int, kind: str, seconds: float) -> None:
        """Enqueue ``n`` tasks that each wait ``seconds`` (``kind``: "async" or "sync")."""
        raise NotImplementedError

    #: can run the scale-out scenario (several worker processes on one store)
    scaleout: ClassVar[bool] = False

    def fill_ids(self, n: int) -> None:
        """Enqueue ``n`` no-op tasks that call ``recorder.executed(i)`` for i in 0..n-1."""
        raise NotImplementedError

    def scaleout_argv(self) -> list[str]:
        """One of the scale-out scenario's worker processes."""
        return self.worker_argv(burst=False)

    @property
    def scaleout_label(self) -> str:
        return self.label

    def scaleout_env(self, ids_dir: Path) -> dict[str, str]:
        return {**self.worker_env(), "BENCH_RECORDER_IDS": str(ids_dir)}

    # -- database queues ----------------------------------------------------------------------
    def prefill_history(self, rows: int) -> None:
        raise NotImplementedError

    def drop_history(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release client resources (connections, helper processes)."""

    def versions(self) -> str:
        return ""


class RecordedSubject(Subject):
    """A peer that stores no start and finish times: its worker writes them to a file through
    ``bench.peers.recorder`` (the path in ``BENCH_RECORDER``)."""

    @property
    def record_file(self) -> Path:
        return self.ctx.tmp / f"recorder-{self.key}"

    def worker_env(self) -> dict[str, str]:
        return {**super().worker_env(), "BENCH_RECORDER": str(self.record_file)}

    def clear_records(self) -> None:
        from bench.peers import recorder

        recorder.clear(self.record_file)

    def done_count(self) -> int:
        from bench.peers import recorder

        return recorder.read(self.record_file)[0]

    def span(self) -> tuple[int, float]:
        from bench.peers import recorder

        count, first, last = recorder.read(self.record_file)
        return count, last - first


def timed_calls(call: Callable[[], object], n: int) -> float:
    """Seconds that ``n`` calls of ``call`` take (enqueue one task per call)."""
    started = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - started


def stamped_call(call: Callable[..., object], *args: Any) -> float:
    """Call ``call(*args)`` (enqueue a latency probe); return ``time.time()`` from just before."""
    before = time.time()
    call(*args)
    return before


def bin_path(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Agent:
    """A helper process running ``bench.peers.agent`` under some environment (JSON lines)."""

    def __init__(
        self, env: dict[str, str], module: str = "bench.peers.agent", python: str = ""
    ) -> None:
        self.proc = subprocess.Popen(
            [python or sys.executable, "-m", module],
            env={**ENV, **env},
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, **request: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"agent died on {request}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["value"]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            self.proc.wait(10)


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
