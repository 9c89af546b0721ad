"""Job counters of ``taskyard rqworker`` for ``/metrics``, read from rq's worker hashes.

rq keeps each worker's ``successful_job_count`` and ``failed_job_count`` in its Redis hash
(``rq:worker:<name>``), written by the work horse; the parent process never sees them in
memory. ``WorkerCounters`` sums them over every worker the command ran (a pool's children, or
the successive workers of a restarted loop) and never lets a total go down when a worker is
replaced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

_FIELDS = ("successful_job_count", "failed_job_count")


class WorkerCounters:
    """``read()`` -> (succeeded, failed) jobs over the workers ``names()`` returns."""

    def __init__(self, client: Any, names: Callable[[], Iterable[str]]) -> None:
        self.client = client
        self.names = names
        self._seen: dict[str, tuple[int, int]] = {}
        self._base = (0, 0)
        self._lock = threading.Lock()

    def read(self) -> tuple[int, int]:
        from rq.worker import Worker

        with self._lock:
            names = sorted(set(self.names()) | set(self._seen))
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(f"{Worker.redis_worker_namespace_prefix}{name}", _FIELDS)
                replies = pipe.execute()
            for name, (ok, failed) in zip(names, replies, strict=True):
                if ok is None and failed is None:
                    continue  # expired: keep what was last seen
                now = (int(ok or 0), int(failed or 0))
                before = self._seen.get(name, (0, 0))
                if now[0] < before[0] or now[1] < before[1]:  # a new worker under that name
                    self._base = (self._base[0] + before[0], self._base[1] + before[1])
                self._seen[name] = now
            return (
                self._base[0] + sum(v[0] for v in self._seen.values()),
                self._base[1] + sum(v[1] for v in self._seen.values()),
            )
