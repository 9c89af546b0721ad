"""One timer thread for every deadline in the process: task timeouts and store round trips.

``DEADLINES.schedule(seconds, action)`` runs ``action()`` on the timer thread once ``seconds``
have passed, unless ``cancel(token)`` came first. Arming and cancelling are a dictionary insert
and delete under a lock: cheap enough for every database statement. The thread wakes at the
earliest deadline (at least once a second) and cannot die: an action that raises is logged, and
waits are capped so no deadline value can overflow the underlying wait.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("taskyard.tasks")

MAX_WAIT = 1.0


class Deadlines:
    """Actions to run when their deadline passes (see the module docstring)."""

    def __init__(self, name: str = "taskyard-deadlines") -> None:
        self._name = name
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._next_wake = math.inf

    def schedule(self, seconds: float, action: Callable[[], None]) -> int:
        """Run ``action`` after ``seconds`` (clamped to a day at most); return a token."""
        if not seconds >= 0:  # NaN too
            seconds = 0.0
        due = time.monotonic() + min(seconds, 86400.0)
        with self._cond:
            token = next(self._counter)
            self._armed[token] = (due, action)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif due < self._next_wake:
                self._cond.notify()
            return token

    def cancel(self, token: int) -> bool:
        """Forget a deadline; False if its action already ran (or is running)."""
        with self._cond:
            return self._armed.pop(token, None) is not None

    def pending(self) -> int:
        with self._cond:
            return len(self._armed)

    def _run(self) -> None:
        while True:
            due_now: list[Callable[[], None]] = []
            with self._cond:
                now = time.monotonic()
                earliest = math.inf
                for token, (due, action) in list(self._armed.items()):
                    if due <= now:
                        del self._armed[token]
                        due_now.append(action)
                    elif due < earliest:
                        earliest = due
                if not due_now:
                    wait = max(0.0, min(MAX_WAIT, earliest - now))
                    self._next_wake = now + wait
                    self._cond.wait(wait)
                    continue
            for action in due_now:
                try:
                    action()
                except Exception:
                    logger.exception("deadline action %r failed", action)


#: The process's timer thread.
DEADLINES = Deadlines()
