"""No-op task functions for the benchmarks (module-level, importable by every peer)."""

from bench.peers.probe import send_stamp
from taskyard import task


def noop_function() -> None:
    return None


noop = task(noop_function)
stamp = task(send_stamp)
