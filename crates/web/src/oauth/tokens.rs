//! What a presented token is, for revocation and introspection: one of Usher's
//! refresh tokens (looked up by its hash) or one of its access tokens (a JWT signed
//! with a published key, naming its grant), with the grant and user behind it.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use usher_oidc::{
    crypto::sha256_hex,
    jose::{verify_jwt, Algorithm},
};
use usher_storage::{Grant, RefreshToken};

use crate::state::AppState;

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

/// Finds what `token` is. `hint` (RFC 7009 §2.1) only picks which kind is tried first.
/// `Ok(None)`: not a token Usher issued (or not one any more).
pub(super) async fn identify(
    state: &AppState,
    token: &str,
    hint: Option<&str>,
) -> Result<Option<Presented>, String> {
    let as_refresh = async {
        state
            .store
            .refresh_token(&sha256_hex(token.as_bytes()))
            .await
            .map(|t| t.map(Presented::Refresh))
            .map_err(|e| e.to_string())
    };
    let as_access = async {
        let keyring = state.keys.keyring().await.map_err(|e| e.to_string())?;
        let Ok(claims) = verify_jwt(
            token,
            &keyring.published,
            &[Algorithm::ES256, Algorithm::RS256],
        ) else {
            return Ok(None);
        };
        // ID tokens are signed with the same keys; only access tokens name a grant.
        let ours = claims.get("iss").and_then(Value::as_str)
            == Some(state.settings.issuer.as_str())
            && claims.get("grant_id").and_then(Value::as_str).is_some();
        Ok(ours.then_some(Presented::Access(claims)))
    };
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

/// Whether the token is live now: not expired or used, its grant not revoked, its
/// user present and enabled. The grant comes back when it is.
pub(super) async fn live_grant(
    state: &AppState,
    presented: &Presented,
    now: DateTime<Utc>,
) -> Result<Option<Grant>, String> {
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
        .await
        .map_err(|e| e.to_string())?
        .filter(|g| g.revoked_at.is_none())
    else {
        return Ok(None);
    };
    if let Presented::Access(c) = presented {
        if c.get("sub").and_then(Value::as_str) != Some(grant.user_id.as_str()) {
            return Ok(None);
        }
    }
    let user = state
        .store
        .user_by_id(&grant.user_id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(user.filter(|u| u.account_enabled).map(|_| grant))
}
