"""Under Django, stored tasks never decide what a worker imports: only installed apps'
``tasks`` modules and ``TASKYARD_ALLOWED_IMPORTS`` may be imported on demand."""

from __future__ import annotations

import sys

import pytest
from django.test import override_settings

from taskyard.tasks import registry


def test_installed_apps_tasks_modules_may_be_imported_on_demand() -> None:
    assert registry.may_import("tests.django.testapp.tasks")
    assert registry.may_import("taskyard.contrib.django.tasks")
    assert not registry.may_import("tests.django.testapp.views")
    assert not registry.may_import("this")


def test_a_row_naming_another_module_imports_nothing() -> None:
    assert "this" not in sys.modules
    with pytest.raises(registry.TaskNotFound, match="may not import on demand"):
        registry.resolve("this.x")
    assert "this" not in sys.modules


@override_settings(TASKYARD_ALLOWED_IMPORTS=["tests.django.alerting"])
def test_more_packages_can_be_allowed_in_settings() -> None:
    from django.apps import apps

    from taskyard.contrib.django.apps import TaskyardConfig

    config = apps.get_app_config("taskyard")
    assert isinstance(config, TaskyardConfig)
    config.ready()
    assert registry.may_import("tests.django.alerting.notify")
