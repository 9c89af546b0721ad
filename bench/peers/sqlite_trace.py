"""``python -m bench.peers.sqlite_trace COUNT_FILE PROGRAM ARGS…``: run a Python program (a
module with ``-m``, or a script) counting every SQL statement its ``sqlite3`` connections run.

The count is written to ``COUNT_FILE`` every 50 ms by a daemon thread (so a worker stopped by a
signal still leaves it behind).
"""

from __future__ import annotations

import runpy
import sqlite3
import sys
import threading
import time
from pathlib import Path

_count = [0]


def _trace(statement: str) -> None:
    _count[0] += 1


def counting_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
    conn = _real_connect(*args, **kwargs)  # type: ignore[arg-type]
    conn.set_trace_callback(_trace)
    return conn


_real_connect = sqlite3.connect


def main() -> None:
    out = Path(sys.argv[1])
    program = sys.argv[2:]

    def writer() -> None:
        last = -1
        while True:
            time.sleep(0.05)
            if _count[0] != last:
                last = _count[0]
                out.write_text(str(last))

    threading.Thread(target=writer, daemon=True).start()
    sqlite3.connect = counting_connect  # type: ignore[assignment]
    if program[0] == "-m":
        sys.argv = [program[1], *program[2:]]
        runpy.run_module(program[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = program
        runpy.run_path(program[0], run_name="__main__")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    try:
        main()
    finally:
        target.write_text(str(_count[0]))
