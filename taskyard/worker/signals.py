"""Warm, then cold: what SIGTERM and SIGINT do to a worker process (every worker class).

The first signal stops claiming and lets running tasks finish (warm shutdown); the next one
stops at once (cold). See ``docs/workers.md``.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable

logger = logging.getLogger("taskyard.worker")


def install_stop_signals(
    stop: Callable[[bool], None],
    *,
    same_stop_within: float = 0.0,
    before: Callable[[], None] | None = None,
    after_cold: Callable[[], None] | None = None,
) -> None:
    """Call ``stop(False)`` on the first SIGTERM/SIGINT and ``stop(True)`` on the next.

    ``same_stop_within``: a second signal this soon after the first counts as the same stop
    (a terminal and a supervisor both sending one; rq's rule). ``before`` runs first on every
    signal and may raise to interrupt the main thread; ``after_cold`` runs after a cold stop.
    """
    seen = {"count": 0, "at": 0.0}

    def handler(signum: int, frame: object) -> None:
        if before is not None:
            before()
        now = time.monotonic()
        if seen["count"] and now - seen["at"] < same_stop_within:
            return
        seen["count"] += 1
        seen["at"] = now
        name = signal.Signals(signum).name
        if seen["count"] == 1:
            logger.warning("%s: warm shutdown (finishing running tasks; again to stop now)", name)
            stop(False)
        else:
            logger.warning("%s: cold shutdown", name)
            stop(True)
            if after_cold is not None:
                after_cold()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
