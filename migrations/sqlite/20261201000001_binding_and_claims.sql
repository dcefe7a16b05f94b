-- The binding rule: an e-mail counts for the lookup only when Cognito marked it verified. Rows
-- imported before this version may hold unverified ones, so every e-mail is forgotten here;
-- the next `import` (a delta sync) writes back the verified ones. (SQLite's guard claim is a
-- single statement in src/store/sql.rs; Postgres's is a function.)
UPDATE users SET email_normalized = NULL;

-- Every attempt row carries a key made by the hook call: the guard's claim writes the row in
-- flight under it, and the outcome is written over it, so a write retried after a lost answer
-- (or a claim whose answer never arrived) never makes a second row.
ALTER TABLE attempts ADD COLUMN attempt_key TEXT;
CREATE UNIQUE INDEX attempts_attempt_key ON attempts (attempt_key) WHERE attempt_key IS NOT NULL;
