"""``path("", include("taskyard.contrib.django.urls"))`` adds the health endpoints.

Each answers with or without a trailing slash, as the worker's own health port does.
"""

from django.urls import path

from taskyard.contrib.django import views

app_name = "taskyard"

_ROUTES = [
    ("health/liveness", views.liveness, "liveness"),
    ("health/readiness", views.readiness, "readiness"),
    ("processor/monitoring", views.monitoring, "monitoring"),
    ("metrics", views.metrics, "metrics"),
]

urlpatterns = [path(route, view, name=name) for route, view, name in _ROUTES] + [
    path(f"{route}/", view) for route, view, _ in _ROUTES
]
