"""``taskyard status``, ``health`` and ``prune`` on the Redis backend: counts from rq's queues
and registries, rq's worker registrations, and deletion of finished jobs by age.

What each taskyard status counts, per queue name (every priority level summed):
READY — waiting in the rq queue, scheduled (``run_after``, retry backoff) or deferred
(``depends_on``); RUNNING — in rq's started registry; SUCCESSFUL, FAILED, CANCELLED — rq's
finished, failed and canceled registries (entries whose retention has not run out).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from taskyard.backends.redis.backend import RedisBackend
from taskyard.backends.redis.health import queue_stats
from taskyard.backends.redis.keys import F_RECORD, as_str, split_level_queue
from taskyard.backends.redis.record import load_record
from taskyard.worker.health import QueueStats

#: taskyard status -> rq registries (by key name) and whether the rq queue list counts too
_READY = ("scheduled", "deferred")
_FINISHED = {"SUCCESSFUL": ("finished",), "FAILED": ("failed",), "CANCELLED": ("canceled",)}
#: registries whose score is the entry's expiry (rq scores its canceled registry by the time)
_SCORED_BY_EXPIRY = ("finished", "failed")


def _registry_key(kind: str, name: str) -> str:
    return f"rq:{kind}:{name}"


class RedisOps:
    """The status source of ``taskyard status`` and ``health`` for a Redis backend."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    @property
    def client(self) -> Any:
        return self.backend.connection()

    def ping(self) -> None:
        self.backend._guard(self.client.ping)

    def rq_queues(self) -> list[str]:
        """Every rq queue name (priority levels included) rq knows of."""
        from rq.queue import Queue

        prefix = Queue.redis_queue_namespace_prefix
        keys = self.backend._guard(self.client.smembers, Queue.redis_queues_keys)
        return sorted((as_str(k) or "").removeprefix(prefix) for k in keys if k)

    def bases(self) -> list[str]:
        """Queue names (without priority levels)."""
        return sorted({split_level_queue(n)[0] for n in self.rq_queues()})

    def counts(self) -> dict[tuple[str, str], int]:
        """(queue, status) -> tasks, read in one pipelined round trip."""
        return self.backend._guard(self._counts)

    def _counts(self) -> dict[tuple[str, str], int]:
        names = self.rq_queues()
        now = time.time()
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(f"rq:queue:{name}")
                for kind in _READY:
                    pipe.zcard(_registry_key(kind, name))
                pipe.zcard(_registry_key("wip", name))
                for kinds in _FINISHED.values():
                    for kind in kinds:
                        if kind in _SCORED_BY_EXPIRY:  # entries past retention are not counted
                            pipe.zcount(_registry_key(kind, name), now, "+inf")
                        else:
                            pipe.zcard(_registry_key(kind, name))
            replies = iter(pipe.execute())
        out: dict[tuple[str, str], int] = {}

        def add(base: str, status: str, n: int) -> None:
            if n:
                out[(base, status)] = out.get((base, status), 0) + n

        for name in names:
            base = split_level_queue(name)[0]
            add(base, "READY", sum(int(next(replies)) for _ in range(1 + len(_READY))))
            add(base, "RUNNING", int(next(replies)))
            for status, kinds in _FINISHED.items():
                add(base, status, sum(int(next(replies)) for _ in kinds))
        return out

    def stats(self) -> dict[str, QueueStats]:
        """Per queue holding pending tasks (as the Database backend's): waiting, scheduled,
        running, failed, oldest waiting."""
        found = self.backend._guard(queue_stats, self.client, self.bases())
        return {k: v for k, v in found.items() if v.waiting or v.scheduled or v.running}

    def workers(self) -> list[dict[str, Any]]:
        """rq's registered workers (taskyard's and plain rq's), as ``taskyard worker`` rows."""
        return self.backend._guard(self._workers)

    def _workers(self) -> list[dict[str, Any]]:
        from rq.utils import utcparse
        from rq.worker import Worker

        keys = sorted(as_str(k) or "" for k in self.client.smembers(Worker.redis_workers_keys))
        fields = ("state", "queues", "last_heartbeat", "successful_job_count", "failed_job_count")
        with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
                pipe.ttl(key)
            replies = pipe.execute()
        now = time.time()
        rows = []
        for i, key in enumerate(keys):
            state, queues, beat, ok, failed = (as_str(v) for v in replies[2 * i])
            ttl = int(replies[2 * i + 1])
            seen_ago = None
            if beat:
                try:
                    seen_ago = max(0.0, now - utcparse(beat).timestamp())
                except ValueError:
                    seen_ago = None
            done, bad = int(ok or 0), int(failed or 0)
            rows.append(
                {
                    "worker_id": key.removeprefix(Worker.redis_worker_namespace_prefix),
                    "state": state or "?",
                    "queues": queues or "",
                    "threads": 1,
                    "processed": done + bad,
                    "failed": bad,
                    "seen_ago": seen_ago,
                    # rq expires a worker's key when it stops heartbeating (its worker_ttl)
                    "live": ttl != -2 and seen_ago is not None,
                }
            )
        return rows

    def live_worker_ids(self) -> set[str]:
        return {w["worker_id"] for w in self.workers() if w["live"]}

    def extra_lines(self) -> list[str]:
        return []

    # -- prune ----------------------------------------------------------------------------------

    def prune(
        self,
        before: datetime,
        statuses: Sequence[str],
        queues: Sequence[str] | None,
        batch: int,
        dry_run: bool,
    ) -> int:
        """Delete the jobs in rq's finished/failed/canceled registries of ``statuses`` that
        ended before ``before`` — the job hash, rq's result stream, its dependents set and the
        registry entry — ``batch`` jobs per round trip; return how many (would be) deleted.
        Registry entries whose job is already gone are dropped too (not counted)."""
        return self.backend._guard(self._prune, before, statuses, queues, batch, dry_run)

    def _prune(
        self,
        before: datetime,
        statuses: Sequence[str],
        queues: Sequence[str] | None,
        batch: int,
        dry_run: bool,
    ) -> int:
        cutoff = before.timestamp()
        wanted = set(queues or ())
        registries = [
            _registry_key(kind, name)
            for name in self.rq_queues()
            if not wanted or split_level_queue(name)[0] in wanted
            for status in statuses
            for kind in _FINISHED[status]
        ]
        deleted = 0
        for registry in registries:
            entries = self.client.zrange(registry, 0, -1, withscores=True)
            for chunk in _chunks(entries, batch):
                with self.client.pipeline(transaction=False) as pipe:
                    for job_id, _ in chunk:
                        pipe.hmget(f"rq:job:{as_str(job_id)}", "status", "ended_at", F_RECORD)
                    replies = pipe.execute()
                old: list[str] = []
                gone: list[str] = []
                for (raw_id, score), (status, ended, record) in zip(chunk, replies, strict=True):
                    job_id = as_str(raw_id) or ""
                    if status is None:
                        gone.append(job_id)
                        continue
                    finished = _finished_at(ended, record)
                    if finished is None and registry.startswith("rq:canceled:"):
                        finished = float(score)  # rq scores this registry by the time
                    if finished is not None and finished < cutoff:
                        old.append(job_id)
                deleted += len(old)
                if dry_run or not (old or gone):
                    continue
                with self.client.pipeline(transaction=False) as pipe:
                    for job_id in old:
                        pipe.delete(
                            f"rq:job:{job_id}",
                            f"rq:results:{job_id}",
                            f"rq:job:{job_id}:dependents",
                        )
                    pipe.zrem(registry, *old, *gone)
                    pipe.execute()
        return deleted


def _finished_at(ended: bytes | None, record: bytes | None) -> float | None:
    """When a job ended: rq's ``ended_at``, else taskyard's record; ``None`` if unreadable."""
    from rq.utils import utcparse

    text = as_str(ended)
    try:
        if text:
            return float(utcparse(text).timestamp())
        when = load_record(record).get("finished_at")
        return datetime.fromisoformat(str(when)).timestamp() if when else None
    except ValueError:
        return None  # a damaged job: show/list name it; prune leaves it alone


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def health_check(
    backend: RedisBackend, *, require_workers: bool, probe_queue: str | None, probe_timeout: float
) -> list[tuple[str, bool, str]]:
    """The checks of ``taskyard health`` on Redis: (name, ok, detail) each."""
    from taskyard.exceptions import BackendUnavailable, InvalidTaskBackend
    from taskyard.worker.probes import probe

    ops = RedisOps(backend)
    checks: list[tuple[str, bool, str]] = []
    from redis.exceptions import ResponseError

    try:
        ops.ping()
        detail = backend.describe_connection()
        try:  # the role tells which server a Sentinel client reached
            info = backend._guard(backend.connection().info, "replication")
            detail += (
                f", {as_str(info.get('role'))} with {info.get('connected_slaves', 0)} replica(s)"
            )
        except ResponseError:  # a server or stand-in without INFO
            pass
        checks.append(("redis", True, detail))
    except (BackendUnavailable, InvalidTaskBackend) as exc:
        return [("redis", False, str(exc))]
    if require_workers:
        live = ops.live_worker_ids()
        checks.append(("workers", bool(live), f"{len(live)} worker(s) heartbeating"))
    if probe_queue is not None:
        ok, detail = probe(backend, probe_queue, probe_timeout)
        checks.append(("probe", ok, detail))
    return checks
