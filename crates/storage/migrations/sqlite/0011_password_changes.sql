-- When a user's password was last set (sign-up, reset, change, an administrator),
-- as Graph's lastPasswordChangeDateTime shows it; NULL for accounts without one and
-- for passwords set before this migration. Kept in step with
-- ../postgres/0011_password_changes.sql.
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
