-- taskyard schema version 2 (PostgreSQL): cron schedules. Applied by `taskyard migrate` and by
-- the Django integration's migration; nothing else writes DDL.

-- One row per (schedule, tick) that a scheduler claimed. The primary key is the claim: the
-- row is inserted in the same transaction as the task it enqueues, so a tick is enqueued
-- exactly once however many schedulers run. task_id is NULL when the tick was claimed but
-- not enqueued (outcome 'limited': the task's limit was reached).
CREATE TABLE IF NOT EXISTS taskyard_cron_tick (
    schedule   varchar(200) NOT NULL,
    tick       timestamptz  NOT NULL,
    task_id    uuid,
    outcome    varchar(20)  NOT NULL,
    claimed_at timestamptz  NOT NULL,
    claimed_by varchar(200) NOT NULL,
    PRIMARY KEY (schedule, tick)
);

-- Per-schedule state shared by every scheduler: paused or not, and why.
CREATE TABLE IF NOT EXISTS taskyard_cron_state (
    schedule   varchar(200) PRIMARY KEY,
    paused     boolean      NOT NULL DEFAULT false,
    paused_at  timestamptz,
    reason     text,
    failures   integer      NOT NULL DEFAULT 0,
    resumed_at timestamptz
);
