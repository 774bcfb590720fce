//! What the admin API and console do to users: list and page, edit, delete, roles. One
//! implementation for SQLite and PostgreSQL, expanded by [`impl_store!`](crate::shared)
//! inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_user_admin {
    ($store:ty, $db:ty, $backend_name:literal) => {
        impl $store {
            /// Sets (or removes) the password hash — only from `expected` when given —
            /// and ends the user's sessions and grants, in one transaction.
            /// `Ok(false)` when no row matched (nothing written then).
            async fn write_password_hash(
                &self,
                user_id: &str,
                expected: Option<&str>,
                hash: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = ::sqlx::query(
                    "UPDATE users SET password_hash = $2, password_changed_at = $3, \
                     version = version + 1 \
                     WHERE id = $1 AND ($4 IS NULL OR password_hash = $4)",
                )
                .bind(user_id)
                .bind(hash)
                .bind(hash.map(|_| millis(now)))
                .bind(expected)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                if done.rows_affected() == 0 {
                    tx.rollback().await.map_err(backend)?;
                    return Ok(false);
                }
                end_user_sessions(&mut *tx, user_id, now).await?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            /// Fills in the identities of `users`, a few queries for all of them
            /// rather than one per user.
            async fn fill_identities(&self, users: &mut [User]) -> Result<()> {
                // Bounded so the statement stays under both backends' limits on
                // bound parameters whatever the page size.
                const CHUNK: usize = 500;
                for chunk in users.chunks_mut(CHUNK) {
                    let mut sql = Sql::new(
                        "SELECT user_id, sign_in_type, issuer, issuer_assigned_id, exact_issuer \
                         FROM identities WHERE user_id IN (",
                    );
                    for (n, user) in chunk.iter().enumerate() {
                        if n > 0 {
                            sql.push(", ");
                        }
                        sql.text(user.id.as_str());
                    }
                    sql.push(") ORDER BY user_id, position");
                    let rows = built(&sql).fetch_all(&self.pool).await.map_err(backend)?;
                    let index: ::std::collections::HashMap<String, usize> = chunk
                        .iter()
                        .enumerate()
                        .map(|(n, user)| (user.id.clone(), n))
                        .collect();
                    for row in &rows {
                        let user_id: String = col(row, "user_id")?;
                        if let Some(&n) = index.get(&user_id) {
                            chunk[n].identities.push(identity(row)?);
                        }
                    }
                }
                Ok(())
            }
        }

        #[async_trait]
        impl UserAdminRepository for $store {
            async fn list_users(&self, q: &UserQuery) -> Result<Vec<User>> {
                let mut sql = Sql::new(::std::concat!(
                    "SELECT ",
                    $crate::shared::user_columns!(),
                    " FROM users u WHERE 1 = 1"
                ));
                if let Some(email) = &q.email {
                    sql.push(" AND u.email = ").text(email.as_str());
                }
                if let Some(prefix) = &q.display_name_prefix {
                    // A range on the folded column rather than LIKE: it is
                    // literal whatever the prefix holds, and both backends can
                    // answer it from the index (SQLite's LIKE only uses one on a
                    // NOCASE column, PostgreSQL's only under the "C" collation).
                    let prefix = fold_case(prefix);
                    let upper = prefix_upper_bound(&prefix);
                    sql.push(" AND u.display_name_lower >= ").text(prefix);
                    if let Some(upper) = upper {
                        sql.push(" AND u.display_name_lower < ").text(upper);
                    }
                }
                if let Some((issuer, issuer_assigned_id)) = &q.identity {
                    sql.push(
                        " AND u.id IN (SELECT i.user_id FROM identities i \
                         WHERE i.issuer = ",
                    )
                    .text(issuer.as_str())
                    .push(" AND i.issuer_assigned_id = ")
                    .text(issuer_assigned_id.as_str())
                    .push(")");
                }
                if let Some(term) = &q.search {
                    // Both sides are folded by Usher, so LIKE's own case rules
                    // (ASCII-insensitive in SQLite, sensitive in PostgreSQL) never
                    // come into play. Substrings cannot use an index: this is for
                    // the console, over a directory an administrator browses.
                    let pattern = like_contains(&fold_case(term));
                    sql.push(" AND (u.email LIKE ")
                        .text(pattern.as_str())
                        .push(" ESCAPE '\\' OR u.display_name_lower LIKE ")
                        .text(pattern)
                        .push(" ESCAPE '\\')");
                }
                if let Some(after) = &q.after {
                    sql.push(" AND u.id > ").text(after.as_str());
                }
                sql.push(" ORDER BY u.id LIMIT ").int(i64::from(q.limit));
                let mut users = built(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?
                    .iter()
                    .map(user)
                    .collect::<Result<Vec<_>>>()?;
                self.fill_identities(&mut users).await?;
                Ok(users)
            }

            async fn update_user(&self, u: &User) -> Result<bool> {
                let mut conn = self.pool.acquire().await.map_err(backend)?;
                Ok(save_user(&mut *conn, u, None).await?.is_some())
            }

            async fn edit_user(&self, edit: &UserEdit<'_>) -> Result<Option<i64>> {
                let u = edit.user;
                let mut tx = self.begin_write().await?;
                // The conditional update comes first: it takes the row's lock
                // (PostgreSQL) and decides whether anything is written at all.
                let Some(version) = save_user(&mut *tx, u, edit.expected_version).await? else {
                    let exists = user_exists(&mut *tx, &u.id).await?;
                    tx.rollback().await.map_err(backend)?;
                    return if exists {
                        Err(StorageError::Conflict)
                    } else {
                        Ok(None)
                    };
                };
                if edit.replace_identities {
                    // A clash rolls back the whole edit (dropping `tx`).
                    replace_identities(&mut *tx, &u.id, &u.identities).await?;
                }
                if let Some(hash) = edit.password_hash {
                    ::sqlx::query(
                        "UPDATE users SET password_hash = $2, password_changed_at = $3 \
                         WHERE id = $1",
                    )
                    .bind(&u.id)
                    .bind(hash)
                    .bind(hash.map(|_| millis(edit.now)))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                // Whoever signed in with the old credentials, or before the account
                // was disabled, must not stay signed in (nor come back when it is
                // enabled again).
                if edit.password_hash.is_some() || edit.replace_identities || !u.account_enabled {
                    end_user_sessions(&mut *tx, &u.id, edit.now).await?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(Some(version))
            }

            async fn set_password_hash(
                &self,
                user_id: &str,
                hash: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                self.write_password_hash(user_id, None, hash, now).await
            }

            async fn replace_password_hash(
                &self,
                user_id: &str,
                expected: &str,
                hash: &str,
                now: DateTime<Utc>,
            ) -> Result<bool> {
                self.write_password_hash(user_id, Some(expected), Some(hash), now)
                    .await
            }

            async fn end_user_sessions(&self, user_id: &str, now: DateTime<Utc>) -> Result<()> {
                let mut tx = self.begin_write().await?;
                end_user_sessions(&mut *tx, user_id, now).await?;
                tx.commit().await.map_err(backend)
            }

            async fn delete_user(&self, user_id: &str, now: DateTime<Utc>) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                // Identities and roles go with the row (ON DELETE CASCADE).
                let deleted = ::sqlx::query("DELETE FROM users WHERE id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await.map_err(backend)?;
                    return Ok(false);
                }
                // Sessions and grants name the user without a foreign key (they are
                // written on hot paths that should not have to check it), so they
                // are dealt with here: the sessions go, so no browser stays
                // signed in as nobody; the grants stay, revoked, so a replayed
                // code or refresh token still finds what to refuse.
                ::sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                ::sqlx::query(
                    "UPDATE grants SET revoked_at = $2 \
                     WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(millis(now))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn set_identities(&self, user_id: &str, identities: &[Identity]) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                if !user_exists(&mut *tx, user_id).await? {
                    return Ok(false);
                }
                replace_identities(&mut *tx, user_id, identities).await?;
                bump_user_version(&mut *tx, user_id).await?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }

            async fn user_roles(&self, user_id: &str) -> Result<Vec<String>> {
                let mut roles: Vec<String> =
                    ::sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(backend)?;
                // Sorted here so the order does not depend on the collation.
                roles.sort_unstable();
                Ok(roles)
            }

            async fn set_user_roles(
                &self,
                user_id: &str,
                roles: &[String],
                now: DateTime<Utc>,
            ) -> Result<bool> {
                // A role given twice is had once.
                let roles: ::std::collections::BTreeSet<&str> =
                    roles.iter().map(String::as_str).collect();
                let mut tx = self.begin_write().await?;
                if !user_exists(&mut *tx, user_id).await? {
                    return Ok(false);
                }
                let before: ::std::collections::BTreeSet<String> =
                    ::sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = $1")
                        .bind(user_id)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(backend)?
                        .into_iter()
                        .collect();
                if before.iter().map(String::as_str).eq(roles.iter().copied()) {
                    tx.rollback().await.map_err(backend)?;
                    return Ok(true);
                }
                ::sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                for role in roles {
                    ::sqlx::query("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)")
                        .bind(user_id)
                        .bind(role)
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                }
                bump_user_version(&mut *tx, user_id).await?;
                // What a session was started with is no longer what the user has.
                end_user_sessions(&mut *tx, user_id, now).await?;
                tx.commit().await.map_err(backend)?;
                Ok(true)
            }
        }
    };
}
pub(crate) use impl_user_admin;
