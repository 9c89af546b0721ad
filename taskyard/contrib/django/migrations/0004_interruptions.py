"""Adds the interrupted-attempt columns from taskyard's schema file 0003."""

from typing import Any

from django.db import migrations, models

from taskyard.contrib.django.schema import apply_schema, refuse_reverse


def forwards(apps: Any, schema_editor: Any) -> None:
    apply_schema(schema_editor.connection.alias, version=3)


class Migration(migrations.Migration):
    dependencies = [("taskyard", "0003_cron_models")]

    operations = [
        migrations.RunPython(forwards, refuse_reverse),
        migrations.AddField(
            model_name="task",
            name="interruptions",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="task",
            name="interrupted_by",
            field=models.CharField(blank=True, max_length=200, null=True),
        ),
    ]
