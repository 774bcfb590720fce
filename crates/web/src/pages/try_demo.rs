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
use serde_json::{Map, Value};
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
    /// An account action to run instead of a sign-in (`usher_action`).
    action: Option<String>,
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
    if let Some(action) = q
        .action
        .as_deref()
        .and_then(usher_domain::AccountAction::parse)
    {
        params.push(("usher_action", action.as_str()));
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
    let Some(client_id) = state.settings.demo_client_id.as_deref() else {
        return failed(&state, locale, "not_enabled", "The demo is not enabled.");
    };
    let pending = cookies::get(&headers, cookies::TRY)
        .and_then(|c| cookies::unseal::<Pending>(&state.cookie_key, "try", c));
    let Some(pending) = pending.filter(|p| params.get("state") == Some(&p.state)) else {
        return failed(
            &state,
            locale,
            "invalid_state",
            "The state does not match this browser's request. Start again.",
        );
    };
    if let Some(error) = params.get("error") {
        return failed(
            &state,
            locale,
            error,
            params.get("error_description").map_or("", String::as_str),
        );
    }
    let Some(code) = params.get("code") else {
        return failed(
            &state,
            locale,
            "invalid_request",
            "The response has no code.",
        );
    };
    let id_token = match redeem_code(&state, locale, client_id, code, &pending.verifier).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let claims = match verified_claims(&state, locale, client_id, &pending.nonce, &id_token).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    result_page(&state, locale, &claims, id_token)
}

/// The demo could not finish the sign-in: the OAuth error and its description, as the
/// relying party saw them.
fn failed(state: &AppState, locale: &str, error: &str, description: &str) -> Response {
    let ctx = ResultPage {
        title_key: "try.error_title",
        error: Some(error.to_owned()),
        error_description: Some(description.to_owned()),
        ..ResultPage::default()
    };
    render(
        state,
        StatusCode::BAD_REQUEST,
        "try_result.html",
        locale,
        &ctx,
    )
}

/// Redeems the code as the demo application would at the token endpoint, with the
/// PKCE verifier this browser kept, and returns the ID token.
async fn redeem_code(
    state: &AppState,
    locale: &str,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> Result<String, Response> {
    let Some(app) = state.tenant().application(client_id).cloned() else {
        return Err(failed(
            state,
            locale,
            "not_enabled",
            "The demo application is not configured.",
        ));
    };
    let redirect_uri = format!("{}/try/callback", state.settings.issuer);
    let tokens = match exchange_code(state, &app, code, &redirect_uri, Some(verifier)).await {
        Ok(t) => t,
        Err(e) => return Err(failed(state, locale, e.error, &e.description)),
    };
    tokens
        .id_token
        .ok_or_else(|| failed(state, locale, "invalid_response", "No ID token was issued."))
}

/// Verifies the ID token as a relying party must (OIDC Core §3.1.3.7): signed with a
/// published key, for this request's nonce, this client and this issuer.
async fn verified_claims(
    state: &AppState,
    locale: &str,
    client_id: &str,
    nonce: &str,
    id_token: &str,
) -> Result<Map<String, Value>, Response> {
    let keyring = match state.keys.keyring().await {
        Ok(k) => k,
        Err(e) => {
            return Err(failed(
                state,
                locale,
                "temporarily_unavailable",
                &e.to_string(),
            ))
        }
    };
    let claims = match verify_jwt(
        id_token,
        &keyring.published,
        &[Algorithm::ES256, Algorithm::RS256],
    ) {
        Ok(c) => c,
        Err(e) => return Err(failed(state, locale, "invalid_token", &e.to_string())),
    };
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce)
        || claims.get("aud").and_then(Value::as_str) != Some(client_id)
        || claims.get("iss").and_then(Value::as_str) != Some(state.settings.issuer.as_str())
    {
        return Err(failed(
            state,
            locale,
            "invalid_token",
            "The ID token's nonce, audience or issuer is wrong.",
        ));
    }
    Ok(claims)
}

/// The signed-in result: the ID token, its header and claims, and a logout link
/// that comes back to `/try`. The sign-in's cookie has served its purpose.
fn result_page(
    state: &AppState,
    locale: &str,
    claims: &Map<String, Value>,
    id_token: String,
) -> Response {
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
    let mut r = render(state, StatusCode::OK, "try_result.html", locale, &ctx);
    r.headers_mut().append(
        header::SET_COOKIE,
        cookies::clear(cookies::TRY, state.settings.secure_cookies()),
    );
    r
}
