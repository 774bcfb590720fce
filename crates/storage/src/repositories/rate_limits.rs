//! Rate-limit windows: reserve, give back, read. One implementation for SQLite and
//! PostgreSQL, expanded by [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_rate_limits {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl RateLimitRepository for $store {
            async fn hit_rate_limit(
                &self,
                key: &str,
                window: ::chrono::Duration,
                now: DateTime<Utc>,
            ) -> Result<RateWindow> {
                // One statement, so concurrent hits on any instance all count: a
                // window that has ended starts again at this hit.
                let row = ::sqlx::query(
                    "INSERT INTO rate_limits (key, window_start, window_ends, hits) \
                     VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (key) DO UPDATE SET \
                     hits = CASE WHEN rate_limits.window_ends <= $2 THEN 1 \
                            ELSE rate_limits.hits + 1 END, \
                     window_start = CASE WHEN rate_limits.window_ends <= $2 THEN $2 \
                            ELSE rate_limits.window_start END, \
                     window_ends = CASE WHEN rate_limits.window_ends <= $2 THEN $3 \
                            ELSE rate_limits.window_ends END \
                     RETURNING hits, window_ends",
                )
                .bind(key)
                .bind(millis(now))
                .bind(millis(now + window))
                .fetch_one(&self.pool)
                .await
                .map_err(backend)?;
                Ok(RateWindow {
                    hits: col(&row, "hits")?,
                    window_ends: time(&row, "window_ends")?,
                })
            }

            async fn rate_limit(
                &self,
                key: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<RateWindow>> {
                let row = ::sqlx::query(
                    "SELECT hits, window_ends FROM rate_limits \
                     WHERE key = $1 AND window_ends > $2",
                )
                .bind(key)
                .bind(millis(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                row.map(|row| {
                    Ok(RateWindow {
                        hits: col(&row, "hits")?,
                        window_ends: time(&row, "window_ends")?,
                    })
                })
                .transpose()
            }

            async fn release_rate_limit(&self, key: &str, now: DateTime<Utc>) -> Result<()> {
                ::sqlx::query(
                    "UPDATE rate_limits SET hits = hits - 1 \
                     WHERE key = $1 AND hits > 0 AND window_ends > $2",
                )
                .bind(key)
                .bind(millis(now))
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_rate_limits;
