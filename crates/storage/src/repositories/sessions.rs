//! Browser sessions. One implementation for SQLite and PostgreSQL, expanded by
//! [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_sessions {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl SessionRepository for $store {
            async fn insert_session(&self, s: &BrowserSession) -> Result<()> {
                ::sqlx::query(
                    "INSERT INTO browser_sessions \
                     (id_hash, user_id, auth_time, created_at, expires_at, ended_at, \
                      identity_provider) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.id_hash)
                .bind(&s.user_id)
                .bind(millis(s.auth_time))
                .bind(millis(s.created_at))
                .bind(millis(s.expires_at))
                .bind(s.ended_at.map(millis))
                .bind(&s.identity_provider)
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn session(&self, id_hash: &str) -> Result<Option<BrowserSession>> {
                ::sqlx::query(
                    "SELECT id_hash, user_id, auth_time, created_at, expires_at, ended_at, \
                     identity_provider FROM browser_sessions WHERE id_hash = $1",
                )
                .bind(id_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .map(|row| session(&row))
                .transpose()
            }

            async fn end_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<()> {
                // The first sign-out's time is the one that counts.
                ::sqlx::query(
                    "UPDATE browser_sessions SET ended_at = $2 \
                     WHERE id_hash = $1 AND ended_at IS NULL",
                )
                .bind(id_hash)
                .bind(millis(now))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_sessions;
