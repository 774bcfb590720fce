//! `POST /introspect`: token introspection (RFC 7662) for resource servers. Only an
//! authenticated confidential client may ask; a token that is unknown, expired, used,
//! revoked, or whose user is gone or disabled is `{"active": false}` and nothing more.

use axum::{
    body::Bytes,
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde_json::{json, Value};

use super::{
    token::{authenticate_client, no_store, parse_form, TokenError},
    tokens::{identify, live_grant, Presented},
};
use crate::{state::AppState, throttle::ClientAddress};

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(client): Extension<ClientAddress>,
    body: Bytes,
) -> Response {
    match introspect(&state, &headers, client, &body).await {
        Ok(answer) => no_store(Json(answer).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn introspect(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddress,
    body: &[u8],
) -> Result<Value, TokenError> {
    let form = parse_form(headers, body)?;
    let app = authenticate_client(state, headers, client, &form).await?;
    if app.is_public() {
        // §2.1: the endpoint is for protected resources, which can keep a secret.
        return Err(TokenError::new(
            "invalid_client",
            "Introspection needs a confidential client.",
        ));
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return Err(TokenError::new("invalid_request", "token is missing."));
    };
    let hint = form.get("token_type_hint").map(String::as_str);
    let Some(presented) = identify(state, token, hint)
        .await
        .map_err(|e| TokenError::server(state, e))?
    else {
        return Ok(json!({"active": false}));
    };
    let now = state.clock.now();
    let Some((grant, _)) = live_grant(state, &presented, now)
        .await
        .map_err(|e| TokenError::server(state, e))?
    else {
        return Ok(json!({"active": false}));
    };
    let issuer = &state.settings.issuer;
    Ok(match presented {
        Presented::Access(c) => json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.get("scope").cloned().unwrap_or_else(|| json!(grant.scope.join(" "))),
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "aud": c.get("aud"),
            "iss": issuer,
            "exp": c.get("exp"),
            "iat": c.get("iat"),
            "nbf": c.get("nbf"),
            "jti": c.get("jti"),
        }),
        Presented::Refresh(t) => json!({
            "active": true,
            "token_type": "refresh_token",
            "scope": grant.scope.join(" "),
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "iss": issuer,
            "exp": t.expires_at.timestamp(),
            "iat": t.created_at.timestamp(),
        }),
    })
}
