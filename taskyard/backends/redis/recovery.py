"""Finding jobs no worker will move on, wherever rq can leave them, and moving them on.

Every taskyard worker class runs a reaper (``worker.Reaper``) that calls ``Recovery.run``
every ``--reap-interval`` seconds. One pass looks at:

* ``taskyard:leases`` — an attempt whose lease ran out: its worker died (SIGKILL, OOM, a lost
  machine) or was cut off. The attempt was *interrupted*: ``settle.interrupt`` queues the task
  again (or fails it past ``MAX_INTERRUPTIONS``).
* rq's intermediate list of every queue (``rq:queue:<name>:intermediate``) — jobs a worker took
  and never started (it died, or Redis restarted under it). rq itself looks there every 10
  minutes and *fails* what it finds; here they are handed back, uncounted.
* rq's started registry of every queue (``rq:wip:<name>``) — jobs rq prepared whose attempt
  never began (handed back, uncounted), whose attempt is marked running without a lease
  (interrupted), or whose outcome taskyard recorded while rq still says ``started`` (rq's view
  fixed, dependents released).
* rq's ready registry (``rq:ready:<name>``) — dependents rq released but did not queue before
  its process stopped: queued, as rq's own 10-minute clean-up would.

A job is judged stranded only after it has sat in the same place for ``grace`` seconds
across passes (a live worker moves a job on within milliseconds). After Redis was unreachable
from this reaper, or restarted (its uptime is below ``grace``), leases are not judged until
Redis has answered for ``grace`` seconds: a live worker renews its leases by then, so an
outage or a restart never takes a running attempt from the worker that holds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from taskyard.backends.redis.keys import (
    F_ATTEMPT,
    F_STATUS,
    INTERMEDIATE_SUFFIX,
    LEASES_KEY,
    as_str,
)
from taskyard.backends.redis.quarantine import CorruptJob, describe, quarantine
from taskyard.backends.redis.record import FINISHED_NAMES
from taskyard.backends.redis.serializer import JSONSerializer
from taskyard.backends.redis.settle import finalize, hand_back, interrupt

logger = logging.getLogger("taskyard.backends.redis")


def reap_leases(client: Any, now: float | None = None, batch: int = 100) -> list[str]:
    """Settle every attempt whose lease ended before ``now`` (interrupted: queued again or, past
    its bound, failed). Returns the job ids acted on."""
    from rq.job import Job

    moment = time.time() if now is None else now
    ids = [as_str(m) or "" for m in client.zrangebyscore(LEASES_KEY, "-inf", moment, 0, batch)]
    acted = []
    for job_id in ids:
        try:
            status, attempt = client.hmget(Job.key_for(job_id), F_STATUS, F_ATTEMPT)
            if as_str(status) != "RUNNING":
                client.zrem(LEASES_KEY, job_id)  # finished, handed back, or gone
                continue
            if interrupt(
                client, job_id, int(attempt or 0), "its lease ran out", lease_ended_by=moment
            ):
                acted.append(job_id)
        except (CorruptJob, ValueError) as exc:
            why = f"job {job_id}: stored data cannot be read ({describe(exc)})"
            quarantine(client, job_id, why)
            acted.append(job_id)
        except Exception:
            logger.exception("reaping job %s failed; will try again", job_id)
    return acted


class Recovery:
    """One reaper's memory between passes (see the module docstring)."""

    def __init__(self, client: Any, grace: float) -> None:
        self.client = client
        self.grace = grace
        self._seen: dict[tuple[str, str], float] = {}
        # None while Redis is unreachable from here; -inf until it has ever been unreachable
        self._reachable_since: float | None = float("-inf")

    def run(self) -> list[str]:
        """One pass; returns the ids of the jobs moved on. Raises when Redis is unreachable."""
        now = time.monotonic()
        try:
            uptime = self._uptime()
        except Exception:
            self._reachable_since = None
            self._seen.clear()
            raise
        if self._reachable_since is None:
            self._reachable_since = now
            self._seen.clear()
        settled_after = min(now - self._reachable_since, uptime)
        acted: list[str] = []
        if settled_after >= self.grace:
            acted += reap_leases(self.client)
        acted += self._sweep(now, settled_after >= self.grace)
        return acted

    def _uptime(self) -> float:
        from redis.exceptions import ResponseError

        try:
            info = self.client.info("server")
        except ResponseError:  # a server without INFO (fakeredis): its uptime is unknown
            return float("inf")
        return float(info.get("uptime_in_seconds", "inf")) if isinstance(info, dict) else 1e9

    # -- the registries ---------------------------------------------------------------------

    def _sweep(self, now: float, leases_judged: bool) -> list[str]:
        from rq.queue import Queue
        from rq.registry import ReadyJobRegistry, StartedJobRegistry

        client = self.client
        prefix = Queue.redis_queue_namespace_prefix
        names = sorted(
            (as_str(k) or "")[len(prefix) :] for k in client.smembers(Queue.redis_queues_keys)
        )
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.lrange(f"{prefix}{name}{INTERMEDIATE_SUFFIX}", 0, -1)
                pipe.zrange(StartedJobRegistry(name, connection=client).key, 0, -1)
                pipe.zrange(ReadyJobRegistry(name, connection=client).key, 0, -1)
            replies = pipe.execute()
        present: set[tuple[str, str]] = set()
        acted: list[str] = []
        for index, name in enumerate(names):
            intermediate, started, ready = replies[3 * index : 3 * index + 3]
            taken = [as_str(i) or "" for i in intermediate]
            prepared = [(as_str(e) or "").split(":", 1)[0] for e in started]
            released = [as_str(i) or "" for i in ready]
            acted += self._taken(name, taken, present, now)
            acted += self._prepared(prepared, present, now, leases_judged)
            acted += self._released(name, released, present, now)
        self._seen = {k: v for k, v in self._seen.items() if k in present}
        return acted

    def _due(self, where: str, job_id: str, present: set[tuple[str, str]], now: float) -> bool:
        """Has ``job_id`` sat in ``where`` for ``grace`` seconds?"""
        key = (where, job_id)
        present.add(key)
        first = self._seen.setdefault(key, now)
        return now - first >= self.grace

    def _states(self, ids: Iterable[str]) -> list[tuple[str, str | None, str | None, bool]]:
        from rq.job import Job

        ids = list(dict.fromkeys(ids))
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(Job.key_for(job_id), "status", F_STATUS)
                pipe.zscore(LEASES_KEY, job_id)
            replies = pipe.execute()
        out = []
        for i, job_id in enumerate(ids):
            (rq_status, status), lease = replies[2 * i], replies[2 * i + 1]
            out.append((job_id, as_str(rq_status), as_str(status), lease is not None))
        return out

    def _taken(
        self, name: str, ids: list[str], present: set[tuple[str, str]], now: float
    ) -> list[str]:
        from rq.queue import Queue

        key = Queue(name, connection=self.client).key + INTERMEDIATE_SUFFIX
        acted = []
        for job_id, rq_status, _status, _lease in self._states(ids):
            if rq_status != "queued":
                # gone, or rq already started it (a worker that listens to several queues
                # leaves the id behind): the list no longer matters for it
                self.client.lrem(key, 0, job_id)
                continue
            if self._due("taken", job_id, present, now):
                acted += self._act(job_id, lambda j: hand_back(self.client, j, "taken, not begun"))
        return acted

    def _prepared(
        self, ids: list[str], present: set[tuple[str, str]], now: float, leases_judged: bool
    ) -> list[str]:
        acted = []
        for job_id, rq_status, status, lease in self._states(ids):
            if rq_status != "started" or status is None:
                continue  # a plain rq job, or rq moved it on: rq's own rules apply
            if status in FINISHED_NAMES:
                if self._due("ended", job_id, present, now):
                    acted += self._act(job_id, lambda j: finalize(self.client, j))
            elif status == "READY":
                if self._due("prepared", job_id, present, now):
                    why = "prepared by rq, attempt never began"
                    acted += self._act(job_id, lambda j, w=why: hand_back(self.client, j, w))
            elif not lease and leases_judged and self._due("unleased", job_id, present, now):
                acted += self._act(job_id, self._interrupt_unleased)
        return acted

    def _interrupt_unleased(self, job_id: str) -> object:
        from rq.job import Job

        attempt = int(self.client.hget(Job.key_for(job_id), F_ATTEMPT) or 0)
        return interrupt(self.client, job_id, attempt, "running without a lease")

    def _released(
        self, name: str, ids: list[str], present: set[tuple[str, str]], now: float
    ) -> list[str]:
        from rq.registry import ReadyJobRegistry

        due = [job_id for job_id in ids if self._due("ready", job_id, present, now)]
        if not due:
            return []
        registry = ReadyJobRegistry(name, connection=self.client, serializer=JSONSerializer)
        return [job.id for job in registry.enqueue_jobs(due)]

    def _act(self, job_id: str, action: Any) -> list[str]:
        try:
            return [job_id] if action(job_id) else []
        except CorruptJob as exc:
            quarantine(self.client, job_id, str(exc))
            return [job_id]
        except Exception:
            logger.exception("recovering job %s failed; will try again", job_id)
            return []


__all__ = ["Recovery", "reap_leases"]
