-- taskyard schema version 3 (SQLite): interrupted attempts (see the PostgreSQL file). Applied in
-- one transaction together with the version record, so it runs exactly once.
ALTER TABLE taskyard_task ADD COLUMN interruptions integer NOT NULL DEFAULT 0;
ALTER TABLE taskyard_task ADD COLUMN interrupted_by varchar(200);
