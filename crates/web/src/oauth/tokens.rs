//! What a presented token is, for revocation and introspection: one of Usher's
//! refresh tokens (looked up by its hash) or one of its access tokens (a JWT signed
//! with a published key, naming its grant), with the grant and user behind it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use usher_domain::User;
use usher_oidc::{
    crypto::sha256_hex,
    jose::{verify_jwt, Algorithm},
};
use usher_storage::{Grant, RefreshToken, StorageError};

use crate::state::AppState;

/// Why a token could not be looked at: the signing keys or the store did not answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum LookupError {
    #[error("signing keys unavailable: {0}")]
    Keys(String),
    #[error(transparent)]
    Store(#[from] StorageError),
}

pub(super) enum Presented {
    Refresh(RefreshToken),
    /// An access token's verified claims.
    Access(Map<String, Value>),
}

impl Presented {
    /// The grant the token was issued under, as the token says.
    pub(super) fn grant_id(&self) -> Option<&str> {
        match self {
            Presented::Refresh(t) => Some(&t.grant_id),
            Presented::Access(c) => c.get("grant_id").and_then(Value::as_str),
        }
    }
}

/// The verified claims of `token` if it is one of Usher's access tokens: signed with a
/// published key, issued here, and naming a grant (ID tokens are signed with the same
/// keys, and client-credentials tokens have no grant). Expiry is [`live_grant`]'s.
pub(super) async fn access_claims(
    state: &AppState,
    token: &str,
) -> Result<Option<Map<String, Value>>, LookupError> {
    let keyring = state
        .keys
        .keyring()
        .await
        .map_err(|e| LookupError::Keys(e.to_string()))?;
    let Ok(claims) = verify_jwt(
        token,
        &keyring.published,
        &[Algorithm::ES256, Algorithm::RS256],
    ) else {
        return Ok(None);
    };
    let ours = claims.get("iss").and_then(Value::as_str) == Some(state.settings.issuer.as_str())
        && claims.get("grant_id").and_then(Value::as_str).is_some();
    Ok(ours.then_some(claims))
}

/// Finds what `token` is. `hint` (RFC 7009 §2.1) only picks which kind is tried first.
/// `Ok(None)`: not a token Usher issued (or not one any more).
pub(super) async fn identify(
    state: &AppState,
    token: &str,
    hint: Option<&str>,
) -> Result<Option<Presented>, LookupError> {
    let as_refresh = async {
        Ok::<_, LookupError>(
            state
                .store
                .refresh_token(&sha256_hex(token.as_bytes()))
                .await?
                .map(Presented::Refresh),
        )
    };
    let as_access = async { Ok(access_claims(state, token).await?.map(Presented::Access)) };
    // A JWT has dots; a refresh token is base64url without them.
    if hint == Some("refresh_token") || !token.contains('.') {
        if let Some(found) = as_refresh.await? {
            return Ok(Some(found));
        }
        return as_access.await;
    }
    if let Some(found) = as_access.await? {
        return Ok(Some(found));
    }
    as_refresh.await
}

/// Whether the token is live now: not expired or used, its grant not revoked, and
/// for an access token naming the grant's user, that user present and enabled. The
/// grant and its user come back when it is.
pub(super) async fn live_grant(
    state: &AppState,
    presented: &Presented,
    now: DateTime<Utc>,
) -> Result<Option<(Grant, User)>, StorageError> {
    let fresh = match presented {
        Presented::Refresh(t) => t.used_at.is_none() && t.expires_at > now,
        Presented::Access(c) => c
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|exp| exp > now.timestamp()),
    };
    let Some(grant_id) = presented.grant_id().filter(|_| fresh) else {
        return Ok(None);
    };
    let Some(grant) = state
        .store
        .grant(grant_id)
        .await?
        .filter(|g| g.revoked_at.is_none())
    else {
        return Ok(None);
    };
    if let Presented::Access(c) = presented {
        if c.get("sub").and_then(Value::as_str) != Some(grant.user_id.as_str()) {
            return Ok(None);
        }
    }
    let user = state.store.user_by_id(&grant.user_id).await?;
    Ok(user.filter(|u| u.account_enabled).map(|u| (grant, u)))
}
