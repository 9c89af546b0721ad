"""Applying the schema files (``sql/<dialect>/NNNN_name.sql``) and recording the version.

``taskyard migrate`` and the Django integration's migration both call ``migrate()``; no other
code writes DDL. The version applied is kept in ``taskyard_meta`` under ``schema_version``.
"""

from __future__ import annotations

import logging

from taskyard.backends.database.connectors import Connector, schema_files

logger = logging.getLogger("taskyard.backends.database")

VERSION_KEY = "schema_version"


def current_version(connector: Connector) -> int:
    """The schema version recorded in the database (0 when taskyard's tables are missing)."""
    if not connector.run("meta_exists")[0]["present"]:
        return 0
    rows = connector.run("meta_get", {"key": VERSION_KEY})
    return int(rows[0]["value"]) if rows else 0


def latest_version(dialect: str) -> int:
    files = schema_files(dialect)
    return files[-1][0] if files else 0


def migrate(connector: Connector, target: int | None = None) -> list[str]:
    """Apply every schema file newer than the recorded version (up to ``target``, when given);
    return the files applied."""
    with connector.unbounded():  # DDL on a big table, or waiting for another migrator
        return _migrate(connector, target)


def _migrate(connector: Connector, target: int | None) -> list[str]:
    applied: list[str] = []
    lock = connector.dialect == "postgresql"
    if lock:
        connector.run_script("SELECT pg_advisory_lock(7452913011)")
    try:
        version = current_version(connector)
        for number, name, sql in schema_files(connector.dialect):
            if number <= version or (target is not None and number > target):
                continue
            with connector.transaction():
                # Checked again inside the transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL:
                # the advisory lock): another process may have applied it meanwhile.
                if current_version(connector) >= number:
                    continue
                logger.debug("applying %s to %s", name, connector.describe())
                connector.run_script(sql)
                connector.run("meta_set", {"key": VERSION_KEY, "value": str(number)})
            applied.append(name)
    finally:
        if lock:
            connector.run_script("SELECT pg_advisory_unlock(7452913011)")
    return applied
