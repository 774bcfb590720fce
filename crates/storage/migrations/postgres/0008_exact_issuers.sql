-- Identities keep the exact issuer of the upstream provider that vouched for them,
-- and are unique with it: two providers on one host (the same short issuer) are two
-- populations whose subjects may coincide. PostgreSQL dialect (kept in step with
-- ../sqlite/0008_exact_issuers.sql).
--
-- '' stands for "not known": local and passcode identities, federated ones an
-- administrator entered, and everything stored before this migration. Usher gives
-- the stored federated ones the exact issuer of the provider that made them when it
-- starts (see `resolve_identities`). '' rather than NULL, because a unique index
-- treats NULLs as distinct.
ALTER TABLE identities ADD COLUMN exact_issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE identities DROP CONSTRAINT identities_identity_key;
CREATE UNIQUE INDEX identities_identity_key
    ON identities (sign_in_type, issuer, issuer_assigned_id, exact_issuer);
-- A returning provider's users are found by exact issuer and subject.
CREATE INDEX identities_exact ON identities (exact_issuer, issuer_assigned_id);
