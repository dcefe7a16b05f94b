-- The guard's claim (migration 20261201000001) commits without waiting for its WAL to be
-- flushed. Its row in flight is visible to every other claim as soon as it commits, which is
-- all the guard needs; durability comes from the outcome the hook writes over it under the
-- same attempt key, whose synchronous commit flushes the WAL up to and past the claim. If the
-- database crashes in between, the claim may be lost, and the recorder writes the attempt row
-- (an upsert by its key) once the database is back. The body is otherwise unchanged.
CREATE OR REPLACE FUNCTION guard_claim(
    p_key TEXT, p_ip TEXT, p_identifier_limit BIGINT, p_ip_limit BIGINT,
    p_window_secs DOUBLE PRECISION, p_username TEXT, p_request_id TEXT,
    p_trigger_id TEXT, p_identity_id TEXT, p_attempt_key TEXT)
RETURNS TABLE (granted BOOLEAN, identifier_failures BIGINT, ip_failures BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    window_start TIMESTAMPTZ;
    since TIMESTAMPTZ;
BEGIN
    -- The claim's row needs to be visible at once, not durable: the outcome written over it
    -- commits synchronously (flushing this one with it), and a claim lost in a crash only
    -- leaves that attempt to be written by the hook's recorder. So the claim's own commit
    -- does not wait for a WAL flush (one fewer flush on every hook call's path).
    PERFORM set_config('synchronous_commit', 'off', true);
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
