//! `/.well-known/openid-configuration` and `/jwks`.

use super::claim_name;
use crate::{i18n, state::AppState};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

pub async fn configuration(State(state): State<AppState>) -> Response {
    let algorithm = match state.keys.keyring().await {
        Ok(k) => k.signing.algorithm(),
        Err(e) => return unavailable(&state, e),
    };
    let mut claims: Vec<String> = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "email_verified",
        "amr",
        "tfp",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for flow in &state.tenant().user_flows {
        for a in flow.claim_attributes() {
            let c = claim_name(&state.tenant(), a);
            if !claims.contains(&c) {
                claims.push(c);
            }
        }
    }
    let doc = usher_oidc::discovery::document(
        &state.settings.issuer,
        algorithm,
        &claims,
        i18n::SUPPORTED,
    );
    cached(Json(doc).into_response(), 3600)
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.keys.keyring().await {
        Ok(k) => cached(
            Json(serde_json::json!({ "keys": k.published })).into_response(),
            600,
        ),
        Err(e) => unavailable(&state, e),
    }
}

/// Keys are published a day before use, so clients may cache the key set briefly.
fn cached(mut r: Response, seconds: u32) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={seconds}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

pub(crate) fn unavailable(state: &AppState, e: impl std::fmt::Display) -> Response {
    let reference = state.new_id();
    tracing::error!(%reference, error = %e, "signing keys unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "temporarily_unavailable", "error_description": format!("Signing keys are unavailable (reference {reference}).")})),
    )
        .into_response()
}
