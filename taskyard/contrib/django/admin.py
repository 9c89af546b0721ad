"""Admin for taskyard's tables: browse, filter and search tasks; retry, cancel, delete.

Django's model permissions apply to everything: ``view_task`` to list and open tasks,
``change_task`` to retry and cancel, ``delete_task`` to delete (finished tasks only, through
the backend). Workers are read-only; resuming a cron schedule needs ``change_cronstate``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from taskyard.contrib.django.models import CronState, Task, Worker

if TYPE_CHECKING:
    TaskAdminBase = admin.ModelAdmin[Task]
    WorkerAdminBase = admin.ModelAdmin[Worker]
else:  # ModelAdmin is subscriptable only for type checkers
    TaskAdminBase = WorkerAdminBase = admin.ModelAdmin


def _queue_backend() -> Any:
    """The taskyard Database backend (core) whose table the admin shows."""
    from taskyard.config import backends
    from taskyard.contrib.django.database import DjangoDatabaseBackend
    from taskyard.contrib.django.settings import ensure_configured

    ensure_configured()
    for alias in backends.aliases():
        backend = backends[alias]
        if isinstance(backend, DjangoDatabaseBackend):
            return backend
    return None


def _database() -> str:
    backend = _queue_backend()
    return backend.database if backend is not None else "default"


#: Statuses of tasks that are cancelled, not deleted.
PENDING = ("READY", "RUNNING")


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


@admin.register(Task)
class TaskAdmin(TaskAdminBase):
    list_display = (
        "id",
        "task_path",
        "status",
        "queue_name",
        "priority",
        "attempts",
        "enqueued_at",
        "finished_at",
        "progress_display",
    )
    list_filter = ("status", "queue_name", "task_path", "priority")
    search_fields = ("id", "task_path", "enqueued_by", "worker_id", "limit_key")
    date_hierarchy = "enqueued_at"
    ordering = ("-enqueued_at",)
    list_per_page = 50
    actions = ["retry_tasks", "cancel_tasks", "delete_tasks"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "task_path",
                    "status",
                    "queue_name",
                    "priority",
                    "backend",
                    "enqueued_at",
                    "enqueued_by",
                    "run_after",
                    "started_at",
                    "last_attempted_at",
                    "finished_at",
                )
            },
        ),
        (
            "Arguments and result",
            {
                "fields": (
                    "args_display",
                    "kwargs_display",
                    "return_value_display",
                    "progress_display",
                )
            },
        ),
        ("Attempts", {"fields": ("attempts", "max_attempts", "worker_ids", "errors_display")}),
        (
            "Queue internals",
            {
                "classes": ("collapse",),
                "fields": (
                    "options",
                    "worker_id",
                    "lease_expires_at",
                    "cancel_requested",
                    "depends_on",
                    "waiting_on",
                    "limit_key",
                    "qualifiers",
                    "available_at",
                ),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        return super().get_queryset(request).using(_database())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status in PENDING:
            return False  # pending tasks are cancelled, not deleted
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # ours goes through the backend
        return actions

    def delete_model(self, request: HttpRequest, obj: Task) -> None:
        backend = _queue_backend()
        if backend is not None:
            backend.delete(str(obj.id))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f for fs in self.fieldsets for f in fs[1]["fields"]]

    @admin.display(description="args")
    def args_display(self, obj: Task) -> str:
        return _pretty(obj.args)

    @admin.display(description="kwargs")
    def kwargs_display(self, obj: Task) -> str:
        return _pretty(obj.kwargs)

    @admin.display(description="return value")
    def return_value_display(self, obj: Task) -> str:
        return _pretty(obj.return_value) if obj.status == "SUCCESSFUL" else "-"

    @admin.display(description="errors")
    def errors_display(self, obj: Task) -> str:
        if not obj.errors:
            return "-"
        return format_html_join(
            "",
            "<p><b>{}</b></p><pre>{}</pre>",
            ((e.get("exception_class_path", "?"), e.get("traceback", "")) for e in obj.errors),
        )

    @admin.display(description="progress")
    def progress_display(self, obj: Task) -> str:
        progress = obj.progress
        if not isinstance(progress, dict):
            return "-"
        current, total = progress.get("current"), progress.get("total")
        text = f"{current:g}/{total:g}" if total else f"{current}"
        if progress.get("message"):
            text += f" {progress['message']}"
        return text

    def _each(self, request: HttpRequest, queryset: QuerySet[Task], verb: str, action: Any) -> None:
        backend = _queue_backend()
        if backend is None:
            self.message_user(request, "no taskyard Database backend is configured", messages.ERROR)
            return
        items = [(str(task.id), task.status) for task in queryset]
        done = sum(1 for task_id, status in items if action(backend, task_id, status))
        self.message_user(
            request, f"{done} task(s) {verb}; {len(items) - done} skipped", messages.SUCCESS
        )

    @admin.action(description="Retry selected failed or cancelled tasks", permissions=["change"])
    def retry_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each(request, queryset, "queued again", lambda b, i, _: b.retry(i))

    @admin.action(description="Cancel selected tasks", permissions=["change"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each(request, queryset, "cancelled", lambda b, i, _: b.cancel(b.get_result(i)))

    @admin.action(description="Delete selected tasks (not running ones)", permissions=["delete"])
    def delete_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._each(
            request,
            queryset,
            "deleted",
            lambda b, i, status: status not in PENDING and b.delete(i),
        )


@admin.register(Worker)
class WorkerAdmin(WorkerAdminBase):
    list_display = (
        "worker_id",
        "state",
        "queues",
        "threads",
        "processed",
        "failed",
        "last_seen_at",
        "started_at",
    )
    readonly_fields = (
        "worker_id",
        "hostname",
        "pid",
        "queues",
        "threads",
        "state",
        "started_at",
        "last_seen_at",
        "processed",
        "failed",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Worker]:
        return super().get_queryset(request).using(_database())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


if TYPE_CHECKING:
    CronStateAdminBase = admin.ModelAdmin[CronState]
else:
    CronStateAdminBase = admin.ModelAdmin


@admin.register(CronState)
class CronStateAdmin(CronStateAdminBase):
    """Schedules that paused themselves (or were paused); resume them from here."""

    list_display = ("schedule", "paused", "failures", "reason", "paused_at", "resumed_at")
    list_filter = ("paused",)
    readonly_fields = ("schedule", "paused", "paused_at", "reason", "failures", "resumed_at")
    actions = ["resume"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CronState]:
        return super().get_queryset(request).using(_database())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[CronState]) -> None:
        from taskyard.cron.claims import store_for
        from taskyard.tasks.execution import utcnow

        backend = _queue_backend()
        if backend is None:
            return
        store = store_for(backend)
        done = sum(1 for state in queryset if store.resume(state.schedule, utcnow()))
        self.message_user(request, f"{done} schedule(s) resumed", messages.SUCCESS)
