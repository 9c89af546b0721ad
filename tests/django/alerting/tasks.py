"""The alerting app's tasks, declared with Django's ``@task``."""

from __future__ import annotations

import django
from django.core import mail

from taskyard.contrib.django.qualifiers import Setting
from taskyard.cron import cron

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task
def check_incident(incident_id: int) -> str:
    """Look the incident up; if it still exists, queue the e-mail."""
    from tests.django.alerting.models import Incident

    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return "gone"  # as the real app: a missing row is not an error
    send_alert.enqueue(incident_id)
    return "queued"


@task(queue_name="emails")
def send_alert(incident_id: int) -> str:
    from tests.django.alerting.models import Incident

    incident = Incident.objects.get(pk=incident_id)
    mail.send_mail(
        f"[{incident.severity}] {incident.title}",
        f"Incident {incident.pk}: {incident.title}",
        "alerts@example.com",
        [incident.recipient],
    )
    return incident.recipient


@cron("0 3 * * *")  # stacked above Django's @task, as django-crontask users write it
@task
def daily_digest() -> str:
    return "digest"


@task
def explode(message: str) -> None:
    raise RuntimeError(message)


@task(qualifiers=[Setting("IMPORTANT_SETTING", True)])
def needs_important_setting() -> str:
    return "important"


@task(qualifiers=[Setting("IMPORTANT_LIST", lambda value: "xyz" in value)])
def needs_xyz_in_list() -> str:
    return "xyz"
