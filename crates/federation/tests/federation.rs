//! End-to-end tests of `usher-federation` against upstream providers written here:
//! a small OpenID Provider (also playing Microsoft and Google), Facebook, GitHub and
//! a generic OAuth 2.0 server, all on 127.0.0.1.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive Usher from outside, with the real clock, their own HTTP clients and random names"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use url::Url;
use usher_domain::{AttributeValue, Clock, MockClock, Secret, SignInType};
use usher_federation::{
    AuthorizationRequest, ClaimMapping, Completion, EndpointOverrides, ErrorKind, Federation,
    FederationError, FederationSettings, ProviderConfig, ProviderKind,
};
use usher_oidc::jose::{Algorithm, SigningKey};
use usher_oidc::pkce;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://usher.example/federation/callback";
const NONCE: &str = "nonce-1";
const CLIENT_ID: &str = "usher-client";
const CLIENT_SECRET: &str = "s3cret:with%odd chars";

use usher_testkit::net::serve;

fn settings() -> FederationSettings {
    FederationSettings {
        allow_insecure_endpoints: true,
        timeout: Duration::from_secs(5),
    }
}

fn federation(providers: Vec<ProviderConfig>, clock: &MockClock) -> Federation {
    Federation::new(providers, settings(), Arc::new(clock.clone())).unwrap()
}

fn secret() -> Secret {
    Secret::new(CLIENT_SECRET)
}

fn es256(kid: &str) -> Arc<SigningKey> {
    Arc::new(SigningKey::generate(Algorithm::ES256, kid.to_owned()).unwrap())
}

fn reason(err: FederationError) -> String {
    match err {
        FederationError::InvalidIdToken(r) => r,
        other => panic!("expected an invalid ID token, got {other:?}"),
    }
}

fn query(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

// ---------------------------------------------------------------------------
// A small OpenID Provider.

struct Pending {
    challenge: String,
    nonce: Option<String>,
    redirect_uri: String,
}

struct OpState {
    base: String,
    /// The `issuer` of the discovery document.
    discovery_issuer: String,
    /// The `iss` of the ID tokens.
    token_iss: String,
    clock: MockClock,
    signing: Arc<SigningKey>,
    published: Vec<Value>,
    codes: HashMap<String, Pending>,
    next_code: u32,
    /// Merged into the ID token claims; `null` removes a claim.
    patch: Map<String, Value>,
    /// Sent instead of a signed ID token.
    raw_id_token: Option<String>,
    userinfo: Option<Value>,
    discovery_fetches: usize,
    jwks_fetches: usize,
    userinfo_calls: usize,
}

#[derive(Clone)]
struct Op(Arc<Mutex<OpState>>);

impl Op {
    async fn start() -> Self {
        let key = es256("k1");
        let op = Op(Arc::new(Mutex::new(OpState {
            base: String::new(),
            discovery_issuer: String::new(),
            token_iss: String::new(),
            clock: MockClock::default(),
            published: vec![key.public_jwk()],
            signing: key,
            codes: HashMap::new(),
            next_code: 0,
            patch: Map::new(),
            raw_id_token: None,
            userinfo: None,
            discovery_fetches: 0,
            jwks_fetches: 0,
            userinfo_calls: 0,
        })));
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(op_discovery))
            .route(
                "/common/v2.0/.well-known/openid-configuration",
                get(op_discovery),
            )
            .route("/authorize", get(op_authorize))
            .route("/token", post(op_token))
            .route("/jwks", get(op_jwks))
            .route("/userinfo", get(op_userinfo))
            .with_state(op.clone());
        let base = serve(router).await;
        {
            let mut s = op.state();
            s.discovery_issuer.clone_from(&base);
            s.token_iss.clone_from(&base);
            s.base = base;
        }
        op
    }

    fn state(&self) -> std::sync::MutexGuard<'_, OpState> {
        self.0.lock().unwrap()
    }

    fn base(&self) -> String {
        self.state().base.clone()
    }

    fn patch(&self, claims: Value) {
        if let Value::Object(m) = claims {
            self.state().patch.extend(m);
        }
    }

    fn provider(&self) -> ProviderConfig {
        let mut p = ProviderConfig::new(
            "contoso-oidc",
            ProviderKind::Oidc {
                issuer: self.base(),
            },
            CLIENT_ID,
            secret(),
        );
        p.display_name = "Contoso".into();
        p
    }
}

async fn op_discovery(State(op): State<Op>) -> Json<Value> {
    let mut s = op.state();
    s.discovery_fetches += 1;
    let base = &s.base;
    Json(json!({
        "issuer": s.discovery_issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

async fn op_authorize(State(op): State<Op>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = op.state();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    s.next_code += 1;
    let code = format!("code-{}", s.next_code);
    s.codes.insert(
        code.clone(),
        Pending {
            challenge: q.get("code_challenge").cloned().unwrap_or_default(),
            nonce: q.get("nonce").cloned(),
            redirect_uri: q.get("redirect_uri").cloned().unwrap_or_default(),
        },
    );
    let mut back = Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", q.get("state").map_or("", String::as_str));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// Checks `Authorization: Basic` as RFC 6749 §2.3.1 encodes it.
fn basic_ok(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(decoded) = value
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return false;
    };
    let Some((id, secret)) = decoded.split_once(':') else {
        return false;
    };
    let decode = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    decode(id) == CLIENT_ID && decode(secret) == CLIENT_SECRET
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": "details"})),
    )
        .into_response()
}

async fn op_token(
    State(op): State<Op>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut s = op.state();
    if !basic_ok(&headers) || form.contains_key("client_secret") {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(pending) = form.get("code").and_then(|c| s.codes.remove(c)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").map_or("", String::as_str);
    if !pkce::verify_s256(verifier, &pending.challenge)
        || form.get("redirect_uri") != Some(&pending.redirect_uri)
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = s.clock.now().timestamp();
    let access_token = format!("at-{}", s.next_code);
    let mut claims = json!({
        "iss": s.token_iss,
        "aud": CLIENT_ID,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "nonce": pending.nonce,
        "at_hash": usher_oidc::jose::half_hash(&access_token),
        "email": "Ann.Example@Example.COM",
        "email_verified": true,
        "name": "Ann Example",
        "given_name": "Ann",
        "family_name": "Example",
    });
    for (k, v) in s.patch.clone() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(&k);
        } else {
            claims[k] = v;
        }
    }
    let id_token = match &s.raw_id_token {
        Some(raw) => raw.clone(),
        None => s.signing.sign_jwt("JWT", &claims).unwrap(),
    };
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
    .into_response()
}

async fn op_jwks(State(op): State<Op>) -> Json<Value> {
    let mut s = op.state();
    s.jwks_fetches += 1;
    Json(json!({ "keys": s.published }))
}

async fn op_userinfo(State(op): State<Op>, headers: HeaderMap) -> Response {
    let mut s = op.state();
    s.userinfo_calls += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bearer.starts_with("Bearer at-") {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    match &s.userinfo {
        Some(info) => Json(info.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Runs the whole flow as a browser would: authorization URL, the provider's
/// redirect back with a code, then `complete`.
async fn sign_in_with(
    fed: &Federation,
    provider: &str,
    nonce_back: &str,
) -> Result<usher_federation::ExternalIdentity, FederationError> {
    let url = fed
        .authorization_url(
            provider,
            &AuthorizationRequest {
                redirect_uri: REDIRECT,
                state: "state-1",
                nonce: NONCE,
                pkce_verifier: VERIFIER,
                ui_locales: Some("fr-CA en"),
                login_hint: None,
            },
        )
        .await?;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(&url).send().await.unwrap();
    assert_eq!(
        answer.status(),
        302,
        "authorize answered {}",
        answer.status()
    );
    let location = answer.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let back = query(&location);
    assert_eq!(back["state"], "state-1");
    fed.complete(
        provider,
        &Completion {
            redirect_uri: REDIRECT,
            code: &back["code"],
            pkce_verifier: VERIFIER,
            nonce: nonce_back,
        },
    )
    .await
}

async fn sign_in(
    fed: &Federation,
    provider: &str,
) -> Result<usher_federation::ExternalIdentity, FederationError> {
    sign_in_with(fed, provider, NONCE).await
}

fn text(v: &str) -> AttributeValue {
    AttributeValue::String(v.into())
}

#[tokio::test]
async fn oidc_sign_in_maps_claims_and_caches_discovery() {
    let op = Op::start().await;
    op.patch(json!({"team": {"name": "Blue"}, "title": "Engineer"}));
    let mut provider = op.provider();
    provider
        .claim_mapping
        .insert("extension_abc123_Team", "team.name");
    provider.claim_mapping.insert("jobTitle", "title");
    let clock = MockClock::default();
    // The provider shares the clock here, so its tokens stay fresh as time moves.
    op.state().clock = clock.clone();
    let fed = federation(vec![provider], &clock);

    let got = sign_in(&fed, "CONTOSO-oidc").await.unwrap();
    assert_eq!(got.provider_id, "contoso-oidc");
    assert_eq!(got.identity.sign_in_type, SignInType::Federated);
    assert_eq!(got.identity.issuer, "127.0.0.1");
    assert_eq!(got.identity.issuer_assigned_id, "user-1");
    assert_eq!(got.email.as_deref(), Some("ann.example@example.com"));
    assert_eq!(
        got.attributes.get("displayName"),
        Some(&text("Ann Example"))
    );
    assert_eq!(got.attributes.get("givenName"), Some(&text("Ann")));
    assert_eq!(got.attributes.get("surname"), Some(&text("Example")));
    assert_eq!(got.attributes.get("jobTitle"), Some(&text("Engineer")));
    assert_eq!(
        got.attributes.get("extension_abc123_Team"),
        Some(&text("Blue"))
    );
    assert!(!got.attributes.contains_key("email"));
    assert_eq!(got.raw_claims["sub"], "user-1");

    // A second sign-in uses the cached document and keys, and needs no userinfo.
    sign_in(&fed, "contoso-oidc").await.unwrap();
    {
        let s = op.state();
        assert_eq!(
            (s.discovery_fetches, s.jwks_fetches, s.userinfo_calls),
            (1, 1, 0)
        );
    }
    // After an hour both are fetched again.
    clock.advance(chrono::Duration::minutes(61));
    sign_in(&fed, "contoso-oidc").await.unwrap();
    let s = op.state();
    assert_eq!((s.discovery_fetches, s.jwks_fetches), (2, 2));
}

#[tokio::test]
async fn unverified_email_is_dropped() {
    let op = Op::start().await;
    op.patch(json!({"email_verified": false}));
    let fed = federation(vec![op.provider()], &MockClock::default());
    let got = sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(got.email, None);
}

#[tokio::test]
async fn userinfo_fills_in_missing_claims_for_the_same_subject_only() {
    let op = Op::start().await;
    op.patch(json!({"given_name": null, "family_name": null}));
    op.state().userinfo =
        Some(json!({"sub": "user-1", "given_name": "Annie", "family_name": "Ex"}));
    let fed = federation(vec![op.provider()], &MockClock::default());
    let got = sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(got.attributes.get("givenName"), Some(&text("Annie")));
    assert_eq!(got.attributes.get("surname"), Some(&text("Ex")));

    op.state().userinfo = Some(json!({"sub": "someone-else", "given_name": "Eve"}));
    let got = sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(got.attributes.get("givenName"), None);

    // A failing userinfo endpoint does not fail a sign-in the ID token established.
    op.state().userinfo = None;
    let got = sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(got.identity.issuer_assigned_id, "user-1");
    assert_eq!(op.state().userinfo_calls, 3);
}

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let op = Op::start().await;
    op.state().signing = es256("k1");
    let fed = federation(vec![op.provider()], &MockClock::default());
    let err = sign_in(&fed, "contoso-oidc").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidIdToken);
    assert_eq!(reason(err), "signature");
}

#[tokio::test]
async fn wrong_issuer_audience_and_nonce_are_refused() {
    let op = Op::start().await;
    let fed = federation(vec![op.provider()], &MockClock::default());

    op.state().token_iss = "https://evil.example".into();
    assert_eq!(
        reason(sign_in(&fed, "contoso-oidc").await.unwrap_err()),
        "issuer"
    );
    let base = op.base();
    op.state().token_iss = base;

    op.patch(json!({"aud": "someone-else"}));
    assert_eq!(
        reason(sign_in(&fed, "contoso-oidc").await.unwrap_err()),
        "audience"
    );
    op.patch(json!({"aud": [CLIENT_ID, "someone-else"]}));
    assert_eq!(
        reason(sign_in(&fed, "contoso-oidc").await.unwrap_err()),
        "authorized party"
    );
    op.patch(json!({"aud": CLIENT_ID}));

    let err = sign_in_with(&fed, "contoso-oidc", "another-nonce")
        .await
        .unwrap_err();
    assert_eq!(reason(err), "nonce");
    sign_in(&fed, "contoso-oidc").await.unwrap();
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let op = Op::start().await;
    let clock = MockClock::default();
    let fed = federation(vec![op.provider()], &clock);
    // Usher's clock runs 11 minutes ahead of the provider's: past exp (10 minutes)
    // plus the 60 s leeway.
    clock.advance(chrono::Duration::minutes(11) + chrono::Duration::seconds(1));
    assert_eq!(
        reason(sign_in(&fed, "contoso-oidc").await.unwrap_err()),
        "expired"
    );
    // Within the leeway it passes.
    let clock = MockClock::default();
    let fed = federation(vec![op.provider()], &clock);
    clock.advance(chrono::Duration::seconds(600 + 59));
    sign_in(&fed, "contoso-oidc").await.unwrap();
}

#[tokio::test]
async fn alg_none_is_refused() {
    let op = Op::start().await;
    let now = MockClock::default().now().timestamp();
    let claims = json!({
        "iss": op.base(), "aud": CLIENT_ID, "sub": "user-1", "iat": now, "exp": now + 600,
        "nonce": NONCE,
    });
    op.state().raw_id_token = Some(format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&claims)
    ));
    let fed = federation(vec![op.provider()], &MockClock::default());
    assert_eq!(
        reason(sign_in(&fed, "contoso-oidc").await.unwrap_err()),
        "algorithm"
    );

    op.state().raw_id_token = Some("not.a.jwt".into());
    assert!(reason(sign_in(&fed, "contoso-oidc").await.unwrap_err()).starts_with("malformed"));
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_once() {
    let op = Op::start().await;
    let fed = federation(vec![op.provider()], &MockClock::default());
    sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(op.state().jwks_fetches, 1);

    op.state().signing = es256("k-unpublished");
    let err = sign_in(&fed, "contoso-oidc").await.unwrap_err();
    assert_eq!(reason(err), "unknown signing key");
    assert_eq!(op.state().jwks_fetches, 2);

    // A rotation the provider has published is picked up by the same refresh.
    let rotated = es256("k2");
    {
        let mut s = op.state();
        s.published.push(rotated.public_jwk());
        s.signing = rotated;
    }
    sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(op.state().jwks_fetches, 3);
    sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(op.state().jwks_fetches, 3);
}

#[tokio::test]
async fn a_jwks_whose_one_key_has_no_kid_is_used() {
    let op = Op::start().await;
    let without_kid = |key: &SigningKey| {
        let mut jwk = key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        jwk
    };
    {
        let mut s = op.state();
        s.published = vec![without_kid(&s.signing)];
    }
    let fed = federation(vec![op.provider()], &MockClock::default());
    let identity = sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(identity.identity.issuer_assigned_id, "user-1");

    // Two keys without kid: which one signed is not guessed (after one refresh).
    op.state().published.push(without_kid(&es256("k2")));
    let fed = federation(vec![op.provider()], &MockClock::default());
    let err = sign_in(&fed, "contoso-oidc").await.unwrap_err();
    assert_eq!(reason(err), "unknown signing key");
}

#[tokio::test]
async fn two_providers_on_one_host_are_two_populations() {
    // Two providers on one host, each with its own keys and users, both saying
    // `sub: user-1`: the contract's short issuer is the host for both, but each
    // identity carries its provider's exact issuer.
    let first = Op::start().await;
    let second = Op::start().await;
    let mut other = second.provider();
    other.id = "fabrikam-oidc".into();
    let providers = vec![first.provider(), other];
    assert_eq!(usher_federation::shared_identity_issuer(&providers), None);

    let fed = federation(providers, &MockClock::default());
    let a = sign_in(&fed, "contoso-oidc").await.unwrap().identity;
    let b = sign_in(&fed, "fabrikam-oidc").await.unwrap().identity;
    assert_eq!(
        (a.issuer.as_str(), b.issuer.as_str()),
        ("127.0.0.1", "127.0.0.1")
    );
    assert_eq!(a.issuer_assigned_id, b.issuer_assigned_id);
    assert_eq!(
        a.exact_issuer.as_deref(),
        Some(first.base().trim_end_matches('/'))
    );
    assert_eq!(
        b.exact_issuer.as_deref(),
        Some(second.base().trim_end_matches('/'))
    );
    assert_ne!(a.exact_issuer, b.exact_issuer);
    assert_eq!(
        fed.provider_for(&a).map(|p| p.id.as_str()),
        Some("contoso-oidc")
    );
    assert_eq!(
        fed.provider_for(&b).map(|p| p.id.as_str()),
        Some("fabrikam-oidc")
    );
    // Identities stored without an exact issuer are either one's: neither takes
    // them on. Alone on the host, a provider does.
    assert!(!fed.takes_on_unresolved("contoso-oidc"));
    assert!(!fed.takes_on_unresolved("fabrikam-oidc"));
    assert!(fed.identity_owners().is_empty());
    let alone = federation(vec![first.provider()], &MockClock::default());
    assert!(alone.takes_on_unresolved("contoso-oidc"));
    assert_eq!(
        alone.identity_owners(),
        [(
            "127.0.0.1".to_owned(),
            first.base().trim_end_matches('/').to_owned()
        )]
    );
}

#[test]
fn who_takes_on_identities_without_an_exact_issuer() {
    let github = ProviderConfig::new("github", ProviderKind::GitHub, CLIENT_ID, secret());
    let mut enterprise = ProviderConfig::new("ghe", ProviderKind::GitHub, CLIENT_ID, secret());
    enterprise.endpoints.userinfo_endpoint = Some("https://ghe.example/api/v3/user".into());
    let clock = MockClock::default();
    // github.com's identities are github.com's, not an Enterprise server's.
    assert!(federation(vec![github.clone()], &clock).takes_on_unresolved("github"));
    assert!(!federation(vec![enterprise.clone()], &clock).takes_on_unresolved("ghe"));
    let both = federation(vec![github, enterprise], &clock);
    assert!(!both.takes_on_unresolved("github"));

    // A Microsoft identity is told to the provider of its tenant.
    let ms = |id: &str, tenant: &str| {
        ProviderConfig::new(
            id,
            ProviderKind::Microsoft {
                tenant: tenant.into(),
            },
            CLIENT_ID,
            secret(),
        )
    };
    let fed = federation(
        vec![ms("work", "organizations"), ms("personal", "consumers")],
        &clock,
    );
    let signed_in = |tid: &str| {
        let identity = usher_domain::Identity {
            exact_issuer: Some(format!("https://login.microsoftonline.com/{tid}/v2.0")),
            ..usher_domain::Identity::new(
                usher_domain::SignInType::Federated,
                "login.microsoftonline.com",
                "s",
            )
        };
        fed.provider_for(&identity).map(|p| p.id.clone())
    };
    assert_eq!(
        signed_in(usher_federation::MICROSOFT_CONSUMERS_TENANT_ID).as_deref(),
        Some("personal")
    );
    assert_eq!(
        signed_in("72f988bf-86f1-41af-91ab-2d7cd011db47").as_deref(),
        Some("work")
    );
    assert!(fed.takes_on_unresolved("work") && fed.takes_on_unresolved("personal"));
}

#[tokio::test]
async fn the_second_provider_with_the_same_issuer_is_out_of_service() {
    // One provider configured twice under two ids: the same issuer and subjects.
    let op = Op::start().await;
    let mut again = op.provider();
    again.id = "fabrikam-oidc".into();
    let providers = vec![op.provider(), again];
    let shared = usher_federation::shared_identity_issuer(&providers).unwrap();
    assert_eq!(
        (shared.first.as_str(), shared.second.as_str()),
        ("contoso-oidc", "fabrikam-oidc")
    );
    assert!(
        shared.to_string().contains("have the same issuer"),
        "{shared}"
    );

    let fed = federation(providers, &MockClock::default());
    let identity = sign_in(&fed, "contoso-oidc").await.unwrap();
    assert_eq!(identity.identity.issuer_assigned_id, "user-1");
    let fetches = op.state().discovery_fetches;
    let err = sign_in(&fed, "fabrikam-oidc").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    assert!(err.to_string().contains("\"contoso-oidc\""), "{err}");
    // Nobody was sent to the provider for the second one.
    assert_eq!(op.state().discovery_fetches, fetches);
    assert!(fed.provider("fabrikam-oidc").is_some());
    assert!(!fed.takes_on_unresolved("fabrikam-oidc"));
}

#[tokio::test]
async fn token_endpoint_errors_are_reported() {
    let op = Op::start().await;
    let fed = federation(vec![op.provider()], &MockClock::default());
    let err = fed
        .complete("contoso-oidc", &completion("no-such-code"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderError);
    assert!(
        matches!(&err, FederationError::TokenEndpoint { status: Some(400), error: Some(e) } if e == "invalid_grant"),
        "{err:?}"
    );

    let empty_nonce = Completion {
        nonce: "",
        ..completion("no-such-code")
    };
    let err = fed
        .complete("contoso-oidc", &empty_nonce)
        .await
        .unwrap_err();
    assert!(matches!(err, FederationError::InvalidRequest(_)), "{err:?}");

    // The provider checks PKCE: a code redeemed with another verifier is refused.
    let url = fed
        .authorization_url(
            "contoso-oidc",
            &AuthorizationRequest {
                redirect_uri: REDIRECT,
                state: "s",
                nonce: NONCE,
                pkce_verifier: VERIFIER,
                ui_locales: None,
                login_hint: None,
            },
        )
        .await
        .unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = browser.get(&url).send().await.unwrap().headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let code = query(&location)["code"].clone();
    let other_verifier = "x".repeat(43);
    let err = fed
        .complete(
            "contoso-oidc",
            &Completion {
                pkce_verifier: &other_verifier,
                ..completion(&code)
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FederationError::TokenEndpoint { error: Some(e), .. } if e == "invalid_grant"),
        "{err:?}"
    );

    // A wrong client secret; the error says nothing of the secret.
    let mut wrong = op.provider();
    wrong.client_secret = Secret::new("wrong-secret-value");
    let fed = federation(vec![wrong], &MockClock::default());
    let err = sign_in(&fed, "contoso-oidc").await.unwrap_err();
    assert!(
        matches!(&err, FederationError::TokenEndpoint { status: Some(401), error: Some(e) } if e == "invalid_client"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-secret-value"));
}

#[tokio::test]
async fn a_provider_that_is_down_is_unavailable() {
    let port = usher_testkit::net::unused_port();
    let provider = ProviderConfig::new(
        "down",
        ProviderKind::Oidc {
            issuer: format!("http://127.0.0.1:{port}"),
        },
        CLIENT_ID,
        secret(),
    );
    let fed = federation(vec![provider], &MockClock::default());
    let err = fed
        .complete(
            "down",
            &Completion {
                redirect_uri: REDIRECT,
                code: "c",
                pkce_verifier: VERIFIER,
                nonce: NONCE,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FederationError::Discovery(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable);
    let err = fed
        .authorization_url(
            "down",
            &AuthorizationRequest {
                redirect_uri: REDIRECT,
                state: "s",
                nonce: NONCE,
                pkce_verifier: VERIFIER,
                ui_locales: None,
                login_hint: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderUnavailable);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let op = Op::start().await;
    op.state().discovery_issuer = "https://evil.example".into();
    let fed = federation(vec![op.provider()], &MockClock::default());
    let err = sign_in(&fed, "contoso-oidc").await.unwrap_err();
    assert!(matches!(err, FederationError::Discovery(_)), "{err:?}");
}

fn microsoft(op: &Op) -> ProviderConfig {
    let mut p = ProviderConfig::new(
        "microsoft",
        ProviderKind::Microsoft {
            tenant: "common".into(),
        },
        CLIENT_ID,
        secret(),
    );
    p.endpoints.issuer = Some(format!("{}/common/v2.0", op.base()));
    p
}

#[tokio::test]
async fn microsoft_common_accepts_the_tokens_own_tenant_only() {
    let op = Op::start().await;
    let base = op.base();
    {
        let mut s = op.state();
        s.discovery_issuer = format!("{base}/{{tenantid}}/v2.0");
        s.token_iss = format!("{base}/tenant-x/v2.0");
        // Entra ID sends no email_verified for work and school accounts.
        s.patch.insert("email_verified".into(), Value::Null);
        s.patch.insert("tid".into(), json!("tenant-x"));
    }
    let fed = federation(vec![microsoft(&op)], &MockClock::default());
    let got = sign_in(&fed, "microsoft").await.unwrap();
    assert_eq!(got.identity.issuer, "login.microsoftonline.com");
    assert_eq!(got.identity.issuer_assigned_id, "user-1");
    // A work or school account's email is not taken as verified without xms_edov.
    assert_eq!(got.email, None);
    assert_eq!(
        got.attributes.get("displayName"),
        Some(&text("Ann Example"))
    );

    op.patch(json!({"xms_edov": true}));
    let got = sign_in(&fed, "microsoft").await.unwrap();
    assert_eq!(got.email.as_deref(), Some("ann.example@example.com"));

    op.state().token_iss = format!("{base}/tenant-y/v2.0");
    assert_eq!(
        reason(sign_in(&fed, "microsoft").await.unwrap_err()),
        "issuer"
    );
}

#[tokio::test]
async fn google_preset_uses_google_com() {
    let op = Op::start().await;
    let mut google = ProviderConfig::new("Google-OAUTH", ProviderKind::Google, CLIENT_ID, secret());
    google.endpoints.issuer = Some(op.base());
    let fed = federation(vec![google], &MockClock::default());
    let got = sign_in(&fed, "google-oauth").await.unwrap();
    assert_eq!(got.identity.issuer, "google.com");
    assert_eq!(got.email.as_deref(), Some("ann.example@example.com"));
}

// ---------------------------------------------------------------------------
// Facebook.

#[derive(Clone, Default)]
struct Recorded(Arc<Mutex<Vec<String>>>);

impl Recorded {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn facebook_server(seen: Recorded) -> String {
    async fn token(
        State(seen): State<Recorded>,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        seen.push(format!(
            "token verifier={}",
            form.contains_key("code_verifier")
        ));
        let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            && form.get("code").map(String::as_str) == Some("fb-code")
            && form.get("redirect_uri").map(String::as_str) == Some(REDIRECT);
        if !ok {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"error": {"message": "Invalid verification code format.",
                    "type": "OAuthException", "code": 100, "fbtrace_id": "x"}}),
                ),
            )
                .into_response();
        }
        Json(json!({"access_token": "EAAfb", "token_type": "bearer", "expires_in": 5_183_944}))
            .into_response()
    }
    async fn me(
        State(seen): State<Recorded>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        let proof = {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CLIENT_SECRET.as_bytes());
            usher_domain::id::hex(ring::hmac::sign(&key, b"EAAfb").as_ref())
        };
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some("Bearer EAAfb");
        if !authorized || q.get("appsecret_proof") != Some(&proof) {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"type": "OAuthException", "code": 190}})),
            )
                .into_response();
        }
        seen.push(format!(
            "me fields={}",
            q.get("fields").cloned().unwrap_or_default()
        ));
        Json(json!({
            "id": "1234567890", "name": "John Smith", "email": "John.Smith@Fabrikam.com",
            "first_name": "John", "last_name": "Smith",
        }))
        .into_response()
    }
    serve(
        Router::new()
            .route("/v23.0/oauth/access_token", post(token))
            .route("/me", get(me))
            .with_state(seen),
    )
    .await
}

fn facebook(base: &str) -> ProviderConfig {
    let mut p = ProviderConfig::new("facebook", ProviderKind::Facebook, CLIENT_ID, secret());
    p.endpoints = EndpointOverrides {
        token_endpoint: Some(format!("{base}/v23.0/oauth/access_token")),
        userinfo_endpoint: Some(format!("{base}/me")),
        ..EndpointOverrides::default()
    };
    p
}

fn completion(code: &str) -> Completion<'_> {
    Completion {
        redirect_uri: REDIRECT,
        code,
        pkce_verifier: VERIFIER,
        nonce: NONCE,
    }
}

#[tokio::test]
async fn facebook_sign_in_reads_the_graph_me_endpoint() {
    let seen = Recorded::default();
    let base = facebook_server(seen.clone()).await;
    let fed = federation(vec![facebook(&base)], &MockClock::default());
    let got = fed
        .complete("facebook", &completion("fb-code"))
        .await
        .unwrap();
    assert_eq!(got.identity.issuer, "facebook.com");
    assert_eq!(got.identity.issuer_assigned_id, "1234567890");
    assert_eq!(got.email.as_deref(), Some("john.smith@fabrikam.com"));
    assert_eq!(got.attributes.get("displayName"), Some(&text("John Smith")));
    assert_eq!(got.attributes.get("givenName"), Some(&text("John")));
    assert_eq!(got.attributes.get("surname"), Some(&text("Smith")));
    assert_eq!(
        seen.all(),
        [
            "token verifier=true",
            "me fields=id,name,email,first_name,last_name"
        ]
    );

    let err = fed
        .complete("facebook", &completion("bad"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FederationError::TokenEndpoint { status: Some(400), error: Some(e) } if e == "OAuthException"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("verification code format"));
}

// ---------------------------------------------------------------------------
// GitHub.

async fn github_server(emails: Arc<Mutex<Value>>) -> String {
    async fn token(headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
        let ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
            && form.get("code").map(String::as_str) == Some("gh-code");
        let json =
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) == Some("application/json");
        // As GitHub does: errors with status 200, and form encoding unless JSON is asked for.
        match (ok, json) {
            (true, true) => Json(json!({"access_token": "gho_json", "token_type": "bearer",
                "scope": "read:user,user:email"}))
            .into_response(),
            (true, false) => "access_token=gho_form&scope=user&token_type=bearer".into_response(),
            (false, true) => Json(json!({"error": "bad_verification_code",
                "error_description": "The code passed is incorrect or expired."}))
            .into_response(),
            (false, false) => "error=bad_verification_code".into_response(),
        }
    }
    fn authorized(headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some("Bearer gho_json")
            && headers.contains_key(header::USER_AGENT)
    }
    async fn user(headers: HeaderMap) -> Response {
        if !authorized(&headers) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "Bad credentials"})),
            )
                .into_response();
        }
        Json(
            json!({"id": 123, "login": "octocat", "name": "Mona Lisa Octocat",
            "email": "public@example.com"}),
        )
        .into_response()
    }
    async fn user_emails(State(emails): State<Arc<Mutex<Value>>>, headers: HeaderMap) -> Response {
        if !authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Json(emails.lock().unwrap().clone()).into_response()
    }
    serve(
        Router::new()
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(user))
            .route("/user/emails", get(user_emails))
            .with_state(emails),
    )
    .await
}

#[tokio::test]
async fn github_sign_in_takes_the_primary_verified_email() {
    let emails = Arc::new(Mutex::new(json!([
        {"email": "other@example.com", "primary": false, "verified": true, "visibility": null},
        {"email": "Octocat@GitHub.com", "primary": true, "verified": true, "visibility": "public"},
    ])));
    let base = github_server(emails.clone()).await;
    let mut p = ProviderConfig::new("github", ProviderKind::GitHub, CLIENT_ID, secret());
    p.endpoints = EndpointOverrides {
        token_endpoint: Some(format!("{base}/login/oauth/access_token")),
        userinfo_endpoint: Some(format!("{base}/user")),
        emails_endpoint: Some(format!("{base}/user/emails")),
        ..EndpointOverrides::default()
    };
    let fed = federation(vec![p], &MockClock::default());

    let got = fed
        .complete("github", &completion("gh-code"))
        .await
        .unwrap();
    assert_eq!(got.identity.issuer, "github.com");
    assert_eq!(got.identity.issuer_assigned_id, "123");
    assert_eq!(got.email.as_deref(), Some("octocat@github.com"));
    assert_eq!(
        got.attributes.get("displayName"),
        Some(&text("Mona Lisa Octocat"))
    );
    assert_eq!(got.attributes.len(), 1);

    *emails.lock().unwrap() = json!([
        {"email": "other@example.com", "primary": false, "verified": true},
        {"email": "octocat@github.com", "primary": true, "verified": false},
    ]);
    let got = fed
        .complete("github", &completion("gh-code"))
        .await
        .unwrap();
    assert_eq!(got.email, None);

    let err = fed
        .complete("github", &completion("wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FederationError::TokenEndpoint { status: Some(200), error: Some(e) } if e == "bad_verification_code"),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::ProviderError);
}

// ---------------------------------------------------------------------------
// Generic OAuth 2.0.

async fn oauth2_server() -> String {
    async fn token(headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
        if !basic_ok(&headers) || form.get("code").map(String::as_str) != Some("o-code") {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
        }
        Json(json!({"access_token": "o-token", "token_type": "Bearer"})).into_response()
    }
    async fn userinfo(headers: HeaderMap) -> Response {
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some("Bearer o-token")
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        Json(json!({"data": {"id": 42, "profile": {
            "mail": "Zoe@Example.org", "mail_ok": true, "full_name": "Zoe Q",
            "address": {"city": "Lyon"},
        }}}))
        .into_response()
    }
    async fn huge() -> String {
        format!("{{\"data\": \"{}\"}}", "x".repeat(2 << 20))
    }
    async fn moved() -> Response {
        (StatusCode::FOUND, [(header::LOCATION, "/token")]).into_response()
    }
    serve(
        Router::new()
            .route("/token", post(token))
            .route("/moved", post(moved))
            .route("/userinfo", get(userinfo))
            .route("/huge", get(huge))
            .route("/authorize", get(|| async { "" })),
    )
    .await
}

fn oauth2(base: &str, userinfo: &str) -> ProviderConfig {
    let kind = ProviderKind::OAuth2 {
        authorization_endpoint: format!("{base}/authorize?tenant=t1"),
        token_endpoint: format!("{base}/token"),
        userinfo_endpoint: format!("{base}{userinfo}"),
        subject_claim: "data.id".into(),
        identity_issuer: "example-oauth".into(),
    };
    let mut p = ProviderConfig::new("example", kind, CLIENT_ID, secret());
    let mut mapping = ClaimMapping::default();
    mapping.insert("email", "data.profile.mail");
    mapping.insert(ClaimMapping::EMAIL_VERIFIED, "data.profile.mail_ok");
    mapping.insert("displayName", "data.profile.full_name");
    mapping.insert("city", "data.profile.address.city");
    p.claim_mapping = mapping;
    p
}

#[tokio::test]
async fn generic_oauth2_reads_dotted_paths() {
    let base = oauth2_server().await;
    let fed = federation(vec![oauth2(&base, "/userinfo")], &MockClock::default());
    let got = fed
        .complete("example", &completion("o-code"))
        .await
        .unwrap();
    assert_eq!(got.identity.issuer, "example-oauth");
    assert_eq!(got.identity.issuer_assigned_id, "42");
    assert_eq!(got.email.as_deref(), Some("zoe@example.org"));
    assert_eq!(got.attributes.get("displayName"), Some(&text("Zoe Q")));
    assert_eq!(got.attributes.get("city"), Some(&text("Lyon")));
    assert_eq!(got.attributes.len(), 2);
}

#[tokio::test]
async fn oversized_answers_and_redirects_are_refused() {
    let base = oauth2_server().await;
    let fed = federation(vec![oauth2(&base, "/huge")], &MockClock::default());
    let err = fed
        .complete("example", &completion("o-code"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FederationError::UserInfo { status: None, reason } if reason.contains("larger")),
        "{err:?}"
    );

    let mut moved = oauth2(&base, "/userinfo");
    moved.endpoints.token_endpoint = Some(format!("{base}/moved"));
    let fed = federation(vec![moved], &MockClock::default());
    let err = fed
        .complete("example", &completion("o-code"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FederationError::TokenEndpoint {
                status: Some(302),
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// Authorization URLs.

#[tokio::test]
async fn authorization_urls_for_every_kind() {
    let op = Op::start().await;
    // Google at a provider of its own: two providers with one issuer are refused.
    let google_op = Op::start().await;
    let mut google = ProviderConfig::new("google", ProviderKind::Google, CLIENT_ID, secret());
    google.endpoints.issuer = Some(google_op.base());
    let mut ms = microsoft(&op);
    ms.scopes = vec!["openid".into(), "email".into()];
    let github = ProviderConfig::new("github", ProviderKind::GitHub, CLIENT_ID, secret());
    let facebook = ProviderConfig::new("facebook", ProviderKind::Facebook, CLIENT_ID, secret());
    let example = oauth2("https://oauth.example", "/userinfo");
    let fed = federation(
        vec![op.provider(), google, ms, github, facebook, example],
        &MockClock::default(),
    );
    let request = AuthorizationRequest {
        redirect_uri: REDIRECT,
        state: "st-9",
        nonce: "n-9",
        pkce_verifier: VERIFIER,
        ui_locales: Some("fr-CA en"),
        login_hint: Some("ann@example.com"),
    };
    let challenge = pkce::challenge_s256(VERIFIER);
    assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");

    let cases = [
        (
            "contoso-oidc",
            format!("{}/authorize", op.base()),
            "openid email profile",
            true,
        ),
        (
            "google",
            format!("{}/authorize", google_op.base()),
            "openid email profile",
            true,
        ),
        (
            "microsoft",
            format!("{}/authorize", op.base()),
            "openid email",
            true,
        ),
        (
            "github",
            "https://github.com/login/oauth/authorize".to_owned(),
            "read:user user:email",
            false,
        ),
        (
            "facebook",
            "https://www.facebook.com/v23.0/dialog/oauth".to_owned(),
            "email public_profile",
            false,
        ),
        (
            "example",
            "https://oauth.example/authorize".to_owned(),
            "",
            false,
        ),
    ];
    for (id, endpoint, scope, oidc) in cases {
        let url = fed.authorization_url(id, &request).await.unwrap();
        let parsed = Url::parse(&url).unwrap();
        let without_query = format!("{}{}", parsed.origin().ascii_serialization(), parsed.path());
        assert_eq!(without_query, endpoint, "{id}");
        let q = query(&url);
        assert_eq!(q["response_type"], "code", "{id}");
        assert_eq!(q["client_id"], CLIENT_ID, "{id}");
        assert_eq!(q["redirect_uri"], REDIRECT, "{id}");
        assert_eq!(q.get("scope").map_or("", String::as_str), scope, "{id}");
        assert_eq!(q["state"], "st-9", "{id}");
        assert_eq!(q["code_challenge"], challenge, "{id}");
        assert_eq!(q["code_challenge_method"], "S256", "{id}");
        assert_eq!(q["ui_locales"], "fr-CA en", "{id}");
        assert_eq!(q["login_hint"], "ann@example.com", "{id}");
        assert_eq!(
            q.get("nonce").map(String::as_str),
            oidc.then_some("n-9"),
            "{id}"
        );
        assert!(
            !url.contains(VERIFIER) && !url.contains(CLIENT_SECRET),
            "{id}"
        );
    }
    // Query parameters the endpoint already has are kept.
    let url = fed.authorization_url("example", &request).await.unwrap();
    assert_eq!(query(&url)["tenant"], "t1");
    // Without ui_locales and login_hint, neither is sent.
    let bare = AuthorizationRequest {
        ui_locales: None,
        login_hint: None,
        ..request
    };
    let q = query(&fed.authorization_url("github", &bare).await.unwrap());
    assert!(!q.contains_key("ui_locales") && !q.contains_key("login_hint"));

    let short = AuthorizationRequest {
        pkce_verifier: "too-short",
        ..request
    };
    let err = fed.authorization_url("github", &short).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Misconfigured);
    let err = fed.authorization_url("nobody", &request).await.unwrap_err();
    assert!(matches!(err, FederationError::UnknownProvider(_)));
}

// ---------------------------------------------------------------------------
// Configuration.

#[test]
fn configuration_is_checked() {
    let clock: Arc<dyn Clock> = Arc::new(MockClock::default());
    let strict = FederationSettings {
        allow_insecure_endpoints: false,
        timeout: Duration::from_secs(5),
    };
    let oidc = |issuer: &str| {
        ProviderConfig::new(
            "p",
            ProviderKind::Oidc {
                issuer: issuer.into(),
            },
            CLIENT_ID,
            secret(),
        )
    };
    for issuer in [
        "http://id.example",
        "https://127.0.0.1:8443",
        "https://localhost/",
    ] {
        let err = Federation::new(vec![oidc(issuer)], strict.clone(), clock.clone()).unwrap_err();
        assert!(
            matches!(err, FederationError::NotAllowed(_)),
            "{issuer}: {err:?}"
        );
    }
    let mut fb = ProviderConfig::new("fb", ProviderKind::Facebook, CLIENT_ID, secret());
    fb.endpoints.userinfo_endpoint = Some("http://graph.example/me".into());
    assert!(matches!(
        Federation::new(vec![fb], strict.clone(), clock.clone()),
        Err(FederationError::NotAllowed(_))
    ));

    let fed = Federation::new(
        vec![
            oidc("https://id.example"),
            ProviderConfig::new("Google-OAUTH", ProviderKind::Google, CLIENT_ID, secret()),
        ],
        strict.clone(),
        clock.clone(),
    )
    .unwrap();
    assert_eq!(fed.providers().count(), 2);
    assert_eq!(fed.provider("google-oauth").unwrap().display_name, "Google");
    assert!(fed.provider("nobody").is_none());
    assert!(!format!("{fed:?}").contains(CLIENT_SECRET));

    let dup = vec![oidc("https://a.example"), {
        let mut p = oidc("https://b.example");
        p.id = "P".into();
        p
    }];
    assert!(matches!(
        Federation::new(dup, strict.clone(), clock.clone()),
        Err(FederationError::Misconfigured(_))
    ));
    let bad_tenant = ProviderConfig::new(
        "ms",
        ProviderKind::Microsoft {
            tenant: "a/../b".into(),
        },
        CLIENT_ID,
        secret(),
    );
    assert!(matches!(
        Federation::new(vec![bad_tenant], strict, clock),
        Err(FederationError::Misconfigured(_))
    ));
}

#[test]
fn futures_are_send_so_web_handlers_can_await_them() {
    fn is_send<T: Send>(_: T) {}
    let fed = Federation::new(
        vec![ProviderConfig::new(
            "g",
            ProviderKind::Google,
            CLIENT_ID,
            secret(),
        )],
        settings(),
        Arc::new(MockClock::default()),
    )
    .unwrap();
    is_send(fed.complete("g", &completion("c")));
    let request = AuthorizationRequest {
        redirect_uri: REDIRECT,
        state: "s",
        nonce: NONCE,
        pkce_verifier: VERIFIER,
        ui_locales: None,
        login_hint: None,
    };
    is_send(fed.authorization_url("g", &request));
    fn is_sync<T: Send + Sync>(_: &T) {}
    is_sync(&fed);
}
