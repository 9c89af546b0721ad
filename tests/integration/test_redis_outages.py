"""Redis going away under workers, on a private ``redis-server`` (AOF on, free port) that the
tests restart and freeze (issue 11, items 3, 5 and 8): restarts during a drain strand nothing,
an outcome finished while Redis was away is stored when it returns (the task runs once), and a
frozen server gives callers ``BackendUnavailable`` within the socket timeout. Each prints what
it measured (``pytest -s``)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from taskyard import BackendUnavailable, TaskResultStatus
from tests import redis_fixtures, tasks
from tests.redis_fixtures import RQWorkerProcess, ThrowawayRedis, configure_redis, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]
S = TaskResultStatus
rq_processes = redis_fixtures.rq_processes
throwaway_redis = redis_fixtures.throwaway_redis


def statuses(results: list[Any]) -> Counter[str]:
    for result in results:
        result.refresh()
    return Counter(r.status.value for r in results)


def test_redis_restarts_during_a_drain_strand_nothing(
    throwaway_redis: ThrowawayRedis, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    """Before: one job per restart sat in rq's intermediate list, shown READY, until rq's
    ten-minute clean-up failed it with 0 attempts."""
    url = f"{throwaway_redis.url}?lease=2"  # the workers' settings (the CLI's URL shorthand)
    configure_redis(throwaway_redis.url, LEASE=2.0, SOCKET_CONNECT_TIMEOUT=0.5)
    log = tmp_path / "runs"
    n = 400
    results = [tasks.log_run.enqueue(str(log), str(i), 0.01) for i in range(n)]
    for index, worker_class in enumerate(["simple", "forking", "simple", "batch"]):
        worker = RQWorkerProcess.rqworker(
            url,
            *("--worker-class", worker_class, "--reap-interval", "0.5"),
            log=tmp_path / f"w{index}",
        )
        rq_processes.append(worker)
    for worker in rq_processes:  # every worker up before the first restart: the batching
        worker.wait_for_output("Listening on")  # worker may drain 90 before the rest start
    for restart in range(3):
        wait_until(lambda k=restart: log.exists() and len(log.read_text().split()) > (k + 1) * 90)
        throwaway_redis.restart(down=0.5)
    started = time.monotonic()
    wait_until(lambda: statuses(results)["SUCCESSFUL"] == n, 60, "every task to succeed")
    runs = Counter(log.read_text().split())
    print(
        f"\n3 Redis restarts during a drain of {n}: all SUCCESSFUL {time.monotonic() - started:.1f}s"
        f" after the last; {sum(runs.values()) - n} duplicate executions"
    )
    assert set(runs) == {str(i) for i in range(n)}
    # a duplicate would need an interrupted attempt, and no worker was interrupted
    assert sum(runs.values()) == n and all(r.errors == [] for r in results), [
        (r.id, r.errors) for r in results if r.errors
    ]
    client = configure_redis(throwaway_redis.url).connection()
    assert client.llen("rq:queue:default:intermediate") == 0
    assert client.zcard("taskyard:leases") == 0
    assert all(w.proc.poll() is None for w in rq_processes)


def test_an_outcome_finished_while_redis_is_away_is_stored_when_it_returns(
    throwaway_redis: ThrowawayRedis, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    """Before: the worker tried for about 15 s, then dropped the outcome; the task was failed
    (or run again) although it had succeeded."""
    url = f"{throwaway_redis.url}?lease=2"
    configure_redis(throwaway_redis.url, LEASE=2.0, SOCKET_CONNECT_TIMEOUT=0.5)
    worker = RQWorkerProcess.rqworker(url, "--worker-class", "simple", log=tmp_path / "w")
    rq_processes.append(worker)
    log = tmp_path / "runs"
    result = tasks.log_run.enqueue(str(log), "once", 2.0)
    wait_until(log.exists, what="the task to start")
    throwaway_redis.stop()  # the task finishes while Redis is away ...
    time.sleep(20)  # ... for longer than the old 15 s of tries
    throwaway_redis.start()
    result.wait(30)
    assert result.status is S.SUCCESSFUL and result.return_value == "once"
    assert result.attempts == 1 and result.errors == []
    assert log.read_text().split() == ["once"]  # it ran once


def test_a_frozen_redis_gives_callers_backend_unavailable_within_the_socket_timeout(
    throwaway_redis: ThrowawayRedis, rq_processes: list[RQWorkerProcess], tmp_path: Path
) -> None:
    """Before: ``enqueue`` blocked for more than 40 s on a SIGSTOPped Redis, no exception."""
    backend = configure_redis(throwaway_redis.url)  # the defaults: SOCKET_TIMEOUT 10 s
    worker = RQWorkerProcess.rqworker(
        throwaway_redis.url, "--worker-class", "simple", log=tmp_path / "w"
    )
    rq_processes.append(worker)
    done = tasks.add.enqueue(1, 1)
    assert done.wait(20).return_value == 2
    throwaway_redis.freeze()
    try:
        for call, bound in [
            (lambda: tasks.add.enqueue(1, 2), 10 + 2),  # the default socket timeout
            (lambda: backend.get_result(done.id), 10 + 2),
        ]:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="unreachable"):
                call()
            took = time.monotonic() - started
            print(f"\nfrozen Redis: BackendUnavailable after {took:.2f}s (bound {bound}s)")
            assert took <= bound
        quick = configure_redis(throwaway_redis.url, SOCKET_TIMEOUT=1.0)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            quick.get_result(done.id)
        assert time.monotonic() - started <= 1 + 2
        assert worker.proc.poll() is None  # the worker waits, it does not die
    finally:
        throwaway_redis.thaw()
    configure_redis(throwaway_redis.url)
    after = tasks.add.enqueue(2, 2)
    assert after.wait(40).return_value == 4  # the worker came back by itself
    assert worker.proc.poll() is None
