"""Unmanaged models over taskyard's tables (created by the schema files, not by Django)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models


class TaskIdField(models.UUIDField):  # type: ignore[type-arg]
    """A UUID stored natively on PostgreSQL and as dashed text on SQLite (taskyard's format)."""

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        if not isinstance(value, uuid.UUID):
            value = self.to_python(value)
        return value if connection.features.has_native_uuid_field else str(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))


STATUS_CHOICES = [
    ("READY", "Ready"),
    ("RUNNING", "Running"),
    ("SUCCESSFUL", "Successful"),
    ("FAILED", "Failed"),
    ("CANCELLED", "Cancelled"),
]


class Task(models.Model):
    """One enqueued task (``taskyard_task``)."""

    id = TaskIdField(primary_key=True)
    task_path = models.TextField("task")
    queue_name = models.CharField("queue", max_length=100)
    priority = models.SmallIntegerField(default=0)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES)
    backend = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    options = models.JSONField(null=True, blank=True)
    enqueued_at = models.DateTimeField()
    enqueued_by = models.CharField(max_length=200, null=True, blank=True)
    run_after = models.DateTimeField(null=True, blank=True)
    available_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    last_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.IntegerField(default=0)
    max_attempts = models.IntegerField(default=1)
    worker_ids = models.JSONField(default=list)
    errors = models.JSONField(default=list)
    return_value = models.JSONField(null=True, blank=True)
    progress = models.JSONField(null=True, blank=True)
    worker_id = models.CharField(max_length=200, null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    depends_on = TaskIdField(null=True, blank=True)
    waiting_on = TaskIdField(null=True, blank=True)
    has_dependents = models.BooleanField(default=False)
    limit_key = models.TextField(null=True, blank=True)
    qualifiers = models.JSONField(null=True, blank=True)
    interruptions = models.IntegerField(default=0)
    interrupted_by = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        managed = False
        db_table = "taskyard_task"
        ordering = ["-enqueued_at"]
        verbose_name = "task"
        verbose_name_plural = "tasks"

    def __str__(self) -> str:
        return f"{self.task_path} [{self.status}] {self.id}"


class Worker(models.Model):
    """A worker's heartbeat (``taskyard_worker``)."""

    worker_id = models.CharField(primary_key=True, max_length=200)
    hostname = models.CharField(max_length=200)
    pid = models.IntegerField()
    queues = models.TextField()
    threads = models.IntegerField()
    state = models.CharField(max_length=20)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    processed = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)

    class Meta:
        managed = False
        db_table = "taskyard_worker"
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id


class CronTick(models.Model):
    """A (schedule, tick) a cron scheduler claimed (``taskyard_cron_tick``)."""

    pk = models.CompositePrimaryKey("schedule", "tick")
    schedule = models.CharField(max_length=200)
    tick = models.DateTimeField()
    task_id = TaskIdField(null=True, blank=True)
    outcome = models.CharField(max_length=20)
    claimed_at = models.DateTimeField()
    claimed_by = models.CharField(max_length=200)

    class Meta:
        managed = False
        db_table = "taskyard_cron_tick"
        ordering = ["-tick"]
        verbose_name = "cron tick"

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.tick}"


class CronState(models.Model):
    """Whether a cron schedule is paused (``taskyard_cron_state``)."""

    schedule = models.CharField(primary_key=True, max_length=200)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(null=True, blank=True)
    failures = models.IntegerField(default=0)
    resumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        managed = False
        db_table = "taskyard_cron_state"
        ordering = ["schedule"]
        verbose_name = "cron schedule state"

    def __str__(self) -> str:
        return self.schedule
