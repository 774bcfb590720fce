//! What the SQLite and PostgreSQL stores have in common: value conversions, error
//! mapping, the row helpers and, in `impl_store!`, the repository implementations,
//! one file each under `repositories/`.
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
         u.profile, u.version, u.password_changed_at"
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
                AccountEventRepository, AuthorizationCode, BrowserSession, CallFilter,
                ConnectorCallRecord, ConnectorCallRepository, FlowRepository, Grant, Maintenance,
                RateLimitRepository, RateWindow, Redemption, RefreshToken, Result,
                SessionRepository, SignUpRequestRepository, SigningKeyRepository, StorageError,
                StoredSigningKey, TenantObject, TenantObjects, TenantRepository, TokenRepository,
                UserAdminRepository, UserEdit, UserQuery, UserRepository,
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
                    password_changed_at: opt_time(row, "password_changed_at")?,
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
                    error_code: col(row, "error_code")?,
                    warnings: from_json(&col::<String>(row, "warnings")?, "warnings")?,
                    request_body: col(row, "request_body")?,
                    response_body: col(row, "response_body")?,
                    created_at: time(row, "created_at")?,
                })
            }

            $crate::repositories::rate_limits::impl_rate_limits!($store, $db, $backend_name);

            $crate::repositories::connector_calls::impl_connector_calls!(
                $store,
                $db,
                $backend_name
            );

            $crate::repositories::users::impl_users!($store, $db, $backend_name);

            $crate::repositories::flows::impl_flows!($store, $db, $backend_name);

            $crate::repositories::tokens::impl_tokens!($store, $db, $backend_name);

            $crate::repositories::sessions::impl_sessions!($store, $db, $backend_name);

            $crate::repositories::signing_keys::impl_signing_keys!($store, $db, $backend_name);

            $crate::repositories::tenant::impl_tenant!($store, $db, $backend_name);

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
                if identity.exact_issuer.is_some() || identity.sign_in_type != SignInType::Federated
                {
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
                     version, password_changed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)",
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
                .bind(new.password_hash.as_ref().map(|_| millis(new.created_at)))
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
                    password_changed_at: new
                        .password_hash
                        .as_ref()
                        .map(|_| truncate_millis(new.created_at)),
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

            $crate::repositories::user_admin::impl_user_admin!($store, $db, $backend_name);

            $crate::repositories::sign_up_requests::impl_sign_up_requests!(
                $store,
                $db,
                $backend_name
            );

            $crate::repositories::maintenance::impl_maintenance!($store, $db, $backend_name);

            $crate::repositories::account_events::impl_account_events!($store, $db, $backend_name);
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
