//! What people did to their own accounts. One implementation for SQLite and
//! PostgreSQL, expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_account_events {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl AccountEventRepository for $store {
            async fn insert_account_event(&self, e: &::usher_domain::AccountEvent) -> Result<()> {
                ::sqlx::query(
                    "INSERT INTO account_events (id, user_id, kind, at, client_id, flow_id) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&e.id)
                .bind(&e.user_id)
                .bind(e.kind.as_str())
                .bind(millis(e.at))
                .bind(e.client_id.as_deref())
                .bind(e.flow_id.as_deref())
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn account_events(
                &self,
                user_id: &str,
                limit: u32,
            ) -> Result<Vec<::usher_domain::AccountEvent>> {
                let rows = ::sqlx::query(
                    "SELECT id, user_id, kind, at, client_id, flow_id FROM account_events \
                     WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
                )
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
                rows.iter()
                    .map(|row| {
                        let kind: String = col(row, "kind")?;
                        Ok(::usher_domain::AccountEvent {
                            id: col(row, "id")?,
                            user_id: col(row, "user_id")?,
                            kind: ::usher_domain::AccountEventKind::parse(&kind).ok_or_else(
                                || StorageError::Corrupt(format!("kind: unknown {kind:?}")),
                            )?,
                            at: time(row, "at")?,
                            client_id: col(row, "client_id")?,
                            flow_id: col(row, "flow_id")?,
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use impl_account_events;
