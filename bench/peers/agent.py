"""A client for peers that need Django settings of their own (django-tasks-db,
django-tasks-rq): reads JSON requests on stdin, answers on stdout.

``$DJANGO_SETTINGS_MODULE`` and ``$BENCH_TASKS_MODULE`` (the module with ``noop`` and
``stamp`` Django tasks) say which peer this is.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

from bench.peers.base import stamped_call, timed_calls


def main() -> None:
    import django

    django.setup()
    tasks = importlib.import_module(os.environ["BENCH_TASKS_MODULE"])
    noop, stamp = tasks.noop, tasks.stamp

    def enqueue_one(n: int) -> float:
        return timed_calls(noop.enqueue, n)

    def enqueue_stamp(token: int, port: int) -> float:
        return stamped_call(stamp.enqueue, token, port)

    ops = {
        "enqueue_one": enqueue_one,
        "enqueue_stamp": enqueue_stamp,
        "version": django.get_version,
    }
    for line in sys.stdin:
        request = json.loads(line)
        op = ops[request.pop("op")]
        try:
            answer = {"value": op(**request)}
        except Exception:
            answer = {"error": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
