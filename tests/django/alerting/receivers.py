from __future__ import annotations

from typing import Any

from tests.django.alerting.models import Incident
from tests.django.alerting.tasks import check_incident


def incident_saved(sender: type, instance: Incident, created: bool, **kwargs: Any) -> None:
    """A new incident is checked in the background (as the alerting server does)."""
    if created:
        check_incident.enqueue(instance.pk)
