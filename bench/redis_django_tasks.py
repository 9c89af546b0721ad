"""The no-op task as django-tasks declares it, for the django-tasks-rq peer."""

from django_tasks import task


@task(queue_name="dj")
def noop() -> None:
    return None


@task(queue_name="dj")
def stamp(token: int, port: int) -> None:
    from bench.peers.probe import send_stamp

    send_stamp(token, port)
