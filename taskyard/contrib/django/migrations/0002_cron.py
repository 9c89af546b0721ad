"""Creates the cron tables from taskyard's schema file 0002."""

from typing import Any

from django.db import migrations

from taskyard.contrib.django.schema import apply_schema, refuse_reverse


def forwards(apps: Any, schema_editor: Any) -> None:
    apply_schema(schema_editor.connection.alias, version=2)


class Migration(migrations.Migration):
    dependencies = [("taskyard", "0001_initial")]

    operations = [migrations.RunPython(forwards, refuse_reverse)]
