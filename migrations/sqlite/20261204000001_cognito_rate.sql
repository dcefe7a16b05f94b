-- Postgres keeps the deployment-wide Cognito rate state in `cognito_rate`. A SQLite database
-- belongs to one process, whose own limiter is the deployment's: nothing to store here.
-- (This file keeps the two backends' migration versions in step.)
SELECT 1;
