"""Issue 12, item 10: ``taskyard show ID`` and ``taskyard list`` on the Database backend
(SQLite, PostgreSQL) and the Redis backend (fakeredis, real Redis), text and ``--json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskyard import TaskResult
from taskyard.backends.database import DatabaseBackend
from taskyard.cli import main
from taskyard.worker.worker import Worker, WorkerConfig
from tests import redis_fixtures, tasks
from tests.cli_support import taskyard
from tests.redis_fixtures import FAKE, burst, configure_redis, new_fake_url

redis_url = redis_fixtures.redis_url


def drain_database(db: DatabaseBackend) -> None:
    Worker(
        db,
        WorkerConfig(queues=None, burst=True, interval=0.05, handle_signals=False, worker_id="w-1"),
    ).run()


def enqueue_mixture() -> dict[str, TaskResult[Any]]:
    failing = tasks.always_fails.using(queue_name="other").enqueue()
    return {
        "ok": tasks.add.using(priority=7).enqueue(2, 3),
        "progress": tasks.with_context.enqueue(3),
        "flaky": tasks.flaky.enqueue(2),
        "failing": failing,
        "dependent": tasks.add.using(depends_on=failing).enqueue(1, 1),
    }


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def check_show_and_list(
    capsys: pytest.CaptureFixture[str], url: str, results: dict[str, TaskResult[Any]]
) -> None:
    failing, ok = results["failing"], results["ok"]
    out = run(capsys, "show", failing.id, "--url", url)
    assert f"task {failing.id}  FAILED" in out
    assert "tests.tasks.always_fails" in out and "queue:        other" in out
    assert "enqueued:" in out and " by " in out and "attempts:     3 of 3" in out
    assert out.count("ConnectionError: still down") >= 3  # each attempt's error
    assert "Traceback (most recent call last)" in out
    assert f"dependent:    {results['dependent'].id}  CANCELLED" in out

    shown = json.loads(run(capsys, "show", ok.id, "--url", url, "--json"))
    assert (shown["status"], shown["return_value"], shown["priority"]) == ("SUCCESSFUL", 5, 7)
    assert shown["enqueued_by"] and shown["attempts"][0]["worker_id"]
    assert shown["attempts"][0]["outcome"] == "succeeded"

    progress = run(capsys, "show", results["progress"].id, "--url", url)
    assert "progress:     3/3 (step 3)" in progress and "return value:" in progress
    flaky = json.loads(run(capsys, "show", results["flaky"].id, "--url", url, "--json"))
    assert [a["outcome"] for a in flaky["attempts"]] == ["failed", "succeeded"]
    assert "attempt 1 failed" in flaky["attempts"][0]["error"]["traceback"]
    dependent = json.loads(run(capsys, "show", results["dependent"].id, "--url", url, "--json"))
    assert dependent["depends_on"] == failing.id and dependent["status"] == "CANCELLED"

    listing = run(capsys, "list", "--url", url, "--status", "failed")
    assert failing.id in listing and ok.id not in listing and "still down" in listing
    assert "1 task(s)" in listing
    rows = json.loads(run(capsys, "list", "--url", url, "--json"))
    assert {r["id"] for r in rows} == {r.id for r in results.values()}
    assert [r["enqueued_at"] for r in rows] == sorted(
        (r["enqueued_at"] for r in rows), reverse=True
    )
    only = json.loads(run(capsys, "list", "--url", url, "--json", "--queue", "other"))
    assert [r["id"] for r in only] == [failing.id]
    only = json.loads(run(capsys, "list", "--url", url, "--json", "--task", "tests.tasks.add"))
    assert {r["id"] for r in only} == {ok.id, results["dependent"].id}
    assert len(json.loads(run(capsys, "list", "--url", url, "--json", "--limit", "2"))) == 2

    assert main(["show", "0190a000-0000-7000-8000-000000000000", "--url", url]) == 1
    assert "no " in capsys.readouterr().err


def test_show_and_list_on_the_database_backend(
    db: DatabaseBackend, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    results = enqueue_mixture()
    drain_database(db)
    check_show_and_list(capsys, db_url, results)
    out = run(capsys, "show", results["ok"].id, "--url", db_url)
    assert "on w-1" in out  # the attempt's worker


def test_one_unreadable_value_does_not_break_show_list_or_get_result(
    db: DatabaseBackend, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A SQLite row edited by hand (text in a timestamp or an INTEGER column) made
    # `taskyard list` fail for the whole queue with a ValueError traceback, and `show` and
    # get_result() of that task too.
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL's typed columns cannot hold such values")
    good = tasks.add.enqueue(1, 2)
    bad = tasks.add.enqueue(3, 4)
    db.connector.connection().execute(
        "UPDATE taskyard_task SET enqueued_at = 'garbage', priority = 'abc', "
        "max_attempts = 'x' WHERE id = :id",
        {"id": bad.id},
    )
    rows = json.loads(run(capsys, "list", "--url", db_url, "--json"))
    assert {r["id"] for r in rows} == {good.id, bad.id}
    shown = json.loads(run(capsys, "show", bad.id, "--url", db_url, "--json"))
    assert set(shown["details"]["unreadable"]) == {"enqueued_at", "priority", "max_attempts"}
    assert "unreadable" in run(capsys, "show", bad.id, "--url", db_url)
    result = tasks.add.get_result(bad.id)
    assert result.enqueued_at is None
    assert any("enqueued_at cannot be read" in e.traceback for e in result.errors)


@pytest.mark.parametrize("server", ["fake", "real"])
def test_show_and_list_on_the_redis_backend(
    server: str, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url") if server == "real" else new_fake_url()
    backend = configure_redis(url)
    results = enqueue_mixture()
    burst(backend, rounds=4)
    cli_url = f"{url}?connection_class={FAKE}" if server == "fake" else url
    check_show_and_list(capsys, cli_url, results)


def test_show_refuses_a_backend_without_a_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--url", "threadpool:"]) == 2
    assert "keeps results only in the process" in capsys.readouterr().err


def test_readers_never_import_task_modules(tmp_path: Path) -> None:
    """show/list name the task by its stored path: the module (which would write a marker
    when imported) is not imported, and need not be importable."""
    (tmp_path / "marked.py").write_text(
        "import pathlib\n"
        "pathlib.Path('imported').write_text('yes')\n"
        "from taskyard import task\n\n"
        "@task\ndef job() -> int:\n    return 1\n"
    )
    assert taskyard("migrate", "--url", "sqlite:///q.db", cwd=tmp_path).returncode == 0
    done = taskyard(
        "worker", "--url", "sqlite:///q.db", "--import", "marked", "--burst", cwd=tmp_path
    )
    assert done.returncode == 0
    (tmp_path / "imported").unlink()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "q.db")
    conn.execute(
        "INSERT INTO taskyard_task (id, task_path, queue_name, status, backend, enqueued_at, "
        "available_at) VALUES ('0190a000-0000-7000-8000-000000000001', 'marked.job', 'default', "
        "'READY', 'default', '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
    )
    conn.commit()
    conn.close()
    for argv in (["list"], ["show", "0190a000-0000-7000-8000-000000000001"]):
        done = taskyard(*argv, "--url", "sqlite:///q.db", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "marked.job" in done.stdout
    assert not (tmp_path / "imported").exists()
