-- Usher's initial schema, SQLite dialect (kept in step with ../postgres/0001_init.sql).
-- Timestamps are Unix milliseconds; JSON is TEXT. STRICT makes SQLite refuse values of
-- the wrong type instead of silently storing them, as PostgreSQL would.

CREATE TABLE users (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- Verified address, lower case; several users may share one (a local account and
    -- a federated one), so it is indexed but not unique.
    email           TEXT,
    attributes      TEXT    NOT NULL,
    password_hash   TEXT,
    account_enabled INTEGER NOT NULL DEFAULT 1 CHECK (account_enabled IN (0, 1)),
    created_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX users_email ON users (email);

CREATE TABLE identities (
    user_id            TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Keeps a user's identities in the order they were given.
    position           INTEGER NOT NULL,
    sign_in_type       TEXT    NOT NULL,
    issuer             TEXT    NOT NULL,
    issuer_assigned_id TEXT    NOT NULL,
    PRIMARY KEY (user_id, position),
    CONSTRAINT identities_identity_key UNIQUE (sign_in_type, issuer, issuer_assigned_id)
) STRICT;

CREATE TABLE flows (
    id         TEXT    NOT NULL PRIMARY KEY,
    -- The whole usher_domain::Flow as JSON; version and expires_at are copied out so
    -- saves and clean-up need not parse it.
    state      TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX flows_expires_at ON flows (expires_at);

CREATE TABLE authorization_codes (
    code_hash  TEXT    NOT NULL PRIMARY KEY,
    grant_id   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    -- redirect_uri, scope, nonce, code_challenge, session_id, extra_claims.
    data       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
CREATE INDEX authorization_codes_grant_id ON authorization_codes (grant_id);

CREATE TABLE grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    -- JSON array of scope values.
    scope      TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    session_id TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX grants_user_id ON grants (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    grant_id   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;

CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_grant_id ON refresh_tokens (grant_id);

CREATE TABLE browser_sessions (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    ended_at   INTEGER
) STRICT;

CREATE INDEX browser_sessions_expires_at ON browser_sessions (expires_at);
CREATE INDEX browser_sessions_user_id ON browser_sessions (user_id);

CREATE TABLE signing_keys (
    kid                   TEXT    NOT NULL PRIMARY KEY,
    algorithm             TEXT    NOT NULL,
    encrypted_private_key BLOB    NOT NULL,
    -- The public JWK as JSON.
    public_jwk            TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    activates_at          INTEGER NOT NULL,
    retired_at            INTEGER
) STRICT;
