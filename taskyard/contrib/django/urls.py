"""``path("", include("taskyard.contrib.django.urls"))`` adds the health endpoints (with or
without a trailing slash, as on a worker's health port)."""

from django.urls import re_path

from taskyard.contrib.django import views

app_name = "taskyard"

urlpatterns = [
    re_path(r"^health/liveness/?$", views.liveness, name="liveness"),
    re_path(r"^health/readiness/?$", views.readiness, name="readiness"),
    re_path(r"^processor/monitoring/?$", views.monitoring, name="monitoring"),
    re_path(r"^metrics/?$", views.metrics, name="metrics"),
]
