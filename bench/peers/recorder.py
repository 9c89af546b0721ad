"""Start and finish times for frameworks that store none (Huey, Celery).

Inside the worker process, the framework's own signals call ``started()`` before and
``finished()`` after each task; a daemon thread writes ``count first_start last_finish`` to the
file named by ``$BENCH_RECORDER`` every 50 ms while something changed. The cost inside the
worker is a lock and two clock reads per task, as a database's timestamps cost the others.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

PATH = os.environ.get("BENCH_RECORDER", "")
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


def _writer() -> None:
    path = Path(PATH)
    while True:
        time.sleep(0.05)
        with _lock:
            count, first, last = _state["count"], _state["first"], _state["last"]
        if count != _state["written"]:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(f"{count} {first!r} {last!r}")
            tmp.replace(path)
            _state["written"] = count


def install() -> bool:
    """Start the writer thread (once) if ``$BENCH_RECORDER`` is set; True when recording."""
    if not PATH:
        return False
    if not getattr(install, "done", False):
        install.done = True  # type: ignore[attr-defined]
        threading.Thread(target=_writer, name="bench-recorder", daemon=True).start()
    return True


def read(path: str | Path) -> tuple[int, float, float]:
    """(finished count, first start, last finish) as last written; zeros before the first."""
    try:
        count, first, last = Path(path).read_text().split()
    except (OSError, ValueError):
        return 0, 0.0, 0.0
    return int(count), float(first), float(last)
