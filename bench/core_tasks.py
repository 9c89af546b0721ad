"""No-op task functions for the core benchmark (module-level, importable by every peer)."""

from taskyard import task


def noop_function() -> None:
    return None


noop = task(noop_function)
