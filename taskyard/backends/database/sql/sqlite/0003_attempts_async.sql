-- taskyard schema version 3 (SQLite): interrupted attempts, and async tasks (see the PostgreSQL
-- file). Applied in one transaction together with the version record, so it runs exactly once.
ALTER TABLE taskyard_task ADD COLUMN interruptions integer NOT NULL DEFAULT 0;
ALTER TABLE taskyard_task ADD COLUMN interrupted_by varchar(200);
ALTER TABLE taskyard_task ADD COLUMN is_async bool NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS taskyard_task_ready_kind
    ON taskyard_task (is_async, priority DESC, available_at, id)
    WHERE status = 'READY' AND waiting_on IS NULL;
DROP INDEX IF EXISTS taskyard_task_ready;
