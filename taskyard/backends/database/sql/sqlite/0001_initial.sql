-- taskyard schema version 1 (SQLite). Applied by `taskyard migrate` and by the Django
-- integration's migration; nothing else writes DDL. Timestamps are UTC text
-- 'YYYY-MM-DD HH:MM:SS.ffffff' (Django's format), JSON columns are text.

CREATE TABLE IF NOT EXISTS taskyard_task (
    id                char(36)     NOT NULL PRIMARY KEY,
    task_path         text         NOT NULL,
    queue_name        varchar(100) NOT NULL,
    priority          smallint     NOT NULL DEFAULT 0,
    status            varchar(10)  NOT NULL,
    backend           varchar(100) NOT NULL,
    args              text         NOT NULL DEFAULT '[]',
    kwargs            text         NOT NULL DEFAULT '{}',
    options           text,
    enqueued_at       datetime     NOT NULL,
    enqueued_by       varchar(200),
    run_after         datetime,
    available_at      datetime     NOT NULL,
    started_at        datetime,
    last_attempted_at datetime,
    finished_at       datetime,
    attempts          integer      NOT NULL DEFAULT 0,
    max_attempts      integer      NOT NULL DEFAULT 1,
    worker_ids        text         NOT NULL DEFAULT '[]',
    errors            text         NOT NULL DEFAULT '[]',
    return_value      text,
    progress          text,
    worker_id         varchar(200),
    lease_expires_at  datetime,
    cancel_requested  bool         NOT NULL DEFAULT 0,
    depends_on        char(36),
    waiting_on        char(36),
    has_dependents    bool         NOT NULL DEFAULT 0,
    limit_key         text,
    qualifiers        text
);

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
    worker_id    varchar(200) NOT NULL PRIMARY KEY,
    hostname     varchar(200) NOT NULL,
    pid          integer      NOT NULL,
    queues       text         NOT NULL,
    threads      integer      NOT NULL,
    state        varchar(20)  NOT NULL,
    started_at   datetime     NOT NULL,
    last_seen_at datetime     NOT NULL,
    processed    bigint       NOT NULL DEFAULT 0,
    failed       bigint       NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS taskyard_meta (
    key   varchar(100) NOT NULL PRIMARY KEY,
    value text         NOT NULL
);
