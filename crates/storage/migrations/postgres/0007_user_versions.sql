-- Users: whether their address was proven, Graph's directory properties, and a
-- version for optimistic concurrency. PostgreSQL dialect (kept in step with
-- ../sqlite/0007_user_versions.sql).

-- Users stored before this migration were made by sign-up flows (which prove the
-- address) or the admin API, which until now claimed the same; they keep saying so.
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT TRUE;

-- userPrincipalName, mailNickname and userType as JSON (see UserProfile).
ALTER TABLE users ADD COLUMN profile TEXT NOT NULL DEFAULT '{}';

-- Bumped by every write of the user or its identities, password or roles: the admin
-- API's ETag, and what a write with If-Match compares.
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
