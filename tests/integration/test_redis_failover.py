"""High availability through Sentinel, with real servers (issue 14): a master, its replicas and
three sentinels started by the test (``tests/redis_sentinel.py``); a worker drains while two
enqueuer threads keep enqueueing, and the master is SIGKILLed. Enqueuers and the worker must
follow the promoted replica within the bound ``docs/backends/redis.md`` documents, and the test
reports what was lost: acknowledged enqueues whose job is missing or never ran.

Without ``MIN_REPLICAS`` an enqueue acknowledged by the master just before it died may be lost
(replication is asynchronous); with ``MIN_REPLICAS=1`` none may be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import taskyard
from taskyard import BackendUnavailable, NotReplicated, TaskResultDoesNotExist
from taskyard.config import backends
from tests import tasks
from tests.redis_fixtures import RQWorkerProcess, configure_redis, wait_until
from tests.redis_sentinel import DOWN_AFTER_MS, SentinelSet, sentinel_set

pytestmark = [pytest.mark.redis, pytest.mark.slow]
__all__ = ["sentinel_set"]

#: Documented bound (docs/backends/redis.md, "High availability"): a client follows a failover
#: within Sentinel's detection and promotion time plus FAILOVER_TIMEOUT's retries. With
#: down-after 1 s, the promotion here takes 2 to 4 s; the assertions allow for a loaded machine.
FOLLOW_BOUND = 15.0


@dataclass
class Enqueued:
    #: (call started, call ended, job id)
    acknowledged: list[tuple[float, float, str]] = field(default_factory=list)
    refused: list[tuple[float, str]] = field(default_factory=list)
    longest_call: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def enqueue_until(stop: threading.Event, out: Enqueued) -> None:
    while not stop.is_set():
        started = time.time()
        try:
            result = tasks.noop.enqueue()
        except (BackendUnavailable, NotReplicated) as exc:
            with out.lock:
                out.refused.append((time.time() - started, f"{type(exc).__name__}: {exc}"[:300]))
            time.sleep(0.05)
            continue
        ended = time.time()
        with out.lock:
            out.acknowledged.append((started, ended, result.id))
            out.longest_call = max(out.longest_call, ended - started)
        time.sleep(0.005)


def started_at(client: Any, job_id: str) -> float | None:
    raw = client.hget(f"rq:job:{job_id}", "taskyard")
    when = json.loads(raw).get("started_at") if raw else None
    if not when:
        return None
    from datetime import datetime

    return datetime.fromisoformat(when).timestamp()


def drain_through_a_failover(
    servers: SentinelSet, tmp_path: Path, **options: Any
) -> dict[str, Any]:
    url = f"{servers.url}?failover_timeout=20"
    backend = configure_redis(servers.url, queues=["default"], FAILOVER_TIMEOUT=20.0, **options)
    backlog = [tasks.noop.enqueue().id for _ in range(300)]
    worker = RQWorkerProcess.rqworker(url, "--worker-class", "simple", log=tmp_path / "worker.log")
    out = Enqueued()
    stop = threading.Event()
    threads = [threading.Thread(target=enqueue_until, args=(stop, out)) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: len(out.acknowledged) > 100, 30, "enqueues before the kill")
        killed = time.time()
        servers.kill_master()
        wait_until(
            lambda: any(t > killed for t, _, _ in out.acknowledged), 60, "an enqueue after the kill"
        )
        time.sleep(2.0)  # a little load on the new master
        stop.set()
        for thread in threads:
            thread.join(30)
        acknowledged = [job_id for _, _, job_id in out.acknowledged] + backlog
        client = backend.connection()

        def settled() -> bool:
            return backend.pending_count(["default"]) == 0 and not client.zcard("rq:wip:default")

        wait_until(settled, 90, "the worker to drain the promoted replica")
        lost, not_run = [], []
        for job_id in acknowledged:
            try:
                status = tasks.noop.get_result(job_id).status.value
            except TaskResultDoesNotExist:
                lost.append(job_id)
                continue
            if status != "SUCCESSFUL":
                not_run.append((job_id, status))
        # from the kill to the first acknowledgement of a call that was waiting at the kill or
        # began after it
        after = [end for start, end, _ in out.acknowledged if end > killed]
        starts = [s for s in (started_at(client, i) for i in acknowledged) if s and s > killed]
        report = {
            "promoted": servers.master_address(),
            "acknowledged": len(acknowledged),
            "refused": out.refused,
            "lost": lost,
            "not_run": not_run,
            "enqueue_follow_s": round(min(after) - killed, 2),
            "longest_enqueue_s": round(out.longest_call, 2),
            "worker_follow_s": round(min(starts) - killed, 2) if starts else None,
        }
        print(f"failover report ({options or 'no MIN_REPLICAS'}): {report}")
        return report
    finally:
        stop.set()
        worker.stop()
        backends["default"].close()


def test_enqueuers_and_a_worker_follow_a_failover(
    sentinel_set: SentinelSet, tmp_path: Path
) -> None:
    old_master = sentinel_set.master_port
    report = drain_through_a_failover(sentinel_set, tmp_path)
    assert report["promoted"] == sentinel_set.replica_ports[0] != old_master
    assert report["enqueue_follow_s"] < FOLLOW_BOUND
    assert report["worker_follow_s"] is not None and report["worker_follow_s"] < FOLLOW_BOUND
    assert report["longest_enqueue_s"] < 20.0 + DOWN_AFTER_MS / 1000 + 5  # FAILOVER_TIMEOUT
    assert not report["not_run"]
    # replication is asynchronous: only what the master acknowledged in its last moments may be
    # lost; the report says how much (usually nothing on one machine)
    assert len(report["lost"]) <= 50


@pytest.mark.parametrize("sentinel_set", [2], indirect=True)
def test_min_replicas_loses_no_acknowledged_enqueue(
    sentinel_set: SentinelSet, tmp_path: Path
) -> None:
    report = drain_through_a_failover(
        sentinel_set, tmp_path, MIN_REPLICAS=1, MIN_REPLICAS_TIMEOUT=1.0
    )
    assert report["promoted"] in sentinel_set.replica_ports
    assert report["lost"] == [] and report["not_run"] == []
    assert report["enqueue_follow_s"] < FOLLOW_BOUND
    assert report["worker_follow_s"] is not None and report["worker_follow_s"] < FOLLOW_BOUND


def test_every_worker_class_and_the_operations_commands_use_sentinel(
    sentinel_set: SentinelSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskyard.cli import main
    from tests.redis_fixtures import ROOT

    configure_redis(sentinel_set.url, queues=["default"])
    url = f"{sentinel_set.url}?queues=default"
    for cls in ("simple", "forking", "pool"):
        results = [tasks.add.enqueue(i, 1) for i in range(5)]
        argv = [sys.executable, "-m", "taskyard", "rqworker", "--url", url, "--import"]
        argv += ["tests.tasks", "--worker-class", cls, "--burst", "--log-level", "warning"]
        done = subprocess.run(
            argv,
            check=False,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert [r.wait(5).return_value for r in results] == [1, 2, 3, 4, 5], cls
    capsys.readouterr()
    assert main(["health", "--url", url, "--no-workers"]) == 0
    out = capsys.readouterr().out
    assert f"ok   redis: {sentinel_set.url}, master with 1 replica(s)" in out
    assert main(["status", "--url", url]) == 0
    assert "default                        0           0          15" in capsys.readouterr().out


@pytest.mark.parametrize("min_replicas", [0, 1])
def test_what_an_unreplicated_master_loses_and_min_replicas_refuses(
    sentinel_set: SentinelSet, min_replicas: int
) -> None:
    """Replication made to lag for real: the replica is SIGSTOPped while 40,000 tasks are
    bulk-enqueued (more than the kernel's socket buffers hold, so the rest waits in the
    master's output buffer), then the master is SIGKILLed and the replica resumed and promoted.
    Without ``MIN_REPLICAS`` the master acknowledged tasks the replica never received: they are
    lost. With ``MIN_REPLICAS=1`` the same enqueue raises ``NotReplicated`` (nothing was
    acknowledged, so nothing acknowledged is lost)."""
    backend = configure_redis(
        sentinel_set.url,
        queues=["default"],
        MIN_REPLICAS=min_replicas,
        MIN_REPLICAS_TIMEOUT=1.0,
        FAILOVER_TIMEOUT=20.0,
    )
    old_master = sentinel_set.master_port
    acknowledged: list[str] = []
    refused: NotReplicated | None = None
    try:
        sentinel_set.freeze_replicas()
        try:
            acknowledged = [
                r.id for r in taskyard.enqueue_many(tasks.noop.prepare() for _ in range(40_000))
            ]
        except NotReplicated as exc:
            refused = exc
        sentinel_set.kill_master()
    finally:
        sentinel_set.thaw_replicas()
    wait_until(lambda: sentinel_set.master_address() not in (None, old_master), 30, "promotion")
    client = backend.connection()
    with client.pipeline(transaction=False) as pipe:
        for job_id in acknowledged:
            pipe.exists(f"rq:job:{job_id}")
        present = sum(pipe.execute()) if acknowledged else 0
    lost = len(acknowledged) - present
    print(
        f"MIN_REPLICAS={min_replicas}: {len(acknowledged)} acknowledged, {lost} of them lost; "
        f"refused: {len(refused.result_ids) if refused else 0} (NotReplicated)"
    )
    if min_replicas:
        assert refused is not None and len(refused.result_ids) == 40_000 and not acknowledged
    else:
        assert len(acknowledged) == 40_000 and lost > 0
    backends["default"].close()
