"""The health HTTP server shared by ``taskyard worker`` and ``taskyard rqworker``.

Routes (GET):

* ``/health/liveness`` — 200 while the worker's loop is alive, else 503;
* ``/health/readiness`` — 200 when the worker can do work (store reachable, not shutting down,
  optional end-to-end probe passed), else 503 with the reason;
* ``/processor/monitoring`` — JSON counts: ``waiting`` first, then running, failed, per-queue
  counts, oldest waiting age (the Flagsmith task processor's endpoint, extended);
* ``/metrics`` — Prometheus text exposition; with the ``metrics`` extra installed, the
  ``prometheus_client`` default registry (process metrics and your own) is appended.

Responses carry counts, never task payloads. Details -- the readiness reason, the worker's id,
errors naming hosts, ports or users -- are served only to callers that send the token set in
``TASKYARD_HEALTH_TOKEN`` (``Authorization: Bearer <token>``); anyone else gets the status and
the counts.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

logger = logging.getLogger("taskyard.worker.health")


class HealthSource(Protocol):
    """What a worker exposes to the health server."""

    def is_alive(self) -> bool: ...

    def readiness(self) -> tuple[bool, str]: ...

    def monitoring(self) -> dict[str, Any]: ...

    def metrics(self) -> Mapping[str, tuple[str, str, float | Mapping[str, float]]]:
        """``{name: (type, help, value or {label_value: value})}``; labels are ``queue``."""
        ...


Metrics = dict[str, tuple[str, str, float | Mapping[str, float]]]


@dataclass
class QueueStats:
    """Counts for one queue name (every priority level together), as the health endpoints,
    ``taskyard status`` and the Django views report them."""

    waiting: int = 0
    scheduled: int = 0
    running: int = 0
    failed: int = 0
    oldest_waiting_seconds: float | None = None


def monitoring_payload(stats: Mapping[str, QueueStats]) -> dict[str, Any]:
    """``waiting`` first (the Flagsmith endpoint's field), then the rest; counts only."""
    oldest = [s.oldest_waiting_seconds for s in stats.values() if s.oldest_waiting_seconds]
    return {
        "waiting": sum(s.waiting for s in stats.values()),
        "scheduled": sum(s.scheduled for s in stats.values()),
        "running": sum(s.running for s in stats.values()),
        "failed": sum(s.failed for s in stats.values()),
        "oldest_waiting_seconds": max(oldest) if oldest else None,
        "queues": {
            name: {
                "waiting": s.waiting,
                "scheduled": s.scheduled,
                "running": s.running,
                "failed": s.failed,
                "oldest_waiting_seconds": s.oldest_waiting_seconds,
            }
            for name, s in sorted(stats.items())
        },
    }


def queue_metrics(stats: Mapping[str, QueueStats], failed_help: str) -> Metrics:
    """Prometheus gauges of the queue, labelled by queue name (``failed_help`` says what the
    backend counts as failed)."""
    return {
        "taskyard_tasks_waiting": (
            "gauge",
            "Tasks due and not started, per queue",
            {q: float(s.waiting) for q, s in stats.items()},
        ),
        "taskyard_tasks_scheduled": (
            "gauge",
            "Tasks waiting for run_after or a retry backoff, per queue",
            {q: float(s.scheduled) for q, s in stats.items()},
        ),
        "taskyard_tasks_running": (
            "gauge",
            "Tasks running, per queue",
            {q: float(s.running) for q, s in stats.items()},
        ),
        "taskyard_tasks_failed": (
            "gauge",
            failed_help,
            {q: float(s.failed) for q, s in stats.items()},
        ),
        "taskyard_oldest_waiting_seconds": (
            "gauge",
            "Age of the oldest waiting task, per queue",
            {q: float(s.oldest_waiting_seconds or 0.0) for q, s in stats.items()},
        ),
    }


def render_metrics(
    metrics: Mapping[str, tuple[str, str, float | Mapping[str, float]]], label: str = "queue"
) -> str:
    """Prometheus text format for ``HealthSource.metrics()``."""
    lines: list[str] = []
    for name, (kind, help_text, value) in metrics.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        if isinstance(value, Mapping):
            for label_value, number in sorted(value.items()):
                escaped = str(label_value).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{name}{{{label}="{escaped}"}} {float(number):g}')
        else:
            lines.append(f"{name} {float(value):g}")
    text = "\n".join(lines) + "\n"
    try:
        from prometheus_client import REGISTRY, generate_latest
    except ImportError:
        return text
    extra: bytes = generate_latest(REGISTRY)
    return text + extra.decode()


#: The counts of ``monitoring_payload`` (what an anonymous caller of ``/processor/monitoring``
#: gets); anything else a source adds is a detail.
PUBLIC_MONITORING_KEYS = ("waiting", "scheduled", "running", "failed", "oldest_waiting_seconds")


def public_monitoring(data: Mapping[str, Any]) -> dict[str, Any]:
    """The counts of a monitoring payload, without details (worker ids, hosts, errors)."""
    public = {key: data[key] for key in PUBLIC_MONITORING_KEYS if key in data}
    queues = data.get("queues")
    if isinstance(queues, Mapping):
        public["queues"] = {
            name: {k: v for k, v in counts.items() if k in PUBLIC_MONITORING_KEYS}
            for name, counts in queues.items()
            if isinstance(counts, Mapping)
        }
    return public


class HealthServer:
    """Serve a ``HealthSource`` on ``host:port`` from a daemon thread. ``token`` (default:
    ``$TASKYARD_HEALTH_TOKEN``) unlocks the details; without it every caller gets counts and
    statuses only."""

    def __init__(
        self, source: HealthSource, port: int, host: str = "0.0.0.0", token: str | None = None
    ) -> None:
        self.source = source
        if token is None:
            token = os.environ.get("TASKYARD_HEALTH_TOKEN") or None
        handler = _make_handler(source, token)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="taskyard-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        logger.info("health server listening on port %d", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(source: HealthSource, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "taskyard"

        def _trusted(self) -> bool:
            if token is None:
                return False
            given = self.headers.get("Authorization", "")
            return given.startswith("Bearer ") and hmac.compare_digest(
                given[len("Bearer ") :].encode(), token.encode()
            )

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            trusted = self._trusted()
            try:
                if path == "/health/liveness":
                    alive = source.is_alive()
                    self._send(200 if alive else 503, {"alive": alive})
                elif path == "/health/readiness":
                    ready, reason = source.readiness()
                    answer: dict[str, Any] = {"ready": ready}
                    if trusted:
                        answer["reason"] = reason
                    self._send(200 if ready else 503, answer)
                elif path == "/processor/monitoring":
                    data = source.monitoring()
                    self._send(200, data if trusted else public_monitoring(data))
                elif path == "/metrics":
                    body = render_metrics(source.metrics()).encode()
                    self._send_bytes(200, body, "text/plain; version=0.0.4; charset=utf-8")
                else:
                    self._send(404, {"error": f"no such endpoint {path!r}"})
            except Exception as exc:
                logger.exception("health endpoint %s failed", path)
                detail = f"{type(exc).__name__}: {exc}" if trusted else "unavailable"
                self._send(503, {"error": detail})

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload, default=str).encode()
            self._send_bytes(status, body, "application/json")

        def _send_bytes(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("health %s", format % args)

    return Handler
