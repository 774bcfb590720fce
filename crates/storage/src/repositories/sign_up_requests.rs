//! Sign-up requests waiting for approval. One implementation for SQLite and PostgreSQL,
//! expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_sign_up_requests {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl SignUpRequestRepository for $store {
            async fn insert_sign_up_request(&self, r: &SignUpRequest) -> Result<()> {
                let identities = to_json(&r.identities)?;
                let attributes = to_json(&r.attributes)?;
                let mut tx = self.begin_write().await?;
                ::sqlx::query(::std::concat!(
                    "INSERT INTO sign_up_requests (",
                    $crate::shared::sign_up_request_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .bind(&r.id)
                .bind(&r.user_flow_id)
                .bind(&r.client_id)
                .bind(&r.email)
                .bind(&identities)
                .bind(&attributes)
                .bind(r.password_hash.as_deref())
                .bind(r.status.as_str())
                .bind(millis(r.created_at))
                .bind(r.decided_by.as_deref())
                .bind(r.decided_at.map(millis))
                .bind(r.user_id.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(insert_error)?;
                // The same identity listed twice is indexed once.
                let keys: ::std::collections::BTreeSet<(&str, &str, &str)> = r
                    .identities
                    .iter()
                    .map(|i| {
                        (
                            i.sign_in_type.as_str(),
                            i.issuer.as_str(),
                            i.issuer_assigned_id.as_str(),
                        )
                    })
                    .collect();
                for (sign_in_type, issuer, issuer_assigned_id) in keys {
                    ::sqlx::query(
                        "INSERT INTO sign_up_request_identities \
                         (request_id, sign_in_type, issuer, issuer_assigned_id) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&r.id)
                    .bind(sign_in_type)
                    .bind(issuer)
                    .bind(issuer_assigned_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                tx.commit().await.map_err(backend)?;
                Ok(())
            }

            async fn sign_up_request(&self, id: &str) -> Result<Option<SignUpRequest>> {
                ::sqlx::query(::std::concat!(
                    "SELECT ",
                    $crate::shared::sign_up_request_columns!(),
                    " FROM sign_up_requests WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .map(|row| sign_up_request(&row))
                .transpose()
            }

            async fn sign_up_requests(
                &self,
                status: Option<SignUpRequestStatus>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<SignUpRequest>> {
                // The cursor's position is read first, so the page continues
                // from where the previous one ended even if that request has been
                // decided since (and so left a status filter).
                let position = match after {
                    None => None,
                    Some(id) => {
                        let created_at: Option<i64> = ::sqlx::query_scalar(
                            "SELECT created_at FROM sign_up_requests WHERE id = $1",
                        )
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(backend)?;
                        Some((created_at.ok_or(StorageError::Conflict)?, id))
                    }
                };
                let mut sql = Sql::new(::std::concat!(
                    "SELECT ",
                    $crate::shared::sign_up_request_columns!(),
                    " FROM sign_up_requests WHERE 1 = 1"
                ));
                if let Some(status) = status {
                    sql.push(" AND status = ").text(status.as_str());
                }
                if let Some((created_at, id)) = position {
                    // Newest first, so the next page is what sorts before the
                    // cursor: earlier, or as early with a smaller id. As a row
                    // value, both backends seek the index to it rather than
                    // filter everything after it.
                    sql.push(" AND (created_at, id) < (")
                        .int(created_at)
                        .push(", ")
                        .text(id)
                        .push(")");
                }
                sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .int(i64::from(limit));
                built(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?
                    .iter()
                    .map(sign_up_request)
                    .collect()
            }

            async fn open_sign_up_requests_for(
                &self,
                email: Option<&str>,
                identities: &[Identity],
            ) -> Result<Vec<SignUpRequest>> {
                if email.is_none() && identities.is_empty() {
                    return Ok(Vec::new());
                }
                // The candidates come from the email index and the identity
                // table's index (never from inside the JSON), each request once
                // (IN), and only then is the status checked. An OR of the two
                // would make PostgreSQL scan the table. `status || ''` keeps
                // SQLite, which has no statistics, from preferring the status
                // index, which would read every open request.
                let mut sql = Sql::new(::std::concat!(
                    "SELECT ",
                    $crate::shared::sign_up_request_columns!(),
                    " FROM sign_up_requests WHERE (status || '') IN ("
                ));
                sql.text(SignUpRequestStatus::Pending.as_str())
                    .push(", ")
                    .text(SignUpRequestStatus::Denied.as_str())
                    .push(") AND id IN (");
                if let Some(email) = email {
                    sql.push("SELECT id FROM sign_up_requests WHERE email = ")
                        .text(email);
                    if !identities.is_empty() {
                        sql.push(" UNION ALL ");
                    }
                }
                if !identities.is_empty() {
                    sql.push("SELECT request_id FROM sign_up_request_identities WHERE ");
                    for (n, identity) in identities.iter().enumerate() {
                        if n > 0 {
                            sql.push(" OR ");
                        }
                        sql.push("(sign_in_type = ")
                            .text(identity.sign_in_type.as_str())
                            .push(" AND issuer = ")
                            .text(identity.issuer.as_str())
                            .push(" AND issuer_assigned_id = ")
                            .text(identity.issuer_assigned_id.as_str())
                            .push(")");
                    }
                }
                sql.push(") ORDER BY created_at DESC, id DESC");
                let requests = built(&sql)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?
                    .iter()
                    .map(sign_up_request)
                    .collect::<Result<Vec<_>>>()?;
                // The index knows identities by the contract's fields only: a
                // request another provider on the same host made is not this one's.
                Ok(requests
                    .into_iter()
                    .filter(|r| {
                        email == Some(r.email.as_str())
                            || r.identities.iter().any(|held| {
                                identities
                                    .iter()
                                    .any(|i| $crate::shared::same_identity(held, i))
                            })
                    })
                    .collect())
            }

            async fn decide_sign_up_request(
                &self,
                id: &str,
                status: SignUpRequestStatus,
                decided_by: &str,
                at: DateTime<Utc>,
                user_id: Option<&str>,
            ) -> Result<Option<SignUpRequest>> {
                if status == SignUpRequestStatus::Pending {
                    // Not a decision: there is nothing to record.
                    return Ok(None);
                }
                // The conditional update is what makes exactly one of several
                // deciding administrators (or instances) win.
                ::sqlx::query(::std::concat!(
                    "UPDATE sign_up_requests \
                     SET status = $2, decided_by = $3, decided_at = $4, user_id = $5 \
                     WHERE id = $1 AND status = $6 RETURNING ",
                    $crate::shared::sign_up_request_columns!()
                ))
                .bind(id)
                .bind(status.as_str())
                .bind(decided_by)
                .bind(millis(at))
                .bind(user_id)
                .bind(SignUpRequestStatus::Pending.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?
                .map(|row| sign_up_request(&row))
                .transpose()
            }

            async fn approve_sign_up_request(
                &self,
                id: &str,
                new: NewUser,
                decided_by: &str,
                at: DateTime<Utc>,
            ) -> Result<Option<(SignUpRequest, User)>> {
                let mut tx = self.begin_write().await?;
                // The decision first: of several approving at once, exactly one
                // matches the pending row, and the others write nothing.
                let decided = ::sqlx::query(::std::concat!(
                    "UPDATE sign_up_requests \
                     SET status = $2, decided_by = $3, decided_at = $4, user_id = $5 \
                     WHERE id = $1 AND status = $6 RETURNING ",
                    $crate::shared::sign_up_request_columns!()
                ))
                .bind(id)
                .bind(SignUpRequestStatus::Approved.as_str())
                .bind(decided_by)
                .bind(millis(at))
                .bind(&new.id)
                .bind(SignUpRequestStatus::Pending.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
                let Some(row) = decided else {
                    tx.rollback().await.map_err(backend)?;
                    return Ok(None);
                };
                let request = sign_up_request(&row)?;
                // A duplicate identity drops `tx`, so the request stays pending.
                let user = insert_user(&mut *tx, new).await?;
                tx.commit().await.map_err(backend)?;
                Ok(Some((request, user)))
            }

            async fn delete_sign_up_request(&self, id: &str) -> Result<bool> {
                // Its identity rows go with it (ON DELETE CASCADE).
                let done = ::sqlx::query("DELETE FROM sign_up_requests WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}
pub(crate) use impl_sign_up_requests;
