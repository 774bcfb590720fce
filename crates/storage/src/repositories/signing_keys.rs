//! Signing keys. One implementation for SQLite and PostgreSQL, expanded by
//! [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_signing_keys {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl SigningKeyRepository for $store {
            async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
                ::sqlx::query(
                    "SELECT kid, algorithm, encrypted_private_key, public_jwk, created_at, \
                     activates_at, retired_at FROM signing_keys ORDER BY created_at, kid",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .iter()
                .map(signing_key)
                .collect()
            }

            async fn insert_signing_key(&self, k: &StoredSigningKey) -> Result<()> {
                ::sqlx::query(
                    "INSERT INTO signing_keys (kid, algorithm, encrypted_private_key, \
                     public_jwk, created_at, activates_at, retired_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&k.kid)
                .bind(&k.algorithm)
                .bind(&k.encrypted_private_key)
                .bind(to_json(&k.public_jwk)?)
                .bind(millis(k.created_at))
                .bind(millis(k.activates_at))
                .bind(k.retired_at.map(millis))
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<()> {
                // A retirement may be brought forward (say, on compromise) but never
                // pushed back: a key once scheduled to stop signing stays stopped.
                ::sqlx::query(
                    "UPDATE signing_keys SET retired_at = CASE \
                     WHEN retired_at IS NULL OR retired_at > $2 THEN $2 \
                     ELSE retired_at END WHERE kid = $1",
                )
                .bind(kid)
                .bind(millis(at))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_signing_keys;
