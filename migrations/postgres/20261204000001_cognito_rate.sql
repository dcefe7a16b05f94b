-- The deployment-wide Cognito rate limit (`cognito.quota_scope = "deployment"`, the default):
-- every replica's hook takes its AdminInitiateAuth tokens from this one GCRA state, so
-- `cognito.max_rps` and `cognito.burst` hold for the deployment, not for each process.
--
-- `tat_us` is the theoretical arrival time of the next call, in microseconds since the epoch
-- by the database's clock (one clock for every replica). UNLOGGED: no WAL per token; after
-- a crash the table comes back empty, which only forgets the last second's pacing.
CREATE UNLOGGED TABLE cognito_rate (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    tat_us BIGINT NOT NULL
);

-- One token for one call: 0 when taken, else the microseconds until one is due (nothing is
-- taken then). `emission_us` = 1 s / max_rps; `tolerance_us` = (burst - 1) × emission_us,
-- which lets `burst` calls through at once, as governor's limiter does in one process.
-- The row lock serialises replicas; the clock is read once the lock is held.
CREATE FUNCTION take_cognito_token(emission_us BIGINT, tolerance_us BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    due BIGINT;
    now_us BIGINT;
BEGIN
    SELECT tat_us INTO due FROM cognito_rate WHERE id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO cognito_rate (id, tat_us) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
        SELECT tat_us INTO due FROM cognito_rate WHERE id = 1 FOR UPDATE;
    END IF;
    now_us := (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT;
    due := GREATEST(due, now_us);
    IF due - now_us > tolerance_us THEN
        RETURN due - now_us - tolerance_us;
    END IF;
    UPDATE cognito_rate SET tat_us = due + emission_us WHERE id = 1;
    RETURN 0;
END
$$;
