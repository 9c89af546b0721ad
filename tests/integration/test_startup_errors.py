"""Issue 12, item 3: bad connection targets stop the long-running commands at start-up with one
line naming the target (permanent errors at once; transient ones after a bounded, logged
back-off), never a traceback or an endless retry loop."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from taskyard.worker.startup import permanent_reason, reach
from tests.cli_support import ROOT, one_line_error, taskyard

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def with_database(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))


def retry_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if LOG_LINE.match(line) and "retry" in line]


@pytest.mark.postgres
def test_worker_on_a_database_that_does_not_exist(_postgres_server: str, tmp_path: Path) -> None:
    url = with_database(_postgres_server, "taskyard_no_such_database_12")
    started = time.monotonic()
    done = taskyard("worker", "--url", url, cwd=tmp_path)
    line = one_line_error(done)
    assert time.monotonic() - started < 20  # not the 18 warnings in 8 s, then forever
    assert done.returncode == 2
    assert "taskyard_no_such_database_12" in line and "the database does not exist" in line
    assert retry_lines(done.stderr) == []  # permanent: not retried


@pytest.mark.postgres
def test_commands_on_an_unknown_role(_postgres_server: str, tmp_path: Path) -> None:
    url = with_database(_postgres_server, "postgres", user="taskyard_no_such_role")
    for argv in (
        ["worker", "--url", url],
        ["cron", "--url", url, "--import", "examples.cron_example"],
    ):
        done = taskyard(*argv, cwd=ROOT if argv[0] == "cron" else tmp_path)
        line = one_line_error(done)
        assert "taskyard_no_such_role" in line and "not retried" in line, argv
    done = taskyard("status", "--url", url, cwd=tmp_path)
    assert "taskyard_no_such_role" in one_line_error(done)


def test_an_unknown_host_is_permanent(tmp_path: Path) -> None:
    for url in (
        "postgresql://app@no-such-host.invalid/app",
        "redis://no-such-host.invalid:6379/0",
    ):
        command = "rqworker" if url.startswith("redis") else "worker"
        started = time.monotonic()
        done = taskyard(command, "--url", url, cwd=tmp_path)
        line = one_line_error(done)
        assert "no-such-host.invalid" in line and "unknown host" in line, line
        assert done.returncode == 2 and time.monotonic() - started < 30


def test_rqworker_on_a_refused_port_backs_off_then_stops(tmp_path: Path) -> None:
    started = time.monotonic()
    done = taskyard("rqworker", "--url", "redis://127.0.0.1:63999/0", "--connect-retries", "2",
                    cwd=tmp_path)  # fmt: skip
    line = one_line_error(done)
    assert "redis://127.0.0.1:63999/0" in line and "after 3 tries" in line
    assert done.returncode == 1
    steps = retry_lines(done.stderr)
    assert len(steps) == 2, done.stderr  # one log line per step
    assert "retry 1 of 2 in 1s" in steps[0] and "retry 2 of 2 in 2s" in steps[1]
    assert 2.5 < time.monotonic() - started < 30


def test_a_worker_on_a_refused_port_fails_at_once_with_no_retries(tmp_path: Path) -> None:
    done = taskyard("worker", "--url", "postgresql://app@127.0.0.1:1/app", "--connect-retries",
                    "0", cwd=tmp_path)  # fmt: skip
    line = one_line_error(done)
    assert "127.0.0.1:1" in line and done.returncode == 1


def test_traceback_flag_shows_the_traceback(tmp_path: Path) -> None:
    done = taskyard("status", "--url", "sqlite:///missing.db", "--traceback", cwd=tmp_path)
    assert "Traceback (most recent call last)" in done.stderr
    assert "BackendMissing" in done.stderr


# -- the schedule itself, without processes ---------------------------------------------------


def test_the_back_off_schedule_is_bounded() -> None:
    from taskyard.command import CommandError
    from taskyard.exceptions import BackendUnavailable

    slept: list[float] = []

    def refuse() -> None:
        raise BackendUnavailable("cannot connect: Connection refused")

    with pytest.raises(CommandError, match="after 8 tries"):
        reach(refuse, "the store", retries=7, sleep=slept.append)
    assert slept == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize(
    ("message", "permanent"),
    [
        ('FATAL:  database "x" does not exist', True),
        ('FATAL:  password authentication failed for user "app"', True),
        ('could not translate host name "db" to address', True),
        ("Error -2 connecting to nohost:6379. Name or service not known.", True),
        ("WRONGPASS invalid username-password pair or user is disabled.", True),
        ("Connection refused", False),
        ("timeout expired", False),
        ("the database system is starting up", False),
    ],
)
def test_permanent_or_transient(message: str, permanent: bool) -> None:
    from taskyard.exceptions import BackendUnavailable

    try:
        try:
            raise OSError(message)
        except OSError as cause:
            raise BackendUnavailable("cannot connect") from cause
    except BackendUnavailable as exc:
        assert (permanent_reason(exc) is not None) is permanent
