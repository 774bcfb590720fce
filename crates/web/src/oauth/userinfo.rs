//! `GET|POST /userinfo` (OIDC Core §5.3): the signed-in user's claims for a valid
//! access token whose grant has not been revoked (the same check as introspection's,
//! in `oauth/tokens.rs`).

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::Value;

use super::{
    tokens::{access_claims, live_grant, LookupError, Presented},
    user_claims,
};
use crate::state::AppState;

pub async fn handle(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            (v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ")).then(|| v[7..].trim())
        });
    let Some(token) = token else {
        return challenge(None);
    };
    match claims_for(&state, token).await {
        Ok(Some(claims)) => {
            let mut r = Json(claims).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Ok(None) => challenge(Some("invalid_token")),
        Err(r) => r,
    }
}

async fn claims_for(
    state: &AppState,
    token: &str,
) -> Result<Option<serde_json::Map<String, Value>>, Response> {
    let failed = |e: LookupError| match e {
        LookupError::Keys(e) => super::discovery::unavailable(state, e),
        LookupError::Store(e) => {
            let reference = state.new_id();
            tracing::error!(%reference, error = %e, "userinfo failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": "server_error", "error_description": format!("reference {reference}")}))).into_response()
        }
    };
    // Only user tokens have a grant; client-credentials tokens have no user.
    let Some(claims) = access_claims(state, token).await.map_err(failed)? else {
        return Ok(None);
    };
    let client = claims
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let presented = Presented::Access(claims);
    let Some((_, user)) = live_grant(state, &presented, state.clock.now())
        .await
        .map_err(|e| failed(LookupError::Store(e)))?
    else {
        return Ok(None);
    };
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), Value::String(user.id.clone()));
    let tenant = state.tenant();
    let client = client.as_deref().and_then(|c| tenant.application(c));
    if let Some(flow) = client.and_then(|a| tenant.user_flow(&a.user_flow_id)) {
        out.extend(user_claims(&tenant, flow, &user));
    }
    Ok(Some(out))
}

/// 401 with the Bearer challenge of RFC 6750 §3.
fn challenge(error: Option<&str>) -> Response {
    let value = match error {
        Some(e) => format!("Bearer realm=\"usher\", error=\"{e}\""),
        None => "Bearer realm=\"usher\"".to_owned(),
    };
    let mut r = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": error.unwrap_or("invalid_request"), "error_description": "A valid access token is required."})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}
