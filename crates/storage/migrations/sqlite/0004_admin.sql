-- User administration and the sign-up approval queue, SQLite dialect (kept in step
-- with ../postgres/0004_admin.sql).

-- The displayName attribute lower-cased by Usher (character by character, Unicode
-- lower case), copied out of the attributes JSON so that the case-insensitive prefix
-- filter of list_users is an index range scan. Usher computes it rather than SQL
-- because SQLite's lower() only folds ASCII and PostgreSQL's depends on the database
-- locale; for the same reason existing users are filled in by a Rust step that runs
-- in this migration's transaction (backfill_display_names in src/shared.rs). NULL
-- when the user has no string displayName.
ALTER TABLE users ADD COLUMN display_name_lower TEXT;

CREATE INDEX users_display_name_lower ON users (display_name_lower);

-- list_users filters on (issuer, issuerAssignedId) whatever the sign-in type; the
-- unique key of identities leads with sign_in_type, so it cannot serve that lookup.
CREATE INDEX identities_issuer ON identities (issuer, issuer_assigned_id);

-- Administrative roles (e.g. Usher.Admin), gone with their user.
CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
) STRICT;

CREATE TABLE sign_up_requests (
    id            TEXT    NOT NULL PRIMARY KEY,
    user_flow_id  TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    -- Verified address, lower case.
    email         TEXT    NOT NULL,
    -- JSON array of identities, in the order given; searched through
    -- sign_up_request_identities below, never inside the JSON.
    identities    TEXT    NOT NULL,
    -- JSON object of attribute values.
    attributes    TEXT    NOT NULL,
    -- Argon2id PHC string for a local account.
    password_hash TEXT,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    created_at    INTEGER NOT NULL,
    decided_by    TEXT,
    decided_at    INTEGER,
    -- The user created on approval. Not a foreign key: the request stays as the
    -- record of the decision when that user is deleted later.
    user_id       TEXT
) STRICT;

-- Listing is newest first, optionally of one status; id breaks ties in created_at.
CREATE INDEX sign_up_requests_status ON sign_up_requests (status, created_at, id);
CREATE INDEX sign_up_requests_created ON sign_up_requests (created_at, id);
CREATE INDEX sign_up_requests_email ON sign_up_requests (email);

-- The identities of each request, one row each, so that the requests holding or
-- blocking an identity are found through an index.
CREATE TABLE sign_up_request_identities (
    request_id         TEXT NOT NULL REFERENCES sign_up_requests (id) ON DELETE CASCADE,
    sign_in_type       TEXT NOT NULL,
    issuer             TEXT NOT NULL,
    issuer_assigned_id TEXT NOT NULL,
    PRIMARY KEY (request_id, sign_in_type, issuer, issuer_assigned_id)
) STRICT;

CREATE INDEX sign_up_request_identities_identity
    ON sign_up_request_identities (sign_in_type, issuer, issuer_assigned_id);
