"""Unmanaged models over the cron tables (no database change)."""

from django.db import migrations, models

import taskyard.contrib.django.models


class Migration(migrations.Migration):
    dependencies = [("taskyard", "0002_cron")]

    operations = [
        migrations.CreateModel(
            name="CronTick",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "schedule",
                        "tick",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("schedule", models.CharField(max_length=200)),
                ("tick", models.DateTimeField()),
                ("task_id", taskyard.contrib.django.models.TaskIdField(blank=True, null=True)),
                ("outcome", models.CharField(max_length=20)),
                ("claimed_at", models.DateTimeField()),
                ("claimed_by", models.CharField(max_length=200)),
            ],
            options={
                "verbose_name": "cron tick",
                "db_table": "taskyard_cron_tick",
                "ordering": ["-tick"],
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="CronState",
            fields=[
                ("schedule", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("paused", models.BooleanField(default=False)),
                ("paused_at", models.DateTimeField(blank=True, null=True)),
                ("reason", models.TextField(blank=True, null=True)),
                ("failures", models.IntegerField(default=0)),
                ("resumed_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "cron schedule state",
                "db_table": "taskyard_cron_state",
                "ordering": ["schedule"],
                "managed": False,
            },
        ),
    ]
