-- The tenant's configuration (attributes, user flows, applications, connectors,
-- identity providers), one JSON document per object, and the version every change
-- bumps. Instances compare the version on each request to know when to reload.
CREATE TABLE tenant_objects (
    kind     TEXT   NOT NULL,
    id       TEXT   NOT NULL,
    position BIGINT NOT NULL,
    document TEXT   NOT NULL,
    PRIMARY KEY (kind, id)
);

-- A single row: the conditional update of its version is what serialises writers.
CREATE TABLE tenant_meta (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);

INSERT INTO tenant_meta (id, version) VALUES (1, 0);
