-- One row per Cognito user, and an append-only log of hook attempts. No secret in either.
-- Timestamps are RFC 3339 text in UTC; booleans are 0/1.
CREATE TABLE users (
    cognito_username    TEXT PRIMARY KEY,
    username_normalized TEXT NOT NULL,
    email_normalized    TEXT,
    external_id         TEXT UNIQUE,
    kratos_identity_id  TEXT UNIQUE,
    state               TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'migrated', 'needs_recovery', 'inactive', 'skipped')),
    migrated_via        TEXT CHECK (migrated_via IN ('hook', 'capture', 'reset')),
    mfa_dropped         INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    migrated_at         TEXT,
    last_attempt_at     TEXT
);
CREATE INDEX users_username_normalized ON users (username_normalized);
CREATE INDEX users_email_normalized ON users (email_normalized);
CREATE INDEX users_state ON users (state);

CREATE TABLE attempts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    at                 TEXT NOT NULL,
    cognito_username   TEXT,
    outcome            TEXT NOT NULL,
    cognito_latency_ms INTEGER,
    cognito_calls      INTEGER NOT NULL,
    request_id         TEXT,
    trigger_id         TEXT,
    identity_id        TEXT
);
CREATE INDEX attempts_cognito_username ON attempts (cognito_username);
CREATE INDEX attempts_at ON attempts (at);
