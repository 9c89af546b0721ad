"""What taskyard keeps in an rq job: the task's options in the job's arguments, and its own
result record in extra fields of the job hash. Reading a ``TaskResult`` back from a job hash
(in any process) lives here too, with the mapping from rq's job states to taskyard's statuses.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskyard.backends.redis.keys import (
    F_ATTEMPT,
    F_CANCEL,
    F_RECORD,
    F_RETURN,
    F_STATUS,
    RUN_JOB,
    as_str,
)
from taskyard.backends.redis.quarantine import CorruptJob
from taskyard.exceptions import InvalidTask, TaskResultDoesNotExist, WorkerLost
from taskyard.tasks import registry
from taskyard.tasks.results import Progress, TaskError, TaskResult, TaskResultStatus
from taskyard.tasks.task import DEFAULT_RETRY_ON, EXTENSION_OPTIONS, Task

if TYPE_CHECKING:
    from taskyard.backends.base import Backend

S = TaskResultStatus

#: ``Task`` fields carried in the job so a worker (and a reader) rebuilds the enqueued task.
OPTION_FIELDS = (
    "priority",
    "queue_name",
    "backend",
    "run_after",
    *(name for name in EXTENSION_OPTIONS if name != "qualifiers"),  # refused on Redis
)
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(Task) if f.name in OPTION_FIELDS}
_DEFAULTS["retry_on"] = DEFAULT_RETRY_ON

#: rq job states (``status`` field) that are final.
RQ_FINISHED = frozenset({"finished", "failed", "stopped", "canceled"})
FINISHED_NAMES = frozenset({"SUCCESSFUL", "FAILED", "CANCELLED"})


_PLAIN: set[int] = set()  # ids of declared tasks whose options are all the defaults


# -- task options -----------------------------------------------------------------------------


def encode_options(task: Task[Any, Any]) -> dict[str, Any]:
    """The options of ``task`` that differ from a bare ``Task``'s defaults, as JSON."""
    out: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        value = getattr(task, name)
        if value == _DEFAULTS[name]:
            continue
        if name == "run_after":
            value = value.isoformat()
        elif name == "retry_on":
            value = [registry.class_path(c) for c in value]
        out[name] = value
    return out


def decode_option(name: str, value: Any) -> Any:
    if name == "run_after":
        return datetime.fromisoformat(value)
    if name == "retry_on":
        return tuple(registry.import_exception(path) for path in value)
    return value


def task_from_options(module_path: str, options: Mapping[str, Any]) -> Task[Any, Any]:
    """The task declared at ``module_path`` with the enqueued ``options`` applied.

    Raises ``TaskNotFound``/``InvalidTask`` when the path is not a task or an option is bad.
    """
    declared = registry.resolve(module_path)
    if not options:
        # The usual case: enqueued as declared, unless the declaration itself sets options.
        if id(declared) not in _PLAIN:
            if any(getattr(declared, n) != _DEFAULTS[n] for n in OPTION_FIELDS):
                return replace(declared, **{n: _DEFAULTS[n] for n in OPTION_FIELDS})
            _PLAIN.add(id(declared))  # declared tasks live as long as the process
        return declared
    changes: dict[str, Any] = {}
    for name in OPTION_FIELDS:
        want = decode_option(name, options[name]) if name in options else _DEFAULTS[name]
        if getattr(declared, name) != want:
            changes[name] = want
    return replace(declared, **changes) if changes else declared


# -- the record -------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def record_of(result: TaskResult[Any]) -> dict[str, Any]:
    """The JSON record of ``result`` (everything ``get_result`` needs beyond rq's own fields)."""
    return {
        "enqueued_at": _iso(result._enqueued_at),
        "enqueued_by": result._enqueued_by,
        "started_at": _iso(result._started_at),
        "last_attempted_at": _iso(result._last_attempted_at),
        "finished_at": _iso(result._finished_at),
        "errors": [e.to_json() for e in result._errors],
        "worker_ids": list(result._worker_ids),
    }


def dump_record(result: TaskResult[Any]) -> str:
    return json.dumps(record_of(result), separators=(",", ":"))


def apply_record(result: TaskResult[Any], record: Mapping[str, Any]) -> None:
    result._enqueued_at = _dt(record.get("enqueued_at"))
    result._enqueued_by = record.get("enqueued_by")
    result._started_at = _dt(record.get("started_at"))
    result._last_attempted_at = _dt(record.get("last_attempted_at"))
    result._finished_at = _dt(record.get("finished_at"))
    # Lua's cjson writes an empty list back as {}: treat any empty value as no entries.
    result._errors = [TaskError.from_json(e) for e in record.get("errors") or ()]
    result._worker_ids = list(record.get("worker_ids") or ())


def load_record(raw: Any) -> dict[str, Any]:
    if not raw:
        return {}
    loaded = json.loads(raw)
    return loaded if isinstance(loaded, dict) else {}


def progress_meta(progress: Progress | None) -> str:
    """The rq ``meta`` JSON holding ``progress`` (rq dashboards show a job's meta)."""
    return json.dumps({"progress": progress.to_json() if progress else None})


def progress_from_meta(raw: Any) -> Progress | None:
    if not raw:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return Progress.from_json(meta.get("progress")) if isinstance(meta, dict) else None


# -- job data ---------------------------------------------------------------------------------


def decode_call(raw_data: bytes) -> tuple[str, list[Any]]:
    """``(func_name, args)`` from rq's stored job data (zlib-compressed JSON)."""
    try:
        data = zlib.decompress(raw_data)
    except zlib.error:
        data = raw_data
    func_name, _instance, args, _kwargs = json.loads(data)
    return func_name, args


def map_status(rq_status: str | None, status: str | None) -> TaskResultStatus:
    """taskyard's status from rq's job status and taskyard's own recorded status.

    taskyard's record wins once it is final. Otherwise: rq ``canceled``/``stopped`` are
    CANCELLED and ``failed``/``finished`` FAILED/SUCCESSFUL (rq decided without the wrapper, for
    example a lost worker with no attempts left); a recorded RUNNING attempt counts only while
    rq says the job is ``started`` (else it was lost and the job waits for its retry).
    """
    if status in FINISHED_NAMES:
        return S(status)
    if rq_status in ("canceled", "stopped"):
        return S.CANCELLED
    if rq_status == "failed":
        return S.FAILED
    if rq_status == "finished":
        return S.SUCCESSFUL
    if status == "RUNNING" and rq_status == "started":
        return S.RUNNING
    return S.READY


def decode_return_value(entry: Mapping[bytes, bytes] | None) -> tuple[bool, Any, str | None]:
    """From rq's latest result stream entry: (succeeded, return value, exception text)."""
    if not entry:
        return False, None, None
    kind = as_str(entry.get(b"type"))
    exc_text = None
    if entry.get(b"exc_string"):
        exc_text = zlib.decompress(base64.b64decode(entry[b"exc_string"])).decode()
    if kind != "1":
        return False, None, exc_text
    raw = entry.get(b"return_value")
    value = json.loads(base64.b64decode(raw)) if raw else None
    return True, value, exc_text


def result_from_hash(
    job_id: str,
    fields_: Mapping[bytes, bytes],
    latest: Mapping[bytes, bytes] | None,
    success: Mapping[bytes, bytes] | None,
    alias: str,
    backend: Backend | None = None,
) -> TaskResult[Any]:
    """Build a ``TaskResult`` from an rq job hash (``HGETALL``) and its rq result entries
    (``latest``, and the latest successful one, ``success``)."""
    raw = fields_.get(b"data")
    if not raw:
        raise TaskResultDoesNotExist(f"no result {job_id!r} in backend {alias!r}")
    damaged: list[str] = []
    try:
        func_name, call = decode_call(raw)
        module_path, args, kwargs, options = call
    except (ValueError, TypeError, zlib.error) as exc:
        if F_STATUS.encode() not in fields_:
            raise TaskResultDoesNotExist(
                f"rq job {job_id!r} in backend {alias!r} is not a taskyard task "
                f"(its data cannot be read: {exc})"
            ) from None
        # a taskyard task whose call data was damaged: still readable, with what is left
        func_name, module_path, args, kwargs, options = RUN_JOB, "<unreadable>", [], {}, {}
        damaged.append(f"its call data cannot be read ({exc})")
    if func_name != RUN_JOB:
        raise TaskResultDoesNotExist(
            f"rq job {job_id!r} in backend {alias!r} runs {func_name}, not a taskyard task"
        )
    try:
        task = task_from_options(module_path, options)
    except (InvalidTask, ValueError, TypeError):
        task = registry.placeholder(module_path)
    rq_status = as_str(fields_.get(b"status"))
    own_status = as_str(fields_.get(F_STATUS.encode()))
    status = map_status(rq_status, own_status)
    result: TaskResult[Any] = TaskResult(
        task=task,
        id=job_id,
        status=status,
        args=args,
        kwargs=kwargs,
        backend=alias,
        backend_obj=backend,
    )
    try:
        apply_record(result, load_record(fields_.get(F_RECORD.encode())))
    except (ValueError, TypeError, AttributeError) as exc:
        damaged.append(f"its taskyard record cannot be read ({exc})")
    result._progress = progress_from_meta(fields_.get(b"meta"))
    result._cancel_requested = fields_.get(F_CANCEL.encode()) == b"1"
    try:
        _, _, exc_text = decode_return_value(latest)
    except (ValueError, TypeError, zlib.error) as exc:
        exc_text = f"rq's result entry cannot be read ({exc})"
    if status is S.SUCCESSFUL:
        own_value = fields_.get(F_RETURN.encode())
        try:
            if own_value is not None:
                result._return_value = json.loads(own_value)
            else:  # finished by rq alone, or stored before taskyard kept its own copy
                succeeded, value, _ = decode_return_value(success)
                if succeeded:
                    result._return_value = value
        except (ValueError, TypeError, zlib.error) as exc:
            damaged.append(f"its return value cannot be read ({exc})")
    if damaged:  # say so in the result instead of failing every reader
        result._errors.append(
            TaskError(
                exception_class_path=registry.class_path(CorruptJob),
                traceback=f"job {job_id}: " + "; ".join(damaged) + "\n",
            )
        )
    if status in (S.FAILED, S.CANCELLED) and own_status not in FINISHED_NAMES:
        # rq ended the job without taskyard's wrapper recording it (a lost worker with no
        # attempts left, a job stopped through rq's own tools, an unreadable payload).
        text = exc_text or f"rq marked the job {rq_status}"
        result._errors.append(
            TaskError(
                exception_class_path=registry.class_path(WorkerLost),
                traceback=text,
            )
        )
        ended = as_str(fields_.get(b"ended_at"))
        try:
            result._finished_at = _parse_rq_date(ended) or result._last_attempted_at
        except ValueError:
            result._finished_at = result._last_attempted_at
    return result


def _parse_rq_date(text: str | None) -> datetime | None:
    if not text:
        return None
    from rq.utils import utcparse

    parsed: datetime = utcparse(text)
    return parsed


def attempt_of(fields_: Mapping[bytes, bytes]) -> int:
    try:
        return int(fields_.get(F_ATTEMPT.encode()) or 0)
    except ValueError:
        return 0
