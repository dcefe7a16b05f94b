-- The binding rule: an e-mail counts for the lookup only when Cognito marked it verified. Rows
-- imported before this version may hold unverified ones, so every e-mail is forgotten here;
-- the next `import` (a delta sync) writes back the verified ones.
UPDATE users SET email_normalized = NULL;

-- The brute-force guard's claim, atomic across replicas: under a lock per user (and per client
-- address group), count the failures by the database's clock and, below the limits, write
-- the attempt in flight (at the database's time) as a failure until it is settled. Each statement of a PL/pgSQL
-- function sees what was committed before it started, so a claim waiting for the lock sees
-- the attempt the previous holder wrote. A limit of 0 is off.
CREATE FUNCTION guard_claim(
    p_key TEXT, p_ip TEXT, p_identifier_limit BIGINT, p_ip_limit BIGINT,
    p_window_secs DOUBLE PRECISION, p_username TEXT, p_request_id TEXT,
    p_trigger_id TEXT, p_identity_id TEXT, p_attempt_key TEXT)
RETURNS TABLE (granted BOOLEAN, identifier_failures BIGINT, ip_failures BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    window_start TIMESTAMPTZ;
    since TIMESTAMPTZ;
BEGIN
    -- Always the user's lock first, then the address group's: no two claims wait on each
    -- other in a cycle.
    PERFORM pg_advisory_xact_lock(hashtextextended('cognito-bridge guard key ' || p_key, 0));
    IF p_ip IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('cognito-bridge guard ip ' || p_ip, 0));
    END IF;
    window_start := clock_timestamp() - make_interval(secs => p_window_secs);
    SELECT COALESCE(MAX(a.at), window_start) INTO since FROM attempts a
    WHERE a.guard_key = p_key AND a.guard = 'success' AND a.at > window_start;
    SELECT COUNT(*) INTO identifier_failures FROM attempts a
    WHERE a.guard_key = p_key AND a.guard = 'failure' AND a.at > since;
    ip_failures := 0;
    IF p_ip IS NOT NULL THEN
        SELECT COUNT(*) INTO ip_failures FROM attempts a
        WHERE a.client_ip = p_ip AND a.guard = 'failure' AND a.at > window_start;
    END IF;
    granted := FALSE;
    IF (p_identifier_limit = 0 OR identifier_failures < p_identifier_limit)
       AND (p_ip_limit = 0 OR ip_failures < p_ip_limit) THEN
        INSERT INTO attempts (at, cognito_username, outcome, cognito_calls, request_id,
                              trigger_id, identity_id, guard_key, client_ip, guard, attempt_key)
        VALUES (clock_timestamp(), p_username, 'in_flight', 0, p_request_id, p_trigger_id,
                p_identity_id, p_key, p_ip, 'failure', p_attempt_key);
        granted := TRUE;
    END IF;
    RETURN NEXT;
END
$$;

-- Every attempt row carries a key made by the hook call: the guard's claim writes the row in
-- flight under it, and the outcome is written over it, so a write retried after a lost answer
-- (or a claim whose answer never arrived) never makes a second row.
ALTER TABLE attempts ADD COLUMN attempt_key TEXT;
CREATE UNIQUE INDEX attempts_attempt_key ON attempts (attempt_key) WHERE attempt_key IS NOT NULL;
