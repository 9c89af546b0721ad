"""``rq worker -c bench.redis_rq_preload``: rq imports this settings module in the worker's
parent process, so forked work horses find taskyard's job wrapper and the task modules already
imported (as django-rq's ``rqworker`` does once Django has loaded its apps)."""

import bench.core_tasks  # noqa: F401
import taskyard.backends.redis.job  # noqa: F401
