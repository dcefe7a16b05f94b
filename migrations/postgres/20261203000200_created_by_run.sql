-- Which import run created the user's Kratos identity (NULL: the run linked an identity that
-- was there already, or the row predates this column), so `import undo --run ID` deletes only
-- identities that run created.
ALTER TABLE users ADD COLUMN created_by_run BIGINT;
CREATE INDEX users_created_by_run ON users (created_by_run) WHERE created_by_run IS NOT NULL;
