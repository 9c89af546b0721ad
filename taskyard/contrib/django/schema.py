"""Applying taskyard's schema files from Django migrations."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("taskyard.contrib.django")


def apply_schema(alias: str, version: int) -> None:
    """Apply taskyard's schema up to ``version`` on the database being migrated.

    Django asks the database routers first (``allow_migrate(db, "taskyard")``): with the queue
    in its own database, a router can keep the tables out of the others."""
    from taskyard.backends.database.migrate import migrate
    from taskyard.contrib.django.database import django_connector

    applied = migrate(django_connector(alias), target=version)
    for name in applied:
        logger.info("taskyard: applied %s to database %r", name, alias)


def refuse_reverse(apps: Any, schema_editor: Any) -> None:
    raise RuntimeError(
        "taskyard's tables hold your task queue: unapplying this migration would drop them. "
        "Drop taskyard_task, taskyard_worker and taskyard_meta by hand if you really mean it."
    )
