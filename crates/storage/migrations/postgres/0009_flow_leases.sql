-- Who runs a flow's connectors right now: until when the instance running them holds
-- the flow (renewed while the run is alive). Kept outside the versioned state, so
-- renewing it is no save of the flow. PostgreSQL dialect (kept in step with
-- ../sqlite/0009_flow_leases.sql).
-- lease_holder names the run that holds it (a random id per run).
ALTER TABLE flows ADD COLUMN lease_holder TEXT;
ALTER TABLE flows ADD COLUMN lease_until BIGINT;
