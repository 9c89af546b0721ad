"""The no-op task as django-tasks-db needs it: the module attribute is the Django Task."""

from django_tasks import task


@task
def noop() -> None:
    return None


@task
def stamp(token: int, port: int) -> None:
    from bench.peers.probe import send_stamp

    send_stamp(token, port)
