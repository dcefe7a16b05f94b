-- What the admin API counts, kept as it changes, so its pages read a few thousand rows at any
-- size of the store: users by (state, mfa_dropped, the UTC hour of migrated_at as
-- 'YYYY-MM-DDTHH' or '', migrated_via or ''). Triggers append changes to user_count_deltas;
-- a reader folds them into user_counts first, on the writer connection.
CREATE TABLE user_counts (
    state         TEXT    NOT NULL,
    mfa_dropped   INTEGER NOT NULL,
    migrated_hour TEXT    NOT NULL,
    migrated_via  TEXT    NOT NULL,
    n             INTEGER NOT NULL,
    PRIMARY KEY (state, mfa_dropped, migrated_hour, migrated_via)
);
CREATE TABLE user_count_deltas (
    id            INTEGER PRIMARY KEY,
    state         TEXT    NOT NULL,
    mfa_dropped   INTEGER NOT NULL,
    migrated_hour TEXT    NOT NULL,
    migrated_via  TEXT    NOT NULL,
    delta         INTEGER NOT NULL
);

-- migrated_at is stored as text ('2026-12-01 19:04:05.123+00:00', or with a 'T').
INSERT INTO user_counts (state, mfa_dropped, migrated_hour, migrated_via, n)
SELECT state, mfa_dropped, COALESCE(replace(substr(migrated_at, 1, 13), ' ', 'T'), ''),
       COALESCE(migrated_via, ''), COUNT(*)
FROM users GROUP BY 1, 2, 3, 4;

CREATE TRIGGER users_counts_inserted AFTER INSERT ON users BEGIN
    INSERT INTO user_count_deltas (state, mfa_dropped, migrated_hour, migrated_via, delta)
    VALUES (NEW.state, NEW.mfa_dropped,
            COALESCE(replace(substr(NEW.migrated_at, 1, 13), ' ', 'T'), ''),
            COALESCE(NEW.migrated_via, ''), 1);
END;
CREATE TRIGGER users_counts_updated
    AFTER UPDATE OF state, mfa_dropped, migrated_at, migrated_via ON users
    WHEN OLD.state IS NOT NEW.state OR OLD.mfa_dropped IS NOT NEW.mfa_dropped
         OR OLD.migrated_at IS NOT NEW.migrated_at OR OLD.migrated_via IS NOT NEW.migrated_via
BEGIN
    INSERT INTO user_count_deltas (state, mfa_dropped, migrated_hour, migrated_via, delta)
    VALUES (OLD.state, OLD.mfa_dropped,
            COALESCE(replace(substr(OLD.migrated_at, 1, 13), ' ', 'T'), ''),
            COALESCE(OLD.migrated_via, ''), -1),
           (NEW.state, NEW.mfa_dropped,
            COALESCE(replace(substr(NEW.migrated_at, 1, 13), ' ', 'T'), ''),
            COALESCE(NEW.migrated_via, ''), 1);
END;
CREATE TRIGGER users_counts_deleted AFTER DELETE ON users BEGIN
    INSERT INTO user_count_deltas (state, mfa_dropped, migrated_hour, migrated_via, delta)
    VALUES (OLD.state, OLD.mfa_dropped,
            COALESCE(replace(substr(OLD.migrated_at, 1, 13), ' ', 'T'), ''),
            COALESCE(OLD.migrated_via, ''), -1);
END;
