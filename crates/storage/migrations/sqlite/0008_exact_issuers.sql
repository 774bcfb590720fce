-- Identities keep the exact issuer of the upstream provider that vouched for them,
-- and are unique with it: two providers on one host (the same short issuer) are two
-- populations whose subjects may coincide. SQLite dialect (kept in step with
-- ../postgres/0008_exact_issuers.sql).
--
-- '' stands for "not known": local and passcode identities, federated ones an
-- administrator entered, and everything stored before this migration. Usher gives
-- the stored federated ones the exact issuer of the provider that made them when it
-- starts (see `resolve_identities`). '' rather than NULL, because a unique index
-- treats NULLs as distinct.
--
-- SQLite cannot change a table's constraint in place: the table is rebuilt.
CREATE TABLE identities_new (
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position           INTEGER NOT NULL,
    sign_in_type       TEXT    NOT NULL,
    issuer             TEXT    NOT NULL,
    issuer_assigned_id TEXT    NOT NULL,
    exact_issuer       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, position)
) STRICT;

INSERT INTO identities_new (user_id, position, sign_in_type, issuer, issuer_assigned_id)
    SELECT user_id, position, sign_in_type, issuer, issuer_assigned_id FROM identities;

DROP TABLE identities;
ALTER TABLE identities_new RENAME TO identities;

CREATE UNIQUE INDEX identities_identity_key
    ON identities (sign_in_type, issuer, issuer_assigned_id, exact_issuer);
CREATE INDEX identities_issuer ON identities (issuer, issuer_assigned_id);
-- A returning provider's users are found by exact issuer and subject.
CREATE INDEX identities_exact ON identities (exact_issuer, issuer_assigned_id);
