"""Shared by taskyard's management commands."""

from __future__ import annotations

import importlib
import logging


def autodiscover_tasks() -> list[str]:
    """Import each installed app's ``tasks`` module (where tasks and schedules live)."""
    from django.apps import apps
    from django.utils.module_loading import module_has_submodule

    found = []
    for config in apps.get_app_configs():
        if module_has_submodule(config.module, "tasks"):
            importlib.import_module(f"{config.name}.tasks")
            found.append(f"{config.name}.tasks")
    return found


def setup_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
