//! Usher's storage: every piece of state (users, their identities and administrative
//! roles, sign-ups waiting for approval, flows in progress, authorization codes,
//! grants and refresh tokens, browser sessions, signing keys, the tenant's
//! configuration) lives behind the narrow repository traits of this module,
//! implemented once for SQLite (the embedded default) and once for PostgreSQL
//! (production, several instances). Lookups return `Result<Option<T>>`: absence is
//! not an error.

mod model;
mod postgres;
mod repositories;
mod shared;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use usher_domain::{
    AccountEvent, Flow, Identity, NewUser, SignInType, SignUpRequest, SignUpRequestStatus, User,
};

pub use model::{
    AuthorizationCode, BrowserSession, CallFilter, ConnectorCallRecord, Grant, RateWindow,
    Redemption, RefreshToken, StoredSigningKey, TenantObject, TenantObjects, UserEdit, UserQuery,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `(sign_in_type, issuer, issuer_assigned_id)` already belongs to a user.
    #[error("an identity with this issuer and issuerAssignedId already belongs to a user")]
    DuplicateIdentity,
    /// An optimistic-concurrency save found the record changed since it was read.
    #[error("the record was changed by someone else since it was read")]
    Conflict,
    /// A key (id) that must be unique already exists.
    #[error("a record with this id already exists")]
    AlreadyExists,
    /// A stored value could not be decoded.
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Users and identities.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates the user and its identities in one transaction.
    /// `DuplicateIdentity` if any identity already belongs to a user (nothing is
    /// written then); `AlreadyExists` if the id is taken.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    /// The user with this identity among those without an exact issuer (local,
    /// passcode and administrator-entered ones).
    async fn user_by_identity(
        &self,
        sign_in_type: SignInType,
        issuer: &str,
        issuer_assigned_id: &str,
    ) -> Result<Option<User>>;
    /// The user with an identity an upstream provider vouched for: found by its
    /// exact issuer and subject. When nobody has it and `take_on_unresolved` is set
    /// (the provider is the one that owns identities stored without an exact issuer,
    /// see [`Identity::exact_issuer`]), an identity with the same issuer and subject
    /// and no exact issuer is given this one and its user returned. Without an exact
    /// issuer, the same as [`Self::user_by_identity`].
    async fn user_by_provider_identity(
        &self,
        identity: &Identity,
        take_on_unresolved: bool,
    ) -> Result<Option<User>>;
    /// Gives every federated identity with short issuer `issuer` and no exact issuer
    /// the exact issuer `exact_issuer`: what identities stored before exact issuers
    /// were kept, or entered by an administrator, get from the provider they belong
    /// to. Returns how many changed.
    async fn resolve_identities(&self, issuer: &str, exact_issuer: &str) -> Result<u64>;
    /// Users whose verified email is `email` (already normalised to lower case).
    async fn users_by_email(&self, email: &str) -> Result<Vec<User>>;
    /// Adds an identity to an existing user (linking). `Ok(false)` if there is no such
    /// user; `DuplicateIdentity` if the identity belongs to a user already.
    async fn add_identity(&self, user_id: &str, identity: &Identity) -> Result<bool>;
    /// The Argon2id PHC string of a local account's password.
    async fn password_hash(&self, user_id: &str) -> Result<Option<String>>;
}

/// Sign-up and sign-in flows in progress.
#[async_trait]
pub trait FlowRepository: Send + Sync {
    /// Stores a new flow (its `version` is stored as given).
    async fn insert_flow(&self, flow: &Flow) -> Result<()>;
    async fn flow(&self, id: &str) -> Result<Option<Flow>>;
    /// Saves `flow` if the stored version still equals `flow.version`, and then
    /// increments `flow.version` (in the store and in `flow`). Otherwise `Conflict`.
    async fn update_flow(&self, flow: &mut Flow) -> Result<()>;
    /// Takes the flow's run lease for `holder` until `until` if nobody holds it at
    /// `now` (none was taken, or it ran out): `Ok(true)` for the one caller that
    /// gets it, so of several instances and requests exactly one runs the flow's
    /// connectors. `Ok(false)` if it is held, or there is no such flow.
    async fn take_flow_lease(
        &self,
        id: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Extends `holder`'s lease to `until`; `Ok(false)` if it is no longer
    /// `holder`'s (it ran out and was taken over).
    async fn renew_flow_lease(&self, id: &str, holder: &str, until: DateTime<Utc>) -> Result<bool>;
    /// Gives up `holder`'s lease (the run saved its outcome), so that the next run
    /// of the flow's connectors need not wait for it to run out.
    async fn release_flow_lease(&self, id: &str, holder: &str) -> Result<()>;
}

/// Authorization codes, grants and refresh tokens.
#[async_trait]
pub trait TokenRepository: Send + Sync {
    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> Result<()>;
    /// Marks the code used at `now`, atomically: exactly one caller ever gets
    /// `Fresh`; later callers get `Replayed`. Expiry is the caller's to check.
    async fn redeem_authorization_code(
        &self,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Redemption<AuthorizationCode>>>;

    async fn insert_grant(&self, grant: &Grant) -> Result<()>;
    async fn grant(&self, id: &str) -> Result<Option<Grant>>;
    /// Revokes the grant (and so every token issued under it). Idempotent.
    async fn revoke_grant(&self, id: &str, now: DateTime<Utc>) -> Result<()>;

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()>;
    /// The refresh token with this hash, used or not; marks nothing (revocation and
    /// introspection look, they do not redeem).
    async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshToken>>;
    /// Marks the refresh token used, atomically, as `redeem_authorization_code`.
    async fn redeem_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Redemption<RefreshToken>>>;
}

/// Browser sessions (single sign-on).
#[async_trait]
pub trait SessionRepository: Send + Sync {
    async fn insert_session(&self, session: &BrowserSession) -> Result<()>;
    async fn session(&self, id_hash: &str) -> Result<Option<BrowserSession>>;
    /// Ends the session at `now`. Idempotent.
    async fn end_session(&self, id_hash: &str, now: DateTime<Utc>) -> Result<()>;
}

/// Token signing keys (private keys encrypted by the caller).
#[async_trait]
pub trait SigningKeyRepository: Send + Sync {
    /// All keys, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>>;
    /// `AlreadyExists` if the kid is taken.
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<()>;
    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> Result<()>;
}

/// The record of every API connector call (contract §6).
#[async_trait]
pub trait ConnectorCallRepository: Send + Sync {
    /// `AlreadyExists` if a record with this call id exists.
    async fn insert_connector_call(&self, record: &ConnectorCallRecord) -> Result<()>;
    async fn connector_call(&self, call_id: &str) -> Result<Option<ConnectorCallRecord>>;
    /// Records matching `filter`, newest first, at most `filter.limit`.
    async fn connector_calls(&self, filter: &CallFilter) -> Result<Vec<ConnectorCallRecord>>;
}

/// The tenant's configuration, stored as versioned objects so that several instances
/// can see an edit on their next request.
///
/// Every write bumps the one tenant version by exactly one, in the transaction that
/// makes the change, so a version names one state of the whole tenant and instances
/// only need to compare it to know whether to reload.
#[async_trait]
pub trait TenantRepository: Send + Sync {
    /// 0 when the tenant has never been stored. Cheap: called on every request.
    async fn tenant_version(&self) -> Result<i64>;
    /// Every object and the version they belong to, read consistently.
    async fn tenant_objects(&self) -> Result<TenantObjects>;
    /// Replaces every object, in one transaction, if the stored version equals
    /// `expected_version`; returns the new version (`expected_version + 1`).
    /// `Conflict` otherwise (nothing is written then); `AlreadyExists` if `objects`
    /// repeats a `(kind, id)`. Objects keep the order given.
    async fn replace_tenant(&self, objects: &[TenantObject], expected_version: i64) -> Result<i64>;
    /// Inserts or updates one object (an update keeps its position; an insert goes
    /// after the others of its kind) and returns the new version. `Conflict` if
    /// `expected_version` is given and the stored version differs.
    async fn put_tenant_object(
        &self,
        object: &TenantObject,
        expected_version: Option<i64>,
    ) -> Result<i64>;
    /// Deletes one object. `Ok(None)` if there was none (the version is unchanged),
    /// else the new version. `Conflict` if `expected_version` is given and the stored
    /// version differs, whether or not the object exists.
    async fn delete_tenant_object(
        &self,
        kind: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<Option<i64>>;
}

/// Users as administrators manage them (the admin API and console).
#[async_trait]
pub trait UserAdminRepository: Send + Sync {
    /// Users matching `query`, ordered by id, after `query.after`, at most
    /// `query.limit`; identities filled in.
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>>;
    /// Saves `email`, `email_verified`, `attributes`, `account_enabled` and `profile`
    /// of an existing user (identities are not touched). `Ok(false)` if there is no
    /// such user.
    async fn update_user(&self, user: &User) -> Result<bool>;
    /// Writes an edit (user, identities, password) in one transaction, so a failure
    /// of any part (a duplicate identity, say) leaves the user as it was. Returns the
    /// new version; `Ok(None)` if there is no such user; `Conflict` if
    /// `expected_version` is given and the user's differs (nothing written then);
    /// `DuplicateIdentity` as `set_identities`. A new password, new identities or a
    /// disabled account end the user's browser sessions and revoke their grants in
    /// the same transaction.
    async fn edit_user(&self, edit: &UserEdit<'_>) -> Result<Option<i64>>;
    /// Sets (or with `None` removes) a local account's password hash, and in the same
    /// transaction ends the user's browser sessions and revokes their grants: a
    /// changed password must lock out whoever knew the old one.
    async fn set_password_hash(
        &self,
        user_id: &str,
        hash: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// As `set_password_hash` with a new hash, only if the stored hash is still
    /// `expected`: a link that may change the password once cannot change it twice,
    /// however many requests race. `Ok(false)` if there is no such user or the hash
    /// moved on (nothing written then).
    async fn replace_password_hash(
        &self,
        user_id: &str,
        expected: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Ends the user's browser sessions and revokes their grants (every refresh and
    /// access token), in one transaction.
    async fn end_user_sessions(&self, user_id: &str, now: DateTime<Utc>) -> Result<()>;
    /// Deletes the user, their identities, roles and sessions, and revokes their
    /// grants, in one transaction. `Ok(false)` if there is no such user.
    async fn delete_user(&self, user_id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Replaces the user's identities (for `PATCH` of `identities`);
    /// `DuplicateIdentity` if one belongs to another user (nothing written then).
    async fn set_identities(&self, user_id: &str, identities: &[Identity]) -> Result<bool>;
    /// Administrative roles (e.g. `Usher.Admin`) of a user.
    async fn user_roles(&self, user_id: &str) -> Result<Vec<String>>;
    /// Replaces the user's roles. When they change, the user's browser sessions end
    /// and their grants are revoked in the same transaction, so nothing signed in
    /// keeps what the user no longer has (or was started without what it now has).
    async fn set_user_roles(
        &self,
        user_id: &str,
        roles: &[String],
        now: DateTime<Utc>,
    ) -> Result<bool>;
}

/// Sign-ups waiting for approval, and their decisions.
#[async_trait]
pub trait SignUpRequestRepository: Send + Sync {
    /// `AlreadyExists` if the id is taken.
    async fn insert_sign_up_request(&self, request: &SignUpRequest) -> Result<()>;
    async fn sign_up_request(&self, id: &str) -> Result<Option<SignUpRequest>>;
    /// Newest first, optionally of one status, after the request `after` (a cursor
    /// from a previous page), at most `limit`.
    ///
    /// `after` is the id of the last request of the previous page; its position
    /// (creation time, then id) is what the next page continues from, so requests
    /// decided meanwhile do not shift the pages. `Conflict` if that request no
    /// longer exists (deleted since the page was read): its position is lost, and an
    /// empty page would wrongly say there are no more.
    async fn sign_up_requests(
        &self,
        status: Option<SignUpRequestStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SignUpRequest>>;
    /// The pending or denied requests for this email (lower case) or any of these
    /// identities: what holds or blocks a returning user.
    async fn open_sign_up_requests_for(
        &self,
        email: Option<&str>,
        identities: &[Identity],
    ) -> Result<Vec<SignUpRequest>>;
    /// Records a decision, atomically and only if the request is still pending;
    /// `Ok(None)` if it was not (decided by someone else, or no such request).
    /// `Pending` is no decision: it records nothing and answers `Ok(None)`.
    async fn decide_sign_up_request(
        &self,
        id: &str,
        status: SignUpRequestStatus,
        decided_by: &str,
        at: DateTime<Utc>,
        user_id: Option<&str>,
    ) -> Result<Option<SignUpRequest>>;
    /// Approves a pending request and creates its user, in one transaction: either
    /// both happen or neither. `Ok(None)` if the request is not pending (decided by
    /// someone else, or no such request); `DuplicateIdentity` if one of the user's
    /// identities belongs to a user already (the request stays pending then).
    async fn approve_sign_up_request(
        &self,
        id: &str,
        user: NewUser,
        decided_by: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<(SignUpRequest, User)>>;
    /// Removes a request (clearing a denial). `Ok(false)` if there was none.
    async fn delete_sign_up_request(&self, id: &str) -> Result<bool>;
}

/// Rate-limit counters: one fixed window per key (an account, an address, a
/// client), shared by every instance.
#[async_trait]
pub trait RateLimitRepository: Send + Sync {
    /// Counts one hit for `key`, atomically: in the live window, or in a new one of
    /// `window` starting at `now` when the last one ended. Returns the window with
    /// this hit counted.
    async fn hit_rate_limit(
        &self,
        key: &str,
        window: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<RateWindow>;
    /// The live window of `key`, if any; counts nothing.
    async fn rate_limit(&self, key: &str, now: DateTime<Utc>) -> Result<Option<RateWindow>>;
    /// Takes one hit back from `key`'s live window (an attempt counted before it was
    /// made turned out to be the owner's). Nothing if there is no live window.
    async fn release_rate_limit(&self, key: &str, now: DateTime<Utc>) -> Result<()>;
}

/// Housekeeping across repositories.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Applies pending migrations. Safe to run from several instances at once.
    async fn migrate(&self) -> Result<()>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
    /// Deletes flows, codes, refresh tokens, sessions and rate-limit windows that
    /// expired before `now`, and account events older than
    /// [`ACCOUNT_EVENT_RETENTION`]
    /// (minus a grace period the caller has already subtracted). Returns rows deleted.
    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<u64>;
    /// `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;
}

/// How long [`Maintenance::delete_expired`] keeps account events.
pub const ACCOUNT_EVENT_RETENTION: chrono::Duration = chrono::Duration::days(180);

/// What people did to their own accounts.
#[async_trait]
pub trait AccountEventRepository: Send + Sync {
    /// Records `event`; `AlreadyExists` if its id is taken. Events go with their
    /// user.
    async fn insert_account_event(&self, event: &AccountEvent) -> Result<()>;
    /// The newest `limit` events of `user_id`, newest first.
    async fn account_events(&self, user_id: &str, limit: u32) -> Result<Vec<AccountEvent>>;
}

/// Everything Usher stores, as one object the web layer holds.
pub trait Store:
    UserRepository
    + FlowRepository
    + TokenRepository
    + SessionRepository
    + SigningKeyRepository
    + ConnectorCallRepository
    + TenantRepository
    + UserAdminRepository
    + SignUpRequestRepository
    + RateLimitRepository
    + AccountEventRepository
    + Maintenance
{
}

impl<T> Store for T where
    T: UserRepository
        + FlowRepository
        + TokenRepository
        + SessionRepository
        + SigningKeyRepository
        + ConnectorCallRepository
        + TenantRepository
        + UserAdminRepository
        + SignUpRequestRepository
        + RateLimitRepository
        + AccountEventRepository
        + Maintenance
{
}

/// Opens the database at `url` (`sqlite://path`, `sqlite::memory:`,
/// `postgres://…`), without migrating.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StorageError::UnsupportedUrl(url.to_owned()))
    }
}
