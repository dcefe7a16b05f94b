-- Capture (Strategy C): a password hash waiting for Kratos while Kratos is unavailable. The
-- only place a hash is ever stored, and only until it is delivered (or the user migrated
-- another way): the row is deleted then. One row per user: a newer capture replaces it.
CREATE TABLE capture_outbox (
    cognito_username   TEXT PRIMARY KEY,
    kratos_identity_id TEXT,
    cognito_sub        TEXT,
    password_hash      TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ NOT NULL,
    last_error         TEXT
);
CREATE INDEX capture_outbox_due ON capture_outbox (next_attempt_at);
