-- Named queries of `taskyard show` and `taskyard list` (read only; see taskyard/inspection.py).

-- name: inspect_list
SELECT * FROM taskyard_task
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(queue)s::text IS NULL OR queue_name = %(queue)s::text)
  AND (%(task)s::text IS NULL OR task_path = %(task)s::text)
ORDER BY enqueued_at DESC, id DESC
LIMIT %(limit)s;

-- name: inspect_dependents
SELECT id, task_path, status FROM taskyard_task WHERE depends_on = %(id)s ORDER BY enqueued_at, id;
