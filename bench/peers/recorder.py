"""Start and finish times for frameworks that store none (Huey, Celery).

Inside the worker process, the framework's own signals call ``started()`` before and
``finished()`` after each task; a daemon thread writes ``count first_start last_finish`` to the
file named by ``$BENCH_RECORDER`` every 50 ms while something changed. The cost inside the
worker is a lock and two clock reads per task, as a database's timestamps cost the others.

``executed(token)`` (the scale-out scenario's task body) appends the task's token to
``$BENCH_RECORDER_IDS/ids-<pid>`` at once, one line per run, so that every execution is counted
per task, in every process (forked work horses included); ``executions()`` reads them back.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

PATH = os.environ.get("BENCH_RECORDER", "")
IDS_DIR = os.environ.get("BENCH_RECORDER_IDS", "")
_lock = threading.Lock()
_state = {"count": 0, "first": 0.0, "last": 0.0, "written": -1}


def started() -> None:
    if not _state["first"]:
        with _lock:
            if not _state["first"]:
                _state["first"] = time.time()


def finished() -> None:
    now = time.time()
    with _lock:
        _state["count"] += 1
        _state["last"] = now


def _write() -> None:
    path = Path(f"{PATH}-{os.getpid()}")  # one file per process: workers side by side
    with _lock:
        count, first, last = _state["count"], _state["first"], _state["last"]
    if count != _state["written"]:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(f"{count} {first!r} {last!r}")
        tmp.replace(path)
        _state["written"] = count


def _writer() -> None:
    while True:
        time.sleep(0.05)
        _write()


def install() -> bool:
    """Start the writer thread (once) if ``$BENCH_RECORDER`` is set; True when recording."""
    if not PATH:
        return False
    if not getattr(install, "done", False):
        install.done = True  # type: ignore[attr-defined]
        threading.Thread(target=_writer, name="bench-recorder", daemon=True).start()
        atexit.register(_write)  # a burst worker that exits: its last tasks too
    return True


_ids: dict[str, int] = {}  # "pid" -> file descriptor of this process's ids file


def executed(token: int) -> None:
    """Count one execution of the task ``token`` (no-op without ``$BENCH_RECORDER_IDS``)."""
    if not IDS_DIR:
        return
    pid = str(os.getpid())
    fd = _ids.get(pid)
    if fd is None:
        with _lock:
            fd = _ids.get(pid)
            if fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
                fd = _ids[pid] = os.open(Path(IDS_DIR) / f"ids-{pid}", flags, 0o644)
    os.write(fd, b"%d\n" % token)


def executions(folder: str | Path) -> dict[int, int]:
    """Executions per token, over every process's ids file in ``folder``."""
    counts: dict[int, int] = {}
    for path in Path(folder).glob("ids-*"):
        for line in path.read_text().split():
            token = int(line)
            counts[token] = counts.get(token, 0) + 1
    return counts


def read(path: str | Path) -> tuple[int, float, float]:
    """(finished count, first start, last finish) as last written by every process that
    recorded under ``path``; zeros before the first."""
    total, firsts, lasts = 0, [], []
    path = Path(path)
    for one in path.parent.glob(path.name + "-*"):
        if one.name.endswith(".tmp"):
            continue
        try:
            count, first, last = one.read_text().split()
        except (OSError, ValueError):
            continue
        if int(count):
            total += int(count)
            firsts.append(float(first))
            lasts.append(float(last))
    if not total:
        return 0, 0.0, 0.0
    return total, min(firsts), max(lasts)


def clear(path: str | Path) -> None:
    """Remove what every process recorded under ``path``."""
    path = Path(path)
    for one in path.parent.glob(path.name + "-*"):
        one.unlink(missing_ok=True)
