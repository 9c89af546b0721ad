from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "django-tasks-db's db_worker (a stand-in)"

    def handle(self, *args: Any, **options: Any) -> None:
        raise CommandError("Backend 'default' is not a database backend")
