//! Authorization codes, grants and refresh tokens. One implementation for SQLite and
//! PostgreSQL, expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_tokens {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl TokenRepository for $store {
            async fn insert_authorization_code(&self, c: &AuthorizationCode) -> Result<()> {
                let data = CodeData {
                    redirect_uri: c.redirect_uri.clone(),
                    scope: c.scope.clone(),
                    nonce: c.nonce.clone(),
                    code_challenge: c.code_challenge.clone(),
                    session_id: c.session_id.clone(),
                    extra_claims: c.extra_claims.clone(),
                };
                ::sqlx::query(::std::concat!(
                    "INSERT INTO authorization_codes (",
                    $crate::shared::code_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(&c.code_hash)
                .bind(&c.grant_id)
                .bind(&c.client_id)
                .bind(&c.user_id)
                .bind(millis(c.auth_time))
                .bind(to_json(&data)?)
                .bind(millis(c.created_at))
                .bind(millis(c.expires_at))
                .bind(c.used_at.map(millis))
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn redeem_authorization_code(
                &self,
                code_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Redemption<AuthorizationCode>>> {
                const UPDATE: &str = ::std::concat!(
                    "UPDATE authorization_codes SET used_at = $2 ",
                    "WHERE code_hash = $1 AND used_at IS NULL RETURNING ",
                    $crate::shared::code_columns!()
                );
                const SELECT: &str = ::std::concat!(
                    "SELECT ",
                    $crate::shared::code_columns!(),
                    " FROM authorization_codes WHERE code_hash = $1"
                );
                self.redeem(UPDATE, SELECT, code_hash, now, code).await
            }

            async fn insert_grant(&self, g: &Grant) -> Result<()> {
                ::sqlx::query(
                    "INSERT INTO grants (id, client_id, user_id, scope, auth_time, \
                     session_id, created_at, revoked_at, token_claims) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&g.id)
                .bind(&g.client_id)
                .bind(&g.user_id)
                .bind(to_json(&g.scope)?)
                .bind(millis(g.auth_time))
                .bind(g.session_id.as_deref())
                .bind(millis(g.created_at))
                .bind(g.revoked_at.map(millis))
                .bind(to_json(&g.token_claims)?)
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn grant(&self, id: &str) -> Result<Option<Grant>> {
                ::sqlx::query(
                    "SELECT id, client_id, user_id, scope, auth_time, session_id, \
                     created_at, revoked_at, token_claims FROM grants WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .map(|row| grant(&row))
                .transpose()
            }

            async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
                // The first revocation's time is the one that counts.
                ::sqlx::query(
                    "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(id)
                .bind(millis(now))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }

            async fn insert_refresh_token(&self, t: &RefreshToken) -> Result<()> {
                ::sqlx::query(::std::concat!(
                    "INSERT INTO refresh_tokens (",
                    $crate::shared::refresh_token_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5)"
                ))
                .bind(&t.token_hash)
                .bind(&t.grant_id)
                .bind(millis(t.created_at))
                .bind(millis(t.expires_at))
                .bind(t.used_at.map(millis))
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn redeem_refresh_token(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Redemption<RefreshToken>>> {
                const UPDATE: &str = ::std::concat!(
                    "UPDATE refresh_tokens SET used_at = $2 ",
                    "WHERE token_hash = $1 AND used_at IS NULL RETURNING ",
                    $crate::shared::refresh_token_columns!()
                );
                const SELECT: &str = ::std::concat!(
                    "SELECT ",
                    $crate::shared::refresh_token_columns!(),
                    " FROM refresh_tokens WHERE token_hash = $1"
                );
                self.redeem(UPDATE, SELECT, token_hash, now, refresh_token)
                    .await
            }

            async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
                ::sqlx::query(::std::concat!(
                    "SELECT ",
                    $crate::shared::refresh_token_columns!(),
                    " FROM refresh_tokens WHERE token_hash = $1"
                ))
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .as_ref()
                .map(refresh_token)
                .transpose()
            }
        }
    };
}
pub(crate) use impl_tokens;
