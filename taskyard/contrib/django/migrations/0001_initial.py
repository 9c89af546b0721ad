"""Creates taskyard's tables from the same schema files ``taskyard migrate`` applies."""

from typing import Any

from django.db import migrations, models

import taskyard.contrib.django.models
from taskyard.contrib.django.schema import apply_schema, refuse_reverse


def forwards(apps: Any, schema_editor: Any) -> None:
    apply_schema(schema_editor.connection.alias, version=1)


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.RunPython(forwards, refuse_reverse),
        migrations.CreateModel(
            name="Task",
            fields=[
                (
                    "id",
                    taskyard.contrib.django.models.TaskIdField(primary_key=True, serialize=False),
                ),
                ("task_path", models.TextField(verbose_name="task")),
                ("queue_name", models.CharField(max_length=100, verbose_name="queue")),
                ("priority", models.SmallIntegerField(default=0)),
                ("status", models.CharField(max_length=10)),
                ("backend", models.CharField(max_length=100)),
                ("args", models.JSONField(default=list)),
                ("kwargs", models.JSONField(default=dict)),
                ("options", models.JSONField(blank=True, null=True)),
                ("enqueued_at", models.DateTimeField()),
                ("enqueued_by", models.CharField(blank=True, max_length=200, null=True)),
                ("run_after", models.DateTimeField(blank=True, null=True)),
                ("available_at", models.DateTimeField()),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("last_attempted_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.IntegerField(default=0)),
                ("max_attempts", models.IntegerField(default=1)),
                ("worker_ids", models.JSONField(default=list)),
                ("errors", models.JSONField(default=list)),
                ("return_value", models.JSONField(blank=True, null=True)),
                ("progress", models.JSONField(blank=True, null=True)),
                ("worker_id", models.CharField(blank=True, max_length=200, null=True)),
                ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                ("cancel_requested", models.BooleanField(default=False)),
                ("depends_on", taskyard.contrib.django.models.TaskIdField(blank=True, null=True)),
                ("waiting_on", taskyard.contrib.django.models.TaskIdField(blank=True, null=True)),
                ("has_dependents", models.BooleanField(default=False)),
                ("limit_key", models.TextField(blank=True, null=True)),
                ("qualifiers", models.JSONField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "task",
                "verbose_name_plural": "tasks",
                "db_table": "taskyard_task",
                "ordering": ["-enqueued_at"],
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Worker",
            fields=[
                ("worker_id", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("hostname", models.CharField(max_length=200)),
                ("pid", models.IntegerField()),
                ("queues", models.TextField()),
                ("threads", models.IntegerField()),
                ("state", models.CharField(max_length=20)),
                ("started_at", models.DateTimeField()),
                ("last_seen_at", models.DateTimeField()),
                ("processed", models.BigIntegerField(default=0)),
                ("failed", models.BigIntegerField(default=0)),
            ],
            options={"db_table": "taskyard_worker", "ordering": ["worker_id"], "managed": False},
        ),
    ]
