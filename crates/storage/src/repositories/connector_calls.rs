//! Connector call records: insert and list. One implementation for SQLite and
//! PostgreSQL, expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_connector_calls {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl ConnectorCallRepository for $store {
            async fn insert_connector_call(&self, r: &ConnectorCallRecord) -> Result<()> {
                ::sqlx::query(
                    "INSERT INTO connector_calls (call_id, connector_id, user_flow_id, step, \
                     flow_id, attempts, http_status, latency_ms, outcome, failure_reason, \
                     warnings, request_body, response_body, created_at, error_code) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&r.call_id)
                .bind(&r.connector_id)
                .bind(&r.user_flow_id)
                .bind(&r.step)
                .bind(&r.flow_id)
                .bind(i64::from(r.attempts))
                .bind(r.http_status.map(i64::from))
                .bind(r.latency_ms)
                .bind(&r.outcome)
                .bind(&r.failure_reason)
                .bind(to_json(&r.warnings)?)
                .bind(&r.request_body)
                .bind(&r.response_body)
                .bind(millis(r.created_at))
                .bind(r.error_code)
                .execute(&self.pool)
                .await
                .map_err(insert_error)?;
                Ok(())
            }

            async fn connector_call(&self, call_id: &str) -> Result<Option<ConnectorCallRecord>> {
                ::sqlx::query("SELECT * FROM connector_calls WHERE call_id = $1")
                    .bind(call_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?
                    .as_ref()
                    .map(connector_call)
                    .transpose()
            }

            async fn connector_calls(&self, f: &CallFilter) -> Result<Vec<ConnectorCallRecord>> {
                // Absent filters bind NULL and match everything, so one statement
                // serves every combination.
                ::sqlx::query(
                    "SELECT * FROM connector_calls \
                     WHERE ($1 IS NULL OR connector_id = $1) \
                     AND ($2 IS NULL OR outcome = $2) \
                     AND ($3 IS NULL OR created_at >= $3) \
                     AND ($4 IS NULL OR created_at < $4) \
                     ORDER BY created_at DESC, call_id DESC LIMIT $5",
                )
                .bind(f.connector_id.as_deref())
                .bind(f.outcome.as_deref())
                .bind(f.since.map(millis))
                .bind(f.until.map(millis))
                .bind(i64::from(f.limit))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?
                .iter()
                .map(connector_call)
                .collect()
            }
        }
    };
}
pub(crate) use impl_connector_calls;
