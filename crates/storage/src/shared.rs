//! What the SQLite and PostgreSQL stores have in common: value conversions, error
//! mapping and, in `impl_store!`, the repository implementations themselves.
//!
//! Both dialects accept the same SQL for everything the repositories do (`$n`
//! placeholders, `RETURNING`, `CASE`, row values), so the queries are written once;
//! the few whose shape depends on the filters given are assembled at run time
//! (`Sql`), in the same shared dialect. What differs (connecting, how a write
//! transaction starts, how migrations are serialised) stays in `sqlite.rs` and
//! `postgres.rs`.
//!
//! Case-insensitive matching of display names never relies on the database:
//! SQLite's `lower()` and `LIKE` only fold ASCII, and PostgreSQL's depend on the
//! database's locale. Usher lower-cases the `displayName` itself (`fold_case`) into
//! `users.display_name_lower` whenever it writes a user, and lower-cases what is
//! searched for the same way, so both backends answer alike for any script.
//!
//! Timestamps are stored as Unix milliseconds, so anything read back is truncated to
//! the millisecond. Flows are the exception: their JSON state keeps full precision.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use usher_domain::{AttributeValue, AttributeValues};

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
            // The message is matched up to the table name so that a table whose name
            // merely ends in "identities" (sign_up_request_identities) is not taken
            // for it.
            let on_identities = db.constraint().is_some_and(|c| c.starts_with("identities"))
                || db.message().contains("failed: identities.");
            return if on_identities {
                StorageError::DuplicateIdentity
            } else {
                StorageError::AlreadyExists
            };
        }
    }
    backend(e)
}

/// Whether two identities are the same account: the contract's fields agree, and so
/// do their exact issuers where both are known.
pub(crate) fn same_identity(a: &usher_domain::Identity, b: &usher_domain::Identity) -> bool {
    a.sign_in_type == b.sign_in_type
        && a.issuer == b.issuer
        && a.issuer_assigned_id == b.issuer_assigned_id
        && match (&a.exact_issuer, &b.exact_issuer) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// The migration that added `users.display_name_lower`; `migrate` fills the column
/// in for existing users right after running it, in the same transaction.
pub(crate) const DISPLAY_NAME_MIGRATION: i64 = 4;

/// How many users the display-name backfill reads at a time, so that migrating a
/// large directory does not load it whole.
pub(crate) const BACKFILL_BATCH: i64 = 500;

/// Lower-cases `s` character by character (Unicode lower case, not locale-specific
/// and without full case folding: `ß` stays `ß`). Character by character, unlike
/// `str::to_lowercase`, which lower-cases a final `Σ` to `ς` depending on what
/// follows: that would make the key of a prefix differ from the start of the key of
/// the whole name.
pub(crate) fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// What `users.display_name_lower` holds for these attributes: the folded
/// `displayName`, or `None` when there is no string one.
pub(crate) fn display_name_key(attributes: &AttributeValues) -> Option<String> {
    attributes
        .get("displayName")
        .and_then(AttributeValue::as_str)
        .map(fold_case)
}

/// The smallest string greater than every string that starts with `prefix`, in code
/// point order (which is UTF-8 byte order, what SQLite's BINARY and PostgreSQL's "C"
/// collations compare by): the last character that can be incremented is, and what
/// follows it dropped. `None` when there is none (`prefix` is empty or all
/// `char::MAX`): then every string from `prefix` on starts with it.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            // The surrogates are not characters: skip over them.
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A `LIKE … ESCAPE '\'` pattern matching any text that contains `term` literally:
/// the user's `%`, `_` and `\` are escaped rather than taken as wildcards.
pub(crate) fn like_contains(term: &str) -> String {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A value bound to a statement built at run time (`Sql`).
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// A statement built from the filters actually given, so that each combination gets
/// a plan of its own that can use the right index (one fixed statement with
/// `$n IS NULL OR …` for every optional filter gets one generic plan for all of them
/// on PostgreSQL). Placeholders are numbered `$n` as arguments are added; both
/// backends accept that form.
pub(crate) struct Sql {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the placeholder of a new argument.
    pub fn arg(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.sql.push('$');
        self.sql.push_str(&self.args.len().to_string());
        self
    }

    pub fn text(&mut self, value: impl Into<String>) -> &mut Self {
        self.arg(Arg::Text(value.into()))
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.arg(Arg::Int(value))
    }
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
        "u.id, u.email, u.attributes, u.account_enabled, u.created_at, u.email_verified, \
         u.profile, u.version"
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

macro_rules! sign_up_request_columns {
    () => {
        "id, user_flow_id, client_id, email, identities, attributes, password_hash, status, \
         created_at, decided_by, decided_at, user_id"
    };
}

pub(crate) use {code_columns, refresh_token_columns, sign_up_request_columns, user_columns};

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
            use ::usher_domain::{
                AttributeValues, Flow, Identity, NewUser, SignInType, SignUpRequest,
                SignUpRequestStatus, User,
            };

            use $crate::shared::{
                backend, display_name_key, fold_case, from_json, from_millis, insert_error,
                like_contains, millis, opt_from_millis, prefix_upper_bound, to_json,
                truncate_millis, Arg, CodeData, Sql, BACKFILL_BATCH, CREATE_MIGRATIONS_TABLE,
                DISPLAY_NAME_MIGRATION,
            };
            use $crate::{
                AuthorizationCode, BrowserSession, CallFilter, ConnectorCallRecord,
                ConnectorCallRepository, FlowRepository, Grant, Maintenance, RateLimitRepository,
                RateWindow,
                Redemption, RefreshToken, Result, SessionRepository, SignUpRequestRepository,
                SigningKeyRepository, StorageError, StoredSigningKey, TenantObject,
                TenantObjects, TenantRepository, TokenRepository, UserAdminRepository,
                UserEdit, UserQuery, UserRepository,
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
                    email_verified: col(row, "email_verified")?,
                    profile: from_json(&col::<String>(row, "profile")?, "profile")?,
                    version: col(row, "version")?,
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
                    exact_issuer: Some(col::<String>(row, "exact_issuer")?)
                        .filter(|e| !e.is_empty()),
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
                    token_claims: from_json(&col::<String>(row, "token_claims")?, "token_claims")?,
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
                    identity_provider: col(row, "identity_provider")?,
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
                        "SELECT sign_in_type, issuer, issuer_assigned_id, exact_issuer FROM identities \
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
                    let mut tx = self.begin_write().await?;
                    // On a duplicate, dropping `tx` on the way out rolls the user back
                    // too.
                    let user = insert_user(&mut *tx, new).await?;
                    tx.commit().await.map_err(backend)?;
                    Ok(user)
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
                    unresolved_clash(&mut *tx, user_id, identity).await?;
                    // The next position keeps the user's identities in the order added.
                    ::sqlx::query(
                        "INSERT INTO identities \
                         (user_id, position, sign_in_type, issuer, issuer_assigned_id, \
                          exact_issuer) \
                         SELECT $1, COALESCE(MAX(position), -1) + 1, $2, $3, $4, $5 \
                         FROM identities WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .bind(identity.sign_in_type.as_str())
                    .bind(&identity.issuer)
                    .bind(&identity.issuer_assigned_id)
                    .bind(identity.exact_issuer.as_deref().unwrap_or(""))
                    .execute(&mut *tx)
                    .await
                    .map_err(insert_error)?;
                    bump_user_version(&mut *tx, user_id).await?;
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
                         AND i.issuer_assigned_id = $3 AND i.exact_issuer = ''"
                    ))
                    .bind(sign_in_type.as_str())
                    .bind(issuer)
                    .bind(issuer_assigned_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                    self.one_user(row).await
                }

                async fn user_by_provider_identity(
                    &self,
                    identity: &Identity,
                    take_on_unresolved: bool,
                ) -> Result<Option<User>> {
                    let Some(exact) = identity.exact_issuer.as_deref() else {
                        return self
                            .user_by_identity(
                                identity.sign_in_type,
                                &identity.issuer,
                                &identity.issuer_assigned_id,
                            )
                            .await;
                    };
                    let found: Option<String> = ::sqlx::query_scalar(
                        "SELECT user_id FROM identities WHERE exact_issuer = $1 \
                         AND issuer_assigned_id = $2 AND sign_in_type = $3",
                    )
                    .bind(exact)
                    .bind(&identity.issuer_assigned_id)
                    .bind(identity.sign_in_type.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                    let by_exact = || {
                        ::sqlx::query_scalar::<_, String>(
                            "SELECT user_id FROM identities WHERE exact_issuer = $1 \
                             AND issuer_assigned_id = $2 AND sign_in_type = $3",
                        )
                        .bind(exact)
                        .bind(&identity.issuer_assigned_id)
                        .bind(identity.sign_in_type.as_str())
                        .fetch_optional(&self.pool)
                    };
                    let user_id = match found {
                        Some(id) => Some(id),
                        // Passcode identities belong to no provider.
                        None if take_on_unresolved && identity.issuer != "mail" => {
                            // Conditional, so that of two instances taking the same
                            // identity on, one does; the other, like a sign-up that
                            // stored the identity meanwhile, is found by looking again.
                            let taken = ::sqlx::query_scalar::<_, String>(
                                "UPDATE identities SET exact_issuer = $1 \
                                 WHERE sign_in_type = $2 AND issuer = $3 \
                                 AND issuer_assigned_id = $4 AND exact_issuer = '' \
                                 RETURNING user_id",
                            )
                            .bind(exact)
                            .bind(identity.sign_in_type.as_str())
                            .bind(&identity.issuer)
                            .bind(&identity.issuer_assigned_id)
                            .fetch_optional(&self.pool)
                            .await;
                            match taken {
                                Ok(Some(id)) => Some(id),
                                Ok(None) => by_exact().await.map_err(backend)?,
                                Err(e) => match insert_error(e) {
                                    StorageError::DuplicateIdentity => {
                                        by_exact().await.map_err(backend)?
                                    }
                                    e => return Err(e),
                                },
                            }
                        }
                        None => None,
                    };
                    match user_id {
                        Some(id) => self.user_by_id(&id).await,
                        None => Ok(None),
                    }
                }

                async fn resolve_identities(&self, issuer: &str, exact_issuer: &str) -> Result<u64> {
                    // An identity whose subject this provider already holds under its
                    // exact issuer stays as it is rather than break the unique key.
                    let done = ::sqlx::query(
                        "UPDATE identities SET exact_issuer = $2 \
                         WHERE sign_in_type = 'federated' AND issuer = $1 \
                         AND issuer <> 'mail' AND exact_issuer = '' AND NOT EXISTS (\
                           SELECT 1 FROM identities j WHERE j.sign_in_type = 'federated' \
                           AND j.issuer = $1 AND j.exact_issuer = $2 \
                           AND j.issuer_assigned_id = identities.issuer_assigned_id)",
                    )
                    .bind(issuer)
                    .bind(exact_issuer)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                    Ok(done.rows_affected())
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
                        "SELECT i.user_id, i.sign_in_type, i.issuer, i.issuer_assigned_id, i.exact_issuer \
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
                         session_id, created_at, revoked_at, token_claims) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&g.id)
                    .bind(&g.client_id)
                    .bind(&g.user_id)
                    .bind(to_json(&g.scope)?)
                    .bind(millis(g.auth_time))
                    .bind(g.session_id.as_deref())
                    .bind(millis(g.created_at))
                    .bind(g.revoked_at.map(millis))
                    .bind(to_json(&g.token_claims)?)
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn grant(&self, id: &str) -> Result<Option<Grant>> {
                    ::sqlx::query(
                        "SELECT id, client_id, user_id, scope, auth_time, session_id, \
                         created_at, revoked_at, token_claims FROM grants WHERE id = $1",
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

                async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>> {
                    ::sqlx::query(::std::concat!(
                        "SELECT ",
                        $crate::shared::refresh_token_columns!(),
                        " FROM refresh_tokens WHERE token_hash = $1"
                    ))
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?
                    .as_ref()
                    .map(refresh_token)
                    .transpose()
                }
            }

            #[async_trait]
            impl SessionRepository for $store {
                async fn insert_session(&self, s: &BrowserSession) -> Result<()> {
                    ::sqlx::query(
                        "INSERT INTO browser_sessions \
                         (id_hash, user_id, auth_time, created_at, expires_at, ended_at, \
                          identity_provider) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&s.id_hash)
                    .bind(&s.user_id)
                    .bind(millis(s.auth_time))
                    .bind(millis(s.created_at))
                    .bind(millis(s.expires_at))
                    .bind(s.ended_at.map(millis))
                    .bind(&s.identity_provider)
                    .execute(&self.pool)
                    .await
                    .map_err(insert_error)?;
                    Ok(())
                }

                async fn session(&self, id_hash: &str) -> Result<Option<BrowserSession>> {
                    ::sqlx::query(
                        "SELECT id_hash, user_id, auth_time, created_at, expires_at, ended_at, \
                         identity_provider FROM browser_sessions WHERE id_hash = $1",
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

            /// `sql` with its arguments bound.
            fn built(
                sql: &Sql,
            ) -> ::sqlx::query::Query<'_, $db, <$db as ::sqlx::Database>::Arguments<'_>> {
                let mut query = ::sqlx::query(&sql.sql);
                for arg in &sql.args {
                    query = match arg {
                        Arg::Text(value) => query.bind(value.as_str()),
                        Arg::Int(value) => query.bind(*value),
                    };
                }
                query
            }

            /// Inserts `identities` for the user, positions from 0 in the order given.
            /// `DuplicateIdentity` if one belongs to a user already (the caller's
            /// transaction then rolls back whatever was inserted).
            async fn insert_identities(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                user_id: &str,
                identities: &[Identity],
            ) -> Result<()> {
                for (position, identity) in identities.iter().enumerate() {
                    let position =
                        i32::try_from(position).map_err(|e| StorageError::Backend(Box::new(e)))?;
                    unresolved_clash(&mut *conn, user_id, identity).await?;
                    ::sqlx::query(
                        "INSERT INTO identities \
                         (user_id, position, sign_in_type, issuer, issuer_assigned_id, \
                          exact_issuer) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(user_id)
                    .bind(position)
                    .bind(identity.sign_in_type.as_str())
                    .bind(&identity.issuer)
                    .bind(&identity.issuer_assigned_id)
                    .bind(identity.exact_issuer.as_deref().unwrap_or(""))
                    .execute(&mut *conn)
                    .await
                    .map_err(insert_error)?;
                }
                Ok(())
            }

            /// An identity without an exact issuer (what an administrator enters) is
            /// unique by the contract's fields alone, as Graph has it: it clashes with
            /// another user's identity of the same issuer and subject whichever
            /// provider that one came from. The unique index only covers identities
            /// of the same exact issuer.
            async fn unresolved_clash(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                user_id: &str,
                identity: &Identity,
            ) -> Result<()> {
                if identity.exact_issuer.is_some() || identity.sign_in_type != SignInType::Federated {
                    return Ok(());
                }
                let taken = ::sqlx::query(
                    "SELECT 1 FROM identities WHERE sign_in_type = $1 AND issuer = $2 \
                     AND issuer_assigned_id = $3 AND user_id <> $4",
                )
                .bind(identity.sign_in_type.as_str())
                .bind(&identity.issuer)
                .bind(&identity.issuer_assigned_id)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)?
                .is_some();
                if taken {
                    Err(StorageError::DuplicateIdentity)
                } else {
                    Ok(())
                }
            }

            /// Replaces the user's identities. An identity that stays (the same
            /// sign-in type, issuer and subject) keeps the exact issuer it had, which
            /// an administrator's list cannot name: otherwise a `PATCH` that repeats
            /// the list would leave it for another provider on the same host to take.
            async fn replace_identities(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                user_id: &str,
                identities: &[Identity],
            ) -> Result<()> {
                let old = ::sqlx::query(
                    "SELECT sign_in_type, issuer, issuer_assigned_id, exact_issuer \
                     FROM identities WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await
                .map_err(backend)?
                .iter()
                .map(identity)
                .collect::<Result<Vec<_>>>()?;
                let new: Vec<Identity> = identities
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        if i.exact_issuer.is_none() {
                            i.exact_issuer = old
                                .iter()
                                .find(|o| {
                                    o.sign_in_type == i.sign_in_type
                                        && o.issuer == i.issuer
                                        && o.issuer_assigned_id == i.issuer_assigned_id
                                })
                                .and_then(|o| o.exact_issuer.clone());
                        }
                        i
                    })
                    .collect();
                // The old ones go first so that keeping one of them is no clash
                // with itself; a real clash rolls the deletion back with the rest.
                ::sqlx::query("DELETE FROM identities WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
                insert_identities(&mut *conn, user_id, &new).await
            }

            /// Ends every browser session of the user and revokes every grant (so their
            /// refresh and access tokens), in the caller's transaction: what a changed
            /// credential or role must not leave running.
            async fn end_user_sessions(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                user_id: &str,
                now: DateTime<Utc>,
            ) -> Result<()> {
                ::sqlx::query(
                    "UPDATE browser_sessions SET ended_at = $2 \
                     WHERE user_id = $1 AND ended_at IS NULL",
                )
                .bind(user_id)
                .bind(millis(now))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
                ::sqlx::query(
                    "UPDATE grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(user_id)
                .bind(millis(now))
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
                Ok(())
            }

            /// Inserts the user and its identities in the caller's transaction.
            async fn insert_user(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                new: NewUser,
            ) -> Result<User> {
                ::sqlx::query(
                    "INSERT INTO users (id, email, attributes, display_name_lower, \
                     password_hash, account_enabled, created_at, email_verified, profile, \
                     version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)",
                )
                .bind(&new.id)
                .bind(new.email.as_deref())
                .bind(to_json(&new.attributes)?)
                .bind(display_name_key(&new.attributes))
                .bind(new.password_hash.as_deref())
                .bind(new.account_enabled)
                .bind(millis(new.created_at))
                .bind(new.email_verified)
                .bind(to_json(&new.profile)?)
                .execute(&mut *conn)
                .await
                .map_err(insert_error)?;
                insert_identities(&mut *conn, &new.id, &new.identities).await?;
                Ok(User {
                    id: new.id,
                    email: new.email,
                    attributes: new.attributes,
                    identities: new.identities,
                    account_enabled: new.account_enabled,
                    // As a later read will return it.
                    created_at: truncate_millis(new.created_at),
                    email_verified: new.email_verified,
                    profile: new.profile,
                    version: 1,
                })
            }

            /// Counts a change of the user (its identities, password or roles) in
            /// its version, in the caller's transaction.
            async fn bump_user_version(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                user_id: &str,
            ) -> Result<()> {
                ::sqlx::query("UPDATE users SET version = version + 1 WHERE id = $1")
                    .bind(user_id)
                    .execute(&mut *conn)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            /// Whether the user exists, read in the caller's transaction.
            async fn user_exists(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                user_id: &str,
            ) -> Result<bool> {
                Ok(::sqlx::query("SELECT id FROM users WHERE id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(backend)?
                    .is_some())
            }

            /// Fills `users.display_name_lower` in for the users that existed before
            /// the column did (see `DISPLAY_NAME_MIGRATION`), a batch of ids at a time.
            async fn backfill_display_names(
                conn: &mut <$db as ::sqlx::Database>::Connection,
            ) -> Result<()> {
                let mut after: Option<String> = None;
                loop {
                    let rows = ::sqlx::query(
                        "SELECT id, attributes FROM users \
                         WHERE $1 IS NULL OR id > $1 ORDER BY id LIMIT $2",
                    )
                    .bind(after.as_deref())
                    .bind(BACKFILL_BATCH)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(backend)?;
                    let Some(last) = rows.last() else {
                        return Ok(());
                    };
                    after = Some(col(last, "id")?);
                    for row in &rows {
                        // Attributes that do not parse get no key: reading that user
                        // reports them as corrupt anyway, whereas failing here would
                        // keep every instance from starting.
                        let attributes: String = col(row, "attributes")?;
                        let key = from_json::<AttributeValues>(&attributes, "attributes")
                            .ok()
                            .and_then(|a| display_name_key(&a));
                        let Some(key) = key else { continue };
                        let id: String = col(row, "id")?;
                        ::sqlx::query("UPDATE users SET display_name_lower = $1 WHERE id = $2")
                            .bind(key)
                            .bind(id)
                            .execute(&mut *conn)
                            .await
                            .map_err(backend)?;
                    }
                }
            }

            /// Saves the user's own columns and bumps its version, if it equals
            /// `expected` (when given); the new version, or `None` if no row matched.
            async fn save_user(
                conn: &mut <$db as ::sqlx::Database>::Connection,
                u: &User,
                expected: Option<i64>,
            ) -> Result<Option<i64>> {
                ::sqlx::query_scalar(
                    "UPDATE users SET email = $2, attributes = $3, display_name_lower = $4, \
                     account_enabled = $5, email_verified = $6, profile = $7, \
                     version = version + 1 \
                     WHERE id = $1 AND ($8 IS NULL OR version = $8) RETURNING version",
                )
                .bind(&u.id)
                .bind(u.email.as_deref())
                .bind(to_json(&u.attributes)?)
                .bind(display_name_key(&u.attributes))
                .bind(u.account_enabled)
                .bind(u.email_verified)
                .bind(to_json(&u.profile)?)
                .bind(expected)
                .fetch_optional(&mut *conn)
                .await
                .map_err(backend)
            }

            fn sign_up_request(row: &DbRow) -> Result<SignUpRequest> {
                let status: String = col(row, "status")?;
                Ok(SignUpRequest {
                    id: col(row, "id")?,
                    user_flow_id: col(row, "user_flow_id")?,
                    client_id: col(row, "client_id")?,
                    email: col(row, "email")?,
                    identities: from_json(&col::<String>(row, "identities")?, "identities")?,
                    attributes: from_json(&col::<String>(row, "attributes")?, "attributes")?,
                    password_hash: col(row, "password_hash")?,
                    status: SignUpRequestStatus::parse(&status).ok_or_else(|| {
                        StorageError::Corrupt(format!("status: unknown {status:?}"))
                    })?,
                    created_at: time(row, "created_at")?,
                    decided_by: col(row, "decided_by")?,
                    decided_at: opt_time(row, "decided_at")?,
                    user_id: col(row, "user_id")?,
                })
            }

            impl $store {
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
                        let rows = built(&sql)
                            .fetch_all(&self.pool)
                            .await
                            .map_err(backend)?;
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
                    let Some(version) = save_user(&mut *tx, u, edit.expected_version).await?
                    else {
                        let exists = user_exists(&mut *tx, &u.id).await?;
                        tx.rollback().await.map_err(backend)?;
                        return if exists { Err(StorageError::Conflict) } else { Ok(None) };
                    };
                    if edit.replace_identities {
                        // A clash rolls back the whole edit (dropping `tx`).
                        replace_identities(&mut *tx, &u.id, &u.identities).await?;
                    }
                    if let Some(hash) = edit.password_hash {
                        ::sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                            .bind(&u.id)
                            .bind(hash)
                            .execute(&mut *tx)
                            .await
                            .map_err(backend)?;
                    }
                    // Whoever signed in with the old credentials, or before the account
                    // was disabled, must not stay signed in (nor come back when it is
                    // enabled again).
                    if edit.password_hash.is_some() || edit.replace_identities || !u.account_enabled
                    {
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
                    let mut tx = self.begin_write().await?;
                    let done = ::sqlx::query(
                        "UPDATE users SET password_hash = $2, version = version + 1 \
                         WHERE id = $1",
                    )
                        .bind(user_id)
                        .bind(hash)
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

                async fn set_identities(
                    &self,
                    user_id: &str,
                    identities: &[Identity],
                ) -> Result<bool> {
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
                                    identities.iter().any(|i| $crate::shared::same_identity(held, i))
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

            #[async_trait]
            impl Maintenance for $store {
                #[allow(clippy::disallowed_methods, reason = "when a migration was applied is operational metadata, not flow state")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_case_is_per_character_unicode_lower_case() {
        assert_eq!(fold_case("Élodie ÆSIR"), "élodie æsir");
        // A final capital sigma folds as any other, so a prefix folds to a prefix.
        assert_eq!(fold_case("ΟΔΟΣ"), "οδοσ");
        assert!(fold_case("ΟΔΟΣΑ").starts_with(&fold_case("ΟΔΟΣ")));
        assert_eq!(fold_case("İ"), "i\u{307}");
        assert_eq!(fold_case("山田 🦀"), "山田 🦀");
    }

    #[test]
    fn display_name_key_takes_string_display_names_only() {
        let mut attributes = AttributeValues::new();
        assert_eq!(display_name_key(&attributes), None);
        attributes.insert("displayName".into(), AttributeValue::Int(3));
        assert_eq!(display_name_key(&attributes), None);
        attributes.insert("displayName".into(), AttributeValue::String("Ada L".into()));
        assert_eq!(display_name_key(&attributes).as_deref(), Some("ada l"));
    }

    #[test]
    fn prefix_upper_bound_is_the_next_string_after_the_prefix() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_upper_bound("é").as_deref(), Some("ê"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(
            prefix_upper_bound("ab\u{10FFFF}\u{10FFFF}").as_deref(),
            Some("ac")
        );
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);

        // Exactly the strings starting with the prefix sort in [prefix, bound).
        let prefix = "ab\u{10FFFF}";
        let bound = prefix_upper_bound(prefix).unwrap();
        for (s, starts) in [
            ("ab\u{10FFFF}", true),
            ("ab\u{10FFFF}\u{10FFFF}zz", true),
            ("ab\u{10FFFE}", false),
            ("ac", false),
            ("ab", false),
        ] {
            assert_eq!(s >= prefix && s < bound.as_str(), starts, "{s:?}");
            assert_eq!(s.starts_with(prefix), starts, "{s:?}");
        }
    }

    #[test]
    fn like_contains_escapes_wildcards() {
        assert_eq!(like_contains("ada"), "%ada%");
        assert_eq!(like_contains("100%"), "%100\\%%");
        assert_eq!(like_contains("a_b"), "%a\\_b%");
        assert_eq!(like_contains("c:\\x"), "%c:\\\\x%");
        assert_eq!(like_contains(""), "%%");
    }

    #[test]
    fn sql_numbers_placeholders_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.text("x")
            .push(" AND b < ")
            .int(3)
            .push(" LIMIT ")
            .int(1);
        assert_eq!(sql.sql, "SELECT 1 WHERE a = $1 AND b < $2 LIMIT $3");
        assert_eq!(sql.args.len(), 3);
    }
}
