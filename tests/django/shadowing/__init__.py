"""Stands in for django-tasks-db in the system-check tests: an app listed before taskyard's that
defines ``db_worker`` and ``prune_db_task_results`` (so it shadows ours)."""
