"""Health, monitoring and metrics views (include ``taskyard.contrib.django.urls``).

Responses carry counts, never task payloads. Anonymous (and non-staff) callers of readiness get
the status only; the problems found (which name databases, hosts and users) are for staff.
Monitoring is for staff only.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from taskyard.worker.health import render_metrics


def _backends() -> list[Any]:
    from taskyard.config import backends
    from taskyard.contrib.django.settings import ensure_configured

    ensure_configured()
    return [backends[alias] for alias in backends.aliases()]


def _database_ops() -> list[tuple[str, Any]]:
    from taskyard.backends.database.backend import DatabaseBackend
    from taskyard.backends.database.worker_ops import QueueOps

    return [(b.alias, QueueOps(b)) for b in _backends() if isinstance(b, DatabaseBackend)]


def liveness(request: HttpRequest) -> HttpResponse:
    """200 while this process serves requests."""
    return JsonResponse({"alive": True})


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def readiness(request: HttpRequest) -> HttpResponse:
    """200 when every taskyard backend is reachable (and its schema current), else 503; the
    problems are listed for staff only."""
    found = {}
    for backend in _backends():
        try:
            problems = backend.check()
        except Exception as exc:  # a backend that cannot even be checked is not ready
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            found[backend.alias] = problems
    if found:
        body: dict[str, Any] = {"ready": False}
        if _is_staff(request):
            body["problems"] = found
        return JsonResponse(body, status=503)
    return JsonResponse({"ready": True})


def monitoring(request: HttpRequest) -> HttpResponse:
    """Queue counts, ``waiting`` first (the Flagsmith endpoint's shape). Staff only."""
    if not _is_staff(request):
        return JsonResponse({"error": "staff only"}, status=403)
    from taskyard.worker.probes import monitoring as queue_monitoring

    data: dict[str, Any] = {"waiting": 0}
    per_backend = {}
    for alias, ops in _database_ops():
        stats = queue_monitoring(ops)
        per_backend[alias] = stats
        data["waiting"] += stats["waiting"]
    data["backends"] = per_backend
    return JsonResponse(data)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: waiting, running and failed tasks per backend alias and queue."""
    from taskyard.worker.probes import queue_metrics

    stats = {
        f"{alias}/{queue}": s for alias, ops in _database_ops() for queue, s in ops.stats().items()
    }
    text = render_metrics(queue_metrics(stats))
    return HttpResponse(text, content_type="text/plain; version=0.0.4; charset=utf-8")
