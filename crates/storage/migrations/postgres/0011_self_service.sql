-- Account self-service, kept in step with ../sqlite/0011_self_service.sql.

-- When a user's password was last set (sign-up, reset, change, an administrator),
-- as Graph's lastPasswordChangeDateTime shows it; NULL for accounts without one and
-- for passwords set before this migration.
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;

-- What people did to their own accounts (a reset, a password change, a profile
-- edit, a reset a connector blocked), for administrators; gone with the user.
CREATE TABLE account_events (
    id        TEXT NOT NULL PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind      TEXT NOT NULL,
    at        BIGINT NOT NULL,
    client_id TEXT,
    flow_id   TEXT
);

CREATE INDEX account_events_user ON account_events (user_id, at);
