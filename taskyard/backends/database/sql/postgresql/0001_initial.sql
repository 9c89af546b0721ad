-- taskyard schema version 1 (PostgreSQL). Applied by `taskyard migrate` and by the Django
-- integration's migration; nothing else writes DDL.

CREATE TABLE IF NOT EXISTS taskyard_task (
    id                uuid PRIMARY KEY,
    task_path         text         NOT NULL,
    queue_name        varchar(100) NOT NULL,
    priority          smallint     NOT NULL DEFAULT 0,
    status            varchar(10)  NOT NULL,
    backend           varchar(100) NOT NULL,
    args              jsonb        NOT NULL DEFAULT '[]',
    kwargs            jsonb        NOT NULL DEFAULT '{}',
    options           jsonb,
    enqueued_at       timestamptz  NOT NULL,
    enqueued_by       varchar(200),
    run_after         timestamptz,
    available_at      timestamptz  NOT NULL,
    started_at        timestamptz,
    last_attempted_at timestamptz,
    finished_at       timestamptz,
    attempts          integer      NOT NULL DEFAULT 0,
    max_attempts      integer      NOT NULL DEFAULT 1,
    worker_ids        jsonb        NOT NULL DEFAULT '[]',
    errors            jsonb        NOT NULL DEFAULT '[]',
    return_value      jsonb,
    progress          jsonb,
    worker_id         varchar(200),
    lease_expires_at  timestamptz,
    cancel_requested  boolean      NOT NULL DEFAULT false,
    depends_on        uuid,
    waiting_on        uuid,
    has_dependents    boolean      NOT NULL DEFAULT false,
    limit_key         text,
    qualifiers        jsonb
);

-- Claiming reads only ready rows: finished rows never slow it down.
CREATE INDEX IF NOT EXISTS taskyard_task_ready
    ON taskyard_task (priority DESC, available_at, id)
    WHERE status = 'READY' AND waiting_on IS NULL;
CREATE INDEX IF NOT EXISTS taskyard_task_leases
    ON taskyard_task (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX IF NOT EXISTS taskyard_task_waiting_on
    ON taskyard_task (waiting_on) WHERE waiting_on IS NOT NULL;
CREATE INDEX IF NOT EXISTS taskyard_task_limit_key
    ON taskyard_task (limit_key) WHERE limit_key IS NOT NULL AND status IN ('READY', 'RUNNING');
CREATE INDEX IF NOT EXISTS taskyard_task_finished
    ON taskyard_task (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS taskyard_task_failed
    ON taskyard_task (queue_name) WHERE status = 'FAILED';

CREATE TABLE IF NOT EXISTS taskyard_worker (
    worker_id    varchar(200) PRIMARY KEY,
    hostname     varchar(200) NOT NULL,
    pid          integer      NOT NULL,
    queues       text         NOT NULL,
    threads      integer      NOT NULL,
    state        varchar(20)  NOT NULL,
    started_at   timestamptz  NOT NULL,
    last_seen_at timestamptz  NOT NULL,
    processed    bigint       NOT NULL DEFAULT 0,
    failed       bigint       NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS taskyard_meta (
    key   varchar(100) PRIMARY KEY,
    value text         NOT NULL
);
