//! Users and their identities: create, look up (by id, identity, provider identity,
//! email), link, resolve exact issuers. One implementation for SQLite and PostgreSQL,
//! expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_users {
    ($store:ty, $db:ty, $backend_name:literal) => {
        impl $store {
            async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>> {
                ::sqlx::query(
                    "SELECT sign_in_type, issuer, issuer_assigned_id, exact_issuer FROM identities \
                     WHERE user_id = $1 ORDER BY position",
                )
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .iter()
                .map(identity)
                .collect()
            }

            /// Completes a user row, if there is one, with its identities.
            async fn one_user(&self, row: Option<DbRow>) -> Result<Option<User>> {
                let Some(row) = row else { return Ok(None) };
                let mut user = user(&row)?;
                user.identities = self.identities_of(&user.id).await?;
                Ok(Some(user))
            }

            /// Marks a single-use record used unless it already was. `update`
            /// sets `used_at = $2` on the row whose key is `$1` if `used_at IS
            /// NULL` and returns it; `select` reads the row by key. The
            /// conditional update is what makes exactly one caller win, on both
            /// backends and across instances.
            async fn redeem<T>(
                &self,
                update: &'static str,
                select: &'static str,
                key: &str,
                now: DateTime<Utc>,
                decode: fn(&DbRow) -> Result<T>,
            ) -> Result<Option<Redemption<T>>> {
                let used = ::sqlx::query(update)
                    .bind(key)
                    .bind(millis(now))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                if let Some(row) = used {
                    return decode(&row).map(|t| Some(Redemption::Fresh(t)));
                }
                let earlier = ::sqlx::query(select)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                earlier
                    .map(|row| decode(&row).map(Redemption::Replayed))
                    .transpose()
            }
        }

        #[async_trait]
        impl UserRepository for $store {
            async fn create_user(&self, new: NewUser) -> Result<User> {
                let mut tx = self.begin_write().await?;
                // On a duplicate, dropping `tx` on the way out rolls the user back
                // too.
                let user = insert_user(&mut *tx, new).await?;
                tx.commit().await.map_err(backend)?;
                Ok(user)
            }

            async fn add_identity(&self, user_id: &str, identity: &Identity) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let exists = ::sqlx::query("SELECT id FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?
                    .is_some();
                if !exists {
                    return Ok(false);
                }
                unresolved_clash(&mut *tx, user_id, identity).await?;
                // The next position keeps the user's identities in the order added.
                ::sqlx::query(
                    "INSERT INTO identities \
                     (user_id, position, sign_in_type, issuer, issuer_assigned_id, \
                      exact_issuer) \
                     SELECT $1, COALESCE(MAX(position), -1) + 1, $2, $3, $4, $5 \
                     FROM identities WHERE user_id = $1",
                )
                .bind(user_id)
                .bind(identity.sign_in_type.as_str())
                .bind(&identity.issuer)
                .bind(&identity.issuer_assigned_id)
                .bind(identity.exact_issuer.as_deref().unwrap_or(""))
                .execute(&mut *tx)
                .await
                .map_err(insert_error)?;
                bump_user_version(&mut *tx, user_id).await?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
                let row = ::sqlx::query(::std::concat!(
                    "SELECT ",
                    $crate::shared::user_columns!(),
                    " FROM users u WHERE u.id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                self.one_user(row).await
            }

            async fn user_by_identity(
                &self,
                sign_in_type: SignInType,
                issuer: &str,
                issuer_assigned_id: &str,
            ) -> Result<Option<User>> {
                let row = ::sqlx::query(::std::concat!(
                    "SELECT ",
                    $crate::shared::user_columns!(),
                    " FROM users u JOIN identities i ON i.user_id = u.id \
                     WHERE i.sign_in_type = $1 AND i.issuer = $2 \
                     AND i.issuer_assigned_id = $3 AND i.exact_issuer = ''"
                ))
                .bind(sign_in_type.as_str())
                .bind(issuer)
                .bind(issuer_assigned_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                self.one_user(row).await
            }

            async fn user_by_provider_identity(
                &self,
                identity: &Identity,
                take_on_unresolved: bool,
            ) -> Result<Option<User>> {
                let Some(exact) = identity.exact_issuer.as_deref() else {
                    return self
                        .user_by_identity(
                            identity.sign_in_type,
                            &identity.issuer,
                            &identity.issuer_assigned_id,
                        )
                        .await;
                };
                let by_exact = || {
                    ::sqlx::query_scalar::<_, String>(
                        "SELECT user_id FROM identities WHERE exact_issuer = $1 \
                         AND issuer_assigned_id = $2 AND sign_in_type = $3",
                    )
                    .bind(exact)
                    .bind(&identity.issuer_assigned_id)
                    .bind(identity.sign_in_type.as_str())
                    .fetch_optional(&self.pool)
                };
                let found = by_exact().await.map_err(backend)?;
                let user_id = match found {
                    Some(id) => Some(id),
                    // Passcode identities belong to no provider.
                    None if take_on_unresolved && identity.issuer != "mail" => {
                        // Conditional, so that of two instances taking the same
                        // identity on, one does; the other, like a sign-up that
                        // stored the identity meanwhile, is found by looking again.
                        let taken = ::sqlx::query_scalar::<_, String>(
                            "UPDATE identities SET exact_issuer = $1 \
                             WHERE sign_in_type = $2 AND issuer = $3 \
                             AND issuer_assigned_id = $4 AND exact_issuer = '' \
                             RETURNING user_id",
                        )
                        .bind(exact)
                        .bind(identity.sign_in_type.as_str())
                        .bind(&identity.issuer)
                        .bind(&identity.issuer_assigned_id)
                        .fetch_optional(&self.pool)
                        .await;
                        match taken {
                            Ok(Some(id)) => Some(id),
                            Ok(None) => by_exact().await.map_err(backend)?,
                            Err(e) => match insert_error(e) {
                                StorageError::DuplicateIdentity => {
                                    by_exact().await.map_err(backend)?
                                }
                                e => return Err(e),
                            },
                        }
                    }
                    None => None,
                };
                match user_id {
                    Some(id) => self.user_by_id(&id).await,
                    None => Ok(None),
                }
            }

            async fn resolve_identities(&self, issuer: &str, exact_issuer: &str) -> Result<u64> {
                // An identity whose subject this provider already holds under its
                // exact issuer stays as it is rather than break the unique key.
                let done = ::sqlx::query(
                    "UPDATE identities SET exact_issuer = $2 \
                     WHERE sign_in_type = 'federated' AND issuer = $1 \
                     AND issuer <> 'mail' AND exact_issuer = '' AND NOT EXISTS (\
                       SELECT 1 FROM identities j WHERE j.sign_in_type = 'federated' \
                       AND j.issuer = $1 AND j.exact_issuer = $2 \
                       AND j.issuer_assigned_id = identities.issuer_assigned_id)",
                )
                .bind(issuer)
                .bind(exact_issuer)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected())
            }

            async fn users_by_email(&self, email: &str) -> Result<Vec<User>> {
                let mut users = ::sqlx::query(::std::concat!(
                    "SELECT ",
                    $crate::shared::user_columns!(),
                    " FROM users u WHERE u.email = $1 ORDER BY u.created_at, u.id"
                ))
                .bind(email)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .iter()
                .map(user)
                .collect::<Result<Vec<_>>>()?;
                // One query for all their identities rather than one per user. A
                // user created in between shows up only here and is skipped.
                let rows = ::sqlx::query(
                    "SELECT i.user_id, i.sign_in_type, i.issuer, i.issuer_assigned_id, i.exact_issuer \
                     FROM identities i JOIN users u ON u.id = i.user_id \
                     WHERE u.email = $1 ORDER BY i.user_id, i.position",
                )
                .bind(email)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
                for row in &rows {
                    let user_id: String = col(row, "user_id")?;
                    if let Some(user) = users.iter_mut().find(|u| u.id == user_id) {
                        user.identities.push(identity(row)?);
                    }
                }
                Ok(users)
            }

            async fn password_hash(&self, user_id: &str) -> Result<Option<String>> {
                let row = ::sqlx::query("SELECT password_hash FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                match row {
                    Some(row) => col(&row, "password_hash"),
                    None => Ok(None),
                }
            }
        }
    };
}
pub(crate) use impl_users;
