-- Migrations seen in Kratos: `via` 'kratos' (reconcile, or a native Kratos login of a user we
-- thought pending); the first native Kratos login after the migration (`confirmed_at`) and the
-- latest (`last_seen_at`), from Kratos's login-after hook. Indexes for the admin API: the
-- stragglers list pages by (state, username); the timeline reads migrations by time.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with every column.
CREATE TABLE users_new (
    cognito_username    TEXT PRIMARY KEY,
    username_normalized TEXT NOT NULL,
    email_normalized    TEXT,
    external_id         TEXT UNIQUE,
    kratos_identity_id  TEXT UNIQUE,
    state               TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'migrated', 'needs_recovery', 'inactive', 'skipped')),
    migrated_via        TEXT CHECK (migrated_via IN ('hook', 'capture', 'reset', 'kratos')),
    mfa_dropped         INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    migrated_at         TEXT,
    last_attempt_at     TEXT,
    import_run_id       INTEGER,
    confirmed_at        TEXT,
    last_seen_at        TEXT
);
INSERT INTO users_new (cognito_username, username_normalized, email_normalized, external_id,
                       kratos_identity_id, state, migrated_via, mfa_dropped, created_at,
                       updated_at, migrated_at, last_attempt_at, import_run_id)
SELECT cognito_username, username_normalized, email_normalized, external_id,
       kratos_identity_id, state, migrated_via, mfa_dropped, created_at, updated_at,
       migrated_at, last_attempt_at, import_run_id
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_username_normalized ON users (username_normalized);
CREATE INDEX users_email_normalized ON users (email_normalized);
CREATE INDEX users_state_username ON users (state, cognito_username);
CREATE INDEX users_migrated_at ON users (migrated_at) WHERE migrated_at IS NOT NULL;
