"""Tasks of the ASGI example: one waits on I/O (an ``async def``), one computes (sync)."""

from __future__ import annotations

import asyncio

from taskyard import task


@task(timeout=30)
async def fetch_quote(symbol: str, delay: float = 0.2) -> dict[str, object]:
    """Stands for an HTTP call: waits without holding a thread."""
    await asyncio.sleep(delay)
    return {"symbol": symbol.upper(), "price": round(100 + len(symbol) * 1.5, 2)}


@task
def checksum(text: str) -> int:
    return sum(text.encode()) % 65521
