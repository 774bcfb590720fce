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
