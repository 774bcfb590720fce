//! What the SQLite and PostgreSQL stores have in common: value conversions, error
//! mapping and, in `impl_store!`, the repository implementations themselves.
//!
//! Both dialects accept the same SQL for everything the repositories do (`$n`
//! placeholders, `RETURNING`, `CASE`), so the queries are written once. What
//! differs (connecting, how a write transaction starts, how migrations are
//! serialised) stays in `sqlite.rs` and `postgres.rs`.
//!
//! Timestamps are stored as Unix milliseconds, so anything read back is truncated to
//! the millisecond. Flows are the exception: their JSON state keeps full precision.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::StorageError;

/// Creates the bookkeeping table. Run inside every migration transaction, after the
/// lock is taken, so concurrent first runs cannot race to create it.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS usher_migrations (\
     version BIGINT PRIMARY KEY, \
     applied_at BIGINT NOT NULL)";

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// What a timestamp reads back as once stored.
pub(crate) fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

pub(crate) fn from_millis(ms: i64, column: &str) -> Result<DateTime<Utc>, StorageError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StorageError::Corrupt(format!("{column}: timestamp {ms} is out of range")))
}

pub(crate) fn opt_from_millis(
    ms: Option<i64>,
    column: &str,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    ms.map(|ms| from_millis(ms, column)).transpose()
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, StorageError> {
    // Only maps with non-string keys fail to serialise; none of the stored types has
    // one, so this is a programming error rather than bad data.
    serde_json::to_string(value).map_err(|e| StorageError::Backend(Box::new(e)))
}

pub(crate) fn from_json<T: DeserializeOwned>(text: &str, column: &str) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn backend(e: sqlx::Error) -> StorageError {
    match e {
        // A value that is there but cannot be decoded is bad stored data, not an
        // unavailable database.
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StorageError::Corrupt(e.to_string())
        }
        e => StorageError::Backend(Box::new(e)),
    }
}

/// Maps an insert's error: a unique violation on `identities` is a
/// `DuplicateIdentity`, one anywhere else means the record's key is taken.
pub(crate) fn insert_error(e: sqlx::Error) -> StorageError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            // PostgreSQL names the constraint; SQLite only mentions the table's columns
            // ("UNIQUE constraint failed: identities.sign_in_type, …").
            let on_identities = db.constraint().is_some_and(|c| c.starts_with("identities"))
                || db.message().contains("identities.");
            return if on_identities {
                StorageError::DuplicateIdentity
            } else {
                StorageError::AlreadyExists
            };
        }
    }
    backend(e)
}

/// The authorization code fields that no query looks at, stored as one JSON text.
#[derive(Serialize, Deserialize)]
pub(crate) struct CodeData {
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub session_id: Option<String>,
    #[serde(default)]
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
}

// Column lists used by several queries, as macros so `concat!` can build whole
// statements at compile time.

macro_rules! user_columns {
    () => {
        "u.id, u.email, u.attributes, u.account_enabled, u.created_at"
    };
}

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, client_id, user_id, auth_time, data, created_at, expires_at, used_at"
    };
}

macro_rules! refresh_token_columns {
    () => {
        "token_hash, grant_id, created_at, expires_at, used_at"
    };
}

pub(crate) use {code_columns, refresh_token_columns, user_columns};

/// Implements every repository trait for a store type with a `pool` field of the
/// given database and these inherent methods:
///
/// - `async fn begin_write(&self) -> Result<Transaction<'static, DB>>`, a transaction
///   that will write (SQLite must take its write lock up front: a transaction that
///   reads first and upgrades later can fail with `SQLITE_BUSY` without waiting);
/// - `async fn begin_migration(&self) -> Result<Transaction<'static, DB>>`, a
///   transaction that no other migrating process can run alongside;
/// - `const MIGRATIONS: &'static [(i64, &'static str)]`, in ascending order.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend_name:literal) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::chrono::{DateTime, Utc};
            use ::sqlx::Row as _;
            use ::usher_domain::{Flow, Identity, NewUser, SignInType, User};

            use $crate::shared::{
                backend, from_json, from_millis, insert_error, millis, opt_from_millis,
                to_json, truncate_millis, CodeData, CREATE_MIGRATIONS_TABLE,
            };
            use $crate::{
                AuthorizationCode, BrowserSession, CallFilter, ConnectorCallRecord,
                ConnectorCallRepository, FlowRepository, Grant, Maintenance,
                Redemption, RefreshToken, Result, SessionRepository, SigningKeyRepository,
                StorageError, StoredSigningKey, TenantObject, TenantObjects, TenantRepository,
                TokenRepository, UserRepository,
            };

            type DbRow = <$db as ::sqlx::Database>::Row;

            fn col<'r, T>(row: &'r DbRow, name: &str) -> Result<T>
            where
                T: ::sqlx::Decode<'r, $db> + ::sqlx::Type<$db>,
            {
                row.try_get(name)
                    .map_err(|e| StorageError::Corrupt(format!("{name}: {e}")))
            }

            fn time(row: &DbRow, name: &str) -> Result<DateTime<Utc>> {
                from_millis(col(row, name)?, name)
            }

            fn opt_time(row: &DbRow, name: &str) -> Result<Option<DateTime<Utc>>> {
                opt_from_millis(col(row, name)?, name)
            }

            /// A user without identities; they come from a second query.
            fn user(row: &DbRow) -> Result<User> {
                Ok(User {
                    id: col(row, "id")?,
                    email: col(row, "email")?,
                    attributes: from_json(&col::<String>(row, "attributes")?, "attributes")?,
                    identities: Vec::new(),
                    account_enabled: col(row, "account_enabled")?,
                    created_at: time(row, "created_at")?,
                })
            }

            fn identity(row: &DbRow) -> Result<Identity> {
                let sign_in_type: String = col(row, "sign_in_type")?;
                Ok(Identity {
                    sign_in_type: SignInType::parse(&sign_in_type).ok_or_else(|| {
                        StorageError::Corrupt(format!("sign_in_type: unknown {sign_in_type:?}"))
                    })?,
                    issuer: col(row, "issuer")?,
                    issuer_assigned_id: col(row, "issuer_assigned_id")?,
                })
            }

            fn code(row: &DbRow) -> Result<AuthorizationCode> {
                let data: CodeData = from_json(&col::<String>(row, "data")?, "data")?;
                Ok(AuthorizationCode {
                    code_hash: col(row, "code_hash")?,
                    client_id: col(row, "client_id")?,
                    user_id: col(row, "user_id")?,
                    redirect_uri: data.redirect_uri,
                    scope: data.scope,
                    nonce: data.nonce,
                    code_challenge: data.code_challenge,
                    auth_time: time(row, "auth_time")?,
                    session_id: data.session_id,
                    grant_id: col(row, "grant_id")?,
                    extra_claims: data.extra_claims,
                    created_at: time(row, "created_at")?,
                    expires_at: time(row, "expires_at")?,
                    used_at: opt_time(row, "used_at")?,
                })
            }

            fn grant(row: &DbRow) -> Result<Grant> {
                Ok(Grant {
                    id: col(row, "id")?,
                    client_id: col(row, "client_id")?,
                    user_id: col(row, "user_id")?,
                    scope: from_json(&col::<String>(row, "scope")?, "scope")?,
                    auth_time: time(row, "auth_time")?,
                    session_id: col(row, "session_id")?,
                    created_at: time(row, "created_at")?,
                    revoked_at: opt_time(row, "revoked_at")?,
                })
            }

            fn refresh_token(row: &DbRow) -> Result<RefreshToken> {
                Ok(RefreshToken {
                    token_hash: col(row, "token_hash")?,
                    grant_id: col(row, "grant_id")?,
                    created_at: time(row, "created_at")?,
                    expires_at: time(row, "expires_at")?,
                    used_at: opt_time(row, "used_at")?,
                })
            }

            fn session(row: &DbRow) -> Result<BrowserSession> {
                Ok(BrowserSession {
                    id_hash: col(row, "id_hash")?,
                    user_id: col(row, "user_id")?,
                    auth_time: time(row, "auth_time")?,
                    created_at: time(row, "created_at")?,
                    expires_at: time(row, "expires_at")?,
                    ended_at: opt_time(row, "ended_at")?,
                })
            }

            fn signing_key(row: &DbRow) -> Result<StoredSigningKey> {
                Ok(StoredSigningKey {
                    kid: col(row, "kid")?,
                    algorithm: col(row, "algorithm")?,
                    encrypted_private_key: col(row, "encrypted_private_key")?,
                    public_jwk: from_json(&col::<String>(row, "public_jwk")?, "public_jwk")?,
                    created_at: time(row, "created_at")?,
                    activates_at: time(row, "activates_at")?,
                    retired_at: opt_time(row, "retired_at")?,
                })
            }

            fn connector_call(row: &DbRow) -> Result<ConnectorCallRecord> {
                let status: Option<i64> = col(row, "http_status")?;
                let attempts: i64 = col(row, "attempts")?;
                Ok(ConnectorCallRecord {
                    call_id: col(row, "call_id")?,
                    connector_id: col(row, "connector_id")?,
                    user_flow_id: col(row, "user_flow_id")?,
                    step: col(row, "step")?,
                    flow_id: col(row, "flow_id")?,
                    attempts: u32::try_from(attempts)
                        .map_err(|_| StorageError::Corrupt(format!("attempts: {attempts}")))?,
                    http_status: status
                        .map(|s| {
                            u16::try_from(s)
                                .map_err(|_| StorageError::Corrupt(format!("http_status: {s}")))
                        })
                        .transpose()?,
                    latency_ms: col(row, "latency_ms")?,
                    outcome: col(row, "outcome")?,
                    failure_reason: col(row, "failure_reason")?,
                    warnings: from_json(&col::<String>(row, "warnings")?, "warnings")?,
                    request_body: col(row, "request_body")?,
                    response_body: col(row, "response_body")?,
                    created_at: time(row, "created_at")?,
                })
            }

            #[async_trait]
            impl ConnectorCallRepository for $store {
                async fn insert_connector_call(&self, r: &ConnectorCallRecord) -> Result<()> {
                    ::sqlx::query(
                        "INSERT INTO connector_calls (call_id, connector_id, user_flow_id, step, \
                         flow_id, attempts, http_status, latency_ms, outcome, failure_reason, \
                         warnings, request_body, response_body, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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

            impl $store {
                async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>> {
                    ::sqlx::query(
                        "SELECT sign_in_type, issuer, issuer_assigned_id FROM identities \
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
                    let attributes = to_json(&new.attributes)?;
                    let mut tx = self.begin_write().await?;
                    ::sqlx::query(
                        "INSERT INTO users \
                         (id, email, attributes, password_hash, account_enabled, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&new.id)
                    .bind(new.email.as_deref())
                    .bind(&attributes)
                    .bind(new.password_hash.as_deref())
                    .bind(true)
                    .bind(millis(new.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(insert_error)?;
                    for (position, identity) in new.identities.iter().enumerate() {
                        let position = i32::try_from(position)
                            .map_err(|e| StorageError::Backend(Box::new(e)))?;
                        ::sqlx::query(
                            "INSERT INTO identities \
                             (user_id, position, sign_in_type, issuer, issuer_assigned_id) \
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(&new.id)
                        .bind(position)
                        .bind(identity.sign_in_type.as_str())
                        .bind(&identity.issuer)
                        .bind(&identity.issuer_assigned_id)
                        .execute(&mut *tx)
                        .await
                        // Dropping `tx` on the way out rolls the user back too.
                        .map_err(insert_error)?;
                    }
                    tx.commit().await.map_err(backend)?;
                    Ok(User {
                        id: new.id,
                        email: new.email,
                        attributes: new.attributes,
                        identities: new.identities,
                        account_enabled: true,
                        // As a later read will return it.
                        created_at: truncate_millis(new.created_at),
                    })
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
                    // The next position keeps the user's identities in the order added.
                    ::sqlx::query(
                        "INSERT INTO identities \
                         (user_id, position, sign_in_type, issuer, issuer_assigned_id) \
                         SELECT $1, COALESCE(MAX(position), -1) + 1, $2, $3, $4 \
                         FROM identities WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .bind(identity.sign_in_type.as_str())
                    .bind(&identity.issuer)
                    .bind(&identity.issuer_assigned_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(insert_error)?;
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
                         AND i.issuer_assigned_id = $3"
                    ))
                    .bind(sign_in_type.as_str())
                    .bind(issuer)
                    .bind(issuer_assigned_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                    self.one_user(row).await
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
                        "SELECT i.user_id, i.sign_in_type, i.issuer, i.issuer_assigned_id \
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
            }

            #[async_trait]
            impl TokenRepository for $store {
                async fn insert_authorization_code(&self, c: &AuthorizationCode) -> Result<()> {
                    let data = CodeData {
                        redirect_uri: c.redirect_uri.clone(),
                        scope: c.scope.clone(),
                        nonce: c.nonce.clone(),
                        code_challenge: c.code_challenge.clone(),
                        session_id: c.session_id.clone(),
                        extra_claims: c.extra_claims.clone(),
                    };
                    ::sqlx::query(::std::concat!(
                        "INSERT INTO authorization_codes (",
                        $crate::shared::code_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    ))
                    .bind(&c.code_hash)
                    .bind(&c.grant_id)
                    .bind(&c.client_id)
                    .bind(&c.user_id)
                    .bind(millis(c.auth_time))
                    .bind(to_json(&data)?)
                    .bind(millis(c.created_at))
                    .bind(millis(c.expires_at))
                    .bind(c.used_at.map(millis))
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn redeem_authorization_code(
                    &self,
                    code_hash: &str,
                    now: DateTime<Utc>,
                ) -> Result<Option<Redemption<AuthorizationCode>>> {
                    const UPDATE: &str = ::std::concat!(
                        "UPDATE authorization_codes SET used_at = $2 ",
                        "WHERE code_hash = $1 AND used_at IS NULL RETURNING ",
                        $crate::shared::code_columns!()
                    );
                    const SELECT: &str = ::std::concat!(
                        "SELECT ",
                        $crate::shared::code_columns!(),
                        " FROM authorization_codes WHERE code_hash = $1"
                    );
                    self.redeem(UPDATE, SELECT, code_hash, now, code).await
                }

                async fn insert_grant(&self, g: &Grant) -> Result<()> {
                    ::sqlx::query(
                        "INSERT INTO grants (id, client_id, user_id, scope, auth_time, \
                         session_id, created_at, revoked_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(&g.id)
                    .bind(&g.client_id)
                    .bind(&g.user_id)
                    .bind(to_json(&g.scope)?)
                    .bind(millis(g.auth_time))
                    .bind(g.session_id.as_deref())
                    .bind(millis(g.created_at))
                    .bind(g.revoked_at.map(millis))
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn grant(&self, id: &str) -> Result<Option<Grant>> {
                    ::sqlx::query(
                        "SELECT id, client_id, user_id, scope, auth_time, session_id, \
                         created_at, revoked_at FROM grants WHERE id = $1",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?
                    .map(|row| grant(&row))
                    .transpose()
                }

                async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<()> {
                    // The first revocation's time is the one that counts.
                    ::sqlx::query(
                        "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    )
                    .bind(id)
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                    Ok(())
                }

                async fn insert_refresh_token(&self, t: &RefreshToken) -> Result<()> {
                    ::sqlx::query(::std::concat!(
                        "INSERT INTO refresh_tokens (",
                        $crate::shared::refresh_token_columns!(),
                        ") VALUES ($1, $2, $3, $4, $5)"
                    ))
                    .bind(&t.token_hash)
                    .bind(&t.grant_id)
                    .bind(millis(t.created_at))
                    .bind(millis(t.expires_at))
                    .bind(t.used_at.map(millis))
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn redeem_refresh_token(
                    &self,
                    token_hash: &str,
                    now: DateTime<Utc>,
                ) -> Result<Option<Redemption<RefreshToken>>> {
                    const UPDATE: &str = ::std::concat!(
                        "UPDATE refresh_tokens SET used_at = $2 ",
                        "WHERE token_hash = $1 AND used_at IS NULL RETURNING ",
                        $crate::shared::refresh_token_columns!()
                    );
                    const SELECT: &str = ::std::concat!(
                        "SELECT ",
                        $crate::shared::refresh_token_columns!(),
                        " FROM refresh_tokens WHERE token_hash = $1"
                    );
                    self.redeem(UPDATE, SELECT, token_hash, now, refresh_token)
                        .await
                }
            }

            #[async_trait]
            impl SessionRepository for $store {
                async fn insert_session(&self, s: &BrowserSession) -> Result<()> {
                    ::sqlx::query(
                        "INSERT INTO browser_sessions \
                         (id_hash, user_id, auth_time, created_at, expires_at, ended_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&s.id_hash)
                    .bind(&s.user_id)
                    .bind(millis(s.auth_time))
                    .bind(millis(s.created_at))
                    .bind(millis(s.expires_at))
                    .bind(s.ended_at.map(millis))
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn session(&self, id_hash: &str) -> Result<Option<BrowserSession>> {
                    ::sqlx::query(
                        "SELECT id_hash, user_id, auth_time, created_at, expires_at, ended_at \
                         FROM browser_sessions WHERE id_hash = $1",
                    )
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?
                    .map(|row| session(&row))
                    .transpose()
                }

                async fn end_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<()> {
                    // The first sign-out's time is the one that counts.
                    ::sqlx::query(
                        "UPDATE browser_sessions SET ended_at = $2 \
                         WHERE id_hash = $1 AND ended_at IS NULL",
                    )
                    .bind(id_hash)
                    .bind(millis(now))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                    Ok(())
                }
            }

            #[async_trait]
            impl SigningKeyRepository for $store {
                async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
                    ::sqlx::query(
                        "SELECT kid, algorithm, encrypted_private_key, public_jwk, created_at, \
                         activates_at, retired_at FROM signing_keys ORDER BY created_at, kid",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?
                    .iter()
                    .map(signing_key)
                    .collect()
                }

                async fn insert_signing_key(&self, k: &StoredSigningKey) -> Result<()> {
                    ::sqlx::query(
                        "INSERT INTO signing_keys (kid, algorithm, encrypted_private_key, \
                         public_jwk, created_at, activates_at, retired_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&k.kid)
                    .bind(&k.algorithm)
                    .bind(&k.encrypted_private_key)
                    .bind(to_json(&k.public_jwk)?)
                    .bind(millis(k.created_at))
                    .bind(millis(k.activates_at))
                    .bind(k.retired_at.map(millis))
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<()> {
                    // A retirement may be brought forward (say, on compromise) but never
                    // pushed back: a key once scheduled to stop signing stays stopped.
                    ::sqlx::query(
                        "UPDATE signing_keys SET retired_at = CASE \
                         WHEN retired_at IS NULL OR retired_at > $2 THEN $2 \
                         ELSE retired_at END WHERE kid = $1",
                    )
                    .bind(kid)
                    .bind(millis(at))
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                    Ok(())
                }
            }

            /// Bumps the tenant version by one, if it equals `expected` (when given),
            /// and returns the new one; `None` if it did not. Run first in every tenant
            /// write: the row lock it takes (PostgreSQL) or the write lock already
            /// held (SQLite) serialises tenant writers, so versions stay consecutive
            /// and each one names exactly one state of the objects.
            async fn bump_tenant_version(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                expected: Option<i64>,
            ) -> Result<Option<i64>> {
                ::sqlx::query_scalar(
                    "UPDATE tenant_meta SET version = version + 1 \
                     WHERE id = 1 AND ($1 IS NULL OR version = $1) RETURNING version",
                )
                .bind(expected)
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)
            }

            /// Why a bump matched no row: a stale expected version, or (with none
            /// expected) a `tenant_meta` row someone removed.
            fn no_bump(expected: Option<i64>) -> StorageError {
                match expected {
                    Some(_) => StorageError::Conflict,
                    None => missing_tenant_meta(),
                }
            }

            fn missing_tenant_meta() -> StorageError {
                StorageError::Corrupt("tenant_meta: the version row is missing".into())
            }

            #[async_trait]
            impl TenantRepository for $store {
                async fn tenant_version(&self) -> Result<i64> {
                    ::sqlx::query_scalar("SELECT version FROM tenant_meta WHERE id = 1")
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(backend)?
                        .ok_or_else(missing_tenant_meta)
                }

                async fn tenant_objects(&self) -> Result<TenantObjects> {
                    // One statement sees one state of the database on both backends
                    // (PostgreSQL's READ COMMITTED snapshots per statement), so the
                    // version cannot belong to other objects than those read with it.
                    let rows = ::sqlx::query(
                        "SELECT m.version, o.kind, o.id, o.position, o.document \
                         FROM tenant_meta m LEFT JOIN tenant_objects o ON 1 = 1 \
                         WHERE m.id = 1",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)?;
                    let Some(first) = rows.first() else {
                        return Err(missing_tenant_meta());
                    };
                    let version: i64 = col(first, "version")?;
                    let mut objects = Vec::with_capacity(rows.len());
                    for row in &rows {
                        // An empty tenant is one row whose object columns are NULL.
                        let Some(kind) = col::<Option<String>>(row, "kind")? else {
                            continue;
                        };
                        let id: String = col(row, "id")?;
                        let position: i64 = col(row, "position")?;
                        let document = from_json(&col::<String>(row, "document")?, "document")?;
                        objects.push((position, TenantObject { kind, id, document }));
                    }
                    // Sorted here rather than in SQL so that the order does not depend
                    // on the database's collation.
                    objects.sort_by(|(pa, a), (pb, b)| {
                        (a.kind.as_str(), pa, a.id.as_str())
                            .cmp(&(b.kind.as_str(), pb, b.id.as_str()))
                    });
                    Ok(TenantObjects {
                        version,
                        objects: objects.into_iter().map(|(_, o)| o).collect(),
                    })
                }

                async fn replace_tenant(
                    &self,
                    objects: &[TenantObject],
                    expected_version: i64,
                ) -> Result<i64> {
                    let documents = objects
                        .iter()
                        .map(|o| to_json(&o.document))
                        .collect::<Result<Vec<_>>>()?;
                    let mut tx = self.begin_write().await?;
                    let Some(version) =
                        bump_tenant_version(&mut *tx, Some(expected_version)).await?
                    else {
                        tx.rollback().await.map_err(backend)?;
                        return Err(StorageError::Conflict);
                    };
                    ::sqlx::query("DELETE FROM tenant_objects")
                        .execute(&mut *tx)
                        .await
                        .map_err(backend)?;
                    for (position, (object, document)) in
                        objects.iter().zip(&documents).enumerate()
                    {
                        let position = i64::try_from(position)
                            .map_err(|e| StorageError::Backend(Box::new(e)))?;
                        ::sqlx::query(
                            "INSERT INTO tenant_objects (kind, id, position, document) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&object.kind)
                        .bind(&object.id)
                        .bind(position)
                        .bind(document)
                        .execute(&mut *tx)
                        .await
                        // Dropping `tx` on the way out rolls everything back.
                        .map_err(insert_error)?;
                    }
                    tx.commit().await.map_err(backend)?;
                    Ok(version)
                }

                async fn put_tenant_object(
                    &self,
                    object: &TenantObject,
                    expected_version: Option<i64>,
                ) -> Result<i64> {
                    let document = to_json(&object.document)?;
                    let mut tx = self.begin_write().await?;
                    let Some(version) = bump_tenant_version(&mut *tx, expected_version).await?
                    else {
                        tx.rollback().await.map_err(backend)?;
                        return Err(no_bump(expected_version));
                    };
                    let updated = ::sqlx::query(
                        "UPDATE tenant_objects SET document = $3 WHERE kind = $1 AND id = $2",
                    )
                    .bind(&object.kind)
                    .bind(&object.id)
                    .bind(&document)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                    if updated == 0 {
                        // Writers are serialised by the version bump above, so no
                        // other insert can take the same position meanwhile.
                        ::sqlx::query(
                            "INSERT INTO tenant_objects (kind, id, position, document) \
                             SELECT $1, $2, COALESCE(MAX(position), -1) + 1, $3 \
                             FROM tenant_objects WHERE kind = $1",
                        )
                        .bind(&object.kind)
                        .bind(&object.id)
                        .bind(&document)
                        .execute(&mut *tx)
                        .await
                        .map_err(insert_error)?;
                    }
                    tx.commit().await.map_err(backend)?;
                    Ok(version)
                }

                async fn delete_tenant_object(
                    &self,
                    kind: &str,
                    id: &str,
                    expected_version: Option<i64>,
                ) -> Result<Option<i64>> {
                    let mut tx = self.begin_write().await?;
                    let Some(version) = bump_tenant_version(&mut *tx, expected_version).await?
                    else {
                        tx.rollback().await.map_err(backend)?;
                        return Err(no_bump(expected_version));
                    };
                    let deleted = ::sqlx::query(
                        "DELETE FROM tenant_objects WHERE kind = $1 AND id = $2",
                    )
                    .bind(kind)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?
                    .rows_affected();
                    if deleted == 0 {
                        // Nothing changed, so the version must not either.
                        tx.rollback().await.map_err(backend)?;
                        return Ok(None);
                    }
                    tx.commit().await.map_err(backend)?;
                    Ok(Some(version))
                }
            }

            #[async_trait]
            impl Maintenance for $store {
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
                    const DELETES: [&str; 4] = [
                        "DELETE FROM flows WHERE expires_at < $1",
                        "DELETE FROM authorization_codes WHERE expires_at < $1",
                        "DELETE FROM refresh_tokens WHERE expires_at < $1",
                        "DELETE FROM browser_sessions WHERE expires_at < $1",
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
                    Ok(deleted)
                }

                fn backend_name(&self) -> &'static str {
                    $backend_name
                }
            }
        };
    };
}

pub(crate) use impl_store;
