"""The latency probe every framework runs: report the moment the task body starts.

``send_stamp(token, port)`` sends ``"token time"`` to ``bench.harness.Stamps`` on 127.0.0.1;
each framework's task module wraps it as its own task (``stamp``).
"""

from __future__ import annotations

import socket
import time

_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def send_stamp(token: int, port: int) -> None:
    _sock.sendto(f"{token} {time.time()!r}".encode(), ("127.0.0.1", port))


def noop_function() -> None:
    return None
