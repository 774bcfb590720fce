-- The Entra error code (1003xxx) of a failed call of a custom authentication
-- extension, as Microsoft's sign-in log shows it; NULL for other calls. Kept in step
-- with ../sqlite/0010_connector_error_codes.sql.
ALTER TABLE connector_calls ADD COLUMN error_code BIGINT;
