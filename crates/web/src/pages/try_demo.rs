//! `/try`: a small relying party built in, like Entra's "Run user flow". It starts the
//! demo user flow with PKCE, state and nonce, redeems the code in-process, verifies
//! the ID token against the published keys and shows its claims.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use usher_oidc::{
    jose::{decode_unverified, verify_jwt, Algorithm},
    pkce,
};

use super::{render, request_locale, see_other, SummaryError};
use crate::{cookies, oauth::append_query, oauth::token::exchange_code, state::AppState};

#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
}

#[derive(Serialize)]
struct TryPage {
    title_key: &'static str,
    errors: Vec<SummaryError>,
    notice: Option<String>,
    enabled: bool,
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ctx = TryPage {
        title_key: "try.title",
        errors: Vec::new(),
        notice: None,
        enabled: state.settings.demo_client_id.is_some(),
    };
    let status = if ctx.enabled {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    render(
        &state,
        status,
        "try.html",
        request_locale(&headers, None),
        &ctx,
    )
}

#[derive(Deserialize)]
pub struct StartQuery {
    prompt: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let Some(client_id) = state.settings.demo_client_id.clone() else {
        return page(State(state), headers).await;
    };
    let pending = Pending {
        state: state.new_token(),
        nonce: state.new_token(),
        verifier: state.new_token(),
    };
    let mut params = vec![
        ("client_id", client_id.as_str()),
        ("response_type", "code"),
        ("scope", "openid offline_access"),
        ("code_challenge_method", "S256"),
        ("state", pending.state.as_str()),
        ("nonce", pending.nonce.as_str()),
    ];
    let redirect_uri = format!("{}/try/callback", state.settings.issuer);
    params.push(("redirect_uri", &redirect_uri));
    let challenge = pkce::challenge_s256(&pending.verifier);
    params.push(("code_challenge", &challenge));
    if q.prompt.as_deref() == Some("create") {
        params.push(("prompt", "create"));
    }
    let url = append_query("/authorize", &params);
    let mut r = see_other(&url);
    r.headers_mut().append(
        header::SET_COOKIE,
        cookies::set(
            cookies::TRY,
            &cookies::seal(&state.cookie_key, "try", &pending),
            Some(600),
            state.settings.secure_cookies(),
        ),
    );
    r
}

#[derive(Serialize)]
struct Claim {
    name: String,
    value: String,
}

#[derive(Serialize, Default)]
struct ResultPage {
    title_key: &'static str,
    errors: Vec<SummaryError>,
    notice: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    claims: Vec<Claim>,
    header: String,
    id_token: String,
    logout_url: Option<String>,
}

pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let locale = request_locale(&headers, None);
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let failed = |error: &str, description: &str| {
        let ctx = ResultPage {
            title_key: "try.error_title",
            error: Some(error.to_owned()),
            error_description: Some(description.to_owned()),
            ..ResultPage::default()
        };
        render(
            &state,
            StatusCode::BAD_REQUEST,
            "try_result.html",
            locale,
            &ctx,
        )
    };
    let Some(client_id) = state.settings.demo_client_id.clone() else {
        return failed("not_enabled", "The demo is not enabled.");
    };
    let pending = cookies::get(&headers, cookies::TRY)
        .and_then(|c| cookies::unseal::<Pending>(&state.cookie_key, "try", c));
    let Some(pending) = pending.filter(|p| params.get("state") == Some(&p.state)) else {
        return failed(
            "invalid_state",
            "The state does not match this browser's request. Start again.",
        );
    };
    if let Some(error) = params.get("error") {
        return failed(
            error,
            params.get("error_description").map_or("", String::as_str),
        );
    }
    let Some(code) = params.get("code") else {
        return failed("invalid_request", "The response has no code.");
    };
    let Some(app) = state.tenant().application(&client_id).cloned() else {
        return failed("not_enabled", "The demo application is not configured.");
    };
    let redirect_uri = format!("{}/try/callback", state.settings.issuer);
    let tokens =
        match exchange_code(&state, &app, code, &redirect_uri, Some(&pending.verifier)).await {
            Ok(t) => t,
            Err(e) => return failed(e.error, &e.description),
        };
    let Some(id_token) = tokens.id_token else {
        return failed("invalid_response", "No ID token was issued.");
    };
    let keyring = match state.keys.keyring().await {
        Ok(k) => k,
        Err(e) => return failed("temporarily_unavailable", &e.to_string()),
    };
    let claims = match verify_jwt(
        &id_token,
        &keyring.published,
        &[Algorithm::ES256, Algorithm::RS256],
    ) {
        Ok(c) => c,
        Err(e) => return failed("invalid_token", &e.to_string()),
    };
    if claims.get("nonce").and_then(Value::as_str) != Some(pending.nonce.as_str())
        || claims.get("aud").and_then(Value::as_str) != Some(client_id.as_str())
        || claims.get("iss").and_then(Value::as_str) != Some(state.settings.issuer.as_str())
    {
        return failed(
            "invalid_token",
            "The ID token's nonce, audience or issuer is wrong.",
        );
    }
    let header = decode_unverified(&id_token)
        .map(|(h, _)| serde_json::to_string_pretty(&h).unwrap_or_default())
        .unwrap_or_default();
    let logout_url = append_query(
        "/logout",
        &[
            ("id_token_hint", id_token.as_str()),
            (
                "post_logout_redirect_uri",
                &format!("{}/try", state.settings.issuer),
            ),
        ],
    );
    let ctx = ResultPage {
        title_key: "try.result_title",
        claims: claims
            .iter()
            .map(|(k, v)| Claim {
                name: k.clone(),
                value: match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            })
            .collect(),
        header,
        id_token,
        logout_url: Some(logout_url),
        ..ResultPage::default()
    };
    let mut r = render(&state, StatusCode::OK, "try_result.html", locale, &ctx);
    r.headers_mut().append(
        header::SET_COOKIE,
        cookies::clear(cookies::TRY, state.settings.secure_cookies()),
    );
    r
}
