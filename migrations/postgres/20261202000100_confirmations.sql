-- Migrations seen in Kratos: `via` 'kratos' (reconcile, or a native Kratos login of a user we
-- thought pending); the first native Kratos login after the migration (`confirmed_at`) and the
-- latest (`last_seen_at`), from Kratos's login-after hook. Indexes for the admin API: the
-- stragglers list pages by (state, username); the timeline reads migrations by time.
ALTER TABLE users DROP CONSTRAINT users_migrated_via_check;
ALTER TABLE users ADD CONSTRAINT users_migrated_via_check
    CHECK (migrated_via IN ('hook', 'capture', 'reset', 'kratos'));
ALTER TABLE users ADD COLUMN confirmed_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN last_seen_at TIMESTAMPTZ;
DROP INDEX users_state;
CREATE INDEX users_state_username ON users (state, cognito_username);
CREATE INDEX users_migrated_at ON users (migrated_at) WHERE migrated_at IS NOT NULL;
