-- Postgres's guard claim stops waiting for a WAL flush (see the Postgres migration of the same
-- name). SQLite commits in WAL mode with synchronous = NORMAL, which never waits for a flush
-- at commit. (This file keeps the two backends' migration versions in step.)
SELECT 1;
