-- `finalize` (the cutover): when a straggler's migration flag was removed in Kratos and the
-- row moved to `needs_recovery`. A rerun skips rows that have it. ADD COLUMN needs no rebuild
-- of `users`, so the user_counts triggers stay as they are (the state change in the same
-- UPDATE is what they count). RFC 3339 text in UTC, like every timestamp here.
ALTER TABLE users ADD COLUMN finalized_at TEXT;
