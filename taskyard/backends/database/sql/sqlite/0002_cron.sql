-- taskyard schema version 2 (SQLite): cron schedules. Applied by `taskyard migrate` and by the
-- Django integration's migration; nothing else writes DDL. Times are UTC text as in 0001.

-- One row per (schedule, tick) that a scheduler claimed. The primary key is the claim: the
-- row is inserted in the same transaction as the task it enqueues, so a tick is enqueued
-- exactly once however many schedulers run. task_id is NULL when the tick was claimed but
-- not enqueued (outcome 'limited': the task's limit was reached).
CREATE TABLE IF NOT EXISTS taskyard_cron_tick (
    schedule   varchar(200) NOT NULL,
    tick       datetime     NOT NULL,
    task_id    char(36),
    outcome    varchar(20)  NOT NULL,
    claimed_at datetime     NOT NULL,
    claimed_by varchar(200) NOT NULL,
    PRIMARY KEY (schedule, tick)
);

-- Per-schedule state shared by every scheduler: paused or not, and why.
CREATE TABLE IF NOT EXISTS taskyard_cron_state (
    schedule   varchar(200) NOT NULL PRIMARY KEY,
    paused     bool         NOT NULL DEFAULT 0,
    paused_at  datetime,
    reason     text,
    failures   integer      NOT NULL DEFAULT 0,
    resumed_at datetime
);
