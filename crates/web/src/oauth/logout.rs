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
    let bad = |description: &str| {
        error_page(
            state,
            locale,
            PageError::BadRequest {
                message_key: "error.invalid_authorization_request",
                args: vec![("description", description.to_owned())],
            },
        )
    };

    // The hint's signature must be ours; its expiry does not matter here.
    let mut hinted_client = None;
    let mut hinted_subject = None;
    if let Some(hint) = get("id_token_hint") {
        // An ID token, not an access token (`at+jwt`) passed off as one.
        let is_id_token = decode_unverified(hint)
            .ok()
            .is_some_and(|(header, _)| header.get("typ").and_then(Value::as_str) == Some("JWT"));
        if !is_id_token {
            return bad("id_token_hint is not a valid ID token from this server.");
        }
        let keyring = match state.keys.keyring().await {
            Ok(k) => k,
            Err(e) => return error_page(state, locale, state.engine.internal(e)),
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
                hinted_client = claims.get("aud").and_then(Value::as_str).map(str::to_owned);
                hinted_subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
            }
            _ => return bad("id_token_hint is not a valid ID token from this server."),
        }
    }
    let client_id = match (hinted_client.as_deref(), get("client_id")) {
        (Some(h), Some(c)) if h != c => return bad("client_id does not match id_token_hint."),
        (Some(h), _) => Some(h.to_owned()),
        (None, c) => c.map(str::to_owned),
    };
    let tenant = state.tenant();
    let redirect = match get("post_logout_redirect_uri") {
        Some(uri) => {
            let app = client_id.as_deref().and_then(|c| tenant.application(c));
            match app {
                Some(app) if app.has_post_logout_redirect_uri(uri) => Some(uri.to_owned()),
                Some(_) => {
                    return bad("post_logout_redirect_uri is not registered for this client.")
                }
                None => return bad("post_logout_redirect_uri needs id_token_hint or client_id."),
            }
        }
        None => None,
    };

    let session_cookie = cookies::get(headers, cookies::SESSION);
    let csrf = state
        .cookie_key
        .sign_hex(format!("logout:{}", session_cookie.unwrap_or("")).as_bytes());
    // A hint confirms the logout only for the user it names: anyone's own ID token
    // must not sign someone else out from a third-party page.
    let session_user = match session_cookie {
        Some(token) => match state.store.session(&sha256_hex(token.as_bytes())).await {
            Ok(s) => s.filter(|s| s.ended_at.is_none()).map(|s| s.user_id),
            Err(e) => return error_page(state, locale, state.engine.internal(e)),
        },
        None => None,
    };
    let hint_matches =
        hinted_client.is_some() && (session_user.is_none() || session_user == hinted_subject);
    let confirmed = hint_matches
        || (confirmed_post
            && get("csrf").is_some_and(|c| {
                usher_domain::flow::constant_time_eq(c.as_bytes(), csrf.as_bytes())
            }));
    if !confirmed {
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
            csrf: &csrf,
            post_logout_redirect_uri: redirect.as_deref(),
            client_id: client_id.as_deref(),
            state: get("state"),
        };
        return render(state, StatusCode::OK, "logout_confirm.html", locale, &ctx);
    }

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
                get("state").map(|s| vec![("state", s)]).unwrap_or_default();
            see_other(&append_query(&uri, &params))
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
