-- taskyard schema version 3 (PostgreSQL): interrupted attempts.
-- interruptions counts attempts cut short by their worker's death or shutdown (they are re-run
-- whatever retries says, up to the backend's MAX_INTERRUPTIONS); interrupted_by names the
-- worker whose attempt was interrupted last, so that worker can still record its outcome if it
-- finished after all and no newer attempt has begun.
ALTER TABLE taskyard_task ADD COLUMN IF NOT EXISTS interruptions integer NOT NULL DEFAULT 0;
ALTER TABLE taskyard_task ADD COLUMN IF NOT EXISTS interrupted_by varchar(200);
