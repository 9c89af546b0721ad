"""``taskyard status``, ``health`` and ``prune`` on the Redis backend (issue 14): the same
mixture of tasks run on the Database backend (SQLite) and on Redis (fakeredis, and the real
server) gives the same status table, the same prune report and health lines of the same
shape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import taskyard
from taskyard.backends.redis.ops import RedisOps
from taskyard.cli import main
from taskyard.config import backends
from tests import redis_fixtures
from tests.integration.test_inspection import drain_database, enqueue_mixture
from tests.redis_fixtures import FAKE, burst, configure_redis, new_fake_url

redis_url = redis_fixtures.redis_url


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    capsys.readouterr()
    assert main(list(argv)) == code, capsys.readouterr().err
    return capsys.readouterr().out


def table(status: str) -> list[str]:
    """The queue table of ``taskyard status`` (the oldest-wait column cut off)."""
    lines = status.split("\n\nworkers:", maxsplit=1)[0].splitlines()
    return [line[:80].rstrip() for line in lines]


def database_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/queue.sqlite3"
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": ["default", "other"],
                "OPTIONS": {"URL": url, "AUTO_MIGRATE": True},
            }
        }
    )
    enqueue_mixture()
    drain_database(backends["default"])  # type: ignore[arg-type]
    return outputs(capsys, url)


def redis_run(url: str, cli_url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    backend = configure_redis(url)
    enqueue_mixture()
    burst(backend, rounds=4)
    return outputs(capsys, cli_url)


def outputs(capsys: pytest.CaptureFixture[str], url: str) -> dict[str, str]:
    return {
        "status": run(capsys, "status", "--url", url),
        "health": run(capsys, "health", "--url", url, "--no-workers"),
        "unhealthy": run(capsys, "health", "--url", url, code=1),
        "dry": run(
            capsys,
            "prune",
            "--url",
            url,
            "--older-than",
            "0s",
            "--failed-older-than",
            "0s",
            "--dry-run",
        ),
        "prune": run(capsys, "prune", "--url", url, "--older-than", "0s"),
        "after": run(capsys, "status", "--url", url),
        "list": run(capsys, "list", "--url", url, "--json"),
    }


@pytest.mark.parametrize("server", ["fake", "real"])
def test_status_health_and_prune_match_the_database_backend(
    server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    database = database_run(tmp_path, capsys)
    url = request.getfixturevalue("redis_url") if server == "real" else new_fake_url()
    cli_url = f"{url}?connection_class={FAKE}" if server == "fake" else url
    redis = redis_run(url, cli_url, capsys)

    assert table(redis["status"]) == table(database["status"])
    assert table(redis["after"]) == table(database["after"])
    assert "default                        0           0           3" in redis["status"]
    assert re.search(r"^workers: 0 live, 0 not heartbeating$", redis["status"], re.M)
    for key in ("dry", "prune"):
        assert redis[key] == database[key]
    assert "would delete 4 SUCCESSFUL/CANCELLED result(s) older than 0:00:00" in redis["dry"]
    assert "would delete 1 FAILED result(s)" in redis["dry"]
    assert redis["list"].count('"id"') == 1  # only the FAILED task is left

    assert re.fullmatch(r"ok   redis: redis://\S+\n", redis["health"]) or (
        server == "real"
        and re.fullmatch(r"ok   redis: .*, master with \d+ replica\(s\)\n", redis["health"])
    )
    assert redis["unhealthy"].splitlines()[1] == "FAIL workers: 0 worker(s) heartbeating"
    assert database["unhealthy"].splitlines()[1] == redis["unhealthy"].splitlines()[1]


def test_prune_removes_every_key_of_a_job_and_respects_queues_and_age(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = new_fake_url()
    backend = configure_redis(url)
    results = enqueue_mixture()
    burst(backend, rounds=4)
    client = backend.connection()
    ok = results["ok"].id
    assert client.exists(f"rq:job:{ok}", f"rq:results:{ok}") == 2
    cli_url = f"{url}?connection_class={FAKE}"
    out = run(capsys, "prune", "--url", cli_url, "--older-than", "1h", "--failed-older-than", "1h")
    assert "deleted 0 SUCCESSFUL/CANCELLED" in out and "deleted 0 FAILED" in out
    out = run(capsys, "prune", "--url", cli_url, "--older-than", "0s", "--queue", "other")
    assert "deleted 0 SUCCESSFUL/CANCELLED" in out
    run(capsys, "prune", "--url", cli_url, "--older-than", "0s", "--batch-size", "1")
    assert client.exists(f"rq:job:{ok}", f"rq:results:{ok}") == 0
    assert client.zcard("rq:finished:default:p7") == 0
    assert client.exists(f"rq:job:{results['failing'].id}")  # FAILED kept without the flag


def test_status_lists_rq_workers_live_and_gone(capsys: pytest.CaptureFixture[str]) -> None:
    url = new_fake_url()
    backend = configure_redis(url)
    client = backend.connection()
    for name, ttl in (("alive", 60), ("gone", None)):
        key = f"rq:worker:{name}"
        client.sadd("rq:workers", key)
        client.hset(
            key,
            mapping={
                "state": "idle",
                "queues": "default",
                "last_heartbeat": "2026-01-01T00:00:00.000000Z",
                "successful_job_count": 5,
                "failed_job_count": 2,
            },
        )
        if ttl:
            client.expire(key, ttl)
    client.delete("rq:worker:gone")  # rq's registration outlived the worker's key
    ops = RedisOps(backend)
    assert ops.live_worker_ids() == {"alive"}
    out = run(capsys, "status", "--url", f"{url}?connection_class={FAKE}")
    assert "workers: 1 live, 1 not heartbeating" in out
    assert re.search(
        r"alive\s+live\s+idle\s+queues=default\s+threads=1\s+processed=7\s+failed=2", out
    )
