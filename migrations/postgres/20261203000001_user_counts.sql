-- What the admin API counts, kept as it changes, so its pages read a few thousand rows at any
-- size of the store: users by (state, mfa_dropped, the UTC hour of migrated_at as
-- 'YYYY-MM-DDTHH' or '', migrated_via or ''). Triggers append changes to user_count_deltas
-- (no row is updated in place, so concurrent writers never wait on a counter); a reader folds
-- them into user_counts first (fold_user_counts, one fold at a time).
CREATE TABLE user_counts (
    state         TEXT    NOT NULL,
    mfa_dropped   BOOLEAN NOT NULL,
    migrated_hour TEXT    NOT NULL,
    migrated_via  TEXT    NOT NULL,
    n             BIGINT  NOT NULL,
    PRIMARY KEY (state, mfa_dropped, migrated_hour, migrated_via)
);
CREATE TABLE user_count_deltas (
    id            BIGSERIAL PRIMARY KEY,
    state         TEXT    NOT NULL,
    mfa_dropped   BOOLEAN NOT NULL,
    migrated_hour TEXT    NOT NULL,
    migrated_via  TEXT    NOT NULL,
    delta         BIGINT  NOT NULL
);

CREATE FUNCTION user_count_hour(at TIMESTAMPTZ) RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT COALESCE(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24'), '')
$$;

INSERT INTO user_counts (state, mfa_dropped, migrated_hour, migrated_via, n)
SELECT state, mfa_dropped, user_count_hour(migrated_at), COALESCE(migrated_via, ''), COUNT(*)
FROM users GROUP BY 1, 2, 3, 4;

-- Inserts per statement (an import batch is one statement); updates per row, and only when a
-- counted column changed (the WHEN is checked before any function runs, so the attempt
-- upsert that touches last_attempt_at costs nothing here).
CREATE FUNCTION user_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_count_deltas (state, mfa_dropped, migrated_hour, migrated_via, delta)
    SELECT state, mfa_dropped, user_count_hour(migrated_at), COALESCE(migrated_via, ''), COUNT(*)
    FROM inserted GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_counts_inserted AFTER INSERT ON users
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION user_counts_inserted();

CREATE FUNCTION user_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO user_count_deltas (state, mfa_dropped, migrated_hour, migrated_via, delta)
        VALUES (OLD.state, OLD.mfa_dropped, user_count_hour(OLD.migrated_at),
                COALESCE(OLD.migrated_via, ''), -1);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO user_count_deltas (state, mfa_dropped, migrated_hour, migrated_via, delta)
        VALUES (NEW.state, NEW.mfa_dropped, user_count_hour(NEW.migrated_at),
                COALESCE(NEW.migrated_via, ''), 1);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_counts_updated
    AFTER UPDATE OF state, mfa_dropped, migrated_at, migrated_via ON users FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
          OR OLD.mfa_dropped IS DISTINCT FROM NEW.mfa_dropped
          OR OLD.migrated_at IS DISTINCT FROM NEW.migrated_at
          OR OLD.migrated_via IS DISTINCT FROM NEW.migrated_via)
    EXECUTE FUNCTION user_counts_changed();
CREATE TRIGGER users_counts_deleted AFTER DELETE ON users FOR EACH ROW
    EXECUTE FUNCTION user_counts_changed();

-- Folds every committed delta into user_counts. The lock makes concurrent folds take turns;
-- the DELETE's snapshot is taken after it, so no delta is added twice.
CREATE FUNCTION fold_user_counts() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7101943520113);
    WITH moved AS (
        DELETE FROM user_count_deltas
        RETURNING state, mfa_dropped, migrated_hour, migrated_via, delta
    )
    INSERT INTO user_counts AS c (state, mfa_dropped, migrated_hour, migrated_via, n)
    SELECT state, mfa_dropped, migrated_hour, migrated_via, SUM(delta)
    FROM moved GROUP BY 1, 2, 3, 4
    ON CONFLICT (state, mfa_dropped, migrated_hour, migrated_via)
        DO UPDATE SET n = c.n + EXCLUDED.n;
    DELETE FROM user_counts WHERE n = 0;
END
$$;
