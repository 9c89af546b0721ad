"""The serializer taskyard's rq jobs use: JSON, never pickle.

rq serializes a job's call as ``(func_name, instance, args, kwargs)`` and its results, meta and
return values with the job's serializer. taskyard writes compact JSON; any rq worker configured
with a JSON serializer (``rq worker --serializer json`` or this class) reads it. A payload that
is not JSON fails to load and the job becomes FAILED; nothing is ever unpickled.
"""

from __future__ import annotations

import json
from typing import Any


class JSONSerializer:
    """rq serializer protocol (``dumps``/``loads``) over compact UTF-8 JSON."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    @staticmethod
    def loads(data: bytes | str) -> Any:
        return json.loads(data)


SERIALIZER_PATH = "taskyard.backends.redis.serializer.JSONSerializer"
