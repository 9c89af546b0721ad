-- taskyard schema version 3 (PostgreSQL): interrupted attempts, and async tasks.
-- interruptions counts attempts cut short by their worker's death or shutdown (they are re-run
-- whatever retries says, up to the backend's MAX_INTERRUPTIONS); interrupted_by names the
-- worker whose attempt was interrupted last, so that worker can still record its outcome if it
-- finished after all and no newer attempt has begun.
ALTER TABLE taskyard_task ADD COLUMN IF NOT EXISTS interruptions integer NOT NULL DEFAULT 0;
ALTER TABLE taskyard_task ADD COLUMN IF NOT EXISTS interrupted_by varchar(200);
-- is_async: the task is an `async def`. Workers claim async tasks for their event loop and sync
-- ones for their threads separately, each up to its free slots, so the ready index leads with it.
ALTER TABLE taskyard_task ADD COLUMN IF NOT EXISTS is_async boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS taskyard_task_ready_kind
    ON taskyard_task (is_async, priority DESC, available_at, id)
    WHERE status = 'READY' AND waiting_on IS NULL;
DROP INDEX IF EXISTS taskyard_task_ready;
