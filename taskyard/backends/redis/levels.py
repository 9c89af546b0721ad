"""Priority levels: which rq queues hold a queue name's jobs, highest priority first, and rq's
scheduler over all of them (see ``keys`` for the naming)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from rq.queue import Queue
from rq.scheduler import RQScheduler

from taskyard.backends.redis.keys import as_str, level_queue, levels_key

logger = logging.getLogger("taskyard.backends.redis")


def queue_names(queues: Any) -> list[str]:
    if isinstance(queues, str | Queue):
        queues = [queues]
    return [q.name if isinstance(q, Queue) else str(q) for q in queues]


def expand_levels(client: Any, bases: Sequence[str]) -> list[str]:
    """The rq queues of ``bases`` at every priority level in use, highest priority first
    (then in the order of ``bases``)."""
    with client.pipeline(transaction=False) as pipe:
        for base in bases:
            pipe.smembers(levels_key(base))
        replies = pipe.execute()
    entries: list[tuple[int, int, str]] = []
    for index, (base, members) in enumerate(zip(bases, replies, strict=True)):
        levels = {0} | {int(as_str(m) or 0) for m in members}
        entries.extend((-level, index, level_queue(base, level)) for level in levels)
    return [name for _, _, name in sorted(entries)]


class LevelScheduler(RQScheduler):
    """rq's scheduler over every priority level of its queue names (found as they appear)."""

    def __init__(self, queues: Iterable[Any], connection: Any, **kwargs: Any) -> None:
        self._taskyard_bases = queue_names(queues)
        super().__init__(self._taskyard_bases, connection=connection, **kwargs)

    def _expanded(self) -> set[str] | None:
        try:
            return set(expand_levels(self.connection, self._taskyard_bases))
        except Exception as exc:  # Redis away: keep the queues already known
            logger.debug("scheduler could not read priority levels: %s", exc)
            return None

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        names = self._expanded()
        if names is not None:
            self._queue_names = names
        acquired: set[str] = super().acquire_locks(auto_start)  # type: ignore[no-untyped-call]
        return acquired

    @property
    def should_reacquire_locks(self) -> bool:
        names = self._expanded()
        if names is not None and names - self._queue_names:
            self._queue_names = names
            return True
        return bool(super().should_reacquire_locks)


__all__ = ["LevelScheduler", "expand_levels", "queue_names"]
