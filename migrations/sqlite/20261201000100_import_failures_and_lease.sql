-- `import --resume` retries the users its run failed: one failure row per (run, user), the
-- latest reason, and none for a user the run imported after all. Earlier rows are brought
-- to that shape, and each real run's `failed` to the count of its rows.
DELETE FROM import_failures
WHERE id NOT IN (SELECT MAX(id) FROM import_failures GROUP BY run_id, cognito_username);
DELETE FROM import_failures
WHERE EXISTS (SELECT 1 FROM users
              WHERE users.cognito_username = import_failures.cognito_username
                AND users.import_run_id = import_failures.run_id);
DROP INDEX import_failures_run;
CREATE UNIQUE INDEX import_failures_run_user ON import_failures (run_id, cognito_username);
UPDATE import_runs
SET failed = (SELECT COUNT(*) FROM import_failures WHERE import_failures.run_id = import_runs.id)
WHERE NOT dry_run;

-- One real import at a time per database: the lease its process holds (a single row, id 1),
-- taken when absent or expired, renewed by a heartbeat, deleted at the end. `token` is
-- random per process; `holder` names it for people (host, pid). Times come from the
-- database's clock, so importers on several machines agree (here RFC 3339 text with
-- milliseconds, written only by SQLite's strftime, so that text order is time order).
CREATE TABLE import_lease (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    token        TEXT NOT NULL,
    holder       TEXT NOT NULL,
    run_id       INTEGER,
    acquired_at  TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
