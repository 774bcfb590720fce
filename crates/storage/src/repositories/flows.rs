//! Flows: insert, read, save with optimistic concurrency, and the run lease. One
//! implementation for SQLite and PostgreSQL, expanded by [`impl_store!`](crate::shared)
//! inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_flows {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl FlowRepository for $store {
            async fn insert_flow(&self, flow: &Flow) -> Result<()> {
                ::sqlx::query(
                    "INSERT INTO flows (id, state, version, expires_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&flow.id)
                .bind(to_json(flow)?)
                .bind(flow.version)
                .bind(millis(flow.expires_at))
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn flow(&self, id: &str) -> Result<Option<Flow>> {
                let row = ::sqlx::query("SELECT state, version FROM flows WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                let Some(row) = row else { return Ok(None) };
                let mut flow: Flow = from_json(&col::<String>(&row, "state")?, "state")?;
                // The column is what saves are checked against.
                flow.version = col(&row, "version")?;
                Ok(Some(flow))
            }

            async fn update_flow(&self, flow: &mut Flow) -> Result<()> {
                let read_version = flow.version;
                let mut saved = flow.clone();
                saved.version = read_version.checked_add(1).ok_or_else(|| {
                    StorageError::Corrupt(format!("flow {}: version overflow", flow.id))
                })?;
                let done = ::sqlx::query(
                    "UPDATE flows SET state = $1, expires_at = $2, version = version + 1 \
                     WHERE id = $3 AND version = $4",
                )
                .bind(to_json(&saved)?)
                .bind(millis(saved.expires_at))
                .bind(&saved.id)
                .bind(read_version)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                // No row matched: another save came first (or the flow was
                // deleted as expired); either way this copy is stale.
                if done.rows_affected() == 0 {
                    return Err(StorageError::Conflict);
                }
                flow.version = saved.version;
                Ok(())
            }

            async fn take_flow_lease(
                &self,
                id: &str,
                holder: &str,
                now: DateTime<Utc>,
                until: DateTime<Utc>,
            ) -> Result<bool> {
                // One conditional update: of two takers, the database lets one
                // match.
                let done = ::sqlx::query(
                    "UPDATE flows SET lease_holder = $2, lease_until = $4 \
                     WHERE id = $1 AND (lease_until IS NULL OR lease_until <= $3)",
                )
                .bind(id)
                .bind(holder)
                .bind(millis(now))
                .bind(millis(until))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn renew_flow_lease(
                &self,
                id: &str,
                holder: &str,
                until: DateTime<Utc>,
            ) -> Result<bool> {
                let done = ::sqlx::query(
                    "UPDATE flows SET lease_until = $3 WHERE id = $1 AND lease_holder = $2",
                )
                .bind(id)
                .bind(holder)
                .bind(millis(until))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_flow_lease(&self, id: &str, holder: &str) -> Result<()> {
                ::sqlx::query(
                    "UPDATE flows SET lease_holder = NULL, lease_until = NULL \
                     WHERE id = $1 AND lease_holder = $2",
                )
                .bind(id)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_flows;
