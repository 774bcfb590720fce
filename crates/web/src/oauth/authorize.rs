//! `GET|POST /authorize`: validates the authorization request (RFC 6749 §4.1.1, OIDC
//! Core §3.1.2.1), signs the browser in at once when it has a session, and otherwise
//! starts a flow.
//!
//! Errors about the client or the redirect URI are shown as a page: redirecting to an
//! unverified URI would make Usher an open redirector. Every later error goes back to
//! the application.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::Response,
    Extension,
};
use chrono::Duration;
use usher_domain::{AccountAction, Application, AuthorizationRequest, Prompt, UserFlow};
use usher_oidc::{crypto::sha256_hex, pkce};
use usher_signup::Issue;
use usher_storage::BrowserSession;

use super::error_redirect_url;
use crate::{
    cookies,
    pages::{error_page, request_locale, respond, see_other, PageError},
    state::AppState,
    throttle::ClientAddress,
};

/// Upper bounds on parameter sizes: generous for real clients, small enough that a
/// flow row stays small.
const MAX_STATE: usize = 2048;
const MAX_NONCE: usize = 512;
const MAX_LOGIN_HINT: usize = 254;
const MAX_UI_LOCALES: usize = 256;
const MAX_SCOPE: usize = 1024;

pub async fn get(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(
        &state,
        &headers,
        query.as_deref().unwrap_or("").as_bytes(),
        client,
    )
    .await
}

pub async fn post(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddress>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(&state, &headers, &body, client).await
}

/// Why a request is refused, to be sent back to the client.
struct Refusal {
    error: &'static str,
    description: String,
}

fn refuse(error: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        error,
        description: description.into(),
    }
}

/// Where refusals go once the client's redirect URI is verified: back to the
/// application, with its `state` (RFC 6749 §4.1.2.1).
struct BackToClient<'a> {
    redirect_uri: &'a str,
    client_state: Option<&'a str>,
    issuer: &'a str,
}

impl BackToClient<'_> {
    fn send(&self, r: Refusal) -> Response {
        // The state goes back only if it is sane; an oversized one is the error.
        let s = self.client_state.filter(|s| s.len() <= MAX_STATE);
        see_other(&error_redirect_url(
            self.redirect_uri,
            r.error,
            &r.description,
            s,
            self.issuer,
        ))
    }
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    raw: &[u8],
    client: ClientAddress,
) -> Response {
    let (params, duplicate) = parse_params(raw);
    let locale = request_locale(headers, params.get("ui_locales").map(String::as_str));
    let (app, redirect_uri) = match verified_client(state, locale, &params) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let back = BackToClient {
        redirect_uri,
        client_state: params.get("state").map(String::as_str),
        issuer: &state.settings.issuer,
    };
    if let Some(name) = duplicate {
        return back.send(refuse(
            "invalid_request",
            format!("The parameter {name} was given more than once."),
        ));
    }
    let request = match validate(&params, &app, headers) {
        Ok(r) => r,
        Err(r) => return back.send(r),
    };
    let Some(user_flow) = state.tenant().user_flow(&app.user_flow_id).cloned() else {
        return back.send(refuse(
            "server_error",
            "The application's user flow is not configured.",
        ));
    };

    // A password only resets where the user flow has local accounts.
    if request.account_action.is_some_and(|a| {
        matches!(
            a,
            AccountAction::ResetPassword | AccountAction::ChangePassword
        )
    }) && !user_flow.allows_local_accounts()
    {
        return back.send(refuse(
            "invalid_request",
            "The application's user flow has no accounts with passwords.",
        ));
    }

    // Single sign-on: a live session answers at once unless the client asks otherwise.
    let session = match sso_session(state, locale, headers, &params, &user_flow).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(action) = request.account_action {
        // A reset is for someone who cannot sign in: it never uses a session. The
        // other actions run in the session when there is one, else after a sign-in.
        let session = session.filter(|_| action.needs_sign_in() && request.prompt.is_none());
        return start_flow(state, headers, locale, request, (&app, &user_flow), session).await;
    }
    if let Some(session) = session.filter(|_| matches!(request.prompt, None | Some(Prompt::None))) {
        if let Some(answer) = answer_from_session(
            state,
            locale,
            &request,
            (&user_flow, &app),
            &session,
            client,
        )
        .await
        {
            return answer;
        }
    }
    if request.prompt == Some(Prompt::None) {
        return back.send(refuse("login_required", "The user is not signed in."));
    }
    start_flow(state, headers, locale, request, (&app, &user_flow), None).await
}

/// The request's parameters, and the name of one given more than once: that is an
/// error (RFC 6749 §3.1), but one to send back only once the client is known.
fn parse_params(raw: &[u8]) -> (BTreeMap<String, String>, Option<String>) {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicate = None;
    for (k, v) in url::form_urlencoded::parse(raw) {
        if params.insert(k.to_string(), v.into_owned()).is_some() {
            duplicate = Some(k.into_owned());
        }
    }
    (params, duplicate)
}

/// An invalid request shown as a page, for errors that cannot go back to the client.
fn bad_request_page(state: &AppState, locale: &str, description: &str) -> Response {
    error_page(
        state,
        locale,
        PageError::BadRequest {
            message_key: "error.invalid_authorization_request",
            args: vec![("description", description.to_owned())],
        },
    )
}

/// The client and the redirect URI it registered. Until both are known, errors are a
/// page: redirecting to an unverified URI would make Usher an open redirector.
#[allow(
    clippy::result_large_err,
    reason = "the error is the page to answer, returned at once by the one caller"
)]
fn verified_client<'a>(
    state: &AppState,
    locale: &str,
    params: &'a BTreeMap<String, String>,
) -> Result<(Application, &'a str), Response> {
    let Some(client_id) = params.get("client_id").filter(|c| !c.is_empty()) else {
        refused(params, "client_id is missing");
        return Err(bad_request_page(state, locale, "client_id is missing."));
    };
    let Some(app) = state.tenant().application(client_id).cloned() else {
        refused(params, "no application has this client_id");
        return Err(error_page(
            state,
            locale,
            PageError::BadRequest {
                message_key: "error.unknown_client",
                args: vec![],
            },
        ));
    };
    let Some(redirect_uri) = params
        .get("redirect_uri")
        .map(String::as_str)
        .filter(|r| !r.is_empty())
    else {
        refused(params, "redirect_uri is missing");
        return Err(bad_request_page(state, locale, "redirect_uri is missing."));
    };
    if !app.has_redirect_uri(redirect_uri) {
        refused(
            params,
            "the redirect_uri is not one the application registered",
        );
        return Err(error_page(
            state,
            locale,
            PageError::BadRequest {
                message_key: "error.invalid_redirect_uri",
                args: vec![],
            },
        ));
    }
    Ok((app, redirect_uri))
}

/// The log line of a request refused with a page: the person only sees that the
/// link is wrong; the operator needs to know which client and redirect URI it named.
/// Both are the caller's text: logged escaped and cut short.
fn refused(params: &BTreeMap<String, String>, reason: &str) {
    let cut =
        |name: &str| -> Option<String> { params.get(name).map(|v| v.chars().take(200).collect()) };
    tracing::info!(
        client_id = ?cut("client_id"),
        redirect_uri = ?cut("redirect_uri"),
        reason,
        "authorization request refused"
    );
}

/// The browser's session, if it may answer this request without a sign-in: live,
/// recent enough for `max_age`, and made with a provider the user flow offers.
async fn sso_session(
    state: &AppState,
    locale: &str,
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
    user_flow: &UserFlow,
) -> Result<Option<BrowserSession>, Response> {
    let now = state.clock.now();
    let session = match cookies::get(headers, cookies::SESSION) {
        Some(token) => match state.store.session(&sha256_hex(token.as_bytes())).await {
            Ok(s) => s.filter(|s| s.ended_at.is_none() && s.expires_at > now),
            Err(e) => return Err(error_page(state, locale, state.engine.internal(e))),
        },
        None => None,
    };
    let max_age = params.get("max_age").and_then(|m| m.parse::<i64>().ok());
    let session =
        session.filter(|s| max_age.is_none_or(|m| s.auth_time + Duration::seconds(m) >= now));
    // A session answers only for a user flow that offers the provider it was made
    // with: an application whose flow allows only its own provider must not take a
    // user signed in elsewhere. A session that names no provider answers for none.
    Ok(session.filter(|s| {
        s.identity_provider.as_deref().is_some_and(|p| {
            user_flow
                .identity_providers
                .iter()
                .any(|offered| offered.eq_ignore_ascii_case(p))
        })
    }))
}

/// Single sign-on: issues the code for the session's user at once. `None` when that
/// user no longer exists or is disabled, so that the request goes on as if there were
/// no session.
async fn answer_from_session(
    state: &AppState,
    locale: &str,
    request: &AuthorizationRequest,
    (user_flow, app): (&UserFlow, &Application),
    session: &BrowserSession,
    client: ClientAddress,
) -> Option<Response> {
    match state.store.user_by_id(&session.user_id).await {
        Ok(Some(user)) if user.account_enabled => {
            let flow_id = state.new_id();
            let next = state
                .engine
                .single_sign_on(Issue {
                    request,
                    user_flow,
                    app,
                    user: &user,
                    auth_time: session.auth_time,
                    session_id: Some(&session.id_hash),
                    flow_id: &flow_id,
                    locale,
                    client,
                })
                .await;
            Some(respond(state, next))
        }
        Ok(_) => None,
        Err(e) => Some(error_page(state, locale, state.engine.internal(e))),
    }
}

/// A new flow, bound to this browser by its binding cookie (set now if it has none),
/// so that another browser cannot finish it; the browser goes to its first page —
/// with `session` (an account action in a signed-in browser), the action's.
async fn start_flow(
    state: &AppState,
    headers: &HeaderMap,
    locale: &str,
    request: AuthorizationRequest,
    (app, user_flow): (&Application, &UserFlow),
    session: Option<BrowserSession>,
) -> Response {
    let browser = crate::pages::browser_token(state, headers);
    let browser_token = browser.0.clone();
    let user = match &session {
        Some(s) => match state.store.user_by_id(&s.user_id).await {
            Ok(u) => u.filter(|u| u.account_enabled),
            Err(e) => return error_page(state, locale, state.engine.internal(e)),
        },
        None => None,
    };
    let started = match (user, session) {
        (Some(user), Some(session)) => {
            state
                .engine
                .start_signed_in(
                    request,
                    (app, user_flow),
                    locale,
                    &browser_token,
                    (&user, &session),
                )
                .await
        }
        _ => {
            state
                .engine
                .start(request, app, user_flow, locale, &browser_token)
                .await
        }
    };
    let flow_id = match started {
        Ok(id) => id,
        Err(e) => return error_page(state, locale, e),
    };
    crate::pages::to_new_flow(state, &flow_id, browser)
}

/// A parameter's value; an empty one counts as absent (RFC 6749 §3.1).
fn param<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Checks everything after the client and redirect URI.
fn validate(
    params: &BTreeMap<String, String>,
    app: &Application,
    headers: &HeaderMap,
) -> Result<AuthorizationRequest, Refusal> {
    let get = |k: &str| param(params, k);
    check_sizes(params)?;
    check_supported(params)?;
    let scope = requested_scope(params)?;
    let prompt = requested_prompt(params)?;
    let code_challenge = requested_code_challenge(params, app)?;
    let account_action = requested_account_action(params, prompt)?;
    if let Some(m) = get("max_age") {
        if m.parse::<u32>().is_err() {
            return Err(refuse(
                "invalid_request",
                "max_age must be a number of seconds.",
            ));
        }
    }
    Ok(AuthorizationRequest {
        client_id: app.client_id.clone(),
        redirect_uri: params.get("redirect_uri").cloned().unwrap_or_default(),
        scope,
        state: get("state").map(str::to_owned),
        nonce: get("nonce").map(str::to_owned),
        code_challenge,
        ui_locales: get("ui_locales").map(str::to_owned),
        login_hint: get("login_hint").map(str::to_owned),
        prompt,
        account_action,
        browser_language: crate::i18n::browser_language(
            headers
                .get(axum::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        ),
    })
}

/// `usher_action`: what the person comes to do to their account instead of signing
/// in or up. Every action shows pages, so `prompt=none` cannot go with one.
fn requested_account_action(
    params: &BTreeMap<String, String>,
    prompt: Option<Prompt>,
) -> Result<Option<AccountAction>, Refusal> {
    let Some(value) = param(params, "usher_action") else {
        return Ok(None);
    };
    let Some(action) = AccountAction::parse(value) else {
        let known: Vec<_> = AccountAction::ALL.iter().map(|a| a.as_str()).collect();
        return Err(refuse(
            "invalid_request",
            format!("usher_action must be one of {}.", known.join(", ")),
        ));
    };
    if prompt == Some(Prompt::None) {
        return Err(refuse(
            "invalid_request",
            "usher_action shows pages, so it cannot be combined with prompt=none.",
        ));
    }
    Ok(Some(action))
}

/// Bounds the parameters the flow keeps, so that a flow row stays small.
fn check_sizes(params: &BTreeMap<String, String>) -> Result<(), Refusal> {
    for (name, max) in [
        ("state", MAX_STATE),
        ("nonce", MAX_NONCE),
        ("login_hint", MAX_LOGIN_HINT),
        ("ui_locales", MAX_UI_LOCALES),
        ("scope", MAX_SCOPE),
    ] {
        if param(params, name).is_some_and(|v| v.len() > max) {
            return Err(refuse(
                "invalid_request",
                format!("{name} is longer than {max} bytes."),
            ));
        }
    }
    Ok(())
}

/// Usher supports the authorization code flow with query responses only, and no
/// request objects (OIDC Core §6).
fn check_supported(params: &BTreeMap<String, String>) -> Result<(), Refusal> {
    let get = |k: &str| param(params, k);
    if get("request").is_some() {
        return Err(refuse(
            "request_not_supported",
            "Request objects are not supported.",
        ));
    }
    if get("request_uri").is_some() {
        return Err(refuse(
            "request_uri_not_supported",
            "request_uri is not supported.",
        ));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(refuse("invalid_request", "response_type is missing.")),
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ))
        }
    }
    if let Some(mode) = get("response_mode") {
        if mode != "query" {
            return Err(refuse(
                "invalid_request",
                "Only response_mode=query is supported.",
            ));
        }
    }
    Ok(())
}

/// The scope: it must include `openid`, and each value must be a valid scope token
/// (RFC 6749 §3.3).
fn requested_scope(params: &BTreeMap<String, String>) -> Result<Vec<String>, Refusal> {
    let scope: Vec<String> = param(params, "scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if !scope.iter().any(|s| s == "openid") {
        return Err(refuse("invalid_scope", "The scope must include openid."));
    }
    if scope.iter().any(|s| {
        !s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    }) {
        return Err(refuse(
            "invalid_scope",
            "The scope contains invalid characters.",
        ));
    }
    Ok(scope)
}

/// The `prompt` that matters (OIDC Core §3.1.2.1): `none`, `login` or `create`; the
/// last of these wins.
fn requested_prompt(params: &BTreeMap<String, String>) -> Result<Option<Prompt>, Refusal> {
    let mut prompt = None;
    if let Some(p) = param(params, "prompt") {
        let values: Vec<&str> = p.split(' ').filter(|s| !s.is_empty()).collect();
        if values.contains(&"none") && values.len() > 1 {
            return Err(refuse(
                "invalid_request",
                "prompt=none cannot be combined with other values.",
            ));
        }
        for v in values {
            prompt = match v {
                "none" => Some(Prompt::None),
                "login" => Some(Prompt::Login),
                "create" => Some(Prompt::Create),
                // Usher never asks for consent or an account choice; these are met.
                "consent" | "select_account" => prompt,
                other => {
                    return Err(refuse(
                        "invalid_request",
                        format!("Unknown prompt value {other:?}."),
                    ))
                }
            };
        }
    }
    Ok(prompt)
}

/// The PKCE challenge (RFC 7636 §4.3): S256 only, and required of public clients.
fn requested_code_challenge(
    params: &BTreeMap<String, String>,
    app: &Application,
) -> Result<Option<String>, Refusal> {
    let get = |k: &str| param(params, k);
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (Some(c), Some("S256")) if pkce::is_valid_challenge(c) => Some(c.to_owned()),
        (Some(_), Some("S256")) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge is not a valid S256 challenge.",
            ))
        }
        (Some(_), None | Some("plain")) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256.",
            ))
        }
        (_, Some(_)) if get("code_challenge").is_none() => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method was given without code_challenge.",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(refuse(
                "invalid_request",
                "code_challenge_method must be S256.",
            ))
        }
        (None, _) => None,
    };
    if app.is_public() && code_challenge.is_none() {
        return Err(refuse(
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required for this client.",
        ));
    }
    Ok(code_challenge)
}
