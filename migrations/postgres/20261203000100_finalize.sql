-- `finalize` (the cutover): when a straggler's migration flag was removed in Kratos and the
-- row moved to `needs_recovery`. A rerun skips rows that have it. No trigger of user_counts
-- watches this column (the state change in the same UPDATE is what they count).
ALTER TABLE users ADD COLUMN finalized_at TIMESTAMPTZ;
