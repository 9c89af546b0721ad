-- Named queries of `taskyard show` and `taskyard list` (read only; see taskyard/inspection.py).

-- name: inspect_list
SELECT * FROM taskyard_task
WHERE (:status IS NULL OR status = :status)
  AND (:queue IS NULL OR queue_name = :queue)
  AND (:task IS NULL OR task_path = :task)
ORDER BY enqueued_at DESC, id DESC
LIMIT :limit;

-- name: inspect_dependents
SELECT id, task_path, status FROM taskyard_task WHERE depends_on = :id ORDER BY enqueued_at, id;
