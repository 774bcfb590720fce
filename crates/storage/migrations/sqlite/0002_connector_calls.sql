-- Records of API connector calls (contract §6). Warnings are a JSON array.
CREATE TABLE connector_calls (
    call_id        TEXT    NOT NULL PRIMARY KEY,
    connector_id   TEXT    NOT NULL,
    user_flow_id   TEXT    NOT NULL,
    step           TEXT    NOT NULL,
    flow_id        TEXT    NOT NULL,
    attempts       INTEGER NOT NULL,
    http_status    INTEGER,
    latency_ms     INTEGER NOT NULL,
    outcome        TEXT    NOT NULL,
    failure_reason TEXT,
    warnings       TEXT    NOT NULL,
    request_body   TEXT,
    response_body  TEXT,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX connector_calls_connector ON connector_calls (connector_id, created_at);
CREATE INDEX connector_calls_created ON connector_calls (created_at);
