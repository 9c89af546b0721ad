"""What taskyard's rq workers agree to run, decided before anything is imported or called.

An rq job carries more than its function: callbacks (``on_success``, ``on_failure``,
``on_stopped`` — dotted paths rq imports and calls), webhooks (URLs rq posts to), repeats,
and dependencies on other jobs. A worker that "runs only taskyard tasks" must refuse all of
them, or a job of ours carrying ``on_success=Callback("builtins.print")`` makes the worker
import and call ``builtins.print``.

* By default (``taskyard rqworker``; taskyard's worker classes) a job is run only if it calls
  ``run_job`` (a taskyard task), on no instance, with no callbacks, webhooks or repeats, and
  depends on taskyard tasks only. Anything else ends FAILED without running, with an error
  that says why.
* With ``--allow-rq-jobs`` (a worker class's ``allow_rq_jobs = True``), plain rq jobs, their
  webhooks, repeats and dependencies run too; callbacks still only when
  ``may_import_callback`` allows their module — never a module named only by job data.

``GuardedJob`` is the job class taskyard's workers use: the same rules hold on every path
where rq would import a callback (rq's registry maintenance calls failure callbacks of
abandoned jobs, for instance).
"""

from __future__ import annotations

import sys
from typing import Any

from rq.job import Job

from taskyard.backends.redis.keys import F_STATUS, RUN_JOB
from taskyard.exceptions import InvalidTask
from taskyard.tasks import registry


class JobRefused(InvalidTask):
    """An rq job taskyard's worker will not run (why is in the message); nothing was run."""


def may_import_callback(path: str) -> bool:
    """May a callback named ``path`` in job data be imported and called?

    Only from a module the deployment declared: one that defines taskyard tasks already
    imported in this worker (``--import``, settings ``IMPORTS``, Django apps' ``tasks``
    modules), or one under a prefix allowed for on-demand imports (``--allow-import``,
    ``ALLOWED_IMPORTS``, ``$TASKYARD_ALLOWED_IMPORTS``: the task registry's allow-list).
    ``builtins.print`` and ``os.system`` are refused. This is the one place the decision is
    made.
    """
    module, _, attr = path.rpartition(".")
    if not module or not attr:
        return False
    if module in sys.modules and module in {p.rpartition(".")[0] for p in registry.registered()}:
        return True
    return registry.may_import(module)


def callback_names(job: Job) -> list[str]:
    """The callbacks ``job`` carries (dotted paths), without importing anything."""
    names = (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name)
    return [name for name in names if name]


def refusal(job: Job, client: Any, allow_rq_jobs: bool) -> str | None:
    """Why taskyard's worker must not run ``job``, or ``None`` to run it.

    Reads the job's data (``DeserializationError`` when it cannot be read) and, for
    dependencies, one field per dependency; imports nothing.
    """
    name = job.func_name
    ours = name == RUN_JOB
    if not ours and not allow_rq_jobs:
        return (
            f"calls {name!r}, which is not a taskyard task: taskyard's worker runs only taskyard "
            "tasks (start it with --allow-rq-jobs to run plain rq jobs)"
        )
    if ours and job.instance is not None:
        return "calls taskyard's run_job on an instance, which taskyard never writes"
    callbacks = callback_names(job)
    if callbacks and not allow_rq_jobs:
        return (
            f"carries rq callback(s) {', '.join(callbacks)}: taskyard's worker never imports "
            "or calls a callback named by job data (--allow-rq-jobs allows callbacks from "
            "declared task modules only)"
        )
    blocked = [c for c in callbacks if not may_import_callback(c)]
    if blocked:
        return (
            f"carries rq callback(s) {', '.join(blocked)} from module(s) this worker does not "
            "declare: callbacks are imported only from task modules the worker was started "
            "with (--import, IMPORTS, Django apps)"
        )
    if allow_rq_jobs:
        return None
    if job.webhooks:
        return "carries rq webhooks, which taskyard never writes"
    if job.repeats_left:
        return "carries an rq repeat, which taskyard never writes"
    foreign = _foreign_dependencies(job, client)
    if foreign:
        return (
            f"depends on rq job(s) {', '.join(foreign)} that are not taskyard tasks "
            "(--allow-rq-jobs allows dependencies on plain rq jobs)"
        )
    return None


def _foreign_dependencies(job: Job, client: Any) -> list[str]:
    ids = [str(d) for d in job._dependency_ids]
    if not ids:
        return []
    with client.pipeline(transaction=False) as pipe:
        for dep in ids:
            pipe.hexists(Job.key_for(dep), F_STATUS)
        ours = pipe.execute()
    return [dep for dep, known in zip(ids, ours, strict=True) if not known]


class GuardedJob(Job):
    """An rq ``Job`` that imports a callback only when ``may_import_callback`` allows it and
    calls a function other than ``run_job`` only when ``allow_rq_jobs`` is set.

    Every path of rq that would import a callback (the worker, rq's registry clean-ups) goes
    through these properties; a refused callback raises ``JobRefused`` instead of importing.
    """

    allow_rq_jobs = False

    @property
    def func(self) -> Any:
        name = self.func_name
        if name != RUN_JOB and not self.allow_rq_jobs:
            raise JobRefused(f"job {self.id} {refusal(self, self.connection, False)}")
        return super().func

    def _guard_callback(self, name: str | None) -> None:
        if name and not (self.allow_rq_jobs and may_import_callback(name)):
            raise JobRefused(
                f"job {self.id}: callback {name!r} refused: taskyard's worker never imports a "
                "callback named by job data unless its module is a declared task module"
            )

    @property
    def success_callback(self) -> Any:
        self._guard_callback(self._success_callback_name)
        return super().success_callback

    @property
    def failure_callback(self) -> Any:
        self._guard_callback(self._failure_callback_name)
        return super().failure_callback

    @property
    def stopped_callback(self) -> Any:
        self._guard_callback(self._stopped_callback_name)
        return super().stopped_callback


class PermissiveGuardedJob(GuardedJob):
    """``GuardedJob`` for ``--allow-rq-jobs``: plain rq jobs run; callbacks only if allowed."""

    allow_rq_jobs = True


def guarded_job_class(job_class: type[Job] | None, allow_rq_jobs: bool) -> type[Job]:
    """``job_class`` (rq's ``Job`` when ``None``) with the guard of ``GuardedJob``."""
    base = PermissiveGuardedJob if allow_rq_jobs else GuardedJob
    if job_class is None or job_class is Job or job_class in (GuardedJob, PermissiveGuardedJob):
        return base
    if issubclass(job_class, GuardedJob) and job_class.allow_rq_jobs == allow_rq_jobs:
        return job_class
    return type(f"Guarded{job_class.__name__}", (base, job_class), {"__module__": __name__})


__all__ = [
    "GuardedJob",
    "JobRefused",
    "PermissiveGuardedJob",
    "callback_names",
    "guarded_job_class",
    "may_import_callback",
    "refusal",
]
