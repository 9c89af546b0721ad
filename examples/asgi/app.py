"""A small ASGI service that enqueues tasks and waits for them without blocking its event loop.

Run it with any ASGI server, and a worker beside it::

    pip install uvicorn
    taskyard worker --import examples.asgi.tasks          # in one terminal
    uvicorn examples.asgi.app:app                          # in another

    curl 'localhost:8000/quote?symbol=acme'                # enqueue, wait, answer
    curl -X POST 'localhost:8000/checksum?text=hello'      # enqueue, answer 202 with the id
    curl 'localhost:8000/result/<id>'                      # look it up

The backend comes from ``TASKYARD_URL`` (the embedded SQLite file by default). Every call here
is awaited: ``aenqueue()``, ``aget_result()`` and ``wait_async()`` never block the loop (on
PostgreSQL they use an async connection). The same three lines work in a FastAPI route::

    @api.get("/quote")
    async def quote(symbol: str) -> dict:
        result = await fetch_quote.aenqueue(symbol)
        await result.wait_async(timeout=10)
        return {"id": result.id, "status": result.status, "value": result.return_value}
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from examples.asgi.tasks import checksum, fetch_quote
from taskyard import TaskResultDoesNotExist, TaskResultStatus

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI application (HTTP only; lifespan events are acknowledged)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    method, path = scope["method"], scope["path"]
    if method == "GET" and path == "/quote":
        result = await fetch_quote.aenqueue(query.get("symbol", "acme"))
        try:
            await result.wait_async(timeout=float(query.get("timeout", 10)))
        except TimeoutError:
            return await _reply(send, 504, {"id": result.id, "status": result.status})
        return await _reply(send, 200, _describe(result))
    if method == "POST" and path == "/checksum":
        result = await checksum.aenqueue(query.get("text", ""))
        return await _reply(send, 202, {"id": result.id, "status": result.status})
    if method == "GET" and path.startswith("/result/"):
        try:
            result = await checksum.aget_result(path.removeprefix("/result/"))
        except TaskResultDoesNotExist:
            return await _reply(send, 404, {"error": "no such task"})
        return await _reply(send, 200, _describe(result))
    await _reply(send, 404, {"error": f"no route {method} {path}"})


def _describe(result: Any) -> dict[str, Any]:
    out = {"id": result.id, "status": result.status, "attempts": result.attempts}
    if result.status is TaskResultStatus.SUCCESSFUL:
        out["value"] = result.return_value
    elif result.errors:
        out["error"] = result.errors[-1].message
    return out


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
