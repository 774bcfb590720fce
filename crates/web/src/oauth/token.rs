//! `POST /token`: the authorization code, refresh token and client credentials grants
//! (RFC 6749 §4.1.3, §6, §4.4), with `client_secret_basic`, `client_secret_post`, and
//! PKCE for public clients. Codes and refresh tokens are single use; a replay revokes
//! the grant and so everything the first use issued.

use std::collections::BTreeMap;

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use usher_domain::{Application, ClientType, User};
use usher_oidc::{crypto::sha256_hex, jose::half_hash, pkce};
use usher_storage::{Grant, Redemption, RefreshToken};

use super::user_claims;
use crate::{state::AppState, throttle::ClientAddress};

/// Every core is hashing: the client should retry shortly (RFC 6749 §5.2 has no code
/// for it; `temporarily_unavailable` is the authorization endpoint's).
fn busy() -> TokenError {
    TokenError {
        error: "temporarily_unavailable",
        description: "The server is busy; try again in a moment.".into(),
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: Some(i64::from(crate::hasher::RETRY_AFTER_SECONDS)),
    }
}

/// The longest a grant's refresh tokens live, however often they are rotated.
const MAX_GRANT_LIFETIME: chrono::Duration = chrono::Duration::days(90);

/// A token endpoint error (RFC 6749 §5.2).
#[derive(Debug)]
pub struct TokenError {
    pub error: &'static str,
    pub description: String,
    status: StatusCode,
    retry_after: Option<i64>,
}

impl TokenError {
    pub(super) fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = match error {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            error,
            description: description.into(),
            status,
            retry_after: None,
        }
    }

    /// A rate limit refused the request: `429` with `Retry-After`.
    fn throttled(t: crate::throttle::Throttled) -> Self {
        Self {
            error: "temporarily_unavailable",
            description: format!(
                "Too many requests for this client; retry after {} seconds.",
                t.retry_after_seconds
            ),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(t.retry_after_seconds),
        }
    }

    pub(super) fn server(state: &AppState, e: impl std::fmt::Display) -> Self {
        let reference = state.new_id();
        tracing::error!(%reference, error = %e, "token endpoint failed");
        Self::new(
            "server_error",
            format!("Internal error (reference {reference})."),
        )
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"usher\""),
            );
        }
        no_store(r)
    }
}

pub(super) fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(client): Extension<ClientAddress>,
    body: Bytes,
) -> Response {
    match token(&state, &headers, client, &body).await {
        Ok(r) => no_store(Json(r).into_response()),
        Err(e) => e.into_response(),
    }
}

async fn token(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddress,
    body: &[u8],
) -> Result<TokenResponse, TokenError> {
    let form = parse_form(headers, body)?;
    let app = authenticate_client(state, headers, client, &form).await?;
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match get("grant_type") {
        Some("authorization_code") => {
            let code = get("code")
                .ok_or_else(|| TokenError::new("invalid_request", "code is missing."))?;
            let redirect_uri = get("redirect_uri")
                .ok_or_else(|| TokenError::new("invalid_request", "redirect_uri is missing."))?;
            exchange_code(state, &app, code, redirect_uri, get("code_verifier")).await
        }
        Some("refresh_token") => {
            let token = get("refresh_token")
                .ok_or_else(|| TokenError::new("invalid_request", "refresh_token is missing."))?;
            refresh(state, &app, token, get("scope")).await
        }
        Some("client_credentials") => client_credentials(state, &app).await,
        Some(_) => Err(TokenError::new(
            "unsupported_grant_type",
            "The grant type is not supported.",
        )),
        None => Err(TokenError::new("invalid_request", "grant_type is missing.")),
    }
}

/// The form of a token, revocation or introspection request: form-encoded, each
/// parameter once (RFC 6749 §3.2).
pub(super) fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, TokenError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(TokenError::new(
            "invalid_request",
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let mut form: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if form.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(TokenError::new(
                "invalid_request",
                format!("The parameter {k} was given more than once."),
            ));
        }
    }
    Ok(form)
}

/// Identifies and authenticates the client (RFC 6749 §2.3.1).
pub(super) async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddress,
    form: &BTreeMap<String, String>,
) -> Result<Application, TokenError> {
    let basic = basic_credentials(headers)?;
    let (client_id, secret) = presented_client(basic, form)?;
    let known = state.tenant().application(&client_id).cloned();
    let reservation =
        reserve_secret_attempt(state, client, &client_id, known.is_some(), secret.is_some())
            .await?;
    // Client ids are not secret (they travel in every authorization URL), so an
    // unknown one is refused at once: no Argon2 for whoever sends one.
    let Some(app) = known else {
        return Err(TokenError::new(
            "invalid_client",
            "Client authentication failed.",
        ));
    };
    verify_client_secret(state, app, secret, reservation).await
}

/// The id and secret of `client_secret_basic`, or `None` when the request has no
/// Authorization header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, TokenError> {
    match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) if v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v[6..].trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    TokenError::new("invalid_client", "The Basic credentials are malformed.")
                })?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                TokenError::new("invalid_client", "The Basic credentials are malformed.")
            })?;
            // Basic credentials are form-urlencoded first (RFC 6749 §2.3.1).
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Ok(Some((dec(id), dec(secret))))
        }
        Some(_) => Err(TokenError::new(
            "invalid_client",
            "Unsupported Authorization scheme.",
        )),
        None => Ok(None),
    }
}

/// The client id and secret the request presents, by one method only: Basic
/// credentials (`client_secret_basic`) or the form (`client_secret_post`, or a bare
/// `client_id` for a public client).
fn presented_client(
    basic: Option<(String, String)>,
    form: &BTreeMap<String, String>,
) -> Result<(String, Option<String>), TokenError> {
    let body_id = form.get("client_id").filter(|s| !s.is_empty());
    let body_secret = form.get("client_secret").filter(|s| !s.is_empty());
    match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => Err(TokenError::new(
            "invalid_request",
            "Use one client authentication method, not two.",
        )),
        (Some((id, _)), Some(b), _) if *b != id => Err(TokenError::new(
            "invalid_request",
            "client_id does not match the Basic credentials.",
        )),
        (Some((id, secret)), _, _) => Ok((id, Some(secret))),
        (None, Some(id), secret) => Ok((id.clone(), secret.cloned())),
        (None, None, _) => Err(TokenError::new(
            "invalid_client",
            "The client is not identified.",
        )),
    }
}

/// A presented secret is counted before it is checked (per client and source
/// address, so nobody can lock a client out from elsewhere; unknown client ids share
/// one count per address), and given back when it is right.
async fn reserve_secret_attempt(
    state: &AppState,
    client: ClientAddress,
    client_id: &str,
    known: bool,
    presents_secret: bool,
) -> Result<crate::throttle::Reservation, TokenError> {
    match (presents_secret, client.subject()) {
        (true, Some(address)) => {
            let subject = if known {
                format!("{client_id} {address}")
            } else {
                format!("unknown client {address}")
            };
            state
                .rate_reserve(&[(
                    usher_domain::Limit::ClientSecretFailuresPerAddress,
                    Some(subject.as_str()),
                )])
                .await
                .map_err(TokenError::throttled)
        }
        _ => Ok(crate::throttle::Reservation::default()),
    }
}

/// Authenticates a known client as its type demands: a public client has no secret
/// to present, a confidential one must present the secret it was registered with.
async fn verify_client_secret(
    state: &AppState,
    app: Application,
    secret: Option<String>,
    reservation: crate::throttle::Reservation,
) -> Result<Application, TokenError> {
    match (&app.client_type, secret) {
        (ClientType::Public, None) => Ok(app),
        (ClientType::Public, Some(_)) => Err(TokenError::new(
            "invalid_client",
            "This client is public and has no secret.",
        )),
        (ClientType::Confidential { .. }, None) => Err(TokenError::new(
            "invalid_client",
            "Client authentication failed.",
        )),
        (ClientType::Confidential { secret_hash }, Some(s)) => {
            let verified = state
                .client_secrets
                .verify(&app.client_id, &s, secret_hash)
                .await
                .map_err(|_| busy())?;
            if verified {
                state.rate_release(reservation).await;
                Ok(app)
            } else {
                Err(TokenError::new(
                    "invalid_client",
                    "Client authentication failed.",
                ))
            }
        }
    }
}

/// Redeems an authorization code. Also used in-process by the demo at `/try`.
pub async fn exchange_code(
    state: &AppState,
    app: &Application,
    code: &str,
    redirect_uri: &str,
    code_verifier: Option<&str>,
) -> Result<TokenResponse, TokenError> {
    let now = state.clock.now();
    let invalid = || {
        TokenError::new(
            "invalid_grant",
            "The authorization code is invalid, expired or already used.",
        )
    };
    let redeemed = state
        .store
        .redeem_authorization_code(&sha256_hex(code.as_bytes()), now)
        .await
        .map_err(|e| TokenError::server(state, e))?;
    let code = match redeemed {
        None => return Err(invalid()),
        Some(Redemption::Replayed(code)) => {
            tracing::warn!(client_id = %code.client_id, grant_id = %code.grant_id, "authorization code replayed: revoking its grant");
            state
                .store
                .revoke_grant(&code.grant_id, now)
                .await
                .map_err(|e| TokenError::server(state, e))?;
            return Err(invalid());
        }
        Some(Redemption::Fresh(code)) => code,
    };
    if code.client_id != app.client_id || code.expires_at <= now {
        return Err(invalid());
    }
    if code.redirect_uri != redirect_uri {
        return Err(TokenError::new(
            "invalid_grant",
            "redirect_uri does not match the authorization request.",
        ));
    }
    match (&code.code_challenge, code_verifier) {
        (Some(challenge), Some(verifier)) if pkce::verify_s256(verifier, challenge) => {}
        (Some(_), _) => {
            return Err(TokenError::new(
                "invalid_grant",
                "The PKCE code_verifier does not match.",
            ))
        }
        (None, Some(_)) => {
            return Err(TokenError::new(
                "invalid_grant",
                "code_verifier was given but the request had no code_challenge.",
            ))
        }
        (None, None) => {}
    }
    let grant = live_grant(state, &code.grant_id).await?;
    let user = live_user(state, &grant.user_id).await?;
    issue(
        state,
        app,
        &grant,
        &user,
        code.nonce.as_deref(),
        code.extra_claims,
        grant.scope.iter().any(|s| s == "offline_access"),
    )
    .await
}

async fn refresh(
    state: &AppState,
    app: &Application,
    token: &str,
    scope: Option<&str>,
) -> Result<TokenResponse, TokenError> {
    let now = state.clock.now();
    let invalid = || {
        TokenError::new(
            "invalid_grant",
            "The refresh token is invalid, expired or already used.",
        )
    };
    let redeemed = state
        .store
        .redeem_refresh_token(&sha256_hex(token.as_bytes()), now)
        .await
        .map_err(|e| TokenError::server(state, e))?;
    let token = match redeemed {
        None => return Err(invalid()),
        Some(Redemption::Replayed(t)) => {
            tracing::warn!(grant_id = %t.grant_id, "refresh token replayed: revoking its grant");
            state
                .store
                .revoke_grant(&t.grant_id, now)
                .await
                .map_err(|e| TokenError::server(state, e))?;
            return Err(invalid());
        }
        Some(Redemption::Fresh(t)) => t,
    };
    if token.expires_at <= now {
        return Err(invalid());
    }
    let grant = live_grant(state, &token.grant_id).await?;
    if grant.client_id != app.client_id {
        return Err(invalid());
    }
    if let Some(s) = scope {
        if !s
            .split(' ')
            .filter(|x| !x.is_empty())
            .all(|x| grant.scope.iter().any(|g| g == x))
        {
            return Err(TokenError::new(
                "invalid_scope",
                "The scope exceeds what was granted.",
            ));
        }
    }
    let user = live_user(state, &grant.user_id).await?;
    let keeps_refreshing = grant.scope.iter().any(|s| s == "offline_access");
    // A narrower scope narrows this access token only; the grant keeps its scope.
    let mut scoped = grant.clone();
    if let Some(s) = scope {
        scoped.scope = s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect();
    }
    issue(
        state,
        app,
        &scoped,
        &user,
        None,
        // The connectors ran when the grant was made; their claims are the grant's.
        grant.token_claims.clone(),
        keeps_refreshing,
    )
    .await
}

async fn client_credentials(
    state: &AppState,
    app: &Application,
) -> Result<TokenResponse, TokenError> {
    if app.is_public() {
        return Err(TokenError::new(
            "unauthorized_client",
            "A public client cannot use client credentials.",
        ));
    }
    let now = state.clock.now();
    let lifetime = state.settings.lifetimes.access_token;
    let claims = json!({
        "iss": state.settings.issuer,
        "sub": app.client_id,
        "aud": state.settings.issuer,
        "client_id": app.client_id,
        "azp": app.client_id,
        "roles": app.roles,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": (now + lifetime).timestamp(),
        "jti": state.new_id(),
    });
    let access_token = sign(state, "at+jwt", &claims).await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime.num_seconds(),
        id_token: None,
        refresh_token: None,
        scope: None,
    })
}

async fn live_grant(state: &AppState, id: &str) -> Result<Grant, TokenError> {
    match state.store.grant(id).await {
        Ok(Some(g)) if g.revoked_at.is_none() => Ok(g),
        Ok(_) => Err(TokenError::new(
            "invalid_grant",
            "The grant has been revoked.",
        )),
        Err(e) => Err(TokenError::server(state, e)),
    }
}

async fn live_user(state: &AppState, id: &str) -> Result<User, TokenError> {
    match state.store.user_by_id(id).await {
        Ok(Some(u)) if u.account_enabled => Ok(u),
        Ok(_) => Err(TokenError::new(
            "invalid_grant",
            "The user no longer exists or is disabled.",
        )),
        Err(e) => Err(TokenError::server(state, e)),
    }
}

async fn sign(state: &AppState, typ: &str, claims: &Value) -> Result<String, TokenError> {
    let keyring = state
        .keys
        .keyring()
        .await
        .map_err(|e| TokenError::server(state, e))?;
    keyring
        .signing
        .sign_jwt(typ, claims)
        .map_err(|e| TokenError::server(state, e))
}

/// How the person signed in to the grant's browser session, as an `amr` value
/// (RFC 8176, with `fed` for an upstream identity provider): `pwd` for a local
/// account's password, `otp` for an emailed one-time passcode, `fed` for a provider.
/// `None` for a grant without a session (or a session that names no provider).
async fn sign_in_method(
    state: &AppState,
    grant: &Grant,
) -> Result<Option<&'static str>, TokenError> {
    let Some(session_id) = grant.session_id.as_deref() else {
        return Ok(None);
    };
    let session = state
        .store
        .session(session_id)
        .await
        .map_err(|e| TokenError::server(state, e))?;
    Ok(session
        .and_then(|s| s.identity_provider)
        .map(|p| authentication_method(&p)))
}

/// The `amr` value of a session made with identity provider `provider`.
fn authentication_method(provider: &str) -> &'static str {
    if provider.eq_ignore_ascii_case(usher_domain::user_flow::EMAIL_PASSWORD_PROVIDER) {
        "pwd"
    } else if provider.eq_ignore_ascii_case(usher_domain::user_flow::EMAIL_OTP_PROVIDER) {
        "otp"
    } else {
        "fed"
    }
}

/// Issues the access token, ID token and (with `offline_access`) a refresh token.
async fn issue(
    state: &AppState,
    app: &Application,
    grant: &Grant,
    user: &User,
    nonce: Option<&str>,
    extra_claims: serde_json::Map<String, Value>,
    with_refresh_token: bool,
) -> Result<TokenResponse, TokenError> {
    let now = state.clock.now();
    let lifetimes = &state.settings.lifetimes;
    let scope = grant.scope.join(" ");
    let access_claims = json!({
        "iss": state.settings.issuer,
        "sub": user.id,
        "aud": app.client_id,
        "client_id": app.client_id,
        "scope": scope,
        "grant_id": grant.id,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": (now + lifetimes.access_token).timestamp(),
        "jti": state.new_id(),
    });
    let access_token = sign(state, "at+jwt", &access_claims).await?;

    let mut id_claims = serde_json::Map::new();
    if let Some(flow) = state.tenant().user_flow(&app.user_flow_id) {
        id_claims.extend(user_claims(&state.tenant(), flow, user));
        id_claims.insert("tfp".into(), Value::String(flow.id.clone()));
    }
    // Connector claims may replace attribute claims but never the protocol's: the
    // connector client already refuses those (with a contract warning); this is the
    // last line, whatever reached the grant.
    for (k, v) in extra_claims {
        // `email` stands beside `email_verified: true`: only the address Usher proved.
        if !usher_connectors::is_protected_token_claim(&k) && !k.eq_ignore_ascii_case("email") {
            id_claims.insert(k, v);
        }
    }
    for (k, v) in [
        ("iss", json!(state.settings.issuer)),
        ("sub", json!(user.id)),
        ("aud", json!(app.client_id)),
        ("iat", json!(now.timestamp())),
        ("nbf", json!(now.timestamp())),
        ("exp", json!((now + lifetimes.id_token).timestamp())),
        ("auth_time", json!(grant.auth_time.timestamp())),
        ("at_hash", json!(half_hash(&access_token))),
    ] {
        id_claims.insert(k.into(), v);
    }
    if let Some(n) = nonce {
        id_claims.insert("nonce".into(), json!(n));
    }
    if let Some(amr) = sign_in_method(state, grant).await? {
        id_claims.insert("amr".into(), json!([amr]));
    }
    let id_token = sign(state, "JWT", &Value::Object(id_claims)).await?;

    let refresh_token = if with_refresh_token {
        let token = state.new_token();
        state
            .store
            .insert_refresh_token(&RefreshToken {
                token_hash: sha256_hex(token.as_bytes()),
                grant_id: grant.id.clone(),
                created_at: now,
                // Rotation slides the expiry, but never past the grant's absolute
                // lifetime: a stolen token cannot be kept alive for ever.
                expires_at: (now + lifetimes.refresh_token)
                    .min(grant.created_at + MAX_GRANT_LIFETIME),
                used_at: None,
            })
            .await
            .map_err(|e| TokenError::server(state, e))?;
        Some(token)
    } else {
        None
    };
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetimes.access_token.num_seconds(),
        id_token: Some(id_token),
        refresh_token,
        scope: Some(scope),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sign_in_method_has_its_amr() {
        assert_eq!(authentication_method("EmailPassword-OAUTH"), "pwd");
        assert_eq!(authentication_method("emailotpsignup-oauth"), "otp");
        assert_eq!(authentication_method("Google-OAUTH"), "fed");
        assert_eq!(authentication_method("partner-oidc"), "fed");
    }
}
