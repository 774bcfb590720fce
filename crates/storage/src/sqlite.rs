//! The SQLite store: Usher's embedded default, one file next to the server (or an
//! in-memory database for tests and demos).
//!
//! SQLite allows one writer at a time. Connections wait up to five seconds for the
//! write lock instead of failing, write transactions take it up front
//! (`BEGIN IMMEDIATE`) because one that reads first and upgrades later can fail with
//! `SQLITE_BUSY` without waiting, and WAL mode lets readers carry on while someone
//! writes.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::shared::{backend, impl_store};
use crate::{Result, StorageError};

/// Connections for a file database. Reads run in parallel under WAL; writes queue on
/// the lock whatever the number.
const MAX_CONNECTIONS: u32 = 8;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    const MIGRATIONS: &'static [(i64, &'static str)] = &[
        (1, include_str!("../migrations/sqlite/0001_init.sql")),
        (
            2,
            include_str!("../migrations/sqlite/0002_connector_calls.sql"),
        ),
        (3, include_str!("../migrations/sqlite/0003_tenant.sql")),
        (4, include_str!("../migrations/sqlite/0004_admin.sql")),
        (
            5,
            include_str!("../migrations/sqlite/0005_session_provider.sql"),
        ),
        (
            6,
            include_str!("../migrations/sqlite/0006_grant_claims_and_rate_limits.sql"),
        ),
        (
            7,
            include_str!("../migrations/sqlite/0007_user_versions.sql"),
        ),
        (
            8,
            include_str!("../migrations/sqlite/0008_exact_issuers.sql"),
        ),
        (9, include_str!("../migrations/sqlite/0009_flow_leases.sql")),
        (
            10,
            include_str!("../migrations/sqlite/0010_connector_error_codes.sql"),
        ),
        (
            11,
            include_str!("../migrations/sqlite/0011_self_service.sql"),
        ),
    ];

    /// Opens `sqlite://path` (creating the file and its directory if missing) or
    /// `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend)?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database vanishes with its last connection, and the shared
            // cache that lets several connections see it locks tables with errors
            // that ignore the busy timeout: keep exactly one connection, forever.
            SqlitePoolOptions::new()
                .min_connections(1)
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| StorageError::Backend(Box::new(e)))?;
                }
            }
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(
                    options
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal),
                )
                .await
        }
        .map_err(backend)?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// SQLite has a single writer, so holding the write lock from the start is all
    /// the serialisation concurrent migrations need.
    async fn begin_migration(&self) -> Result<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }
}

impl_store!(SqliteStore, Sqlite, "sqlite");

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection settings the module docs rely on, as a connection sees them.
    #[tokio::test]
    #[allow(
        clippy::disallowed_methods,
        reason = "a unique temporary directory name"
    )]
    async fn file_database_settings() {
        let dir = std::env::temp_dir().join(format!("usher-sqlite-{:016x}", rand::random::<u64>()));
        let path = dir.join("nested").join("usher.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert!(path.exists(), "the file and its directories are created");

        let mut conn = store.pool.acquire().await.unwrap();
        let pragma = |name: &'static str| format!("PRAGMA {name}");
        let journal_mode: String = sqlx::query_scalar(&pragma("journal_mode"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let foreign_keys: i64 = sqlx::query_scalar(&pragma("foreign_keys"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let busy_timeout: i64 = sqlx::query_scalar(&pragma("busy_timeout"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let synchronous: i64 = sqlx::query_scalar(&pragma("synchronous"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        store.pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(journal_mode, "wal");
        assert_eq!(foreign_keys, 1);
        assert_eq!(busy_timeout, 5000);
        assert_eq!(synchronous, 1, "NORMAL");
    }
}
