//! Signing in to the console through Usher's own OpenID Connect flow, as the
//! built-in public application `usher-console` would from outside: `/console/login`
//! sends the browser to `/authorize` with state, nonce and PKCE (kept in a sealed
//! cookie, as `/try` does), and `/console/callback` redeems the code in-process,
//! verifies the ID token against the published keys, requires the role
//! `Usher.Admin` and starts a console session. `/console/logout` ends it.

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use usher_domain::{Application, User};
use usher_oidc::{
    crypto::sha256_hex,
    jose::{verify_jwt, Algorithm},
    pkce,
};
use usher_storage::BrowserSession;

use super::{
    clear_cookie, continue_page, cookie, forbidden_page, internal, message_page, msg, query_map,
    render, session_hash, Link, Section, View, ADMIN_ROLE, CLIENT_ID, LOGIN_COOKIE, SESSION_COOKIE,
    SESSION_HOURS,
};
use crate::{
    cookies,
    oauth::{append_query, token::exchange_code},
    pages::{request_locale, see_other},
    state::AppState,
};

/// A sign-in has ten minutes to come back.
const LOGIN_SECONDS: i64 = 600;

#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// The console page to show after the sign-in.
    next: String,
}

/// Only console pages are places to come back to: anything else (another site,
/// `//host`, a backslash some browsers read as a slash) becomes the overview.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && n.len() <= 1000
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/console/callback", state.settings.issuer)
}

/// The console's application is not in the tenant. The page says why: the tenant has
/// no user flow it could sign in with, or it has one and the application itself was
/// removed (which a restart repairs).
fn unavailable(state: &AppState, locale: &str) -> Response {
    let has_local_flow = state
        .tenant()
        .user_flows
        .iter()
        .any(usher_domain::UserFlow::allows_local_accounts);
    let body = if has_local_flow {
        "console.unavailable.removed"
    } else {
        "console.unavailable.body"
    };
    message_page(
        state,
        locale,
        None,
        StatusCode::SERVICE_UNAVAILABLE,
        "console.unavailable.title",
        msg(state, locale, body),
        None,
    )
}

/// `GET /console/login[?next=…][&prompt=login]`: off to Usher's sign-in.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let locale = request_locale(&headers, None);
    if state.tenant().application(CLIENT_ID).is_none() {
        return unavailable(&state, locale);
    }
    let q = query_map(query.as_deref());
    let pending = Pending {
        state: state.new_token(),
        nonce: state.new_token(),
        verifier: state.new_token(),
        next: safe_next(q.get("next").map(String::as_str)),
    };
    let redirect_uri = redirect_uri(&state);
    let challenge = pkce::challenge_s256(&pending.verifier);
    let mut params = vec![
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("scope", "openid"),
        ("redirect_uri", redirect_uri.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", pending.state.as_str()),
        ("nonce", pending.nonce.as_str()),
    ];
    // After "not an administrator", signing in as someone else must not silently
    // reuse the single sign-on session of the account just refused.
    if q.get("prompt").map(String::as_str) == Some("login") {
        params.push(("prompt", "login"));
    }
    let ui_locales = locale.to_owned();
    params.push(("ui_locales", ui_locales.as_str()));
    let mut r = see_other(&append_query("/authorize", &params));
    r.headers_mut().append(
        header::SET_COOKIE,
        // Lax: it must come back with the redirect from the sign-in pages, which may
        // have passed through an upstream identity provider's site.
        cookie(
            LOGIN_COOKIE,
            &cookies::seal(&state.cookie_key, "console-login", &pending),
            LOGIN_SECONDS,
            "Lax",
            state.settings.secure_cookies(),
        ),
    );
    r
}

/// `GET /console/callback?code=…&state=…`: redeem, verify, check the role, start
/// the console session.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let locale = request_locale(&headers, None);
    let params = query_map(query.as_deref());
    let Some(app) = state.tenant().application(CLIENT_ID).cloned() else {
        return unavailable(&state, locale);
    };
    let pending = cookies::get(&headers, LOGIN_COOKIE)
        .and_then(|c| cookies::unseal::<Pending>(&state.cookie_key, "console-login", c));
    let Some(pending) = pending.filter(|p| params.get("state") == Some(&p.state)) else {
        return sign_in_failed(&state, locale, "console.sign_in_failed.state", None);
    };
    if let Some(error) = params.get("error") {
        return sign_in_failed(
            &state,
            locale,
            "console.sign_in_failed.error",
            Some(params.get("error_description").unwrap_or(error)),
        );
    }
    let Some(code) = params.get("code") else {
        return sign_in_failed(&state, locale, "console.sign_in_failed.state", None);
    };
    let claims = match verified_claims(&state, locale, &app, code, &pending).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let user = match administrator(&state, locale, &claims).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    start_session(&state, locale, &user, &pending.next).await
}

/// The sign-in did not come back as it should: say why, offer to start again, and
/// drop the sign-in's cookie so the next attempt starts clean.
fn sign_in_failed(state: &AppState, locale: &str, key: &str, detail: Option<&str>) -> Response {
    let mut message = msg(state, locale, key);
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        message = format!("{message} ({d})");
    }
    let mut r = message_page(
        state,
        locale,
        None,
        StatusCode::BAD_REQUEST,
        "console.sign_in_failed.title",
        message,
        Some(Link {
            href: "/console/login".into(),
            label: msg(state, locale, "console.sign_in_failed.again"),
        }),
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(LOGIN_COOKIE, state.settings.secure_cookies()),
    );
    r
}

/// Redeems the code as the console's application, with the PKCE verifier this
/// browser kept, and verifies the ID token as a relying party must: signed with a
/// published key, for this sign-in's nonce, the console and this issuer.
async fn verified_claims(
    state: &AppState,
    locale: &str,
    app: &Application,
    code: &str,
    pending: &Pending,
) -> Result<Map<String, Value>, Response> {
    let tokens = match exchange_code(
        state,
        app,
        code,
        &redirect_uri(state),
        Some(&pending.verifier),
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            return Err(sign_in_failed(
                state,
                locale,
                "console.sign_in_failed.error",
                Some(&e.description),
            ))
        }
    };
    let Some(id_token) = tokens.id_token else {
        return Err(sign_in_failed(
            state,
            locale,
            "console.sign_in_failed.token",
            None,
        ));
    };
    let keyring = match state.keys.keyring().await {
        Ok(k) => k,
        Err(e) => return Err(internal(state, locale, None, e)),
    };
    let claims = match verify_jwt(
        &id_token,
        &keyring.published,
        &[Algorithm::ES256, Algorithm::RS256],
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: the ID token does not verify");
            return Err(sign_in_failed(
                state,
                locale,
                "console.sign_in_failed.token",
                None,
            ));
        }
    };
    if claims.get("nonce").and_then(Value::as_str) != Some(pending.nonce.as_str())
        || claims.get("aud").and_then(Value::as_str) != Some(CLIENT_ID)
        || claims.get("iss").and_then(Value::as_str) != Some(state.settings.issuer.as_str())
    {
        tracing::warn!("console sign-in: the ID token's nonce, audience or issuer is wrong");
        return Err(sign_in_failed(
            state,
            locale,
            "console.sign_in_failed.token",
            None,
        ));
    }
    Ok(claims)
}

/// The user the ID token names, if they may use the console: an enabled account
/// with the role `Usher.Admin`. Anyone else is refused with the forbidden page.
async fn administrator(
    state: &AppState,
    locale: &str,
    claims: &Map<String, Value>,
) -> Result<User, Response> {
    let Some(user_id) = claims.get("sub").and_then(Value::as_str) else {
        return Err(sign_in_failed(
            state,
            locale,
            "console.sign_in_failed.token",
            None,
        ));
    };
    let user = match state.store.user_by_id(user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(sign_in_failed(
                state,
                locale,
                "console.sign_in_failed.token",
                None,
            ))
        }
        Err(e) => return Err(internal(state, locale, None, e)),
    };
    let roles = match state.store.user_roles(&user.id).await {
        Ok(r) => r,
        Err(e) => return Err(internal(state, locale, None, e)),
    };
    let refused = if !user.account_enabled {
        Some("console.forbidden.disabled")
    } else if !roles.iter().any(|r| r == ADMIN_ROLE) {
        Some("console.forbidden.not_admin")
    } else {
        None
    };
    if let Some(key) = refused {
        tracing::info!(user_id = %user.id, "console sign-in refused: not an administrator");
        let mut r = forbidden_page(state, locale, key);
        r.headers_mut().append(
            header::SET_COOKIE,
            clear_cookie(LOGIN_COOKIE, state.settings.secure_cookies()),
        );
        return Err(r);
    }
    Ok(user)
}

/// Starts the administrator's console session and moves on to the page the sign-in
/// was for.
async fn start_session(state: &AppState, locale: &str, user: &User, next: &str) -> Response {
    let secure = state.settings.secure_cookies();
    let now = state.clock.now();
    let token = state.new_token();
    let session = BrowserSession {
        id_hash: session_hash(&token),
        user_id: user.id.clone(),
        auth_time: now,
        created_at: now,
        expires_at: now + chrono::Duration::hours(SESSION_HOURS),
        ended_at: None,
        // The console's own session answers no application's single sign-on.
        identity_provider: None,
    };
    if let Err(e) = state.store.insert_session(&session).await {
        return internal(state, locale, None, e);
    }
    tracing::info!(user_id = %user.id, "administrator signed in to the console");
    // A page that moves on by itself rather than a redirect: a SameSite=Strict cookie
    // set at the end of a redirect chain that began on another site (an upstream
    // identity provider) would not be sent with the next redirect, and the console
    // would send the browser to sign in again. A page's own navigation is same-site.
    let mut r = continue_page(
        state,
        locale,
        "console.signed_in.title",
        Link {
            href: next.to_owned(),
            label: msg(state, locale, "console.signed_in.continue"),
        },
    );
    r.headers_mut().append(
        header::SET_COOKIE,
        cookie(
            SESSION_COOKIE,
            &token,
            SESSION_HOURS * 3600,
            "Strict",
            secure,
        ),
    );
    r.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(LOGIN_COOKIE, secure));
    r
}

/// `POST /console/logout`: ends the console session and, when this browser's single
/// sign-on session is the same person's, that too: signing out of the console on a
/// shared computer must not leave the next person one click from it.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (admin, _) = match super::require_form(&state, &headers, &body, "/console").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = state.clock.now();
    let secure = state.settings.secure_cookies();
    let locale = request_locale(&headers, None);
    if let Err(e) = state.store.end_session(&admin.session_hash, now).await {
        return internal(&state, locale, Some(&admin), e);
    }
    let mut r = see_other("/console/signed-out");
    r.headers_mut()
        .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE, secure));
    if let Some(sso) = cookies::get(&headers, cookies::SESSION) {
        let hash = sha256_hex(sso.as_bytes());
        match state.store.session(&hash).await {
            Ok(Some(s)) if s.user_id == admin.user.id => {
                if let Err(e) = state.store.end_session(&hash, now).await {
                    tracing::warn!(error = %e, "could not end the single sign-on session");
                }
                r.headers_mut()
                    .append(header::SET_COOKIE, cookies::clear(cookies::SESSION, secure));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the single sign-on session"),
        }
    }
    tracing::info!(user_id = %admin.user.id, "administrator signed out of the console");
    r
}

#[derive(Serialize)]
struct SignedOut {
    message: String,
    link: Link,
    refresh: Option<u32>,
}

/// `GET /console/signed-out`.
pub async fn signed_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let locale = request_locale(&headers, None);
    let page = SignedOut {
        message: msg(&state, locale, "console.signed_out.body"),
        link: Link {
            href: "/console/login".into(),
            label: msg(&state, locale, "console.signed_out.again"),
        },
        refresh: None,
    };
    render(
        &state,
        locale,
        None,
        View::new(
            "console_message.html",
            "console.signed_out.title",
            Section::None,
        ),
        &page,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_places_to_come_back_to() {
        assert_eq!(
            safe_next(Some("/console/users?search=a")),
            "/console/users?search=a"
        );
        assert_eq!(safe_next(Some("/console")), "/console");
        for bad in [
            "https://evil.example/console",
            "//evil.example/console",
            "/consoleevil",
            "/console\\@evil",
            "/console/\nx",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }
}
