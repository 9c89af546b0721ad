"""The Redis backend: taskyard tasks as ordinary rq jobs, run by rq workers.

Importing this package needs neither rq nor redis; using the backend does
(``pip install 'taskyard[redis]'``).
"""

from taskyard.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
