-- Connector token claims kept with their grant, and the rate-limit counters,
-- PostgreSQL dialect (kept in step with ../sqlite/0006_grant_claims_and_rate_limits.sql).

-- The claims the preTokenIssuance connectors added when the grant was made (a JSON
-- object), so a refreshed ID token carries the same ones as the first.
ALTER TABLE grants ADD COLUMN token_claims TEXT NOT NULL DEFAULT '{}';

-- One fixed-window counter per limited thing (e.g. password failures of one account):
-- the window's start and the hits in it. Kept in the database so every instance
-- counts the same attempts; rows whose window is long over are swept.
CREATE TABLE rate_limits (
    key          TEXT   NOT NULL PRIMARY KEY,
    window_start BIGINT NOT NULL,
    window_ends  BIGINT NOT NULL,
    hits         BIGINT NOT NULL
);

CREATE INDEX rate_limits_window_ends ON rate_limits (window_ends);
