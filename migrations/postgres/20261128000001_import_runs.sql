-- Import runs (one row per `cognito-bridge import`, with the page to resume from) and the
-- users a run could not import, with Kratos's reason.
CREATE TABLE import_runs (
    id              BIGSERIAL PRIMARY KEY,
    dry_run         BOOLEAN NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'interrupted', 'completed')),
    started_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    -- The ListUsers PaginationToken of the first page not yet committed; NULL with pages = 0
    -- means "from the start", NULL with pages > 0 means the listing was complete.
    next_token      TEXT,
    pages           BIGINT NOT NULL DEFAULT 0,
    seen            BIGINT NOT NULL DEFAULT 0,
    created         BIGINT NOT NULL DEFAULT 0,
    linked          BIGINT NOT NULL DEFAULT 0,
    skipped         BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    invalid         BIGINT NOT NULL DEFAULT 0,
    estimated_users BIGINT,
    duration_ms     BIGINT NOT NULL DEFAULT 0,
    error           TEXT
);

CREATE TABLE import_failures (
    id               BIGSERIAL PRIMARY KEY,
    run_id           BIGINT NOT NULL REFERENCES import_runs (id),
    at               TIMESTAMPTZ NOT NULL,
    cognito_username TEXT NOT NULL,
    external_id      TEXT,
    status           INTEGER,
    reason           TEXT NOT NULL
);
CREATE INDEX import_failures_run ON import_failures (run_id);

-- The run that last created or linked the user's identity.
ALTER TABLE users ADD COLUMN import_run_id BIGINT;
