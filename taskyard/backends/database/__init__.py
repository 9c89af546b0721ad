"""The Database backend: a durable queue in SQLite or PostgreSQL."""

from taskyard.backends.database.backend import DatabaseBackend, database_backend

__all__ = ["DatabaseBackend", "database_backend"]
