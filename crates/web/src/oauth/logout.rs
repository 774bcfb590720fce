//! `GET|POST /logout`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
//! With a valid `id_token_hint` the session ends at once; without one the user is
//! asked to confirm, so a third-party page cannot sign people out.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;
use serde_json::Value;
use usher_oidc::{
    crypto::sha256_hex,
    jose::{decode_unverified, verify_jwt, Algorithm},
};

use super::append_query;
use crate::{
    cookies,
    pages::{error_page, render, request_locale, see_other, PageError, SummaryError},
    state::AppState,
};

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    logout(
        &state,
        &headers,
        query.as_deref().unwrap_or("").as_bytes(),
        false,
    )
    .await
}

pub async fn post(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    logout(&state, &headers, &body, true).await
}

async fn logout(
    state: &AppState,
    headers: &HeaderMap,
    raw: &[u8],
    confirmed_post: bool,
) -> Response {
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let locale = request_locale(headers, get("ui_locales"));

    let hinted = match verified_hint(state, locale, get("id_token_hint")).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let client_id = match (hinted.client.as_deref(), get("client_id")) {
        (Some(h), Some(c)) if h != c => {
            return invalid_request(state, locale, "client_id does not match id_token_hint.")
        }
        (Some(h), _) => Some(h),
        (None, c) => c,
    };
    let redirect =
        match post_logout_redirect(state, locale, client_id, get("post_logout_redirect_uri")) {
            Ok(r) => r,
            Err(r) => return r,
        };

    let session_cookie = cookies::get(headers, cookies::SESSION);
    let csrf = state
        .cookie_key
        .sign_hex(format!("logout:{}", session_cookie.unwrap_or("")).as_bytes());
    // A hint confirms the logout only for the user it names: anyone's own ID token
    // must not sign someone else out from a third-party page.
    let session_user = match live_session_user(state, locale, session_cookie).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let hint_matches =
        hinted.client.is_some() && (session_user.is_none() || session_user == hinted.subject);
    let confirmed = hint_matches
        || (confirmed_post
            && get("csrf").is_some_and(|c| {
                usher_domain::flow::constant_time_eq(c.as_bytes(), csrf.as_bytes())
            }));
    if !confirmed {
        return confirm_page(
            state,
            locale,
            Confirm {
                csrf: &csrf,
                post_logout_redirect_uri: redirect,
                client_id,
                state: get("state"),
            },
        );
    }
    finish_logout(state, locale, session_cookie, redirect, get("state")).await
}

/// The logout request is invalid: shown as a page, since no redirect URI is trusted.
fn invalid_request(state: &AppState, locale: &str, description: &str) -> Response {
    error_page(
        state,
        locale,
        PageError::BadRequest {
            message_key: "error.invalid_authorization_request",
            args: vec![("description", description.to_owned())],
        },
    )
}

/// Whom an `id_token_hint` names: the client it was issued to and its subject.
#[derive(Default)]
struct Hinted {
    client: Option<String>,
    subject: Option<String>,
}

/// Reads the `id_token_hint`, if any. The hint's signature must be ours; its expiry
/// does not matter here.
async fn verified_hint(
    state: &AppState,
    locale: &str,
    hint: Option<&str>,
) -> Result<Hinted, Response> {
    let Some(hint) = hint else {
        return Ok(Hinted::default());
    };
    // An ID token, not an access token (`at+jwt`) passed off as one.
    let is_id_token = decode_unverified(hint)
        .ok()
        .is_some_and(|(header, _)| header.get("typ").and_then(Value::as_str) == Some("JWT"));
    if !is_id_token {
        return Err(invalid_request(
            state,
            locale,
            "id_token_hint is not a valid ID token from this server.",
        ));
    }
    let keyring = match state.keys.keyring().await {
        Ok(k) => k,
        Err(e) => return Err(error_page(state, locale, state.engine.internal(e))),
    };
    match verify_jwt(
        hint,
        &keyring.published,
        &[Algorithm::ES256, Algorithm::RS256],
    ) {
        Ok(claims)
            if claims.get("iss").and_then(Value::as_str)
                == Some(state.settings.issuer.as_str()) =>
        {
            Ok(Hinted {
                client: claims.get("aud").and_then(Value::as_str).map(str::to_owned),
                subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            })
        }
        _ => Err(invalid_request(
            state,
            locale,
            "id_token_hint is not a valid ID token from this server.",
        )),
    }
}

/// Where to send the browser afterwards: only a URI the client registered for it,
/// so that the logout endpoint is no open redirector.
#[allow(
    clippy::result_large_err,
    reason = "the error is the page to answer, returned at once by the one caller"
)]
fn post_logout_redirect<'a>(
    state: &AppState,
    locale: &str,
    client_id: Option<&str>,
    uri: Option<&'a str>,
) -> Result<Option<&'a str>, Response> {
    let Some(uri) = uri else {
        return Ok(None);
    };
    let tenant = state.tenant();
    let app = client_id.and_then(|c| tenant.application(c));
    match app {
        Some(app) if app.has_post_logout_redirect_uri(uri) => Ok(Some(uri)),
        Some(_) => Err(invalid_request(
            state,
            locale,
            "post_logout_redirect_uri is not registered for this client.",
        )),
        None => Err(invalid_request(
            state,
            locale,
            "post_logout_redirect_uri needs id_token_hint or client_id.",
        )),
    }
}

/// The user of this browser's single sign-on session, if it has a live one.
async fn live_session_user(
    state: &AppState,
    locale: &str,
    session_cookie: Option<&str>,
) -> Result<Option<String>, Response> {
    match session_cookie {
        Some(token) => match state.store.session(&sha256_hex(token.as_bytes())).await {
            Ok(s) => Ok(s.filter(|s| s.ended_at.is_none()).map(|s| s.user_id)),
            Err(e) => Err(error_page(state, locale, state.engine.internal(e))),
        },
        None => Ok(None),
    }
}

/// What the confirmation page carries through to the confirming `POST`.
struct Confirm<'a> {
    csrf: &'a str,
    post_logout_redirect_uri: Option<&'a str>,
    client_id: Option<&'a str>,
    state: Option<&'a str>,
}

/// Asks the user to confirm: without a hint naming them, a third-party page must not
/// be able to sign them out.
fn confirm_page(state: &AppState, locale: &str, confirm: Confirm<'_>) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        csrf: &'a str,
        post_logout_redirect_uri: Option<&'a str>,
        client_id: Option<&'a str>,
        state: Option<&'a str>,
    }
    let ctx = Ctx {
        title_key: "logout_confirm.title",
        errors: Vec::new(),
        notice: None,
        csrf: confirm.csrf,
        post_logout_redirect_uri: confirm.post_logout_redirect_uri,
        client_id: confirm.client_id,
        state: confirm.state,
    };
    render(state, StatusCode::OK, "logout_confirm.html", locale, &ctx)
}

/// Ends this browser's session and clears its cookie, then goes back to the client's
/// registered URI (with its `state`) or shows that the user is signed out.
async fn finish_logout(
    state: &AppState,
    locale: &str,
    session_cookie: Option<&str>,
    redirect: Option<&str>,
    client_state: Option<&str>,
) -> Response {
    if let Some(token) = session_cookie {
        if let Err(e) = state
            .store
            .end_session(&sha256_hex(token.as_bytes()), state.clock.now())
            .await
        {
            return error_page(state, locale, state.engine.internal(e));
        }
    }
    let mut response = match redirect {
        Some(uri) => {
            let params: Vec<(&str, &str)> =
                client_state.map(|s| vec![("state", s)]).unwrap_or_default();
            see_other(&append_query(uri, &params))
        }
        None => {
            #[derive(Serialize)]
            struct Ctx {
                title_key: &'static str,
                errors: Vec<SummaryError>,
                notice: Option<String>,
            }
            render(
                state,
                StatusCode::OK,
                "signed_out.html",
                locale,
                &Ctx {
                    title_key: "signed_out.title",
                    errors: Vec::new(),
                    notice: None,
                },
            )
        }
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        cookies::clear(cookies::SESSION, state.settings.secure_cookies()),
    );
    response
}
