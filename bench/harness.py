"""Shared plumbing for ``bench/run_all.py`` and ``bench/soak.py``.

* the benchmark's own PostgreSQL database (``taskyard_bench``, never the tests' ``test``);
* a private ``redis-server`` on a free port (from ``bench_redis``);
* ``PgCounter``: a tiny TCP proxy in front of PostgreSQL that counts the statements and round
  trips every client sends through it, whatever its driver (psycopg, Django, Procrastinate);
* ``Stamps``: a UDP socket the latency task reports its start time to;
* the resident memory of a process tree, and ``wait_for``.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get(
    "TASKYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/taskyard_bench"
)
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def pg(sql: str, params: Any = None, url: str = PG_URL) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def pg_emptied(delete: str, *tables: str, url: str = PG_URL) -> None:
    """Run ``delete`` then ``VACUUM ANALYZE`` the tables: every run of every PostgreSQL
    subject starts from the same unbloated table, as autovacuum keeps it in production (this
    machine's server runs with autovacuum off, and a queue table's dead rows slow its claims
    run after run)."""
    pg(delete, url=url)
    for table in tables:
        pg(f"VACUUM ANALYZE {table}", url=url)


def ensure_database(url: str = PG_URL) -> None:
    """Create the benchmark's own database (so it never touches the tests' one)."""
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def table_exists(name: str) -> bool:
    return bool(pg("SELECT to_regclass(%s) IS NOT NULL", [name])[0][0])


def private_redis() -> contextlib.AbstractContextManager[str]:
    from bench.bench_redis import private_redis as start

    return start()


# -- counting PostgreSQL statements on the wire ---------------------------------------------------


class _Proxy:
    """A TCP proxy on a free local port to the server of ``url``; ``self.url`` points at it.
    Each client connection is served by ``_serve`` in a thread of its own."""

    def __init__(self, url: str, default_port: int) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or default_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        netloc = parts.netloc.rsplit("@", 1)
        auth = netloc[0] + "@" if len(netloc) == 2 else ""
        self.url = parts._replace(netloc=f"{auth}127.0.0.1:{self.port}").geturl()
        self.round_trips = 0
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        try:
            self._relay(client, upstream)
        except (ConnectionError, OSError):
            pass
        finally:
            client.close()
            upstream.close()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Pass bytes both ways, counting, until either side closes (raise ConnectionError)."""
        raise NotImplementedError


class PgCounter(_Proxy):
    """A TCP proxy to PostgreSQL counting what clients send.

    ``statements``: simple-query ('Q') and extended-protocol Execute ('E') messages;
    ``round_trips``: 'Q' and Sync ('S') messages, each of which waits for the server.
    SSL and GSS requests are refused by the proxy itself so the stream stays readable.
    """

    def __init__(self, url: str = PG_URL) -> None:
        self.statements = 0
        super().__init__(url, 5432)

    def reset(self) -> tuple[int, int]:
        with self._lock:
            out = (self.statements, self.round_trips)
            self.statements = self.round_trips = 0
        return out

    @staticmethod
    def _read_exact(sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        while True:  # startup: refuse SSL/GSS, forward the real startup message
            length = struct.unpack("!I", self._read_exact(client, 4))[0]
            body = self._read_exact(client, length - 4)
            code = struct.unpack("!I", body[:4])[0]
            if code in (80877103, 80877104):
                client.sendall(b"N")
                continue
            upstream.sendall(struct.pack("!I", length) + body)
            break
        pending = b""
        while True:
            readable, _, _ = select.select([client, upstream], [], [])
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError
                if sock is client:
                    upstream.sendall(data)
                    pending = self._count(pending + data)
                else:
                    client.sendall(data)

    def _count(self, buffer: bytes) -> bytes:
        statements = trips = 0
        offset = 0
        while len(buffer) - offset >= 5:
            kind = buffer[offset : offset + 1]
            length = struct.unpack("!I", buffer[offset + 1 : offset + 5])[0]
            if len(buffer) - offset < 1 + length:
                break
            if kind == b"Q":
                statements += 1
                trips += 1
            elif kind == b"E":
                statements += 1
            elif kind == b"S":
                trips += 1
            offset += 1 + length
        if statements or trips:
            with self._lock:
                self.statements += statements
                self.round_trips += trips
        return buffer[offset:]


class TurnCounter(_Proxy):
    """A TCP proxy counting round trips: each time a client sends after the server has
    answered (or for the first time) is one. Protocol-agnostic; used in front of Redis, where
    ``INFO commandstats`` counts commands (including those inside Lua scripts), not trips."""

    def __init__(self, url: str) -> None:
        super().__init__(url, 6379)

    def reset(self) -> int:
        with self._lock:
            out, self.round_trips = self.round_trips, 0
        return out

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        client_turn = False
        while True:
            readable, _, _ = select.select([client, upstream], [], [])
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError
                if sock is client:
                    if not client_turn:
                        client_turn = True
                        with self._lock:
                            self.round_trips += 1
                    upstream.sendall(data)
                else:
                    client_turn = False
                    client.sendall(data)


# -- the latency probe ----------------------------------------------------------------------------


class Stamps:
    """Receives ``token time`` datagrams from ``bench.peers.probe.stamp`` tasks."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def wait(self, token: int, timeout: float = 15.0) -> float | None:
        """The start time the task with ``token`` reported, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(256)
            except TimeoutError:
                return None
            got, at = data.decode().split()
            if int(got) == token:
                return float(at)

    def close(self) -> None:
        self.sock.close()


# -- processes ------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    out = []
    for child in text.split():
        out.append(int(child))
        out.extend(_children(int(child)))
    return out


def rss_mib(pid: int, tree: bool = True) -> float:
    """Resident memory (VmRSS) of ``pid`` and, with ``tree``, its descendants, in MiB."""
    total = 0
    for one in [pid, *(_children(pid) if tree else [])]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path | None = None) -> Iterator[Any]:
    """A worker process for the duration of the block; stopped (TERM, then KILL) after it."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(10)
