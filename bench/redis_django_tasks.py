"""The no-op task as django-tasks declares it, for the django-tasks-rq peer."""

from django_tasks import task


@task(queue_name="dj")
def noop() -> None:
    return None
