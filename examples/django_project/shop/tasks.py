"""The shop's tasks: Django's own @task, with taskyard's options, and a cron schedule."""

from __future__ import annotations

import django

from taskyard.cron import cron

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task(queue_name="emails", retries=3, retry_backoff=2, timeout=30)
def send_receipt(order_id: int, email: str) -> str:
    """Pretend to email a receipt."""
    return f"receipt for order {order_id} sent to {email}"


@cron("0 3 * * *", timezone="Europe/London")
@task
def nightly_report() -> str:
    return "report built"
