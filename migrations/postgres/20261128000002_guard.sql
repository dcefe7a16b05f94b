-- The brute-force guard counts from the attempt log itself. `guard_key` is the normalised
-- Cognito username the attempt was for (NULL when the identifier could not be one),
-- `client_ip` the caller's address from the hook body, and `guard` marks a failed guess
-- (counted within `guard.window_secs`) or a match (which clears the identifier's count).
ALTER TABLE attempts ADD COLUMN guard_key TEXT;
ALTER TABLE attempts ADD COLUMN client_ip TEXT;
ALTER TABLE attempts ADD COLUMN guard TEXT CHECK (guard IN ('failure', 'success'));
CREATE INDEX attempts_guard_key ON attempts (guard_key, at) WHERE guard IS NOT NULL;
CREATE INDEX attempts_client_ip ON attempts (client_ip, at) WHERE guard = 'failure';
