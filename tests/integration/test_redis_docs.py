"""Every ``taskyard rqworker`` command line shown in the Redis docs and example runs (in burst
mode, against the test Redis), and the example itself runs end to end."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from taskyard import TaskResultStatus
from tests import redis_fixtures, tasks
from tests.redis_fixtures import ROOT, configure_redis

pytestmark = pytest.mark.redis
redis_url = redis_fixtures.redis_url
PAGES = [Path(ROOT) / "docs/backends/redis.md", Path(ROOT) / "examples/redis_rq/README.md"]


def command_lines() -> list[str]:
    found = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            match = re.match(r"\$ (taskyard rqworker.*)$", line.strip())
            if match:
                found.append(match.group(1))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_docs_show_rqworker_command_lines() -> None:
    assert len(command_lines()) >= 4


@pytest.mark.parametrize("line", command_lines())
def test_documented_rqworker_command_runs(line: str, redis_url: str) -> None:
    configure_redis(redis_url, queues=["default", "emails"])
    mail = tasks.add.using(queue_name="emails", priority=3).enqueue(1, 2)
    other = tasks.add.enqueue(2, 2)
    argv = shlex.split(line)[2:]  # after "taskyard rqworker"
    if "--health-port" in argv:
        argv[argv.index("--health-port") + 1] = str(free_port())
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "TASKYARD_URL": f"{redis_url}?queues=default,emails",
    }
    env.pop("TASKYARD_SETTINGS", None)
    done = subprocess.run(
        [sys.executable, "-m", "taskyard", "rqworker", *argv, "--burst", "--import", "tests.tasks"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert mail.wait(10).return_value == 3
    from taskyard.cli import build_parser

    queues = build_parser().parse_args(["rqworker", *argv]).queues
    if queues and "default" not in queues:
        other.refresh()
        assert other.status is TaskResultStatus.READY  # not one of this worker's queues
    else:
        assert other.wait(10).return_value == 4


def test_the_example_runs(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.redis_rq.run"],
        env={**os.environ, "PYTHONPATH": ROOT, "TASKYARD_URL": redis_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "urgent email: SUCCESSFUL" in done.stdout
    assert "refused, as it should be" in done.stdout
