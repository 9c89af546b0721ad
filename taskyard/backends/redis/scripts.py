"""The Lua scripts of the Redis backend (in ``lua/*.lua``), registered once per client."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``, each ``--#include <lib>`` line replaced by the text of
    ``lua/<lib>.lua`` (shared Lua functions: one ``begin_attempt`` and one ``record_outcome``
    serve rq's worker classes and the batching worker alike)."""
    text = (files("taskyard.backends.redis") / "lua" / f"{name}.lua").read_text()
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith(INCLUDE):
            lines.append(source(line[len(INCLUDE) :].strip()))
        else:
            lines.append(line)
    return "".join(lines)


INCLUDE = "--#include "

NAMES = (
    *("begin", "finish", "claim"),
    *("batch_claim", "batch_finish", "batch_cycle", "batch_renew"),
)


def preload(client: Any) -> None:
    """Read and register every script now (a forking worker does this before it forks, so its
    work horses find them ready)."""
    for name in NAMES:
        script(client, name)


def script(client: Any, name: str) -> Any:
    """A callable ``Script`` for ``name`` bound to ``client`` (cached on the client)."""
    cache_: dict[str, Any] | None = getattr(client, "_taskyard_scripts", None)
    if cache_ is None:
        cache_ = {}
        try:
            client._taskyard_scripts = cache_
        except AttributeError:  # pragma: no cover - clients without a __dict__
            return client.register_script(source(name))
    found = cache_.get(name)
    if found is None:
        found = cache_[name] = client.register_script(source(name))
    return found
