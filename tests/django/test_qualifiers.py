"""fullctl's ``Setting`` qualifier: a worker claims a task only when its own Django settings
satisfy the qualifiers declared on the task (issue 10, fullctl item)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import override_settings

from taskyard.contrib.django.models import Task
from taskyard.contrib.django.qualifiers import Setting, worker_qualifiers
from taskyard.exceptions import InvalidTask
from tests.django.alerting import tasks

pytestmark = pytest.mark.django_db(databases=["default", "queue2"])


def _status(result_id: str) -> str:
    return str(Task.objects.get(id=result_id).status)


def test_stored_qualifiers() -> None:
    eq = tasks.needs_important_setting.enqueue()
    pred = tasks.needs_xyz_in_list.enqueue()
    assert Task.objects.get(id=eq.id).qualifiers == {"setting:IMPORTANT_SETTING": "true"}
    path = "tests.django.alerting.tasks.needs_xyz_in_list"
    assert Task.objects.get(id=pred.id).qualifiers == {f"setting:IMPORTANT_LIST@{path}#0": "true"}


@pytest.mark.parametrize("command", [["db_worker", "--batch"], ["taskyard", "worker", "--burst"]])
def test_value_qualifier_in_place(command: list[str]) -> None:
    result = tasks.needs_important_setting.enqueue()
    with override_settings(IMPORTANT_SETTING=False):
        call_command(*command, "--queue-name" if command[0] == "db_worker" else "--queues", "*")
    assert _status(result.id) == "READY"  # this "worker" does not qualify
    call_command(*command, "--queue-name" if command[0] == "db_worker" else "--queues", "*")
    assert _status(result.id) == "SUCCESSFUL"


def test_predicate_qualifier_in_place() -> None:
    result = tasks.needs_xyz_in_list.enqueue()
    call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
    assert _status(result.id) == "READY"  # settings.IMPORTANT_LIST is ["abc"]
    with override_settings(IMPORTANT_LIST=["abc", "xyz"]):
        call_command("db_worker", "--batch", "--queue-name", "*", verbosity=0)
    assert _status(result.id) == "SUCCESSFUL"


@pytest.mark.parametrize(
    "command",
    [
        ["db_worker", "--batch", "--queue-name", "*", "--threads", "2", "-v", "0"],
        ["taskyard", "worker", "--burst", "--queues", "*", "--threads", "2", "-v", "0"],
    ],
)
@pytest.mark.django_db(transaction=True, databases=["default", "queue2"])
def test_real_worker_threads_honour_setting_qualifiers(command: list[str]) -> None:
    value = tasks.needs_important_setting.enqueue()
    predicate = tasks.needs_xyz_in_list.enqueue()
    with override_settings(IMPORTANT_SETTING="no"):
        call_command(*command)
    assert (_status(value.id), _status(predicate.id)) == ("READY", "READY")
    with override_settings(IMPORTANT_LIST=["xyz"]):
        call_command(*command)
    assert (_status(value.id), _status(predicate.id)) == ("SUCCESSFUL", "SUCCESSFUL")


def test_worker_qualifiers_and_checks() -> None:
    with override_settings(IMPORTANT_SETTING=True, IMPORTANT_LIST=["xyz"]):
        own = worker_qualifiers()
    assert own["setting:IMPORTANT_SETTING"] == "true"
    assert any(k.startswith("setting:IMPORTANT_LIST@") for k in own)
    with override_settings(IMPORTANT_LIST=None), pytest.raises(TypeError):
        worker_qualifiers()  # "xyz" in None: fullctl's predicates must work on the value
    assert Setting("MISSING_SETTING", True).check(object()) is False
    with pytest.raises(TypeError, match="not a bool"):
        Setting("X", lambda v: "yes").check(type("S", (), {"X": 1})())
    with pytest.raises(InvalidTask, match="JSON"):
        Setting("X", object())
    from taskyard.contrib.django.compat import primary

    with pytest.raises(primary().InvalidTask, match="declared on the task"):
        tasks.needs_xyz_in_list.using(qualifiers=[Setting("IMPORTANT_LIST", lambda v: True)])
