//! Records the repositories store that are not domain types of their own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answer of an atomic single-use redemption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption<T> {
    /// First use: the caller may act on it.
    Fresh(T),
    /// It was used before: a replay. `T` tells what it had issued.
    Replayed(T),
}

/// An issued OAuth 2.0 authorization code. Only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub code_hash: String,
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge, if the request had one.
    pub code_challenge: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub session_id: Option<String>,
    /// The grant the code's tokens belong to (created when the code is issued, so a
    /// replay can revoke everything the first redemption issued).
    pub grant_id: String,
    /// Claims for this token only (from `preTokenIssuance` connectors).
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// One rate-limit window as stored: how many hits it has had, and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    pub hits: i64,
    pub window_ends: DateTime<Utc>,
}

/// A user's consent-free authorization of a client; refresh tokens and access tokens
/// belong to one, and revoking it revokes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: Vec<String>,
    pub auth_time: DateTime<Utc>,
    pub session_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The claims `preTokenIssuance` connectors added when the grant was made: every
    /// ID token of the grant, refreshed ones too, carries them.
    #[serde(default)]
    pub token_claims: serde_json::Map<String, serde_json::Value>,
}

/// A refresh token; only its SHA-256 is stored. Rotated on every use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    pub token_hash: String,
    pub grant_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// A signed-in browser. The cookie holds a random id; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserSession {
    pub id_hash: String,
    pub user_id: String,
    pub auth_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The id of the identity provider the user signed in with (`EmailPassword-OAUTH`,
    /// `Google-OAUTH`, …); `None` for sessions that answer no single sign-on.
    pub identity_provider: Option<String>,
}

/// A token signing key. The private key is encrypted with the master key by the
/// caller; the store never sees it in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSigningKey {
    pub kid: String,
    /// `ES256` or `RS256`.
    pub algorithm: String,
    pub encrypted_private_key: Vec<u8>,
    /// The public JWK, as published.
    pub public_jwk: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Published from `created_at`, used for signing from `activates_at`.
    pub activates_at: DateTime<Utc>,
    /// No longer used for signing from then; still published for a while.
    pub retired_at: Option<DateTime<Utc>>,
}

/// One API connector call, retries included (contract §6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorCallRecord {
    /// The `usher-call-id` sent with every attempt; also the reference id a user sees
    /// on the error page when the call failed.
    pub call_id: String,
    pub connector_id: String,
    pub user_flow_id: String,
    /// The step's 1.0.0 wire name (`PostFederationSignup`, `AttributeCollectionStart`,
    /// `PostAttributeCollection`, `PreTokenIssuance`, `EmailOtpSend`).
    pub step: String,
    pub flow_id: String,
    pub attempts: u32,
    /// The last attempt's HTTP status, if there was a response.
    pub http_status: Option<u16>,
    /// From the first attempt's start to the end of the last.
    pub latency_ms: i64,
    /// `continue`, `block`, `validationError` or `failed`.
    pub outcome: String,
    /// Why a failed call failed (`timeout`, `connectionRefused`, `http5xx`, …).
    pub failure_reason: Option<String>,
    /// A failed call of a custom authentication extension: the Entra error code
    /// (`1003002`, …) Microsoft's sign-in log would show.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Contract warnings (missing `version`, claims for unselected attributes, …).
    pub warnings: Vec<String>,
    /// Only when the operator records bodies; secrets and passwords removed.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which call records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    pub connector_id: Option<String>,
    pub outcome: Option<String>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (the caller bounds it).
    pub limit: u32,
}

/// One stored piece of tenant configuration: a custom attribute, a user flow, an
/// application, a connector, an identity provider or the tenant's settings.
/// `document` is opaque to the store; `(kind, id)` is its key, compared exactly as
/// given (whoever stores objects normalises ids first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantObject {
    pub kind: String,
    pub id: String,
    pub document: serde_json::Value,
}

/// Every stored tenant object and the version they belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantObjects {
    /// 0 when the tenant has never been stored.
    pub version: i64,
    /// Ordered by kind, then position (the order they were given or appended in),
    /// then id.
    pub objects: Vec<TenantObject>,
}

/// Which users to list (admin API `$filter`, console search). Filters combine with
/// AND; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Exact email (lower case).
    pub email: Option<String>,
    /// `displayName` starts with this (case-insensitive).
    pub display_name_prefix: Option<String>,
    /// `(issuer, issuerAssignedId)` of one of the user's identities.
    pub identity: Option<(String, String)>,
    /// Part of the email or display name (case-insensitive), for the console.
    pub search: Option<String>,
    /// Paging cursor: only users whose id is greater.
    pub after: Option<String>,
    pub limit: u32,
}

/// One administrative edit of a user (`PATCH /v1.0/users/{id}`), written by
/// [`crate::UserAdminRepository::edit_user`] in one transaction.
#[derive(Debug, Clone)]
pub struct UserEdit<'a> {
    /// The user as it is to be: its email (and whether it is verified), attributes,
    /// `account_enabled` and profile are saved, and with `replace_identities` its
    /// identities too.
    pub user: &'a usher_domain::User,
    pub replace_identities: bool,
    /// `Some(None)` removes the password (no local account any more).
    pub password_hash: Option<Option<&'a str>>,
    /// The version the editor read (`If-Match`); `None` writes whatever it is now.
    pub expected_version: Option<i64>,
    /// When the edit is made: a new password, new identities or a disabled account
    /// end the user's sessions and grants at this time.
    pub now: DateTime<Utc>,
}
