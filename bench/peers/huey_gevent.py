"""``huey_consumer`` for greenlet workers: gevent's monkey-patch first, then Huey's own
consumer entry point, as Huey's documentation asks (the consumer does not patch by itself)."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from huey.bin.huey_consumer import consumer_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(consumer_main())
