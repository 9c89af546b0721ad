"""The async API from an event loop (``aenqueue``, ``wait_async``, ``aget_result``): no thread
hop on PostgreSQL, bounded waits on a frozen server, and the ASGI example end to end."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import taskyard
from taskyard import BackendUnavailable
from taskyard.backends.database import DatabaseBackend
from taskyard.config import backends
from taskyard.worker.worker import Worker, WorkerConfig
from tests import tasks
from tests.conftest import skip_or_fail
from tests.servers import PrivatePostgres, postgres_bin


@pytest.fixture
def running_worker(db: DatabaseBackend) -> Iterator[Worker]:
    worker = Worker(
        db, WorkerConfig(queues=None, threads=2, interval=0.05, lease=5, handle_signals=False)
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    yield worker
    worker.stop()
    thread.join(10)


def test_the_async_api_never_hops_to_a_thread_on_postgresql(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taskyard.configure(
        {
            "default": {
                "BACKEND": "taskyard.backends.database.DatabaseBackend",
                "QUEUES": [],
                "OPTIONS": {"URL": postgres_url, "AUTO_MIGRATE": True},
            }
        }
    )
    db = backends["default"]
    assert isinstance(db, DatabaseBackend)
    db.migrate()
    worker = Worker(
        db, WorkerConfig(queues=None, threads=1, interval=0.05, lease=5, handle_signals=False)
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()

    def no_thread_hop(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("asyncio.to_thread used by the async API")

    async def main() -> Any:
        monkeypatch.setattr(asyncio, "to_thread", no_thread_hop)
        result = await tasks.async_add.aenqueue(20, 22)
        await result.wait_async(timeout=10)
        again = await tasks.async_add.aget_result(result.id)
        return result.return_value, again.status

    try:
        assert asyncio.run(main()) == (42, taskyard.TaskResultStatus.SUCCESSFUL)
    finally:
        monkeypatch.undo()
        worker.stop()
        thread.join(10)


@pytest.mark.slow
def test_the_async_api_is_bounded_on_a_frozen_postgresql() -> None:
    if postgres_bin() is None:
        skip_or_fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with PrivatePostgres() as server:
        taskyard.configure(
            {
                "default": {
                    "BACKEND": "taskyard.backends.database.DatabaseBackend",
                    "OPTIONS": {"URL": server.url, "AUTO_MIGRATE": True, "STATEMENT_TIMEOUT": 1.0},
                }
            }
        )

        async def main() -> float:
            await tasks.add.aenqueue(1, 1)  # the async connection is open
            server.freeze()
            started = time.monotonic()
            try:
                with pytest.raises(BackendUnavailable, match="did not answer"):
                    await tasks.add.aenqueue(1, 2)
            finally:
                server.thaw()
            return time.monotonic() - started

        assert asyncio.run(main()) < 1.0 + 2.0 + 1.0


async def call(app: Any, method: str, path: str, query: str = "") -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode()}
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_the_asgi_example_enqueues_and_waits(db: DatabaseBackend, running_worker: Worker) -> None:
    from examples.asgi.app import app

    async def main() -> list[tuple[int, Any]]:
        quote = await call(app, "GET", "/quote", "symbol=acme")
        accepted = await call(app, "POST", "/checksum", "text=hello")
        task_id = accepted[1]["id"]
        for _ in range(200):
            looked = await call(app, "GET", f"/result/{task_id}")
            if looked[1]["status"] == "SUCCESSFUL":
                break
            await asyncio.sleep(0.05)
        missing = await call(app, "GET", "/result/00000000-0000-7000-8000-000000000000")
        return [quote, accepted, looked, missing]

    quote, accepted, looked, missing = asyncio.run(main())
    assert quote[0] == 200 and quote[1]["value"] == {"symbol": "ACME", "price": 106.0}
    assert accepted[0] == 202 and accepted[1]["status"] == "READY"
    assert looked == (200, {**looked[1], "status": "SUCCESSFUL", "value": sum(b"hello") % 65521})
    assert missing[0] == 404


def test_many_concurrent_requests_share_one_event_loop(
    db: DatabaseBackend, running_worker: Worker
) -> None:
    from examples.asgi.app import app

    async def main() -> list[tuple[int, Any]]:
        return await asyncio.gather(
            *(call(app, "GET", "/quote", f"symbol=s{i}&timeout=20") for i in range(50))
        )

    started = time.monotonic()
    replies = asyncio.run(main())
    assert all(status == 200 for status, _ in replies)
    assert time.monotonic() - started < 15  # 50 waits of 0.2 s one after the other: 10 s+
