"""A private Redis high-availability set for failover tests: a master, a replica and three
sentinels, each a ``redis-server`` process of our own on a free port in a temporary folder
(the shared Redis is never touched). Stopped, whatever happened, by the fixture."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.redis_fixtures import free_port, wait_until

MASTER_NAME = "taskyard-ha"
DOWN_AFTER_MS = 1000


def _ask(port: int, *words: str) -> str:
    """One inline command to 127.0.0.1:``port``; the raw reply ('' when unreachable)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall((" ".join(words) + "\r\n").encode())
            time.sleep(0.02)
            return sock.recv(65536).decode(errors="replace")
    except OSError:
        return ""


class SentinelSet:
    """A master, ``replicas`` replicas and three sentinels (quorum 2, down after 1 s)."""

    def __init__(self, directory: Path, replicas: int = 1) -> None:
        self.dir = directory
        self.master_port = free_port()
        self.replica_ports = [free_port() for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def _start(self, name: str, *args: str) -> None:
        binary = shutil.which("redis-server")
        assert binary
        folder = self.dir / name
        folder.mkdir(exist_ok=True)
        log = open(folder / "log", "wb")  # noqa: SIM115 - the process owns it
        self.procs[name] = subprocess.Popen(
            [binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=folder
        )

    def start(self) -> None:
        common = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
        self._start("master", "--port", str(self.master_port), *common)
        for i, port in enumerate(self.replica_ports):
            self._start(
                f"replica{i}",
                *("--port", str(port), *common),
                *("--replicaof", "127.0.0.1", str(self.master_port)),
            )
        for port in self.replica_ports:
            wait_until(lambda p=port: "master_link_status:up" in self.info(p), 15, "replica")
        for i, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel{i}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self._start(f"sentinel{i}", str(conf), "--sentinel")
        # every sentinel must know the replica and the two other sentinels before a failover
        # can be agreed on
        for port in self.sentinel_ports:
            wait_until(lambda p=port: self._sentinel_ready(p), 30, f"sentinel on {port}")

    def _sentinel_ready(self, port: int) -> bool:
        reply = _ask(port, "SENTINEL", "MASTER", MASTER_NAME)
        lines = [line for line in reply.split("\r\n") if line and line[0] not in "*$"]
        fields = dict(zip(lines[::2], lines[1::2], strict=False))
        replicas = str(len(self.replica_ports))
        return fields.get("num-slaves") == replicas and fields.get("num-other-sentinels") == "2"

    def info(self, port: int) -> str:
        return _ask(port, "INFO", "replication")

    def master_address(self) -> int | None:
        """The port the first sentinel names as the master."""
        reply = _ask(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        lines = [line for line in reply.split("\r\n") if line and line[0] not in "*$"]
        return int(lines[1]) if len(lines) == 2 else None

    def freeze_replicas(self) -> None:
        """SIGSTOP every replica: what the master sends them piles up in the kernel's socket
        buffers, then in the master's own output buffer (lost if the master dies)."""
        for name, proc in self.procs.items():
            if name.startswith("replica"):
                proc.send_signal(signal.SIGSTOP)

    def thaw_replicas(self) -> None:
        for name, proc in self.procs.items():
            if name.startswith("replica") and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)

    def kill_master(self) -> None:
        self.procs["master"].send_signal(signal.SIGKILL)
        self.procs["master"].wait(5)

    def stop(self) -> None:
        self.thaw_replicas()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(5)


@pytest.fixture
def sentinel_set(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SentinelSet]:
    """A master, its replicas (``indirect`` parameter, default 1) and three sentinels."""
    if not shutil.which("redis-server"):
        skip_or_fail("redis-server is not installed: cannot start a master, replica, sentinels")
    servers = SentinelSet(tmp_path, getattr(request, "param", 1))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
