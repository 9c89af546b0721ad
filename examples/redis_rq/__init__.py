"""taskyard on Redis through rq: see README.md."""
