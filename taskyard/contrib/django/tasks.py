"""Tasks the Django integration provides."""

from __future__ import annotations

import io

from taskyard.tasks.task import task


@task
def run_management_command(name: str, args: list[str]) -> str:
    """Run ``manage.py <name> <args>`` in a worker; return what it printed."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=out)
    return out.getvalue()
