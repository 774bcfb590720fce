//! Clean-up of expired rows. One implementation for SQLite and PostgreSQL, expanded by
//! [`impl_store!`](crate::shared) inside each store's module.

/// Implements this repository for `$store` over `$db`; expanded inside
/// `impl_store!`, whose imports and row helpers it uses.
macro_rules! impl_maintenance {
    ($store:ty, $db:ty, $backend_name:literal) => {
        #[async_trait]
        impl Maintenance for $store {
            #[allow(
                clippy::disallowed_methods,
                reason = "when a migration was applied is operational metadata, not flow state"
            )]
            async fn migrate(&self) -> Result<()> {
                for &(version, sql) in Self::MIGRATIONS {
                    // One transaction per migration, each under the backend's
                    // lock, so a concurrent runner waits, then sees it applied.
                    let mut tx = self.begin_migration().await?;
                    // `Executor::execute` on a bare `&str` (no arguments) uses the
                    // simple protocol, which allows several statements; the
                    // `raw_sql` wrapper for it does not yield a `Send` future here.
                    ::sqlx::Executor::execute(&mut *tx, CREATE_MIGRATIONS_TABLE)
                        .await
                        .map_err(backend)?;
                    let applied =
                        ::sqlx::query("SELECT version FROM usher_migrations WHERE version = $1")
                            .bind(version)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(backend)?;
                    if applied.is_some() {
                        // Ends the transaction now, releasing the lock for the next.
                        tx.commit().await.map_err(backend)?;
                        continue;
                    }
                    ::sqlx::Executor::execute(&mut *tx, sql)
                        .await
                        .map_err(backend)?;
                    if version == DISPLAY_NAME_MIGRATION {
                        // In the migration's transaction, so no instance ever sees
                        // the column without its values.
                        backfill_display_names(&mut *tx).await?;
                    }
                    ::sqlx::query(
                        "INSERT INTO usher_migrations (version, applied_at) VALUES ($1, $2)",
                    )
                    .bind(version)
                    .bind(millis(Utc::now()))
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                    tx.commit().await.map_err(backend)?;
                    ::tracing::info!(backend = $backend_name, version, "applied migration");
                }
                Ok(())
            }

            async fn ping(&self) -> Result<()> {
                ::sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn delete_expired(&self, now: DateTime<Utc>) -> Result<u64> {
                const DELETES: [&str; 5] = [
                    "DELETE FROM flows WHERE expires_at < $1",
                    "DELETE FROM authorization_codes WHERE expires_at < $1",
                    "DELETE FROM refresh_tokens WHERE expires_at < $1",
                    "DELETE FROM browser_sessions WHERE expires_at < $1",
                    "DELETE FROM rate_limits WHERE window_ends < $1",
                ];
                // Separate statements rather than one transaction: each is
                // correct alone, and SQLite's write lock is held for less time.
                let mut deleted = 0;
                for sql in DELETES {
                    deleted += ::sqlx::query(sql)
                        .bind(millis(now))
                        .execute(&self.pool)
                        .await
                        .map_err(backend)?
                        .rows_affected();
                }
                // Self-service history is kept for a while, not for ever.
                deleted += ::sqlx::query("DELETE FROM account_events WHERE at < $1")
                    .bind(millis(now - $crate::ACCOUNT_EVENT_RETENTION))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                Ok(deleted)
            }

            fn backend_name(&self) -> &'static str {
                $backend_name
            }
        }
    };
}
pub(crate) use impl_maintenance;
