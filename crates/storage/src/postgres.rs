//! The PostgreSQL store, for production and for several Usher instances sharing one
//! database.
//!
//! Concurrency comes from the shared queries themselves (conditional updates for
//! single-use records and flow versions); the only PostgreSQL-specific piece is the
//! advisory lock that keeps instances starting together from migrating at once.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};

use crate::shared::{backend, impl_store};
use crate::Result;

const MAX_CONNECTIONS: u32 = 10;
/// How long a request waits for a free connection before failing, rather than
/// hanging when the database is unreachable or the pool exhausted.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Advisory lock key taken while migrating: "`usher_mg`" in ASCII, unlikely to clash
/// with another application's keys in a shared database.
const MIGRATION_LOCK_KEY: i64 = 0x7573_6865_725f_6d67;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const MIGRATIONS: &'static [(i64, &'static str)] = &[
        (1, include_str!("../migrations/postgres/0001_init.sql")),
        (
            2,
            include_str!("../migrations/postgres/0002_connector_calls.sql"),
        ),
        (3, include_str!("../migrations/postgres/0003_tenant.sql")),
        (4, include_str!("../migrations/postgres/0004_admin.sql")),
        (
            5,
            include_str!("../migrations/postgres/0005_session_provider.sql"),
        ),
        (
            6,
            include_str!("../migrations/postgres/0006_grant_claims_and_rate_limits.sql"),
        ),
        (
            7,
            include_str!("../migrations/postgres/0007_user_versions.sql"),
        ),
        (
            8,
            include_str!("../migrations/postgres/0008_exact_issuers.sql"),
        ),
        (
            9,
            include_str!("../migrations/postgres/0009_flow_leases.sql"),
        ),
        (
            10,
            include_str!("../migrations/postgres/0010_connector_error_codes.sql"),
        ),
        (
            11,
            include_str!("../migrations/postgres/0011_self_service.sql"),
        ),
    ];

    /// Opens `postgres://…` (or `postgresql://…`).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(backend)?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }

    /// The lock is released with the transaction, so a crashed migration cannot
    /// leave it held.
    async fn begin_migration(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        Ok(tx)
    }
}

impl_store!(PgStore, Postgres, "postgres");
