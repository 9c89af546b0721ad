-- Named queries for the SQLite store. Parameters use sqlite3's :name style. Times are UTC text
-- 'YYYY-MM-DD HH:MM:SS.ffffff' passed in as :now; lists of ids are JSON arrays (json_each).

-- name: insert
INSERT INTO taskyard_task (
    id, task_path, queue_name, priority, status, backend, args, kwargs, options,
    enqueued_at, enqueued_by, run_after, available_at, finished_at, max_attempts,
    depends_on, waiting_on, limit_key, qualifiers, errors, is_async)
VALUES (
    :id, :task_path, :queue_name, :priority, :status, :backend, :args, :kwargs, :options,
    :enqueued_at, :enqueued_by, :run_after, COALESCE(:run_after, :enqueued_at), :finished_at,
    :max_attempts, :depends_on, :waiting_on, :limit_key, :qualifiers, :errors, :is_async)
ON CONFLICT (id) DO NOTHING;

-- name: insert_many
-- One row of a bulk insert, run with executemany. Positional parameters (they bind faster than
-- named ones): id, then the task's columns (task_path, queue_name, priority, backend, options,
-- run_after, max_attempts, limit_key, qualifiers, is_async), then args, kwargs, enqueued_at,
-- enqueued_by.
INSERT INTO taskyard_task (
    id, task_path, queue_name, priority, backend, options, run_after, max_attempts, limit_key,
    qualifiers, is_async, args, kwargs, enqueued_at, enqueued_by, status, available_at, errors)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'READY',
        COALESCE(?7, ?14), '[]')
ON CONFLICT (id) DO NOTHING;

-- name: mark_dependency
UPDATE taskyard_task SET has_dependents = 1 WHERE id = :id RETURNING id, status;

-- name: count_limit_key
SELECT count(*) AS pending FROM taskyard_task
WHERE limit_key = :key AND status IN ('READY', 'RUNNING');

-- name: claim
-- Up to :limit due sync tasks and :async_limit due async tasks (see the PostgreSQL file).
UPDATE taskyard_task SET
    status = 'RUNNING',
    attempts = attempts + 1,
    worker_id = :worker_id,
    lease_expires_at = :lease_until,
    started_at = COALESCE(started_at, :now),
    last_attempted_at = :now,
    worker_ids = json_insert(worker_ids, '$[#]', :worker_id),
    interrupted_by = NULL
WHERE id IN (
    SELECT id FROM (
        SELECT id FROM taskyard_task
        WHERE status = 'READY' AND waiting_on IS NULL AND is_async = 0 AND available_at <= :now
          AND (:any_queue OR queue_name IN (SELECT value FROM json_each(:queues)))
          AND queue_name NOT IN (SELECT value FROM json_each(:excluded))
          AND (qualifiers IS NULL OR NOT EXISTS (
              SELECT 1 FROM json_each(taskyard_task.qualifiers) AS q
              WHERE json_extract(:qualifiers, '$."' || q.key || '"') IS NOT q.value))
        ORDER BY priority DESC, available_at, id
        LIMIT :limit)
    UNION ALL
    SELECT id FROM (
        SELECT id FROM taskyard_task
        WHERE status = 'READY' AND waiting_on IS NULL AND is_async = 1 AND available_at <= :now
          AND (:any_queue OR queue_name IN (SELECT value FROM json_each(:queues)))
          AND queue_name NOT IN (SELECT value FROM json_each(:excluded))
          AND (qualifiers IS NULL OR NOT EXISTS (
              SELECT 1 FROM json_each(taskyard_task.qualifiers) AS q
              WHERE json_extract(:qualifiers, '$."' || q.key || '"') IS NOT q.value))
        ORDER BY priority DESC, available_at, id
        LIMIT :async_limit))
RETURNING *;

-- name: next_available_at
SELECT min(available_at) AS at FROM taskyard_task
WHERE status = 'READY' AND waiting_on IS NULL
  AND (:any_queue OR queue_name IN (SELECT value FROM json_each(:queues)));

-- name: complete
-- One finished attempt (run once per task inside one transaction). Fenced like PostgreSQL's:
-- this worker's running attempt, or its interrupted attempt if no newer one has begun.
UPDATE taskyard_task SET
    status = :status,
    finished_at = :finished_at,
    available_at = COALESCE(:available_at, available_at),
    return_value = :return_value,
    errors = CASE WHEN :error IS NULL THEN errors ELSE json_insert(errors, '$[#]', json(:error)) END,
    progress = COALESCE(:progress, progress),
    worker_id = NULL,
    lease_expires_at = NULL,
    interrupted_by = NULL
WHERE id = :id AND attempts = :attempt
  AND ((status = 'RUNNING' AND worker_id = :worker_id)
       OR (status IN ('READY', 'FAILED') AND interrupted_by = :worker_id))
RETURNING id, status, has_dependents, queue_name, available_at;

-- name: release_dependents
UPDATE taskyard_task SET waiting_on = NULL
WHERE waiting_on IN (SELECT value FROM json_each(:ids)) AND status = 'READY'
RETURNING queue_name;

-- name: cancel_dependents
UPDATE taskyard_task SET
    status = 'CANCELLED',
    finished_at = :now,
    waiting_on = NULL,
    errors = json_insert(errors, '$[#]', json_object(
        'exception_class_path', 'taskyard.exceptions.TaskCancelled',
        'traceback', 'taskyard.exceptions.TaskCancelled: cancelled because dependency '
                     || depends_on || ' did not succeed'))
WHERE id IN (
    WITH RECURSIVE doomed(id) AS (
        SELECT id FROM taskyard_task
        WHERE waiting_on IN (SELECT value FROM json_each(:ids)) AND status = 'READY'
        UNION
        SELECT t.id FROM taskyard_task AS t JOIN doomed AS d ON t.waiting_on = d.id
        WHERE t.status = 'READY'
    )
    SELECT id FROM doomed)
RETURNING id;

-- name: settle_dependents
UPDATE taskyard_task SET waiting_on = NULL
WHERE status = 'READY' AND waiting_on IN (
    SELECT id FROM taskyard_task WHERE status = 'SUCCESSFUL')
RETURNING id;

-- name: failed_dependencies
SELECT DISTINCT d.id FROM taskyard_task AS t JOIN taskyard_task AS d ON t.waiting_on = d.id
WHERE t.status = 'READY' AND d.status IN ('FAILED', 'CANCELLED');

-- name: extend_leases
UPDATE taskyard_task SET lease_expires_at = :lease_until
WHERE id IN (SELECT value FROM json_each(:ids)) AND worker_id = :worker_id AND status = 'RUNNING'
RETURNING id, cancel_requested;

-- name: reap_expired
-- Interrupted attempts (see the PostgreSQL file): run again up to :max_interruptions times.
UPDATE taskyard_task SET
    status = CASE WHEN interruptions < :max_interruptions THEN 'READY' ELSE 'FAILED' END,
    finished_at = CASE WHEN interruptions < :max_interruptions THEN NULL ELSE :now END,
    max_attempts = max_attempts + CASE WHEN interruptions < :max_interruptions THEN 1 ELSE 0 END,
    interruptions = interruptions + 1,
    errors = json_insert(errors, '$[#]', json_object(
        'exception_class_path', 'taskyard.exceptions.WorkerLost',
        'traceback', 'taskyard.exceptions.WorkerLost: attempt ' || attempts
                     || ' was interrupted: worker ' || worker_id
                     || ' stopped renewing its lease (expired ' || lease_expires_at || ')'
                     || CASE WHEN interruptions < :max_interruptions THEN '; it will run again'
                        ELSE '; interrupted ' || (interruptions + 1) || ' times, more than '
                             || 'MAX_INTERRUPTIONS (' || :max_interruptions || ')' END)),
    interrupted_by = worker_id,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE status = 'RUNNING' AND lease_expires_at < :now
  AND (:worker_id IS NULL OR worker_id <> :worker_id)
RETURNING id, status, has_dependents, queue_name;

-- name: release_unstarted
UPDATE taskyard_task SET
    status = 'READY',
    attempts = attempts - 1,
    worker_ids = json_remove(worker_ids, '$[#-1]'),
    started_at = CASE WHEN attempts = 1 THEN NULL ELSE started_at END,
    last_attempted_at = CASE WHEN attempts = 1 THEN NULL ELSE last_attempted_at END,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND worker_id = :worker_id AND status = 'RUNNING'
RETURNING id, queue_name;

-- name: abandon_running
-- A stopping worker gives up running attempts: interrupted, as in reap_expired; with :charge
-- false the interruption is not counted against the bound.
UPDATE taskyard_task SET
    status = CASE WHEN NOT :charge OR interruptions < :max_interruptions THEN 'READY'
                  ELSE 'FAILED' END,
    finished_at = CASE WHEN NOT :charge OR interruptions < :max_interruptions THEN NULL
                       ELSE :now END,
    max_attempts = max_attempts
        + CASE WHEN NOT :charge OR interruptions < :max_interruptions THEN 1 ELSE 0 END,
    interruptions = interruptions + CASE WHEN :charge THEN 1 ELSE 0 END,
    errors = json_insert(errors, '$[#]', json_object(
        'exception_class_path', 'taskyard.exceptions.WorkerLost',
        'traceback', 'taskyard.exceptions.WorkerLost: attempt ' || attempts
                     || ' was interrupted: ' || :reason
                     || CASE WHEN NOT :charge OR interruptions < :max_interruptions
                        THEN '; it will run again'
                        ELSE '; interrupted ' || (interruptions + 1) || ' times, more than '
                             || 'MAX_INTERRUPTIONS (' || :max_interruptions || ')' END)),
    interrupted_by = worker_id,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND worker_id = :worker_id AND status = 'RUNNING'
RETURNING id, status, has_dependents, queue_name;

-- name: quarantine
-- Pending rows whose stored JSON cannot be read (see the PostgreSQL file). json_type() fails on
-- malformed text, so it is asked only after json_valid().
WITH shapes AS (
    SELECT id, status,
        CASE WHEN json_valid(worker_ids) THEN json_type(worker_ids) END AS worker_ids,
        CASE WHEN json_valid(errors) THEN json_type(errors) END AS errors,
        CASE WHEN json_valid(args) THEN json_type(args) END AS args,
        CASE WHEN json_valid(kwargs) THEN json_type(kwargs) END AS kwargs,
        CASE WHEN options IS NULL THEN 'null' WHEN json_valid(options) THEN json_type(options)
             END AS options,
        CASE WHEN qualifiers IS NULL THEN 'null' WHEN json_valid(qualifiers)
             THEN json_type(qualifiers) END AS qualifiers,
        CASE WHEN progress IS NULL THEN 'null' WHEN json_valid(progress)
             THEN json_type(progress) END AS progress,
        is_async IN (0, 1) AS kind_ok
    FROM taskyard_task WHERE status IN ('READY', 'RUNNING')
), bad AS (
    SELECT id, rtrim(
        CASE WHEN worker_ids IS NOT 'array' THEN 'worker_ids, ' ELSE '' END
        || CASE WHEN errors IS NOT 'array' THEN 'errors, ' ELSE '' END
        || CASE WHEN args IS NOT 'array' THEN 'args, ' ELSE '' END
        || CASE WHEN kwargs IS NOT 'object' THEN 'kwargs, ' ELSE '' END
        || CASE WHEN options NOT IN ('object', 'null') OR options IS NULL THEN 'options, ' ELSE '' END
        || CASE WHEN qualifiers NOT IN ('object', 'null') OR qualifiers IS NULL
                THEN 'qualifiers, ' ELSE '' END
        || CASE WHEN progress NOT IN ('object', 'null') OR progress IS NULL
                THEN 'progress, ' ELSE '' END
        || CASE WHEN kind_ok IS NOT 1 THEN 'is_async, ' ELSE '' END, ', ') AS columns
    FROM shapes
    WHERE worker_ids IS NOT 'array' OR errors IS NOT 'array' OR args IS NOT 'array'
       OR kwargs IS NOT 'object' OR options IS NULL OR options NOT IN ('object', 'null')
       OR qualifiers IS NULL OR qualifiers NOT IN ('object', 'null')
       OR progress IS NULL OR progress NOT IN ('object', 'null')
       OR kind_ok IS NOT 1
    LIMIT 1000
)
UPDATE taskyard_task SET
    status = CASE WHEN status = 'READY' THEN 'FAILED' ELSE status END,
    finished_at = CASE WHEN status = 'READY' THEN :now ELSE finished_at END,
    waiting_on = NULL,
    worker_ids = CASE WHEN json_valid(worker_ids) AND json_type(worker_ids) = 'array'
                      THEN worker_ids
                      WHEN worker_id IS NULL THEN '[]' ELSE json_array(worker_id) END,
    args = CASE WHEN json_valid(args) AND json_type(args) = 'array' THEN args ELSE '[]' END,
    kwargs = CASE WHEN json_valid(kwargs) AND json_type(kwargs) = 'object' THEN kwargs
                  ELSE '{}' END,
    options = CASE WHEN json_valid(options) AND json_type(options) = 'object' THEN options END,
    qualifiers = CASE WHEN json_valid(qualifiers) AND json_type(qualifiers) = 'object'
                      THEN qualifiers END,
    progress = CASE WHEN json_valid(progress) AND json_type(progress) = 'object'
                    THEN progress END,
    errors = json_insert(
        CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors ELSE '[]' END,
        '$[#]', json_object(
            'exception_class_path', 'taskyard.exceptions.CorruptTask',
            'traceback', 'taskyard.exceptions.CorruptTask: stored data of this task cannot be '
                         || 'read (' || (SELECT columns FROM bad WHERE bad.id = taskyard_task.id)
                         || ')' || CASE WHEN status = 'READY' THEN ': it will not run'
                                   ELSE ': reset to empty values' END))
WHERE id IN (SELECT id FROM bad)
RETURNING id, status, has_dependents, queue_name;

-- name: held_by
SELECT id FROM taskyard_task WHERE worker_id = :worker_id AND status = 'RUNNING';

-- name: set_progress
UPDATE taskyard_task SET
    progress = :progress,
    lease_expires_at = max(lease_expires_at, :lease_until)
WHERE id = :id AND worker_id = :worker_id AND status = 'RUNNING'
RETURNING cancel_requested;

-- name: get
SELECT * FROM taskyard_task WHERE id = :id;

-- name: cancel_ready
UPDATE taskyard_task SET
    status = 'CANCELLED',
    finished_at = :now,
    waiting_on = NULL,
    errors = json_insert(errors, '$[#]', json_object(
        'exception_class_path', 'taskyard.exceptions.TaskCancelled',
        'traceback', 'taskyard.exceptions.TaskCancelled: cancelled before it started'))
WHERE id = :id AND status = 'READY'
RETURNING id, has_dependents;

-- name: request_cancel
UPDATE taskyard_task SET cancel_requested = 1 WHERE id = :id AND status = 'RUNNING' RETURNING id;

-- name: retry_task
UPDATE taskyard_task SET
    status = 'READY', finished_at = NULL, available_at = :now, cancel_requested = 0,
    max_attempts = attempts + :attempts, waiting_on = NULL
WHERE id = :id AND status IN ('FAILED', 'CANCELLED')
RETURNING id, queue_name;

-- name: delete_task
DELETE FROM taskyard_task WHERE id = :id AND status <> 'RUNNING' RETURNING id;

-- name: worker_upsert
INSERT INTO taskyard_worker (worker_id, hostname, pid, queues, threads, state, started_at,
                             last_seen_at, processed, failed)
VALUES (:worker_id, :hostname, :pid, :queues, :threads, :state, :now, :now, :processed, :failed)
ON CONFLICT (worker_id) DO UPDATE SET
    state = excluded.state, last_seen_at = excluded.last_seen_at,
    processed = excluded.processed, failed = excluded.failed, queues = excluded.queues,
    threads = excluded.threads;

-- name: worker_delete
DELETE FROM taskyard_worker WHERE worker_id = :worker_id;

-- name: workers
SELECT worker_id, hostname, pid, queues, threads, state, started_at, last_seen_at, processed,
       failed, :now AS db_now
FROM taskyard_worker ORDER BY worker_id;

-- name: forget_stale_workers
DELETE FROM taskyard_worker WHERE last_seen_at < :before;

-- name: counts
SELECT queue_name, status, count(*) AS n FROM taskyard_task GROUP BY queue_name, status;

-- name: pending_counts
SELECT queue_name,
       count(*) FILTER (WHERE status = 'READY' AND waiting_on IS NULL AND available_at <= :now)
           AS waiting,
       count(*) FILTER (WHERE status = 'READY' AND (waiting_on IS NOT NULL OR available_at > :now))
           AS scheduled,
       count(*) FILTER (WHERE status = 'RUNNING') AS running,
       min(available_at) FILTER (
           WHERE status = 'READY' AND waiting_on IS NULL AND available_at <= :now)
           AS oldest_waiting_at
FROM taskyard_task WHERE status IN ('READY', 'RUNNING') GROUP BY queue_name;

-- name: failed_counts
SELECT queue_name, count(*) AS n FROM taskyard_task WHERE status = 'FAILED' GROUP BY queue_name;

-- name: prune
DELETE FROM taskyard_task WHERE id IN (
    SELECT id FROM taskyard_task
    WHERE finished_at < :before AND status IN (SELECT value FROM json_each(:statuses))
      AND (:any_queue OR queue_name IN (SELECT value FROM json_each(:queues)))
    LIMIT :batch)
RETURNING id;

-- name: prune_count
SELECT count(*) AS n FROM taskyard_task
WHERE finished_at < :before AND status IN (SELECT value FROM json_each(:statuses))
  AND (:any_queue OR queue_name IN (SELECT value FROM json_each(:queues)));

-- name: count_tasks
SELECT count(*) AS n FROM taskyard_task;

-- name: count_live_leases
SELECT count(*) AS n FROM taskyard_task WHERE status = 'RUNNING' AND lease_expires_at > :now;

-- name: export_batch
SELECT * FROM taskyard_task WHERE id > :after ORDER BY id LIMIT :batch;

-- name: delete_ids
DELETE FROM taskyard_task WHERE id IN (SELECT value FROM json_each(:ids));

-- name: import_task
INSERT INTO taskyard_task (
    id, task_path, queue_name, priority, status, backend, args, kwargs, options, enqueued_at,
    enqueued_by, run_after, available_at, started_at, last_attempted_at, finished_at, attempts,
    max_attempts, worker_ids, errors, return_value, progress, worker_id, lease_expires_at,
    cancel_requested, depends_on, waiting_on, has_dependents, limit_key, qualifiers,
    interruptions, interrupted_by, is_async)
VALUES (
    :id, :task_path, :queue_name, :priority, :status, :backend, :args, :kwargs, :options,
    :enqueued_at, :enqueued_by, :run_after, :available_at, :started_at, :last_attempted_at,
    :finished_at, :attempts, :max_attempts, :worker_ids, :errors, :return_value, :progress,
    :worker_id, :lease_expires_at, :cancel_requested, :depends_on, :waiting_on,
    :has_dependents, :limit_key, :qualifiers, :interruptions, :interrupted_by, :is_async)
ON CONFLICT (id) DO NOTHING;

-- name: meta_exists
SELECT count(*) > 0 AS present FROM sqlite_master WHERE type = 'table' AND name = 'taskyard_meta';

-- name: meta_get
SELECT value FROM taskyard_meta WHERE key = :key;

-- name: meta_set
INSERT INTO taskyard_meta (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: meta_delete
DELETE FROM taskyard_meta WHERE key = :key;

-- name: now
SELECT :now AS now;

-- name: ping
SELECT 1 AS ok;

-- Cron schedules (schema 0002). A claim and the task it enqueues share one transaction.

-- name: cron_claim
INSERT INTO taskyard_cron_tick (schedule, tick, task_id, outcome, claimed_at, claimed_by)
VALUES (:schedule, :tick, :task_id, :outcome, :now, :owner)
ON CONFLICT (schedule, tick) DO NOTHING
RETURNING schedule;

-- name: cron_last_ticks
SELECT schedule, max(tick) AS tick FROM taskyard_cron_tick
WHERE schedule IN (SELECT value FROM json_each(:names)) GROUP BY schedule;

-- name: cron_states
SELECT schedule, paused, paused_at, reason, failures, resumed_at FROM taskyard_cron_state
WHERE schedule IN (SELECT value FROM json_each(:names));

-- name: cron_paused
SELECT schedule, paused, paused_at, reason, failures, resumed_at FROM taskyard_cron_state
WHERE paused ORDER BY schedule;

-- name: cron_recent
SELECT task_id FROM taskyard_cron_tick
WHERE schedule = :schedule AND task_id IS NOT NULL AND (:since IS NULL OR tick > :since)
ORDER BY tick DESC LIMIT :limit;

-- name: cron_pause
-- Returns a row only for the caller that paused it (not when it was paused already).
INSERT INTO taskyard_cron_state (schedule, paused, paused_at, reason, failures)
VALUES (:schedule, 1, :now, :reason, :failures)
ON CONFLICT (schedule) DO UPDATE SET
    paused = 1, paused_at = excluded.paused_at, reason = excluded.reason,
    failures = excluded.failures
WHERE NOT taskyard_cron_state.paused
RETURNING schedule;

-- name: cron_resume
UPDATE taskyard_cron_state SET paused = 0, resumed_at = :now, failures = 0
WHERE schedule = :schedule AND paused
RETURNING schedule;

-- name: cron_prune
-- Claims older than :before, except each schedule's newest (it anchors missed-tick handling).
DELETE FROM taskyard_cron_tick AS t
WHERE t.tick < :before
  AND EXISTS (SELECT 1 FROM taskyard_cron_tick AS n WHERE n.schedule = t.schedule AND n.tick > t.tick)
RETURNING schedule;
