-- Import runs (one row per `cognito-bridge import`, with the page to resume from) and the
-- users a run could not import, with Kratos's reason.
-- Timestamps are RFC 3339 text in UTC; booleans are 0/1.
CREATE TABLE import_runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    dry_run         INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'completed')),
    started_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    finished_at     TEXT,
    -- The ListUsers PaginationToken of the first page not yet committed; NULL with pages = 0
    -- means "from the start", NULL with pages > 0 means the listing was complete.
    next_token      TEXT,
    pages           INTEGER NOT NULL DEFAULT 0,
    seen            INTEGER NOT NULL DEFAULT 0,
    created         INTEGER NOT NULL DEFAULT 0,
    linked          INTEGER NOT NULL DEFAULT 0,
    skipped         INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    invalid         INTEGER NOT NULL DEFAULT 0,
    estimated_users INTEGER,
    duration_ms     INTEGER NOT NULL DEFAULT 0,
    error           TEXT
);

CREATE TABLE import_failures (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           INTEGER NOT NULL REFERENCES import_runs (id),
    at               TEXT NOT NULL,
    cognito_username TEXT NOT NULL,
    external_id      TEXT,
    status           INTEGER,
    reason           TEXT NOT NULL
);
CREATE INDEX import_failures_run ON import_failures (run_id);

-- The run that last created or linked the user's identity.
ALTER TABLE users ADD COLUMN import_run_id INTEGER;
