"""``path("", include("taskyard.contrib.django.urls"))`` adds the health endpoints."""

from django.urls import path

from taskyard.contrib.django import views

app_name = "taskyard"

urlpatterns = [
    path("health/liveness", views.liveness, name="liveness"),
    path("health/readiness", views.readiness, name="readiness"),
    path("processor/monitoring", views.monitoring, name="monitoring"),
    path("metrics", views.metrics, name="metrics"),
]
