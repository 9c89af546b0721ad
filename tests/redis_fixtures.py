"""Fixtures and helpers for the Redis backend's tests.

Unit and contract tests use fakeredis (``fake_redis_url``). Tests that need the real server use
``redis_url``: ``TASKYARD_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``, a database
kept for tests and flushed before each one); they skip when it is absent, and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rq.timeouts import BaseDeathPenalty

from taskyard.backends.redis.keys import F_ATTEMPT, F_STATUS, as_str
from taskyard.backends.redis.worker import TaskyardSimpleWorker
from tests.conftest import skip_or_fail

REDIS_URL = os.environ.get("TASKYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
FAKE = "fakeredis.FakeRedis"


def redis_entry(url: str, **options: Any) -> dict[str, Any]:
    """A settings entry for the Redis backend at ``url`` (fakeredis for ``redis://fake-*``)."""
    opts: dict[str, Any] = {"URL": url, **options}
    if url.startswith("redis://fake-"):
        opts["CONNECTION_CLASS"] = FAKE
    return {"BACKEND": "taskyard.backends.redis.RedisBackend", "OPTIONS": opts}


def new_fake_url() -> str:
    """The URL of a fresh, empty fakeredis server (selected by its unique host name)."""
    return f"redis://fake-{uuid.uuid4().hex[:12]}:6379/0"


_reachable: dict[str, str | None] = {}


def real_redis(url: str = REDIS_URL) -> str:
    """``url`` with its database flushed; skips (fails under CI) when Redis is absent."""
    import redis

    if url not in _reachable:
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1)
            client.ping()
            client.close()
            _reachable[url] = None
        except Exception as exc:
            _reachable[url] = f"no Redis server at {url} ({type(exc).__name__}: {exc})"
    problem = _reachable[url]
    if problem is not None:
        skip_or_fail(problem)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def fake_redis_url() -> str:
    return new_fake_url()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The real test Redis, its database flushed before and after the test."""
    import redis

    url = real_redis()
    yield url
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def configure_redis(url: str, queues: list[str] | None = None, **options: Any) -> Any:
    """Configure the Redis backend at ``url`` as the default alias; return it."""
    import taskyard
    from taskyard.config import backends

    entry = redis_entry(url, **options)
    entry["QUEUES"] = queues if queues is not None else ["default", "other"]
    taskyard.configure({"default": entry})
    return backends["default"]


def burst(backend: Any, queues: list[str] | None = None, rounds: int = 1, **attrs: Any) -> None:
    """Run what is due with taskyard's in-process rq worker (a reaper pass first)."""
    from taskyard.backends.redis.recovery import reap_leases as reap

    cls = type("Worker", (HarnessWorker,), attrs) if attrs else HarnessWorker
    for _ in range(rounds):
        reap(backend.connection())
        cls(queues or ["default", "other"], connection=backend.connection()).work(
            burst=True, with_scheduler=True, logging_level="WARNING"
        )


class NoDeathPenalty(BaseDeathPenalty):
    """rq's hard limit uses signals, which only the main thread may set."""

    def setup_death_penalty(self) -> None:
        pass

    def cancel_death_penalty(self) -> None:
        pass


class HarnessWorker(TaskyardSimpleWorker):
    """An in-process worker that leaves the test process's signals and threads alone."""

    reap_interval = 0.0
    level_refresh = 0.0

    def _install_signal_handlers(self) -> None:
        pass

    def subscribe(self) -> None:
        pass


class ThreadWorker(HarnessWorker):
    death_penalty_class = NoDeathPenalty


def due_jobs(client: Any) -> list[str]:
    """Jobs not finished and not waiting for a ``run_after`` in the future."""
    now = time.time()
    due = []
    for key in client.scan_iter(match="rq:job:*", count=1000):
        name = as_str(key) or ""
        if name.count(":") != 2:
            continue  # rq:job:<id>:dependents and the like
        rq_status, status, attempt, origin = (
            as_str(v) for v in client.hmget(key, "status", F_STATUS, F_ATTEMPT, "origin")
        )
        if status in ("SUCCESSFUL", "FAILED", "CANCELLED") or rq_status in (
            "finished",
            "failed",
            "stopped",
            "canceled",
        ):
            continue
        job_id = name.rsplit(":", 1)[1]
        if rq_status == "scheduled" and not int(attempt or 0):
            score = client.zscore(f"rq:scheduled:{origin}", job_id)
            if score is not None and score > now:
                continue  # run_after still ahead
        due.append(job_id)
    return due


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RQWorkerProcess:
    """``taskyard rqworker`` (or any command) in its own process group, output to a file."""

    def __init__(self, argv: list[str], log: Any, env: dict[str, str] | None = None) -> None:
        import subprocess

        full_env = {**os.environ, "PYTHONPATH": ROOT, "TASKYARD_LOG_LEVEL": "INFO", **(env or {})}
        full_env.pop("TASKYARD_SETTINGS", None)
        full_env.pop("TASKYARD_URL", None)
        self.log = log
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=full_env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @classmethod
    def rqworker(cls, url: str, *args: str, log: Any) -> RQWorkerProcess:
        import sys

        argv = [sys.executable, "-m", "taskyard", "rqworker", "--url", url]
        return cls([*argv, "--import", "tests.tasks", *args], log)

    def output(self) -> str:
        with open(self.log) as handle:
            return handle.read()

    def wait_for_output(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the worker's output:\n{self.output()}")
            time.sleep(0.05)

    def session(self) -> list[int]:
        """Process ids in the worker's session: the worker and what it forked (rq's work horse
        runs in a process group of its own, but stays in the session)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid:  # field 6 of stat: the session id
                found.append(int(entry))
        return found

    def kill_group(self) -> None:
        """SIGKILL the worker and every process it started (a forked work horse too)."""
        import signal

        for pid in self.session():
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for pid in self.session():  # leftovers: a work horse outliving its worker
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._out.close()
        return self.proc.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayRedis:
    """A redis-server of our own on a free port, persisting every write (AOF, fsync always):
    fault tests stop, freeze and restart it without touching the shared Redis."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary
        self.proc = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self.answers, 10, "redis-server to start")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            self.proc.send_signal(signal.SIGTERM)  # SHUTDOWN: the AOF is already on disk
            self.proc.wait(10)

    def restart(self, down: float = 0.0) -> None:
        """``SHUTDOWN`` (SIGTERM), ``down`` seconds away, then start again from the AOF."""
        self.stop()
        time.sleep(down)
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    if not shutil.which("redis-server"):
        skip_or_fail("redis-server is not installed: cannot restart a Redis under a worker")
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rq_processes(tmp_path: Any) -> Iterator[list[RQWorkerProcess]]:
    """Processes a test starts (append to the list); all are stopped afterwards."""
    started: list[RQWorkerProcess] = []
    yield started
    for process in started:
        process.stop()


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
