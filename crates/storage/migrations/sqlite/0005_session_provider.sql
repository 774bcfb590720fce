-- The identity provider a browser session was made with, so that single sign-on
-- only answers for a user flow that offers that provider. Sessions from before this
-- column have none, and sign in again through the flow.
ALTER TABLE browser_sessions ADD COLUMN identity_provider TEXT;
