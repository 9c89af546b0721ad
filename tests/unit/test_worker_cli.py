"""``taskyard worker`` flags, the Flagsmith aliases and their environment variables."""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import taskyard
from taskyard.backends.database import DatabaseBackend
from taskyard.cli import build_parser, main
from taskyard.config import backends
from taskyard.worker.commands import worker_config
from taskyard.worker.health import HealthServer
from taskyard.worker.operations import parse_duration
from taskyard.worker.probes import WorkerHealth
from taskyard.worker.worker import Worker, WorkerConfig
from tests import tasks


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["worker", *argv])


def test_defaults_and_our_flags() -> None:
    config = worker_config(parse(), frozenset({"default", "emails"}))
    assert (config.threads, config.batch_size, config.interval, config.lease) == (5, 10, 0.5, 20.0)
    assert config.queues == ["default", "emails"]
    config = worker_config(
        parse(
            "--threads",
            "8",
            "--batch-size",
            "50",
            "--interval",
            "0.1",
            "--lease",
            "60",
            "--queues",
            "a, b",
            "--qualifier",
            "region=eu",
            "--burst",
            "--worker-id",
            "w1",
            "--max-tasks-per-process",
            "100",
        ),
        frozenset(),
    )
    assert (config.threads, config.batch_size, config.interval, config.lease) == (8, 50, 0.1, 60.0)
    assert config.queues == ["a", "b"] and config.qualifiers == {"region": "eu"}
    assert config.burst and config.worker_id == "w1" and config.max_tasks == 100
    assert worker_config(parse("--queues", "*"), frozenset({"x"})).queues is None
    assert worker_config(parse(), frozenset()).queues is None  # QUEUES [] means any


def test_flagsmith_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = worker_config(
        parse(
            "--numthreads",
            "3",
            "--sleepintervalms",
            "250",
            "--graceperiodms",
            "15000",
            "--queuepopsize",
            "7",
        ),
        frozenset({"default"}),
    )
    assert (config.threads, config.interval, config.lease, config.batch_size) == (3, 0.25, 15.0, 7)
    monkeypatch.setenv("TASK_PROCESSOR_NUM_THREADS", "9")
    monkeypatch.setenv("TASK_PROCESSOR_SLEEP_INTERVAL_MS", "2000")
    monkeypatch.setenv("TASK_PROCESSOR_GRACE_PERIOD_MS", "20000")
    monkeypatch.setenv("TASK_PROCESSOR_QUEUE_POP_SIZE", "12")
    config = worker_config(parse(), frozenset({"default"}))
    assert (config.threads, config.interval, config.lease, config.batch_size) == (9, 2.0, 20.0, 12)


def test_contradicting_flags_are_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="--threads=4 contradicts --numthreads"):
        worker_config(parse("--threads", "4", "--numthreads", "6"), frozenset())
    with pytest.raises(SystemExit):
        parse("--threads", "0")
    with pytest.raises(SystemExit):
        parse("--qualifier", "no-equals-sign")


def test_processes_default_to_one_thread() -> None:
    assert worker_config(parse("--processes", "2"), frozenset()).threads == 1


def test_durations() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("15m").total_seconds() == 900
    assert parse_duration("12H").total_seconds() == 12 * 3600
    assert parse_duration("7d").days == 7
    assert parse_duration("2w").days == 14
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_worker_refuses_a_non_database_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--url", "threadpool:", "--burst"]) == 2
    assert "not the Database backend" in capsys.readouterr().err


def test_commands_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/q.sqlite3"
    assert main(["migrate", "--url", url]) == 0
    taskyard.configure(url=url)
    for i in range(3):
        tasks.add.enqueue(i, i)
    tasks.fail.enqueue()
    assert (
        main(["worker", "--url", url, "--burst", "--queues", "*", "--import", "tests.tasks"]) == 0
    )
    capsys.readouterr()
    assert main(["status", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "workers: 0 live" in out
    assert main(["prune", "--url", url, "--older-than", "0s", "--dry-run"]) == 0
    assert "would delete 3 SUCCESSFUL/CANCELLED" in capsys.readouterr().out
    assert main(["prune", "--url", url, "--older-than", "0s", "--failed-older-than", "0s"]) == 0
    out = capsys.readouterr().out
    assert "deleted 3 SUCCESSFUL/CANCELLED" in out and "deleted 1 FAILED" in out
    assert main(["health", "--url", url, "--no-workers"]) == 0
    assert main(["health", "--url", url]) == 1  # no worker heartbeating
    assert "FAIL workers" in capsys.readouterr().out


def test_move_data_between_sqlite_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = f"sqlite:///{tmp_path}/a.sqlite3"
    target = f"sqlite:///{tmp_path}/b.sqlite3"
    assert main(["migrate", "--url", source]) == 0
    taskyard.configure(url=source)
    ids = [tasks.add.enqueue(i, 1).id for i in range(25)]
    backends.reset()
    assert main(["move-data", "--source", source, "--target", target, "--batch-size", "10"]) == 0
    assert "moved 25 task(s)" in capsys.readouterr().out
    # the target now holds data: a second move is refused
    taskyard.configure(url=source)
    tasks.add.enqueue(9, 9)
    backends.reset()
    assert main(["move-data", "--source", source, "--target", target]) == 1
    assert "already holds task data" in capsys.readouterr().err
    taskyard.configure(url=target)
    moved = tasks.add.get_result(ids[7])
    assert moved.args == [7, 1] and moved.status == "READY"
    assert main(["worker", "--url", target, "--burst", "--queues", "*"]) == 0
    assert tasks.add.get_result(ids[7]).return_value == 8


def test_interrupted_move_resumes(tmp_path: Path) -> None:
    from taskyard.backends.database.connectors import make_connector
    from taskyard.backends.database.migrate import migrate
    from taskyard.worker.operations import MOVE_MARKER, move_data

    source_url = f"sqlite:///{tmp_path}/a.sqlite3"
    taskyard.configure(url=source_url + "?auto_migrate=true")
    for i in range(30):
        tasks.add.enqueue(i, 0)
    backends.reset()
    source = make_connector(source_url, {})
    target = make_connector(f"sqlite:///{tmp_path}/b.sqlite3", {}, create=True)
    migrate(target)

    def crash(moved: int) -> None:
        if moved >= 10:
            raise KeyboardInterrupt  # the operator pressed Ctrl-C mid-way

    with pytest.raises(KeyboardInterrupt):
        move_data(source, target, batch_size=10, progress=crash)
    assert target.run("meta_get", {"key": MOVE_MARKER})  # the move is marked as in progress
    assert move_data(source, target, batch_size=10) == 20
    assert int(target.run("count_tasks")[0]["n"]) == 30
    assert int(source.run("count_tasks")[0]["n"]) == 0


def test_health_endpoints(tmp_path: Path) -> None:
    taskyard.configure(url=f"sqlite:///{tmp_path}/q.sqlite3?auto_migrate=true")
    backend = backends["default"]
    assert isinstance(backend, DatabaseBackend)
    tasks.add.enqueue(1, 1)
    tasks.add.using(run_after=__import__("datetime").timedelta(hours=1)).enqueue(1, 1)
    worker = Worker(backend, WorkerConfig(queues=None, interval=0.05, handle_signals=False))
    server = HealthServer(WorkerHealth(worker), 0, host="127.0.0.1").start()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        time.sleep(0.5)
        assert urllib.request.urlopen(f"{base}/health/liveness").status == 200
        assert urllib.request.urlopen(f"{base}/health/readiness").status == 200
        body = urllib.request.urlopen(f"{base}/processor/monitoring").read().decode()
        assert body.startswith('{"waiting": 0')
        data = json.loads(body)
        assert data["scheduled"] == 1 and data["queues"]["default"]["scheduled"] == 1
        assert "args" not in body and "kwargs" not in body
        metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
        assert 'taskyard_tasks_waiting{queue="default"} 0' in metrics
        assert "taskyard_worker_processed_total 1" in metrics
        worker.stop()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{base}/health/readiness")
        assert info.value.code == 503
    finally:
        worker.stop()
        thread.join(10)
        server.stop()
