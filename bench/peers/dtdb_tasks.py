"""The no-op task as django-tasks-db needs it: the module attribute is the Django Task."""

from django_tasks import task


@task
def noop() -> None:
    return None
