-- Named queries for the PostgreSQL store. Parameters use psycopg's %(name)s style.
-- Times are statement_timestamp(), not now(): inside a long transaction (a Django TestCase)
-- now() stands still.
-- Each query follows a "-- name: <name>" line and ends at the next one.

-- name: insert
-- One task; wakes idle workers (LISTEN taskyard) when it is due now.
WITH inserted AS (
    INSERT INTO taskyard_task (
        id, task_path, queue_name, priority, status, backend, args, kwargs, options,
        enqueued_at, enqueued_by, run_after, available_at, finished_at, max_attempts,
        depends_on, waiting_on, limit_key, qualifiers, errors, is_async)
    VALUES (
        %(id)s, %(task_path)s, %(queue_name)s, %(priority)s, %(status)s, %(backend)s,
        %(args)s::jsonb, %(kwargs)s::jsonb, %(options)s::jsonb, %(enqueued_at)s, %(enqueued_by)s,
        %(run_after)s::timestamptz, COALESCE(%(run_after)s::timestamptz, statement_timestamp()), %(finished_at)s,
        %(max_attempts)s, %(depends_on)s, %(waiting_on)s, %(limit_key)s,
        %(qualifiers)s::jsonb, %(errors)s::jsonb, %(is_async)s)
    ON CONFLICT (id) DO NOTHING
    RETURNING queue_name, status, available_at, waiting_on
)
SELECT pg_notify('taskyard', queue_name) FROM inserted
WHERE status = 'READY' AND waiting_on IS NULL AND available_at <= statement_timestamp();

-- name: insert_many
-- Many tasks in one statement. Per row (arrays of equal length, sent in binary): id, args,
-- kwargs and task_group, a 1-based index into the task arrays (task_path ... qualifiers: one
-- element per distinct task in the batch). enqueued_at and enqueued_by are one value for all.
-- One notification per queue.
WITH task AS (
    SELECT * FROM unnest(
        %(task_path)b::text[], %(queue_name)b::text[], %(priority)b::int[], %(backend)b::text[],
        %(options)b::text[], %(run_after)b::timestamptz[], %(max_attempts)b::int[],
        %(limit_key)b::text[], %(qualifiers)b::text[], %(is_async)b::bool[]) WITH ORDINALITY
        AS t(task_path, queue_name, priority, backend, options, run_after, max_attempts,
             limit_key, qualifiers, is_async, task_group)
), inserted AS (
    INSERT INTO taskyard_task (
        id, task_path, queue_name, priority, status, backend, args, kwargs, options,
        enqueued_at, enqueued_by, run_after, available_at, max_attempts, limit_key, qualifiers,
        is_async)
    SELECT r.id, t.task_path, t.queue_name, t.priority, 'READY', t.backend, r.args::jsonb,
           r.kwargs::jsonb, t.options::jsonb, %(enqueued_at)s::timestamptz, %(enqueued_by)s,
           t.run_after, COALESCE(t.run_after, statement_timestamp()), t.max_attempts,
           t.limit_key, t.qualifiers::jsonb, t.is_async
    FROM unnest(%(id)b::uuid[], %(args)b::text[], %(kwargs)b::text[], %(task_group)b::int[])
         AS r(id, args, kwargs, task_group)
    JOIN task AS t ON t.task_group = r.task_group
    ON CONFLICT (id) DO NOTHING
    RETURNING queue_name, available_at
)
SELECT pg_notify('taskyard', queue_name)
FROM (SELECT DISTINCT queue_name FROM inserted WHERE available_at <= statement_timestamp()) AS due;

-- name: mark_dependency
-- Locks the dependency row until the enqueuing transaction commits, so its completion
-- (which updates this row first) sees the new dependent.
UPDATE taskyard_task SET has_dependents = true WHERE id = %(id)s RETURNING id, status;

-- name: lock_limit_key
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0));

-- name: count_limit_key
SELECT count(*) AS pending FROM taskyard_task
WHERE limit_key = %(key)s AND status IN ('READY', 'RUNNING');

-- name: claim
-- Up to %(limit)s due sync tasks and %(async_limit)s due async tasks (the worker's free threads
-- and free event-loop slots), higher priority first, from the worker's queues (any with
-- any_queue), skipping rows other workers are claiming this instant.
WITH sync_rows AS (
    SELECT id FROM taskyard_task
    WHERE status = 'READY' AND waiting_on IS NULL AND NOT is_async
      AND available_at <= statement_timestamp()
      AND (%(any_queue)s OR queue_name = ANY(%(queues)s::text[]))
      AND NOT (queue_name = ANY(%(excluded)s::text[]))
      AND (qualifiers IS NULL OR qualifiers <@ %(qualifiers)s::jsonb)
    ORDER BY priority DESC, available_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), async_rows AS (
    SELECT id FROM taskyard_task
    WHERE status = 'READY' AND waiting_on IS NULL AND is_async
      AND available_at <= statement_timestamp()
      AND (%(any_queue)s OR queue_name = ANY(%(queues)s::text[]))
      AND NOT (queue_name = ANY(%(excluded)s::text[]))
      AND (qualifiers IS NULL OR qualifiers <@ %(qualifiers)s::jsonb)
    ORDER BY priority DESC, available_at, id
    LIMIT %(async_limit)s
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM sync_rows UNION ALL SELECT id FROM async_rows
)
UPDATE taskyard_task AS t SET
    status = 'RUNNING',
    attempts = t.attempts + 1,
    worker_id = %(worker_id)s::text,
    lease_expires_at = statement_timestamp() + %(lease)s * interval '1 second',
    started_at = COALESCE(t.started_at, statement_timestamp()),
    last_attempted_at = statement_timestamp(),
    worker_ids = t.worker_ids || jsonb_build_array(%(worker_id)s::text),
    interrupted_by = NULL
FROM picked WHERE t.id = picked.id
RETURNING t.*;

-- name: next_available_at
SELECT min(available_at) AS at FROM taskyard_task
WHERE status = 'READY' AND waiting_on IS NULL
  AND (%(any_queue)s OR queue_name = ANY(%(queues)s::text[]));

-- name: complete
-- Records finished attempts. Fenced by attempt: a row is written if this worker still holds
-- this attempt, or if the attempt was interrupted (its lease expired while the database was
-- away) and no newer attempt has begun since (interrupted_by still names this worker). Returns
-- the rows written.
UPDATE taskyard_task AS t SET
    status = v.status,
    finished_at = v.finished_at,
    available_at = COALESCE(v.available_at, t.available_at),
    return_value = v.return_value::jsonb,
    errors = t.errors || v.errors::jsonb,
    progress = COALESCE(v.progress::jsonb, t.progress),
    worker_id = NULL,
    lease_expires_at = NULL,
    interrupted_by = NULL
FROM unnest(%(id)s::uuid[], %(attempt)s::int[], %(status)s::text[],
            %(finished_at)s::timestamptz[], %(available_at)s::timestamptz[],
            %(return_value)s::text[], %(errors)s::text[], %(progress)s::text[])
    AS v(id, attempt, status, finished_at, available_at, return_value, errors, progress)
WHERE t.id = v.id AND t.attempts = v.attempt
  AND ((t.status = 'RUNNING' AND t.worker_id = %(worker_id)s)
       OR (t.status IN ('READY', 'FAILED') AND t.interrupted_by = %(worker_id)s))
RETURNING t.id, t.status, t.has_dependents, t.queue_name, t.available_at;

-- name: release_dependents
UPDATE taskyard_task SET waiting_on = NULL
WHERE waiting_on = ANY(%(ids)s::uuid[]) AND status = 'READY'
RETURNING queue_name;

-- name: cancel_dependents
WITH RECURSIVE doomed(id) AS (
    SELECT id FROM taskyard_task WHERE waiting_on = ANY(%(ids)s::uuid[]) AND status = 'READY'
    UNION
    SELECT t.id FROM taskyard_task t JOIN doomed d ON t.waiting_on = d.id
    WHERE t.status = 'READY'
)
UPDATE taskyard_task AS t SET
    status = 'CANCELLED',
    finished_at = statement_timestamp(),
    waiting_on = NULL,
    errors = t.errors || jsonb_build_array(jsonb_build_object(
        'exception_class_path', 'taskyard.exceptions.TaskCancelled',
        'traceback', 'taskyard.exceptions.TaskCancelled: cancelled because dependency '
                     || t.depends_on::text || ' did not succeed'))
FROM doomed WHERE t.id = doomed.id
RETURNING t.id;

-- name: settle_dependents
-- Safety net run by the maintenance loop: dependents whose dependency finished.
UPDATE taskyard_task AS t SET waiting_on = NULL
FROM taskyard_task AS d
WHERE t.waiting_on = d.id AND t.status = 'READY' AND d.status = 'SUCCESSFUL'
RETURNING t.id;

-- name: failed_dependencies
SELECT DISTINCT d.id FROM taskyard_task AS t JOIN taskyard_task AS d ON t.waiting_on = d.id
WHERE t.status = 'READY' AND d.status IN ('FAILED', 'CANCELLED');

-- name: extend_leases
UPDATE taskyard_task SET lease_expires_at = statement_timestamp() + %(lease)s * interval '1 second'
WHERE id = ANY(%(ids)s::uuid[]) AND worker_id = %(worker_id)s AND status = 'RUNNING'
RETURNING id, cancel_requested;

-- name: reap_expired
-- Attempts whose worker stopped renewing the lease were interrupted: they run again whatever
-- retries says (max_attempts grows by one), up to %(max_interruptions)s interruptions; beyond
-- that the task is FAILED (a task that kills its worker must not do so forever). available_at
-- is kept: a recovered task goes back to its old place in the queue, not to the end. A live
-- worker never reaps its own leases (%(worker_id)s): it renews those it still runs and records
-- those it finished while the database was away.
UPDATE taskyard_task SET
    status = CASE WHEN interruptions < %(max_interruptions)s THEN 'READY' ELSE 'FAILED' END,
    finished_at = CASE WHEN interruptions < %(max_interruptions)s THEN NULL
                       ELSE statement_timestamp() END,
    max_attempts = max_attempts + CASE WHEN interruptions < %(max_interruptions)s THEN 1 ELSE 0 END,
    interruptions = interruptions + 1,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'exception_class_path', 'taskyard.exceptions.WorkerLost',
        'traceback', 'taskyard.exceptions.WorkerLost: attempt ' || attempts::text
                     || ' was interrupted: worker ' || worker_id
                     || ' stopped renewing its lease (expired ' || lease_expires_at::text || ')'
                     || CASE WHEN interruptions < %(max_interruptions)s THEN '; it will run again'
                        ELSE '; interrupted ' || (interruptions + 1)::text || ' times, more than '
                             || 'MAX_INTERRUPTIONS (' || %(max_interruptions)s::text || ')' END)),
    interrupted_by = worker_id,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM taskyard_task
    WHERE status = 'RUNNING' AND lease_expires_at < statement_timestamp()
      AND (%(worker_id)s::text IS NULL OR worker_id <> %(worker_id)s::text)
    LIMIT 1000 FOR UPDATE SKIP LOCKED)
RETURNING id, status, has_dependents, queue_name;

-- name: release_unstarted
-- Hands claimed-but-unstarted tasks back: the attempt is not counted.
UPDATE taskyard_task SET
    status = 'READY',
    attempts = attempts - 1,
    worker_ids = worker_ids - (jsonb_array_length(worker_ids) - 1),
    started_at = CASE WHEN attempts = 1 THEN NULL ELSE started_at END,
    last_attempted_at = CASE WHEN attempts = 1 THEN NULL ELSE last_attempted_at END,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id = ANY(%(ids)s::uuid[]) AND worker_id = %(worker_id)s AND status = 'RUNNING'
RETURNING id, queue_name;

-- name: abandon_running
-- A stopping worker gives up running attempts (shutdown past its timeout, cold shutdown, a
-- dead child process): interrupted, as in reap_expired. With charge false (the worker is being
-- replaced because of another task) the interruption is not counted against the bound.
UPDATE taskyard_task SET
    status = CASE WHEN NOT %(charge)s OR interruptions < %(max_interruptions)s THEN 'READY'
                  ELSE 'FAILED' END,
    finished_at = CASE WHEN NOT %(charge)s OR interruptions < %(max_interruptions)s THEN NULL
                       ELSE statement_timestamp() END,
    max_attempts = max_attempts
        + CASE WHEN NOT %(charge)s OR interruptions < %(max_interruptions)s THEN 1 ELSE 0 END,
    interruptions = interruptions + CASE WHEN %(charge)s THEN 1 ELSE 0 END,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'exception_class_path', 'taskyard.exceptions.WorkerLost',
        'traceback', 'taskyard.exceptions.WorkerLost: attempt ' || attempts::text
                     || ' was interrupted: ' || %(reason)s::text
                     || CASE WHEN NOT %(charge)s OR interruptions < %(max_interruptions)s
                        THEN '; it will run again'
                        ELSE '; interrupted ' || (interruptions + 1)::text || ' times, more than '
                             || 'MAX_INTERRUPTIONS (' || %(max_interruptions)s::text || ')' END)),
    interrupted_by = worker_id,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id = ANY(%(ids)s::uuid[]) AND worker_id = %(worker_id)s AND status = 'RUNNING'
RETURNING id, status, has_dependents, queue_name;

-- name: quarantine
-- Pending rows whose stored JSON is not of the shape taskyard writes (changed by hand or by
-- another program): READY ones end FAILED, RUNNING ones keep running with the unreadable
-- columns reset, so their outcome can be recorded; the error names what was unreadable.
WITH bad AS (
    SELECT id, concat_ws(', ',
        CASE WHEN jsonb_typeof(worker_ids) <> 'array' THEN 'worker_ids' END,
        CASE WHEN jsonb_typeof(errors) <> 'array' THEN 'errors' END,
        CASE WHEN jsonb_typeof(args) <> 'array' THEN 'args' END,
        CASE WHEN jsonb_typeof(kwargs) <> 'object' THEN 'kwargs' END,
        CASE WHEN jsonb_typeof(options) NOT IN ('object', 'null') THEN 'options' END,
        CASE WHEN jsonb_typeof(qualifiers) NOT IN ('object', 'null') THEN 'qualifiers' END,
        CASE WHEN jsonb_typeof(progress) NOT IN ('object', 'null') THEN 'progress' END
    ) AS columns
    FROM taskyard_task
    WHERE status IN ('READY', 'RUNNING') AND (
        jsonb_typeof(worker_ids) <> 'array' OR jsonb_typeof(errors) <> 'array'
        OR jsonb_typeof(args) <> 'array' OR jsonb_typeof(kwargs) <> 'object'
        OR jsonb_typeof(options) NOT IN ('object', 'null')
        OR jsonb_typeof(qualifiers) NOT IN ('object', 'null')
        OR jsonb_typeof(progress) NOT IN ('object', 'null'))
    LIMIT 1000
)
UPDATE taskyard_task AS t SET
    status = CASE WHEN t.status = 'READY' THEN 'FAILED' ELSE t.status END,
    finished_at = CASE WHEN t.status = 'READY' THEN statement_timestamp() ELSE t.finished_at END,
    waiting_on = NULL,
    worker_ids = CASE WHEN jsonb_typeof(t.worker_ids) = 'array' THEN t.worker_ids
                      WHEN t.worker_id IS NULL THEN '[]'::jsonb
                      ELSE jsonb_build_array(t.worker_id) END,
    args = CASE WHEN jsonb_typeof(t.args) = 'array' THEN t.args ELSE '[]'::jsonb END,
    kwargs = CASE WHEN jsonb_typeof(t.kwargs) = 'object' THEN t.kwargs ELSE '{}'::jsonb END,
    options = CASE WHEN jsonb_typeof(t.options) = 'object' THEN t.options END,
    qualifiers = CASE WHEN jsonb_typeof(t.qualifiers) = 'object' THEN t.qualifiers END,
    progress = CASE WHEN jsonb_typeof(t.progress) = 'object' THEN t.progress END,
    errors = CASE WHEN jsonb_typeof(t.errors) = 'array' THEN t.errors ELSE '[]'::jsonb END
        || jsonb_build_array(jsonb_build_object(
            'exception_class_path', 'taskyard.exceptions.CorruptTask',
            'traceback', 'taskyard.exceptions.CorruptTask: stored data of this task cannot be '
                         || 'read (' || bad.columns || ')'
                         || CASE WHEN t.status = 'READY' THEN ': it will not run'
                            ELSE ': reset to empty values' END))
FROM bad WHERE t.id = bad.id
RETURNING t.id, t.status, t.has_dependents, t.queue_name;

-- name: held_by
SELECT id FROM taskyard_task WHERE worker_id = %(worker_id)s AND status = 'RUNNING';

-- name: set_progress
UPDATE taskyard_task SET
    progress = %(progress)s::jsonb,
    lease_expires_at = GREATEST(lease_expires_at, statement_timestamp() + %(lease)s * interval '1 second')
WHERE id = %(id)s AND worker_id = %(worker_id)s AND status = 'RUNNING'
RETURNING cancel_requested;

-- name: get
SELECT * FROM taskyard_task WHERE id = %(id)s;

-- name: cancel_ready
UPDATE taskyard_task SET
    status = 'CANCELLED',
    finished_at = statement_timestamp(),
    waiting_on = NULL,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'exception_class_path', 'taskyard.exceptions.TaskCancelled',
        'traceback', 'taskyard.exceptions.TaskCancelled: cancelled before it started'))
WHERE id = %(id)s AND status = 'READY'
RETURNING id, has_dependents;

-- name: request_cancel
UPDATE taskyard_task SET cancel_requested = true
WHERE id = %(id)s AND status = 'RUNNING'
RETURNING id;

-- name: retry_task
-- Puts a finished (FAILED or CANCELLED) task back in the queue with fresh attempts.
UPDATE taskyard_task SET
    status = 'READY', finished_at = NULL, available_at = statement_timestamp(), cancel_requested = false,
    max_attempts = attempts + %(attempts)s, waiting_on = NULL
WHERE id = %(id)s AND status IN ('FAILED', 'CANCELLED')
RETURNING id, queue_name;

-- name: delete_task
DELETE FROM taskyard_task WHERE id = %(id)s AND status <> 'RUNNING' RETURNING id;

-- name: worker_upsert
INSERT INTO taskyard_worker (worker_id, hostname, pid, queues, threads, state, started_at,
                             last_seen_at, processed, failed)
VALUES (%(worker_id)s, %(hostname)s, %(pid)s, %(queues)s, %(threads)s, %(state)s, statement_timestamp(), statement_timestamp(),
        %(processed)s, %(failed)s)
ON CONFLICT (worker_id) DO UPDATE SET
    state = EXCLUDED.state, last_seen_at = statement_timestamp(), processed = EXCLUDED.processed,
    failed = EXCLUDED.failed, queues = EXCLUDED.queues, threads = EXCLUDED.threads;

-- name: worker_delete
DELETE FROM taskyard_worker WHERE worker_id = %(worker_id)s;

-- name: workers
SELECT worker_id, hostname, pid, queues, threads, state, started_at, last_seen_at, processed,
       failed, statement_timestamp() AS db_now
FROM taskyard_worker ORDER BY worker_id;

-- name: forget_stale_workers
DELETE FROM taskyard_worker WHERE last_seen_at < statement_timestamp() - %(seconds)s * interval '1 second';

-- name: counts
SELECT queue_name, status, count(*) AS n FROM taskyard_task GROUP BY queue_name, status;

-- name: pending_counts
SELECT queue_name,
       count(*) FILTER (WHERE status = 'READY' AND waiting_on IS NULL AND available_at <= statement_timestamp())
           AS waiting,
       count(*) FILTER (WHERE status = 'READY' AND (waiting_on IS NOT NULL OR available_at > statement_timestamp()))
           AS scheduled,
       count(*) FILTER (WHERE status = 'RUNNING') AS running,
       min(available_at) FILTER (
           WHERE status = 'READY' AND waiting_on IS NULL AND available_at <= statement_timestamp())
           AS oldest_waiting_at
FROM taskyard_task WHERE status IN ('READY', 'RUNNING') GROUP BY queue_name;

-- name: failed_counts
SELECT queue_name, count(*) AS n FROM taskyard_task WHERE status = 'FAILED' GROUP BY queue_name;

-- name: prune
DELETE FROM taskyard_task WHERE id IN (
    SELECT id FROM taskyard_task
    WHERE finished_at < %(before)s AND status = ANY(%(statuses)s::text[])
      AND (%(any_queue)s OR queue_name = ANY(%(queues)s::text[]))
    LIMIT %(batch)s)
RETURNING id;

-- name: prune_count
SELECT count(*) AS n FROM taskyard_task
WHERE finished_at < %(before)s AND status = ANY(%(statuses)s::text[])
  AND (%(any_queue)s OR queue_name = ANY(%(queues)s::text[]));

-- name: count_tasks
SELECT count(*) AS n FROM taskyard_task;

-- name: count_live_leases
SELECT count(*) AS n FROM taskyard_task WHERE status = 'RUNNING' AND lease_expires_at > statement_timestamp();

-- name: export_batch
SELECT * FROM taskyard_task WHERE id > %(after)s ORDER BY id LIMIT %(batch)s;

-- name: delete_ids
DELETE FROM taskyard_task WHERE id = ANY(%(ids)s::uuid[]);

-- name: meta_exists
SELECT to_regclass('taskyard_meta') IS NOT NULL AS present;

-- name: meta_get
SELECT value FROM taskyard_meta WHERE key = %(key)s;

-- name: meta_set
INSERT INTO taskyard_meta (key, value) VALUES (%(key)s, %(value)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;

-- name: meta_delete
DELETE FROM taskyard_meta WHERE key = %(key)s;

-- name: import_task
INSERT INTO taskyard_task (
    id, task_path, queue_name, priority, status, backend, args, kwargs, options, enqueued_at,
    enqueued_by, run_after, available_at, started_at, last_attempted_at, finished_at, attempts,
    max_attempts, worker_ids, errors, return_value, progress, worker_id, lease_expires_at,
    cancel_requested, depends_on, waiting_on, has_dependents, limit_key, qualifiers,
    interruptions, interrupted_by, is_async)
VALUES (
    %(id)s, %(task_path)s, %(queue_name)s, %(priority)s, %(status)s, %(backend)s,
    %(args)s::jsonb, %(kwargs)s::jsonb, %(options)s::jsonb, %(enqueued_at)s, %(enqueued_by)s,
    %(run_after)s, %(available_at)s, %(started_at)s, %(last_attempted_at)s, %(finished_at)s,
    %(attempts)s, %(max_attempts)s, %(worker_ids)s::jsonb, %(errors)s::jsonb,
    %(return_value)s::jsonb, %(progress)s::jsonb, %(worker_id)s, %(lease_expires_at)s,
    %(cancel_requested)s, %(depends_on)s, %(waiting_on)s, %(has_dependents)s, %(limit_key)s,
    %(qualifiers)s::jsonb, %(interruptions)s, %(interrupted_by)s, %(is_async)s)
ON CONFLICT (id) DO NOTHING;

-- name: now
SELECT statement_timestamp() AS now;

-- name: ping
SELECT 1 AS ok;

-- name: autovacuum
-- Whether autovacuum cleans the task table: the server's setting and the table's own option.
SELECT current_setting('autovacuum') = 'on'
   AND NOT EXISTS (
       SELECT 1 FROM pg_class AS c, pg_options_to_table(c.reloptions) AS o
       WHERE c.oid = to_regclass('taskyard_task')
         AND o.option_name = 'autovacuum_enabled' AND o.option_value IN ('false', 'off')
   ) AS enabled;

-- Cron schedules (schema 0002). A claim and the task it enqueues share one transaction.

-- name: cron_claim
INSERT INTO taskyard_cron_tick (schedule, tick, task_id, outcome, claimed_at, claimed_by)
VALUES (%(schedule)s, %(tick)s, %(task_id)s, %(outcome)s, %(now)s, %(owner)s)
ON CONFLICT (schedule, tick) DO NOTHING
RETURNING schedule;

-- name: cron_last_ticks
SELECT schedule, max(tick) AS tick FROM taskyard_cron_tick
WHERE schedule = ANY(%(names)s) GROUP BY schedule;

-- name: cron_states
SELECT schedule, paused, paused_at, reason, failures, resumed_at FROM taskyard_cron_state
WHERE schedule = ANY(%(names)s);

-- name: cron_paused
SELECT schedule, paused, paused_at, reason, failures, resumed_at FROM taskyard_cron_state
WHERE paused ORDER BY schedule;

-- name: cron_recent
SELECT task_id FROM taskyard_cron_tick
WHERE schedule = %(schedule)s AND task_id IS NOT NULL
  AND (%(since)s::timestamptz IS NULL OR tick > %(since)s::timestamptz)
ORDER BY tick DESC LIMIT %(limit)s;

-- name: cron_pause
-- Returns a row only for the caller that paused it (not when it was paused already).
INSERT INTO taskyard_cron_state (schedule, paused, paused_at, reason, failures)
VALUES (%(schedule)s, true, %(now)s, %(reason)s, %(failures)s)
ON CONFLICT (schedule) DO UPDATE SET
    paused = true, paused_at = EXCLUDED.paused_at, reason = EXCLUDED.reason,
    failures = EXCLUDED.failures
WHERE NOT taskyard_cron_state.paused
RETURNING schedule;

-- name: cron_resume
UPDATE taskyard_cron_state SET paused = false, resumed_at = %(now)s, failures = 0
WHERE schedule = %(schedule)s AND paused
RETURNING schedule;

-- name: cron_prune
-- Claims older than :before, except each schedule's newest (it anchors missed-tick handling).
DELETE FROM taskyard_cron_tick AS t
WHERE t.tick < %(before)s
  AND EXISTS (SELECT 1 FROM taskyard_cron_tick AS n WHERE n.schedule = t.schedule AND n.tick > t.tick)
RETURNING schedule;
