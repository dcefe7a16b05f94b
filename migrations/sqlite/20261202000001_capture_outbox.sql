-- Capture (Strategy C): a password hash waiting for Kratos while Kratos is unavailable. The
-- only place a hash is ever stored, and only until it is delivered (or the user migrated
-- another way): the row is deleted then. One row per user: a newer capture replaces it.
-- Timestamps are RFC 3339 text in UTC, as sqlx writes them.
CREATE TABLE capture_outbox (
    cognito_username   TEXT PRIMARY KEY,
    kratos_identity_id TEXT,
    cognito_sub        TEXT,
    password_hash      TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TEXT NOT NULL,
    last_error         TEXT
);
CREATE INDEX capture_outbox_due ON capture_outbox (next_attempt_at);
