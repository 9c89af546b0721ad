"""The soak's Redis leg: ``taskyard rqworker`` processes on a private ``redis-server`` (AOF on,
a free port) that the soak restarts. Workers: slot 0 and 2 batching workers (the default class),
slot 1 a forking worker (lease 3 s, reap interval 0.5 s). Faults:

* ``sigkill-rq-worker`` — SIGKILL of a whole worker (its work horse too), slots 0 and 1 in turn,
  restarted at once: its running attempt is interrupted and comes back when its lease ends;
* ``sigkill-work-horse`` — SIGKILL of the forking worker's work horse only: the worker hands the
  attempt back at once;
* ``redis-restart`` — ``SHUTDOWN`` of Redis (the AOF is written), ``--redis-down`` seconds away,
  then a restart from the AOF: jobs taken or prepared at that moment must not be stranded.

Executions are recorded in files (``soak_tasks``), so a Redis restart cannot lose them.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import ENV
from bench.soak_core import Execution, Fault, FaultKind, Fleet
from bench.soak_postgres import enqueue_many

LEASE = 3.0
WORKER_CLASSES = ("batch", "forking", "batch")


class RestartableRedis:
    """A private redis-server with AOF (``appendfsync everysec``; ``SHUTDOWN`` writes it all)."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found: the Redis soak starts its own")
        self.binary, self.dir = binary, directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.dir), "--appendonly", "yes", "--save", ""),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self.answers():
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.02)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def shutdown(self) -> None:
        """Redis's own ``SHUTDOWN`` command (it writes the AOF and exits)."""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(b"SHUTDOWN\r\n")
            s.settimeout(5)
            with contextlib.suppress(OSError):
                s.recv(16)
        assert self.proc is not None
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


class RedisStore:
    name = "redis"
    slots = len(WORKER_CLASSES)
    lease = LEASE

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.server = RestartableRedis(tmp / "redis")
        self.records = tmp / "executions-redis"
        self._kills = 0

    def describe(self) -> dict[str, Any]:
        return {
            "workers": "3 x taskyard rqworker: " + ", ".join(WORKER_CLASSES),
            "lease_s": LEASE,
        }

    def setup(self) -> None:
        from bench.peers.taskyard_db import activate

        (self.tmp / "redis").mkdir(exist_ok=True)
        self.records.mkdir(exist_ok=True)
        self.server.start()
        import redis

        self.client = redis.Redis.from_url(self.server.url, socket_timeout=5)
        activate(f"{self.server.url}?lease={LEASE:g}")

    def close(self) -> None:
        self.server.stop()

    def enqueue(self, n: int) -> list[str]:
        return enqueue_many(n, self.args.redis_task_ms, self.args.retries)

    def worker_argv(self, slot: int, worker_id: str) -> list[str]:
        return [
            *(sys.executable, "-m", "taskyard", "rqworker"),
            *("--url", f"{self.server.url}?lease={LEASE:g}&socket_connect_timeout=0.5"),
            *("--worker-class", WORKER_CLASSES[slot], "--reap-interval", "0.5"),
            *("--name", worker_id, "--import", "bench.soak_tasks", "--log-level", "WARNING"),
        ]

    def env(self) -> dict[str, str]:
        return {**ENV, "SOAK_STORE": "redis", "SOAK_RECORD_DIR": str(self.records)}

    def done(self) -> int:
        """Tasks rq lists as finished, failed or cancelled (0 while Redis is restarting)."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for registry in ("finished", "failed", "canceled"):
                    pipe.zcard(f"rq:{registry}:default")
                return sum(int(x) for x in pipe.execute())
        except Exception:
            return -1

    # -- faults --------------------------------------------------------------------------------

    def fault_kinds(self) -> list[FaultKind]:
        return [
            FaultKind(
                "sigkill-rq-worker",
                "SIGKILL of a whole rq worker (and its work horse), restarted at once",
                self.args.kills,
                self._kill_worker,
            ),
            FaultKind(
                "sigkill-work-horse",
                "SIGKILL of a forking worker's work horse",
                self.args.horse_kills,
                self._kill_horse,
            ),
            FaultKind(
                "redis-restart",
                f"Redis SHUTDOWN, {self.args.redis_down:g} s down, restart from its AOF",
                self.args.redis_restarts,
                self._restart,
            ),
        ]

    def _running(self, pids: set[int]) -> list[str]:
        """Tasks whose latest execution in one of ``pids`` started and has not returned (each
        process appends to its own file: only their last lines are read)."""
        held = []
        for pid in pids:
            path = self.records / f"{pid}.log"
            try:
                with open(path, "rb") as handle:
                    handle.seek(max(0, path.stat().st_size - 512))
                    lines = handle.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            last = lines[-1].split() if lines else []
            if len(last) == 5 and last[0] == "start":
                held.append(last[1])
        return held

    def _when_busy(self, fleet: Fleet, slot: int, horse_only: bool) -> list[int]:
        """The processes to kill once the slot is running a task (up to 2 s; a fault that
        lands between two tasks interrupts nothing and tests little)."""
        deadline = time.monotonic() + 2
        pids: list[int] = []
        while time.monotonic() < deadline:
            pids = fleet.session(slot)
            if horse_only:
                pids = [pid for pid in pids if pid != fleet.procs[slot].pid]
            if pids and self._running(set(pids)):
                return pids
            time.sleep(0.002)
        return pids

    def _kill_worker(self, fleet: Fleet, rng: random.Random) -> Fault:
        slot = self._kills % 2  # slot 0 (batch) and slot 1 (forking) in turn
        self._kills += 1
        worker_id = fleet.ids[slot]
        pids = set(self._when_busy(fleet, slot, horse_only=False)) | set(fleet.session(slot))
        held = self._running(pids)
        fleet.kill(slot, list(pids))
        # the moment the kill is done: a batching worker starts many tasks at once, and on a
        # loaded machine some start between a time read before the kill and the kill itself
        at = time.time()
        time.sleep(rng.uniform(0.0, 0.5))
        fleet.start(slot)
        detail = f"{WORKER_CLASSES[slot]} worker {worker_id}"
        return Fault("sigkill-rq-worker", at, detail, pids, held)

    def _kill_horse(self, fleet: Fleet, rng: random.Random) -> Fault | None:
        horses = self._when_busy(fleet, 1, horse_only=True)
        if not horses:
            return None
        held = self._running(set(horses))
        at = time.time()
        killed = fleet.kill(1, horses)
        return Fault("sigkill-work-horse", at, f"work horse of {fleet.ids[1]}", killed, held)

    def _restart(self, fleet: Fleet, rng: random.Random) -> Fault:
        at = time.time()
        self.server.shutdown()
        time.sleep(self.args.redis_down)
        self.server.start()
        back = time.time()
        return Fault(
            "redis-restart",
            at,
            f"SHUTDOWN, back after {back - at:.2f} s",
            back_at=back,
            extra={"down_s": round(back - at, 2)},
        )

    # -- what ran ------------------------------------------------------------------------------

    def executions(self) -> list[Execution]:
        from bench.soak_tasks import read_records

        return [Execution(*record) for record in read_records(str(self.records))]

    def final_states(self, ids: list[str]) -> dict[str, str]:
        from bench.soak_tasks import record

        states: dict[str, str] = {}
        for task_id in ids:
            try:
                states[task_id] = record.get_result(task_id).status.value
            except Exception as exc:  # pragma: no cover - reported as the state
                states[task_id] = f"unreadable ({type(exc).__name__})"
        return states

    def stranded(self) -> dict[str, int]:
        """What is left in rq's lists and registries after the drain (all must be 0)."""
        with self.client.pipeline(transaction=False) as pipe:
            for key in (
                "rq:queue:default",
                "rq:queue:default:intermediate",
            ):
                pipe.llen(key)
            for key in ("rq:wip:default", "rq:ready:default", "taskyard:leases"):
                pipe.zcard(key)
            counts = pipe.execute()
        names = ["queued", "intermediate", "started", "ready", "leases"]
        return dict(zip(names, (int(c) for c in counts), strict=True))


__all__ = ["RedisStore", "RestartableRedis"]
