//! End-to-end tests: real Usher instances on loopback, on SQLite and on PostgreSQL,
//! driven by an HTTP client that behaves like a browser without JavaScript (cookies,
//! forms, no automatic redirects) and by a real relying-party library.
//!
//! PostgreSQL cases run when `USHER_TEST_POSTGRES_URL` names a server (each case
//! creates and drops its own database); with `USHER_REQUIRE_POSTGRES=1` they fail
//! instead of skipping when it is unset.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive Usher from outside, with the real clock, their own HTTP clients and random names"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

mod admin_api;
mod console;
mod extensions;
mod harness;

use harness::*;
use openidconnect::{
    core::{CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata},
    AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::Value;

both!(sign_up_then_sign_in_with_a_relying_party_library);
async fn sign_up_then_sign_in_with_a_relying_party_library(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(usher.issuer.clone()).unwrap(), &http)
            .await
            .expect("discovery");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(PUBLIC_CLIENT.into()), None)
            .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());

    // Sign up.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf_state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new();
    let callback = browser
        .sign_up(
            &usher,
            auth_url.as_str(),
            "ada@example.com",
            "correct horse battery staple",
            &[
                ("displayName", "Ada Lovelace"),
                ("givenName", "Ada"),
                ("surname", "Lovelace"),
                ("extension_0123456789abcdef0123456789abcdef_ShoeSize", "38"),
                ("city", "Oslo"),
                (
                    "extension_0123456789abcdef0123456789abcdef_Newsletter",
                    "true",
                ),
            ],
        )
        .await;
    let params = query(&callback);
    assert_eq!(
        params.get("state").map(String::as_str),
        Some(csrf_state.secret().as_str())
    );
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(usher.issuer.as_str())
    );
    let code = params.get("code").expect("code in the callback").clone();

    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("ID token verified against the JWKS");
    let subject = claims.subject().to_string();
    assert_eq!(claims.email().map(|e| e.as_str()), Some("ada@example.com"));
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Ada Lovelace")
    );
    assert_eq!(
        claims
            .given_name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str()),
        Some("Ada")
    );
    assert_eq!(
        claims
            .family_name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str()),
        Some("Lovelace")
    );
    // Custom and non-standard claims, read from the raw payload.
    let raw = payload(&id_token.to_string());
    assert_eq!(raw["extension_ShoeSize"], Value::from(38));
    assert_eq!(raw["city"], Value::from("Oslo"));
    assert_eq!(raw["extension_Newsletter"], Value::Bool(true));
    assert_eq!(raw["tfp"], Value::from("B2X_1_e2e"));
    // Signed in with a password (RFC 8176).
    assert_eq!(raw["amr"], serde_json::json!(["pwd"]));

    // The code is single use.
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .request_async(&http)
        .await;
    assert!(replay.is_err(), "a replayed code must be refused");
    // ... and the replay revoked what the code issued.
    let refresh = tokens
        .refresh_token()
        .expect("a refresh token for offline_access")
        .clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        refreshed.is_err(),
        "the replay must revoke the grant's refresh token"
    );
    let userinfo = http
        .get(usher.url("/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);

    // Sign in again, in a new browser: email and password, no sign-up pages.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new();
    let callback = browser
        .sign_in(
            auth_url.as_str(),
            "Ada@Example.com",
            "correct horse battery staple",
        )
        .await;
    let code = query(&callback)["code"].clone();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange after sign-in");
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&verifier_for(&client), &nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), subject);

    // userinfo answers with the same claims.
    let info: Value = http
        .get(usher.url("/userinfo"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], Value::from(subject.clone()));
    assert_eq!(info["name"], Value::from("Ada Lovelace"));

    // Refresh tokens rotate; the old one is then refused and revokes the grant.
    let refresh = tokens.refresh_token().unwrap().clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret()
    );
    let again = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(again.is_err());
    let newest = client
        .exchange_refresh_token(&RefreshToken::new(
            refreshed.refresh_token().unwrap().secret().clone(),
        ))
        .unwrap()
        .request_async(&http)
        .await;
    assert!(
        newest.is_err(),
        "reuse of a rotated refresh token revokes the whole grant"
    );

    // Single sign-on: the browser's session answers prompt=none.
    let url = usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "none")]);
    let r = browser.get(&url).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(query(r.location()).contains_key("code"), "{}", r.location());

    // RP-initiated logout ends it.
    let logout = format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        usher.url("/logout"),
        tokens.id_token().unwrap(),
        urlencode(SIGNED_OUT)
    );
    let r = browser.get(&logout).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), format!("{SIGNED_OUT}?state=bye"));
    let r = browser.get(&url).await;
    assert_eq!(query(r.location())["error"], "login_required");
    env.finish(usher).await;
}

fn verifier_for(client: &TestClient) -> openidconnect::core::CoreIdTokenVerifier<'_> {
    client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256])
}

type TestClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

both!(a_sign_up_started_on_one_instance_finishes_on_another);
async fn a_sign_up_started_on_one_instance_finishes_on_another(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let a = env.start().await;
    // Both instances serve the same issuer, as behind a load balancer.
    let b = env.start_with_issuer(&a.issuer).await;
    let browser = Browser::new();
    let flow = browser
        .start_flow(&a.authorize_url(PUBLIC_CLIENT, &[("prompt", "create")]))
        .await;
    let page = browser.get(&a.url(&flow)).await;
    browser
        .submit(
            &a.url(&format!("{flow}/email")),
            &page,
            &[("email", "grace@example.com")],
        )
        .await;
    // From here on, every request goes to the other instance.
    let page = browser.get(&b.url(&flow)).await;
    assert!(page.body.contains("name=\"code\""), "{}", page.body);
    let code = env.code_for("grace@example.com");
    let r = browser
        .submit(&b.url(&format!("{flow}/code")), &page, &[("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = browser.get(&b.url(&flow)).await;
    browser
        .submit(
            &b.url(&format!("{flow}/password")),
            &page,
            &[
                ("password", "a long enough pass phrase"),
                ("confirmPassword", "a long enough pass phrase"),
            ],
        )
        .await;
    let page = browser.get(&a.url(&flow)).await;
    let r = browser
        .submit(
            &a.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Grace")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let code = query(r.location())["code"].clone();
    // The code issued by A is redeemed at B.
    let tokens = b.redeem_public(&code).await;
    assert_eq!(
        payload(tokens["id_token"].as_str().unwrap())["name"],
        "Grace"
    );
    env.finish_instance(b).await;
    env.finish(a).await;
}

both!(a_run_whose_instance_stopped_is_resumed_with_the_same_idempotency_key);
async fn a_run_whose_instance_stopped_is_resumed_with_the_same_idempotency_key(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![
        (400, serde_json::json!({"version": "1.0.0", "action": "ValidationError", "status": 400, "userMessage": "Once more."})),
        (200, serde_json::json!({"version": "1.0.0", "action": "Continue"})),
    ])
    .await;
    let usher = env.start_with_connector(&api.url).await;
    let browser = Browser::new();
    let flow = to_attribute_page(&usher, &browser, "resume@example.com").await;
    let flow_id = flow.trim_start_matches("/flow/").to_owned();
    let page = browser.get(&usher.url(&flow)).await;

    // An instance took the form, saved the flow as running its connectors, took the
    // run's lease, and stopped before any outcome: what a `kill -9` mid-call leaves.
    let store = env.store().await;
    let mut stored = store.flow(&flow_id).await.unwrap().unwrap();
    let values = [(
        "displayName".to_owned(),
        usher_domain::AttributeValue::String("Resumed".into()),
    )]
    .into();
    stored
        .attributes_submitted(
            values,
            "u-resumed".into(),
            usher_domain::Clock::now(&env.clock),
        )
        .unwrap();
    store.update_flow(&mut stored).await.unwrap();
    let key = format!(
        "{}.e2e-connector",
        stored.step.run_key(&flow_id).expect("a run key")
    );
    let now = usher_domain::Clock::now(&env.clock);
    assert!(store
        .take_flow_lease(
            &flow_id,
            "stopped-run",
            now,
            now + chrono::Duration::seconds(10)
        )
        .await
        .unwrap());

    // While its lease holds, the form sent again waits for that run: no second call.
    let fields = [("displayName", "Resumed")];
    let r = browser
        .submit(&usher.url(&format!("{flow}/attributes")), &page, &fields)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("http-equiv=\"refresh\""), "{}", r.body);
    assert!(api.bodies().is_empty());
    let r = browser.get(&usher.url(&flow)).await;
    assert!(r.body.contains("http-equiv=\"refresh\""), "{}", r.body);
    assert!(api.bodies().is_empty());

    // The lease runs out (nobody renews it): the form sent again resumes the run,
    // with the run's idempotency key.
    env.clock.advance(chrono::Duration::seconds(11));
    let r = browser
        .submit(&usher.url(&format!("{flow}/attributes")), &page, &fields)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("Once more."), "{}", r.body);
    let headers = api.headers();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0]["idempotency-key"], key.as_str());
    assert_eq!(api.bodies()[0]["displayName"], "Resumed");

    // The next run of the step is another run: another key. Its lease was given
    // back when its outcome was saved, so nothing waits.
    let r = browser
        .submit(&usher.url(&format!("{flow}/attributes")), &r, &fields)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK), "{}", r.location());
    let headers = api.headers();
    assert_eq!(headers.len(), 2);
    let second = headers[1]["idempotency-key"].to_str().unwrap();
    assert_ne!(second, key);
    assert!(
        second.starts_with(&format!("{flow_id}.PostAttributeCollection.")),
        "{second}"
    );
    env.finish(usher).await;
}

both!(health_says_live_and_ready_and_a_shutdown_drains_first);
async fn health_says_live_and_ready_and_a_shutdown_drains_first(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mut usher = env.start_with("shutdown_drain_seconds = 2\n").await;
    let http = reqwest::Client::new();
    let base = usher.base.clone();
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    assert_eq!(get("/health/live").await, (StatusCode::OK, "ok".to_owned()));
    assert_eq!(
        get("/health/ready").await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(get("/healthz").await, (StatusCode::OK, "ok".to_owned()));

    // SIGTERM: not ready at once, while still serving (sign-in pages included).
    usher.begin_shutdown();
    let mut drained = false;
    for _ in 0..50 {
        if get("/health/ready").await.0 == StatusCode::SERVICE_UNAVAILABLE {
            drained = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(drained, "ready fails from the moment the drain starts");
    assert_eq!(
        get("/health/ready").await,
        (StatusCode::SERVICE_UNAVAILABLE, "draining".to_owned())
    );
    assert_eq!(get("/healthz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get("/health/live").await.0, StatusCode::OK);
    let browser = Browser::new();
    let flow = browser
        .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[]))
        .await;
    assert_eq!(browser.get(&usher.url(&flow)).await.status, StatusCode::OK);
    assert!(!usher.has_stopped());
    // After the drain the server stops.
    for _ in 0..100 {
        if usher.has_stopped() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(usher.has_stopped(), "stopped after the drain");
    env.finish(usher).await;
}

both!(a_restart_mid_flow_loses_nothing);
async fn a_restart_mid_flow_loses_nothing(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let first = env.start().await;
    let issuer = first.issuer.clone();
    let browser = Browser::new();
    let flow = browser
        .start_flow(&first.authorize_url(PUBLIC_CLIENT, &[("prompt", "create")]))
        .await;
    let page = browser.get(&first.url(&flow)).await;
    browser
        .submit(
            &first.url(&format!("{flow}/email")),
            &page,
            &[("email", "restart@example.com")],
        )
        .await;
    env.finish_instance(first).await;

    let second = env.start_with_issuer(&issuer).await;
    let page = browser.get(&second.url(&flow)).await;
    let code = env.code_for("restart@example.com");
    let r = browser
        .submit(
            &second.url(&format!("{flow}/code")),
            &page,
            &[("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    env.finish(second).await;
}

both!(existing_accounts_are_not_revealed_and_sign_in_failures_look_alike);
async fn existing_accounts_are_not_revealed_and_sign_in_failures_look_alike(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let browser = Browser::new();
    let callback = browser
        .sign_up(
            &usher,
            &usher.authorize_url(PUBLIC_CLIENT, &[]),
            "taken@example.com",
            "a long enough pass phrase",
            &[("displayName", "Taken")],
        )
        .await;
    assert!(query(&callback).contains_key("code"));

    // Sign-up with the same address: the same page as for a new address...
    let other = Browser::new();
    let flow = other
        .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "create")]))
        .await;
    let page = other.get(&usher.url(&flow)).await;
    let r = other
        .submit(
            &usher.url(&format!("{flow}/email")),
            &page,
            &[("email", "TAKEN@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = other.get(&usher.url(&flow)).await;
    assert!(page.body.contains("name=\"code\""));
    // ...but the email says there is an account, and carries no code.
    let mail = env.last_mail_to("taken@example.com");
    assert!(mail.contains("You already have an account"), "{mail}");
    let r = other
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", "123456")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Wrong password and unknown email get the same answer.
    let wrong_password = other
        .try_sign_in(&usher, "taken@example.com", "not the password")
        .await;
    let unknown = other
        .try_sign_in(&usher, "nobody@example.com", "not the password")
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong_password.status);
    assert_eq!(
        error_summary(&unknown.body),
        error_summary(&wrong_password.body)
    );
    assert!(error_summary(&unknown.body).contains("email address or password is not right"));
    env.finish(usher).await;
}

/// Strings a person, a script or a broken client might post: text in many scripts,
/// invisible and direction-changing characters, control characters, markup, very long.
fn hostile_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "\\PC{0,80}",
        ".{0,40}",
        "[a-z\u{202e}\u{200b}\u{fffd}\u{0}\n\r<>\"'&%@.+ ]{0,40}",
        "[a-z]{1,8}@[a-z\u{202e}]{1,8}\\.[a-z]{2,3}",
        "[0-9]{0,10}",
        Just("x".repeat(5000)),
    ]
}

/// Form bodies as raw bytes, including percent-escapes that decode to invalid UTF-8.
fn form_body(csrf: &str, fields: &[(&str, &str)], raw_tail: &[u8]) -> Vec<u8> {
    let mut body = format!("csrf={}", urlencode(csrf)).into_bytes();
    for (k, v) in fields {
        body.extend_from_slice(format!("&{}={}", urlencode(k), urlencode(v)).as_bytes());
    }
    body.extend_from_slice(raw_tail);
    body
}

both!(fuzzed_forms_never_get_a_server_error);
async fn fuzzed_forms_never_get_a_server_error(backend: Backend) {
    use proptest::strategy::{Strategy, ValueTree};
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    // Deterministic, so a failure is the same on every run.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut sample = || hostile_text().new_tree(&mut runner).unwrap().current();
    let tails: [&[u8]; 4] = [b"", b"&email=%FF%FE%80", b"&code=%C0%AF", b"&%ZZ=%"];

    // The named case first: a right-to-left override is the person's error, next to
    // the field, not a failed delivery.
    let b = Browser::new();
    let flow = b
        .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "create")]))
        .await;
    let page = b.get(&usher.url(&flow)).await;
    for bad in ["\u{202e}evil@example.com", "ev\u{200b}il@example.com"] {
        let r = b
            .submit(
                &usher.url(&format!("{flow}/email")),
                &page,
                &[("email", bad)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.body);
        assert_field_error(&r.body, "email");
    }
    let r = b
        .post_raw(
            &usher.url(&format!("{flow}/email")),
            form_body(&page.csrf(), &[], b"&email=%FF%FEa%40example.com"),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // The email form.
    for i in 0..60 {
        let email = sample();
        let r = b
            .post_raw(
                &usher.url(&format!("{flow}/email")),
                form_body(&page.csrf(), &[("email", &email)], tails[i % tails.len()]),
            )
            .await;
        // Page asserts < 500 itself; a 303 means the address was taken: start again.
        assert!(
            r.status.is_client_error() || r.status.is_redirection(),
            "{email:?}: {}",
            r.status
        );
        if r.status.is_redirection() {
            break;
        }
    }

    // The code form, then the password form, then the attribute form.
    let b = Browser::new();
    let (flow, _) = b
        .verify_email(&usher, PUBLIC_CLIENT, "fuzz@example.com")
        .await;
    let page = b.get(&usher.url(&flow)).await;
    for i in 0..40 {
        let password = sample();
        let confirm = if i % 2 == 0 {
            password.clone()
        } else {
            sample()
        };
        let r = b
            .post_raw(
                &usher.url(&format!("{flow}/password")),
                form_body(
                    &page.csrf(),
                    &[("password", &password), ("confirmPassword", &confirm)],
                    tails[i % tails.len()],
                ),
            )
            .await;
        assert!(r.status.as_u16() < 500, "{password:?}");
        if r.status.is_redirection() {
            break;
        }
    }
    let flow = b
        .to_attribute_page(
            &usher,
            PUBLIC_CLIENT,
            "fuzz2@example.com",
            "a long enough pass phrase",
        )
        .await;
    let page = b.get(&usher.url(&flow)).await;
    let fields = [
        "displayName",
        "givenName",
        "surname",
        "city",
        NEWSLETTER,
        TEAM,
        "extension_0123456789abcdef0123456789abcdef_ShoeSize",
    ];
    for i in 0..60 {
        let values: Vec<String> = fields.iter().map(|_| sample()).collect();
        let form: Vec<(&str, &str)> = fields
            .iter()
            .zip(&values)
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let r = b
            .post_raw(
                &usher.url(&format!("{flow}/attributes")),
                form_body(&page.csrf(), &form, tails[i % tails.len()]),
            )
            .await;
        assert!(r.status.as_u16() < 500, "{form:?}");
        if r.status.is_redirection() {
            break;
        }
    }

    // Codes, on a fresh flow: wrong ones run out the code's tries, never a 5xx.
    let b = Browser::new();
    let flow = b
        .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "create")]))
        .await;
    let page = b.get(&usher.url(&flow)).await;
    b.submit(
        &usher.url(&format!("{flow}/email")),
        &page,
        &[("email", "codes-fuzz@example.com")],
    )
    .await;
    let page = b.get(&usher.url(&flow)).await;
    for i in 0..30 {
        let code = sample();
        let r = b
            .post_raw(
                &usher.url(&format!("{flow}/code")),
                form_body(&page.csrf(), &[("code", &code)], tails[i % tails.len()]),
            )
            .await;
        assert!(r.status.as_u16() < 500, "{code:?}");
    }
    env.finish(usher).await;
}

/// Small limits, so a test reaches them quickly.
const LIMITS: &str = r#"
[rate_limits]
password_failures_per_account = { max = 3, window_seconds = 900 }
code_failures_per_email = { max = 4, window_seconds = 900 }
codes_sent_per_email = { max = 3, window_seconds = 3600 }
client_secret_failures_per_address = { max = 5, window_seconds = 60 }
# The test's requests come from loopback, which may say where they come from.
trusted_proxies = ["127.0.0.1"]
"#;

fn mails_to(outbox: &std::path::Path, to: &str) -> usize {
    std::fs::read_dir(outbox).map_or(0, |d| {
        d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter(|m| m.lines().any(|l| l == format!("To: {to}")))
            .count()
    })
}

fn retry_after(page: &Page) -> i64 {
    page.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", page.headers))
}

both!(rate_limits_hold_across_flows_and_instances);
async fn rate_limits_hold_across_flows_and_instances(backend: Backend) {
    let env = TestEnv::new(backend).await;
    // Two instances on one database, as behind a load balancer.
    let a = env.start_with(LIMITS).await;
    let b = env.start_with(LIMITS).await;
    const PASSWORD: &str = "a long enough pass phrase";
    let owner = Browser::new();
    owner
        .sign_up(
            &a,
            &a.authorize_url(PUBLIC_CLIENT, &[]),
            "victim@example.com",
            PASSWORD,
            &[("displayName", "Victim")],
        )
        .await;

    // Wrong passwords, each in a new flow, spread over both instances.
    let attacker = Browser::new();
    for usher in [&a, &b, &a] {
        let r = attacker
            .try_sign_in(usher, "victim@example.com", "not the password")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused, on either instance, until the window ends.
    let r = attacker
        .try_sign_in(&b, "victim@example.com", PASSWORD)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(
        error_summary(&r.body).contains("Too many attempts"),
        "{}",
        r.body
    );
    let wait = retry_after(&r);
    assert!((1..=900).contains(&wait), "{wait}");
    // An address without an account answers the same way: no enumeration.
    for _ in 0..3 {
        let r = attacker
            .try_sign_in(&a, "nobody@example.com", "not the password")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let refused_unknown = attacker
        .try_sign_in(&a, "nobody@example.com", "not the password")
        .await;
    assert_eq!(refused_unknown.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_summary(&refused_unknown.body), error_summary(&r.body));
    // A back-off, not a lock: once the window is over the owner signs in.
    env.clock.advance(chrono::Duration::seconds(901));
    let r = owner.try_sign_in(&a, "victim@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK));

    // Codes sent to one address: three, across three flows and both instances.
    let sender = Browser::new();
    let mut last = None;
    for usher in [&a, &b, &a, &b] {
        last = Some(
            sender
                .enter_email(usher, PUBLIC_CLIENT, "bombed@example.com")
                .await
                .1,
        );
    }
    let r = last.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(retry_after(&r) > 900);
    assert_eq!(mails_to(&env.outbox(), "bombed@example.com"), 3);

    // Password resets count against the same allowance, known address or not: three
    // across flows and instances, then the fourth is refused the same way.
    for email in ["victim@example.com", "nobody-here@example.com"] {
        let resetter = Browser::new();
        let mut last = None;
        for usher in [&a, &b, &a, &b] {
            last = Some(resetter.enter_reset_email(usher, email).await.1);
        }
        let r = last.unwrap();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(retry_after(&r) > 900);
        assert_eq!(mails_to(&env.outbox(), email), 3);
    }

    // Wrong codes for one address, across flows: four, then even the right one waits.
    let guesser = Browser::new();
    let mut flows = Vec::new();
    for usher in [&a, &b] {
        let (flow, _) = guesser
            .enter_email(usher, PUBLIC_CLIENT, "guessed@example.com")
            .await;
        flows.push((usher, flow));
    }
    let right = env.code_for("guessed@example.com");
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for (usher, flow) in [&flows[0], &flows[0], &flows[1], &flows[1]] {
        let page = guesser.get(&usher.url(flow)).await;
        let r = guesser
            .submit(
                &usher.url(&format!("{flow}/code")),
                &page,
                &[("code", wrong)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let (usher, flow) = &flows[1];
    let page = guesser.get(&usher.url(flow)).await;
    let r = guesser
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &right)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);

    // Wrong client secrets: five per client and source address a minute. The sixth
    // try from that address is refused even with the right secret; other addresses,
    // and right secrets, are not held back.
    let http = reqwest::Client::new();
    let token_from = |usher: &Instance, from: &'static str, secret: &'static str| {
        http.post(usher.url("/token"))
            .header("x-forwarded-for", from)
            .basic_auth(CONFIDENTIAL_CLIENT, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    for usher in [&a, &b, &a, &b, &a] {
        let r = token_from(usher, "198.51.100.7", "wrong secret")
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = token_from(&b, "198.51.100.7", CONFIDENTIAL_SECRET)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let seconds: i64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&seconds));
    assert_eq!(json(r).await["error"], "temporarily_unavailable");
    for _ in 0..8 {
        let r = token_from(&a, "198.51.100.8", CONFIDENTIAL_SECRET)
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "right secrets do not count");
    }

    // A burst of parallel guesses gets no more than the limit: each attempt is
    // counted before its password is checked.
    let mut prepared = Vec::new();
    for i in 0..8 {
        let person = Browser::new();
        let usher = if i % 2 == 0 { &a } else { &b };
        let flow = person
            .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "login")]))
            .await;
        let page = person.get(&usher.url(&flow)).await;
        prepared.push((person, usher.url(&format!("{flow}/sign-in")), page.csrf()));
    }
    let tasks: Vec<_> = prepared
        .into_iter()
        .map(|(person, url, csrf)| {
            tokio::spawn(async move {
                person
                    .post(
                        &url,
                        &[
                            ("csrf", csrf.as_str()),
                            ("email", "burst@example.com"),
                            ("password", "not the password"),
                        ],
                    )
                    .await
                    .status
            })
        })
        .collect();
    let mut wrong = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::UNAUTHORIZED => wrong += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        wrong, 3,
        "exactly the limit's worth of guesses were checked"
    );

    // Refusals are counted per instance for /metrics: added up over both, each limit
    // above refused at least once (the burst's refusals among them).
    let mut refused = std::collections::BTreeMap::<String, u64>::new();
    for usher in [&a, &b] {
        let text = http
            .get(usher.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in text
            .lines()
            .filter(|l| l.starts_with("usher_rate_limited_total{"))
        {
            let (name, count) = line.rsplit_once(' ').unwrap();
            *refused.entry(name.to_owned()).or_default() += count.parse::<u64>().unwrap();
        }
    }
    for (limit, at_least) in [
        ("password_failures_per_account", 6),
        ("codes_sent_per_email", 1),
        ("code_failures_per_email", 1),
        ("client_secret_failures_per_address", 1),
    ] {
        let n = refused[&format!("usher_rate_limited_total{{limit=\"{limit}\"}}")];
        assert!(n >= at_least, "{limit}: {n} in {refused:?}");
    }
    env.finish_instance(b).await;
    env.finish(a).await;
}

both!(bad_input_gets_clear_errors_and_never_a_500);
async fn bad_input_gets_clear_errors_and_never_a_500(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let b = Browser::new();

    // /authorize: errors about the client or redirect URI are pages, never redirects.
    let r = b.get(&usher.url("/authorize?response_type=code")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("client_id is missing"));
    let r = b
        .get(&usher.url("/authorize?client_id=nope&redirect_uri=http://evil.example/"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("not registered"));
    let r = b
        .get(&usher.url(&format!(
            "/authorize?client_id={PUBLIC_CLIENT}&redirect_uri=http://evil.example/cb"
        )))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.headers.get("location").is_none());
    // Everything else goes back to the client, with the state.
    for (params, error) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "profile")], "invalid_scope"),
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("prompt", "none")], "login_required"),
        (vec![("prompt", "bogus")], "invalid_request"),
        (vec![("request", "eyJ")], "request_not_supported"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("nonce", &"n".repeat(600))], "invalid_request"),
        (vec![("max_age", "soon")], "invalid_request"),
    ] {
        let url = usher.authorize_url(PUBLIC_CLIENT, &params);
        let r = b.get(&url).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{params:?}");
        let q = query(r.location());
        assert_eq!(q["error"], error, "{params:?}: {}", r.location());
        assert_eq!(q["state"], "st", "{params:?}");
        assert!(r.location().starts_with(CALLBACK));
    }
    let dup = format!("{}&scope=openid", usher.authorize_url(PUBLIC_CLIENT, &[]));
    assert_eq!(
        query(b.get(&dup).await.location())["error"],
        "invalid_request"
    );

    // Flow pages.
    let r = b.get(&usher.url("/flow/not-a-flow")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = b
        .get(&usher.url("/flow/00000000-0000-4000-8000-000000000000"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("expired or does not exist"));
    let flow = b
        .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "create")]))
        .await;
    let page = b.get(&usher.url(&flow)).await;
    // Another browser cannot continue this flow.
    let stranger = Browser::new();
    let r = stranger.get(&usher.url(&flow)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A forged form (bad CSRF token) is refused with the page shown again.
    let r = b
        .post(
            &usher.url(&format!("{flow}/email")),
            &[("csrf", "forged"), ("email", "x@example.com")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("out of date"));
    // Invalid and oversized emails.
    for bad in [
        "\"victim@example.com\"<attacker@example.net>",
        "not-an-email",
        &format!("{}@example.com", "a".repeat(300)),
        "",
    ] {
        let r = b
            .submit(
                &usher.url(&format!("{flow}/email")),
                &page,
                &[("email", bad)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_field_error(&r.body, "email");
    }
    // A body over the limit.
    let big = "x".repeat(100 * 1024);
    let r = b
        .submit(
            &usher.url(&format!("{flow}/email")),
            &page,
            &[("email", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Codes: format, wrong, too many, expired.
    b.submit(
        &usher.url(&format!("{flow}/email")),
        &page,
        &[("email", "codes@example.com")],
    )
    .await;
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", "12ab")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_field_error(&r.body, "code");
    let right = env.code_for("codes@example.com");
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", wrong)],
        )
        .await;
    assert!(r.body.contains("You can try 4 more times"), "{}", r.body);
    for _ in 0..4 {
        b.submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", wrong)],
        )
        .await;
    }
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &right)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Too many wrong codes"));
    // A new code works, but not after it expires.
    b.submit(&usher.url(&format!("{flow}/resend")), &page, &[])
        .await;
    let fresh = env.code_for("codes@example.com");
    env.clock.advance(chrono::Duration::minutes(11));
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &fresh)],
        )
        .await;
    assert!(r.body.contains("The code has expired"), "{}", r.body);
    b.submit(&usher.url(&format!("{flow}/resend")), &page, &[])
        .await;
    let fresh = env.code_for("codes@example.com");
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &fresh)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Passwords.
    let page = b.get(&usher.url(&flow)).await;
    for (pw, confirm, field, text) in [
        ("short", "short", "password", "at least 8 characters"),
        ("password123", "password123", "password", "too common"),
        (
            "a long enough pass phrase",
            "a different phrase",
            "confirmPassword",
            "not the same",
        ),
    ] {
        let r = b
            .submit(
                &usher.url(&format!("{flow}/password")),
                &page,
                &[("password", pw), ("confirmPassword", confirm)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_field_error(&r.body, field);
        assert!(r.body.contains(text), "{text}");
        assert!(!r.body.contains(pw), "a password must never be echoed");
    }
    b.submit(
        &usher.url(&format!("{flow}/password")),
        &page,
        &[
            ("password", "a long enough pass phrase"),
            ("confirmPassword", "a long enough pass phrase"),
        ],
    )
    .await;

    // Attributes: required, too long, not a number, not an option; input kept.
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[
                ("displayName", ""),
                ("givenName", &"g".repeat(65)),
                ("extension_0123456789abcdef0123456789abcdef_ShoeSize", "big"),
                ("city", "Atlantis"),
                ("surname", "<script>alert(1)</script>"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for field in [
        "displayName",
        "givenName",
        "extension_0123456789abcdef0123456789abcdef_ShoeSize",
        "city",
    ] {
        assert_field_error(&r.body, field);
    }
    assert!(r.body.contains("Use at most 64 characters"));
    assert!(r.body.contains("&lt;script&gt;"), "input is kept, escaped");
    assert!(!r.body.contains("<script>"));

    // The token endpoint.
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = usher.url("/token");
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    let r = http
        .post(usher.url("/token"))
        .body("grant_type=authorization_code")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["error"], "invalid_request");
    let r = token(vec![
        ("grant_type", "password".into()),
        ("client_id", PUBLIC_CLIENT.into()),
    ])
    .await;
    assert_eq!(json(r).await["error"], "unsupported_grant_type");
    let r = token(vec![
        ("grant_type", "authorization_code".into()),
        ("client_id", PUBLIC_CLIENT.into()),
        ("code", "nope".into()),
        ("redirect_uri", CALLBACK.into()),
    ])
    .await;
    assert_eq!(json(r).await["error"], "invalid_grant");
    let r = token(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", "unknown".into()),
        ("client_secret", "x".into()),
    ])
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(r).await["error"], "invalid_client");
    let r = http
        .post(usher.url("/token"))
        .basic_auth(CONFIDENTIAL_CLIENT, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = token(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", PUBLIC_CLIENT.into()),
    ])
    .await;
    assert_eq!(json(r).await["error"], "unauthorized_client");
    let r = http
        .post(usher.url("/userinfo"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http.get(usher.url("/userinfo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(usher.url("/logout?id_token_hint=garbage"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http
        .get(usher.url(&format!(
            "/logout?client_id={PUBLIC_CLIENT}&post_logout_redirect_uri=http://evil.example/"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Junk at every endpoint: never a 500.
    let junk = [
        "",
        "%",
        "%ff%fe",
        "a=b&a=c",
        "\u{0}",
        "client_id=%00&redirect_uri=%00",
        &"z".repeat(5000),
    ];
    for path in [
        "/authorize",
        "/token",
        "/userinfo",
        "/logout",
        "/try/callback",
        &format!("{flow}/attributes"),
        &format!("{flow}/code"),
        "/flow/x/email",
    ] {
        for body in junk {
            let r = http
                .post(usher.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            assert!(
                r.status().as_u16() < 500,
                "POST {path} {body:?}: {}",
                r.status()
            );
            let r = http
                .get(format!("{}?{}", usher.url(path), body))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().as_u16() < 500,
                "GET {path}?{body:?}: {}",
                r.status()
            );
        }
    }
    env.finish(usher).await;
}

both!(client_credentials_and_confidential_clients);
async fn client_credentials_and_confidential_clients(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let http = reqwest::Client::new();
    let r = http
        .post(usher.url("/token"))
        .basic_auth(CONFIDENTIAL_CLIENT, Some(CONFIDENTIAL_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = json(r).await;
    let claims = payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["roles"], serde_json::json!(["User.Read.All"]));
    assert_eq!(claims["sub"], CONFIDENTIAL_CLIENT);
    // client_secret_post works too.
    let r = http
        .post(usher.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CONFIDENTIAL_CLIENT),
            ("client_secret", CONFIDENTIAL_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // A confidential client's code exchange needs its secret; no PKCE needed.
    let browser = Browser::new();
    let url = usher.authorize_url_without_pkce(CONFIDENTIAL_CLIENT);
    let callback = browser
        .sign_up(
            &usher,
            &url,
            "server@example.com",
            "a long enough pass phrase",
            &[("displayName", "Server")],
        )
        .await;
    let code = query(&callback)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    let r = http
        .post(usher.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no client authentication"
    );
    let r = http
        .post(usher.url("/token"))
        .basic_auth(CONFIDENTIAL_CLIENT, Some(CONFIDENTIAL_SECRET))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = json(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        payload(body["id_token"].as_str().unwrap())["email"],
        "server@example.com"
    );
    env.finish(usher).await;
}

both!(pages_are_localised_and_accessible);
async fn pages_are_localised_and_accessible(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let b = Browser::new();
    let flow = b
        .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("ui_locales", "nb-NO en")]))
        .await;
    let page = b.get(&usher.url(&flow)).await;
    assert!(page.body.contains("<html lang=\"nb\">"));
    assert!(page.body.contains("Logg inn"));
    // Every input has a label.
    for id in input_ids(&page.body) {
        assert!(
            page.body.contains(&format!("<label for=\"{id}\">")),
            "input {id} has no label"
        );
    }
    let r = b
        .submit(
            &usher.url(&format!("{flow}/sign-in")),
            &page,
            &[("email", ""), ("password", "")],
        )
        .await;
    assert!(r.body.contains("Det er et problem"));
    assert!(r.body.contains("aria-describedby=\"email-error\""));
    assert!(
        r.body.contains("href=\"#email\""),
        "the summary links to the field"
    );
    // Accept-Language when the application gives no ui_locales.
    let r = reqwest::Client::new()
        .get(usher.url("/try"))
        .header("accept-language", "nb;q=0.9, en;q=0.5")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Kjør brukerflyt"));
    env.finish(usher).await;
}

both!(the_try_page_shows_the_token);
async fn the_try_page_shows_the_token(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let b = Browser::new();
    let r = b.get(&usher.url("/try/start?prompt=create")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let authorize = usher.url(r.location());
    let callback = b
        .sign_up(
            &usher,
            &authorize,
            "demo@example.com",
            "a long enough pass phrase",
            &[("displayName", "Demo Person"), ("givenName", "Demo")],
        )
        .await;
    // The callback is Usher's own /try/callback.
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body.contains("data-claim=\"email\">demo@example.com<"),
        "{}",
        r.body
    );
    assert!(r.body.contains("data-claim=\"name\">Demo Person<"));
    assert!(r.body.contains("data-claim=\"given_name\">Demo<"));
    // A forged callback is refused.
    let r = b.get(&usher.url("/try/callback?code=x&state=forged")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    env.finish(usher).await;
}

/// A person in a real (headless) browser, without JavaScript help: the demo at `/try`,
/// sign-up from the first page to the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sign_up_at_try() {
    if !harness::webdriver::available() {
        return;
    }
    let env = TestEnv::new(Backend::Sqlite).await;
    let usher = env.start().await;
    let browser = harness::webdriver::Driver::start().await;
    let shots = env.dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    browser.goto(&usher.url("/try")).await;
    browser.click("form.secondary button").await;
    browser.wait_for("#email").await;
    assert!(
        browser.url().await.contains("/flow/"),
        "{}",
        browser.url().await
    );
    // Submitting nothing shows the error, tied to the field and summarised.
    browser
        .click("form[action$='/email'] button[type=submit]")
        .await;
    browser.wait_for(".error-summary").await;
    assert!(browser
        .text(".error-summary")
        .await
        .contains("Enter a value"));
    assert_eq!(browser.text("#email-error").await, "Enter a value.");
    browser.type_into("#email", "browser@example.com").await;
    browser
        .click("form[action$='/email'] button[type=submit]")
        .await;
    browser.wait_for("#code").await;
    let code = env.code_for("browser@example.com");
    browser.type_into("#code", &code).await;
    browser
        .click("form[action$='/code'] button[type=submit]")
        .await;
    browser.wait_for("#confirmPassword").await;
    browser
        .type_into("#password", "a long enough pass phrase")
        .await;
    browser
        .type_into("#confirmPassword", "a long enough pass phrase")
        .await;
    browser
        .click("form[action$='/password'] button[type=submit]")
        .await;
    browser.wait_for("#displayName").await;
    browser.screenshot(&shots.join("attributes.png")).await;
    browser.type_into("#displayName", "Browser Person").await;
    browser.type_into("#givenName", "Browser").await;
    browser
        .click("form[action$='/attributes'] button[type=submit]")
        .await;
    browser.wait_for("#claims").await;
    browser.screenshot(&shots.join("token.png")).await;
    let url = browser.url().await;
    assert!(url.contains("/try/callback"), "{url}");
    assert_eq!(
        browser.text("td[data-claim=email]").await,
        "browser@example.com"
    );
    assert_eq!(browser.text("td[data-claim=name]").await, "Browser Person");
    if let Ok(dir) = std::env::var("USHER_SCREENSHOTS") {
        for f in ["attributes.png", "token.png"] {
            let _ = std::fs::copy(shots.join(f), std::path::Path::new(&dir).join(f));
        }
    }
    browser.quit().await;
    env.finish(usher).await;
}

/// Self-service in a real browser: a forgotten password reset (an account-recovery
/// connector blocking first), a reset for an address without an account, a password
/// change, a profile edit through a connector's field error, and deleting the account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_account_self_service() {
    if !harness::webdriver::available() {
        return;
    }
    let recovery = harness::api::TestApi::start(vec![
        (
            200,
            serde_json::json!({"version": "1.0.0", "action": "ShowBlockPage",
                "userMessage": "This account is locked. Call us to unlock it."}),
        ),
        (
            200,
            serde_json::json!({"version": "1.0.0", "action": "Continue"}),
        ),
    ])
    .await;
    let profile = harness::api::TestApi::start(vec![
        (
            400,
            serde_json::json!({"version": "1.0.0", "action": "ValidationError", "status": 400,
                "userMessage": "Please check the highlighted field.",
                "attributeErrors": {"displayName": "That name is taken."}}),
        ),
        (
            200,
            serde_json::json!({"version": "1.0.0", "action": "Continue"}),
        ),
    ])
    .await;
    let env = TestEnv::new(Backend::Sqlite).await;
    let usher = env
        .start_with(&format!(
            r#"
[connector_settings]
allow_insecure_targets = true

[[connectors]]
id = "recovery"
target_url = "{}"
retries = 0

[[connectors]]
id = "profile"
target_url = "{}"
retries = 0

[user_flows.connectors]
pre_account_recovery = ["recovery"]
on_profile_update = ["profile"]
"#,
            recovery.url, profile.url
        ))
        .await;
    // Ada signs up, and an application of hers holds a refresh token.
    let authorize = usher.authorize_url(PUBLIC_CLIENT, &[("scope", "openid offline_access")]);
    let callback = Browser::new()
        .sign_up(
            &usher,
            &authorize,
            "ada@example.com",
            "a long enough pass phrase",
            &[("displayName", "Ada")],
        )
        .await;
    let tokens = usher.redeem_public(&query(&callback)["code"]).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let browser = harness::webdriver::Driver::start().await;
    let submit = |action: &str| format!("form[action$='/{action}'] button[type=submit]");
    // Forgot password, from the sign-in page; the recovery connector blocks.
    browser.goto(&authorize).await;
    browser
        .wait_for("form[action$='/forgot-password'] button")
        .await;
    browser
        .click("form[action$='/forgot-password'] button")
        .await;
    browser.wait_for("#email").await;
    assert_accessible(&browser).await;
    browser.type_into("#email", "ada@example.com").await;
    browser.click(&submit("email")).await;
    browser.wait_for("#code").await;
    assert_accessible(&browser).await;
    let known_page = browser.text("main").await;
    browser
        .type_into("#code", &env.code_for("ada@example.com"))
        .await;
    browser.click(&submit("code")).await;
    browser.wait_for(".user-message").await;
    assert_accessible(&browser).await;
    assert_eq!(
        browser.text(".user-message").await,
        "This account is locked. Call us to unlock it."
    );
    let sent = recovery.bodies();
    assert_eq!(sent[0]["step"], "PreAccountRecovery");
    assert_eq!(sent[0]["email"], "ada@example.com");
    assert_eq!(sent[0]["displayName"], "Ada");

    // A reset for an address without an account looks the same and sends no code.
    browser
        .goto(&usher.authorize_url(PUBLIC_CLIENT, &[("usher_action", "reset_password")]))
        .await;
    browser.wait_for("#email").await;
    assert_accessible(&browser).await;
    browser.type_into("#email", "nobody@example.com").await;
    browser.click(&submit("email")).await;
    browser.wait_for("#code").await;
    assert_accessible(&browser).await;
    assert_eq!(
        browser
            .text("main")
            .await
            .replace("nobody@example.com", "ada@example.com"),
        known_page
    );
    let mail = env.last_mail_to("nobody@example.com");
    // The mail says there is no account; it carries no code.
    assert!(
        mail.lines()
            .any(|l| l.trim_end() == "Subject: Password reset"),
        "{mail}"
    );
    assert!(
        mail.lines()
            .skip_while(|l| !l.trim_end().is_empty())
            .all(|l| !l.chars().any(|c| c.is_ascii_digit())),
        "{mail}"
    );

    // The application's own reset: the connector continues now, the new password
    // signs in, and the old refresh token is refused.
    browser
        .goto(&usher.authorize_url(PUBLIC_CLIENT, &[("usher_action", "reset_password")]))
        .await;
    browser.wait_for("#email").await;
    assert_accessible(&browser).await;
    browser.type_into("#email", "ada@example.com").await;
    browser.click(&submit("email")).await;
    browser.wait_for("#code").await;
    assert_accessible(&browser).await;
    browser
        .type_into("#code", &env.code_for("ada@example.com"))
        .await;
    browser.click(&submit("code")).await;
    browser.wait_for("#confirmPassword").await;
    assert_accessible(&browser).await;
    browser.type_into("#password", "a new pass phrase").await;
    browser
        .type_into("#confirmPassword", "a new pass phrase")
        .await;
    browser.click(&submit("new-password")).await;
    let claims = id_token_at_app(&browser, &usher).await;
    assert_eq!(claims["email"], "ada@example.com");
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", PUBLIC_CLIENT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["error"], "invalid_grant");
    let page = Browser::new()
        .try_sign_in(&usher, "ada@example.com", "a long enough pass phrase")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);

    // Signed in now: changing the password asks for the current one.
    browser
        .goto(&usher.authorize_url(PUBLIC_CLIENT, &[("usher_action", "change_password")]))
        .await;
    browser.wait_for("#currentPassword").await;
    assert_accessible(&browser).await;
    browser
        .type_into("#currentPassword", "not the password")
        .await;
    browser.type_into("#password", "a third pass phrase").await;
    browser
        .type_into("#confirmPassword", "a third pass phrase")
        .await;
    browser.click(&submit("new-password")).await;
    browser.wait_for("#currentPassword-error").await;
    assert_accessible(&browser).await;
    browser
        .type_into("#currentPassword", "a new pass phrase")
        .await;
    browser.type_into("#password", "a third pass phrase").await;
    browser
        .type_into("#confirmPassword", "a third pass phrase")
        .await;
    browser.click(&submit("new-password")).await;
    id_token_at_app(&browser, &usher).await;

    // The profile: the connector refuses a field, then takes the fix; the ID token
    // has the new name.
    browser
        .goto(&usher.authorize_url(PUBLIC_CLIENT, &[("usher_action", "edit_profile")]))
        .await;
    browser.wait_for("#displayName").await;
    assert_accessible(&browser).await;
    assert_eq!(
        browser
            .eval("return document.getElementById('displayName').value")
            .await,
        "Ada"
    );
    browser.clear("#displayName").await;
    browser.type_into("#displayName", "Countess").await;
    browser.click(&submit("profile")).await;
    browser.wait_for("#displayName-error").await;
    assert_accessible(&browser).await;
    assert_eq!(
        browser.text("#displayName-error").await,
        "That name is taken."
    );
    browser.clear("#displayName").await;
    browser.type_into("#displayName", "Ada Lovelace").await;
    browser.click(&submit("profile")).await;
    let claims = id_token_at_app(&browser, &usher).await;
    assert_eq!(claims["name"], "Ada Lovelace");
    assert_eq!(profile.bodies()[0]["step"], "OnProfileUpdate");

    // Leaving: a confirmation, a fresh code, and the account is gone.
    browser
        .goto(&usher.authorize_url(
            PUBLIC_CLIENT,
            &[("usher_action", "delete_account"), ("ui_locales", "nb")],
        ))
        .await;
    browser.wait_for(&submit("delete-account")).await;
    assert_accessible(&browser).await;
    // In the person's language, as every page is.
    assert_eq!(browser.text("h1").await, "Slette kontoen din?");
    browser.click(&submit("delete-account")).await;
    browser.wait_for("#code").await;
    assert_accessible(&browser).await;
    browser
        .type_into("#code", &env.code_for("ada@example.com"))
        .await;
    browser.click(&submit("code")).await;
    browser.wait_for("a[href*='error=access_denied']").await;
    assert_accessible(&browser).await;
    assert_eq!(browser.text("h1").await, "Kontoen din er slettet");
    let page = Browser::new()
        .try_sign_in(&usher, "ada@example.com", "a third pass phrase")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    browser.quit().await;
    env.finish(usher).await;
}

/// The checks every flow page passes, in the browser that shows it: a language, one
/// heading, every field labelled (and its error, if any, tied to it), no unnamed
/// button.
async fn assert_accessible(browser: &harness::webdriver::Driver) {
    let problems = browser
        .eval(
            "const bad = [];
             if (!document.documentElement.lang) bad.push('no lang');
             if (document.querySelectorAll('h1').length !== 1) bad.push('not one h1');
             for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
               if (!el.labels || el.labels.length === 0) bad.push('unlabelled ' + el.id);
               const error = document.getElementById(el.id + '-error');
               if (error && !(el.getAttribute('aria-describedby') || '').split(' ').includes(error.id))
                 bad.push('error not tied to ' + el.id);
             }
             for (const b of document.querySelectorAll('button, a')) {
               if (!b.textContent.trim()) bad.push('unnamed ' + b.outerHTML);
             }
             return bad;",
        )
        .await;
    assert_eq!(problems, serde_json::json!([]), "{}", browser.url().await);
}

/// The browser is back at the application (whose callback does not answer): the
/// claims of the ID token its code redeems for.
async fn id_token_at_app(browser: &harness::webdriver::Driver, usher: &Instance) -> Value {
    let mut url = String::new();
    for _ in 0..100 {
        url = browser.url().await;
        if url.starts_with(CALLBACK) {
            let tokens = usher.redeem_public(&query(&url)["code"]).await;
            return payload(tokens["id_token"].as_str().unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "not back at the application: {url}\n{}",
        browser.source().await
    );
}

both!(rs256_signing_and_expired_codes);
async fn rs256_signing_and_expired_codes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with("\n[signing]\nalgorithm = \"RS256\"\n").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(usher.issuer.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(PUBLIC_CLIENT.into()), None)
            .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let callback = Browser::new()
        .sign_up(
            &usher,
            auth_url.as_str(),
            "rsa@example.com",
            "a long enough pass phrase",
            &[("displayName", "RSA")],
        )
        .await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(query(&callback)["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    // The library's default verifier accepts RS256 only.
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.email().unwrap().as_str(), "rsa@example.com");

    // A code older than its lifetime (60 s) is refused.
    let url = usher.authorize_url(PUBLIC_CLIENT, &[]);
    let callback = Browser::new()
        .sign_in(&url, "rsa@example.com", "a long enough pass phrase")
        .await;
    env.clock.advance(chrono::Duration::seconds(61));
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", query(&callback)["code"].as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", PUBLIC_CLIENT),
            ("code_verifier", PKCE_VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json(r).await["error"], "invalid_grant");
    env.finish(usher).await;
}

const TEAM: &str = "extension_0123456789abcdef0123456789abcdef_Team";

/// Walks a new browser to the attribute page of a sign-up; returns the flow path.
async fn to_attribute_page(usher: &Instance, browser: &Browser, email: &str) -> String {
    browser
        .to_attribute_page(usher, PUBLIC_CLIENT, email, "a long enough pass phrase")
        .await
}

both!(a_connector_asks_for_a_correction_then_overwrites_attributes);
async fn a_connector_asks_for_a_correction_then_overwrites_attributes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![
        (
            400,
            serde_json::json!({"version": "1.0.0", "status": 400, "action": "ValidationError",
                "userMessage": "Please check your details.",
                "attributeErrors": {"displayName": "Use the name on your badge."}}),
        ),
        (
            200,
            serde_json::json!({"version": "1.0.0", "action": "Continue",
                "displayName": "Ada Lovelace (Contoso)", "extension_Team": "", "jobTitle": "ignored: not on this flow"}),
        ),
    ])
    .await;
    let usher = env.start_with_connector(&api.url).await;
    let browser = Browser::new();
    let flow = to_attribute_page(&usher, &browser, "ada@contoso.com").await;
    let page = browser.get(&usher.url(&flow)).await;
    let r = browser
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Ada"), (TEAM, "Blue")],
        )
        .await;
    // The page again, with the API's message, its field error next to the field, and
    // what the user typed.
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(error_summary(&r.body).contains("Please check your details."));
    assert_field_error(&r.body, "displayName");
    assert!(r.body.contains("Use the name on your badge."));
    assert!(r.body.contains("value=\"Blue\""), "input is kept");
    let r = browser
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &r,
            &[("displayName", "Ada Lovelace"), (TEAM, "Blue")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // What the connector was sent, the second time.
    let bodies = api.bodies();
    assert_eq!(bodies.len(), 2);
    let sent = &bodies[1];
    assert_eq!(sent["email"], "ada@contoso.com");
    assert_eq!(sent["displayName"], "Ada Lovelace");
    assert_eq!(sent[TEAM], "Blue");
    assert_eq!(sent["step"], "PostAttributeCollection");
    assert_eq!(sent["client_id"], PUBLIC_CLIENT);
    assert!(
        sent.get("identities").is_none(),
        "a local account has no federated identities"
    );
    assert!(sent.get("givenName").is_none(), "empty claims are left out");
    let headers = api.headers();
    assert_eq!(headers[0]["usher-flow-id"], headers[1]["usher-flow-id"]);

    // The token and the stored user carry the connector's values.
    let tokens = usher.redeem_public(&query(r.location())["code"]).await;
    let claims = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["name"], "Ada Lovelace (Contoso)");
    assert!(
        claims.get("extension_Team").is_none(),
        "cleared by the connector"
    );
    assert!(claims.get("jobTitle").is_none(), "not selected by the flow");
    let store = env.store().await;
    let users = store.users_by_email("ada@contoso.com").await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        users[0].attributes["displayName"].as_str(),
        Some("Ada Lovelace (Contoso)")
    );
    assert!(!users[0].attributes.contains_key(TEAM));
    // Every call was recorded.
    let calls = store
        .connector_calls(&usher_storage::CallFilter {
            connector_id: Some("e2e-connector".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    // The test clock stands still, so both records have the same time: compare as sets.
    let mut outcomes: Vec<_> = calls.iter().map(|c| c.outcome.as_str()).collect();
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["continue", "validationError"]);
    let cont = calls.iter().find(|c| c.outcome == "continue").unwrap();
    assert!(
        cont.warnings.iter().any(|w| w.contains("jobTitle")),
        "{:?}",
        cont.warnings
    );
    env.finish(usher).await;
}

both!(connectors_hear_the_persons_language_and_errors_for_absent_fields_are_shown);
async fn connectors_hear_the_persons_language_and_errors_for_absent_fields_are_shown(
    backend: Backend,
) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![
        // Only an error for an attribute the page does not have, and no userMessage.
        (
            400,
            serde_json::json!({"version": "1.0.0", "status": 400, "action": "ValidationError",
                "attributeErrors": {"jobTitle": "Your job title is not on our list."}}),
        ),
        (
            200,
            serde_json::json!({"version": "1.0.0", "action": "Continue"}),
        ),
    ])
    .await;
    let usher = env.start_with_connector(&api.url).await;
    // German first: Usher has no German pages, but the connector must still hear it.
    let browser = Browser::with_language("de-DE,de;q=0.9,en;q=0.5");
    let flow = to_attribute_page(&usher, &browser, "grete@contoso.com").await;
    let page = browser.get(&usher.url(&flow)).await;
    assert!(
        page.body.contains("<html lang=\"en\">"),
        "the page falls back"
    );

    // A value the checkbox cannot send is an error, not a silent "no".
    let r = browser
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Grete"), (NEWSLETTER, "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_field_error(&r.body, NEWSLETTER);
    assert!(
        r.body.contains("Tick the box or leave it empty."),
        "{}",
        r.body
    );
    assert!(api.bodies().is_empty(), "the connector was not called");

    let r = browser
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &r,
            &[("displayName", "Grete")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        error_summary(&r.body).contains("Your job title is not on our list."),
        "{}",
        r.body
    );
    let bodies = api.bodies();
    assert_eq!(bodies[0]["ui_locales"], "de-DE");
    let store = env.store().await;
    let calls = store
        .connector_calls(&usher_storage::CallFilter {
            connector_id: Some("e2e-connector".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        calls[0]
            .warnings
            .iter()
            .any(|w| w.contains("jobTitle") && w.contains("not on the page")),
        "{:?}",
        calls[0].warnings
    );

    env.finish(usher).await;
}

const NEWSLETTER: &str = "extension_0123456789abcdef0123456789abcdef_Newsletter";

both!(pre_token_claims_never_replace_protocol_claims_and_survive_refresh);
async fn pre_token_claims_never_replace_protocol_claims_and_survive_refresh(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(
        200,
        serde_json::json!({"version": "1.0.0", "action": "Continue",
            "sub": "someone-else", "iss": "https://evil.example", "aud": "other-app",
            "exp": 4_102_444_800_u64, "nonce": "forged", "email_verified": false, "SUB": "x",
            "acr": "mfa", "sid": "s", "tfp": "B2X_1_other",
            "loyaltyTier": "gold", "roles": ["reader"]}),
    )])
    .await;
    let usher = env
        .start_with(&format!(
            r#"
[connector_settings]
allow_insecure_targets = true
record_bodies = true

[[connectors]]
id = "claims"
target_url = "{}"
retries = 0

[user_flows.connectors]
pre_token_issuance = ["claims"]
"#,
            api.url
        ))
        .await;
    let browser = Browser::new();
    let authorize = usher.authorize_url(PUBLIC_CLIENT, &[("scope", "openid offline_access")]);
    let callback = browser
        .sign_up(
            &usher,
            &authorize,
            "claims@example.com",
            "a long enough pass phrase",
            &[("displayName", "Claire")],
        )
        .await;
    let tokens = usher.redeem_public(&query(&callback)["code"]).await;
    let first = payload(tokens["id_token"].as_str().unwrap());
    let check = |claims: &Value| {
        assert_eq!(claims["iss"], usher.issuer.as_str(), "{claims}");
        assert_ne!(claims["sub"], "someone-else");
        assert_eq!(claims["aud"], PUBLIC_CLIENT);
        assert_ne!(claims["exp"], 4_102_444_800_u64);
        assert_ne!(claims["email_verified"], false);
        assert_eq!(claims["tfp"], "B2X_1_e2e");
        for protected in ["SUB", "acr", "sid"] {
            assert!(claims.get(protected).is_none(), "{protected}: {claims}");
        }
        assert_eq!(claims["loyaltyTier"], "gold");
        assert_eq!(claims["roles"], serde_json::json!(["reader"]));
    };
    check(&first);
    assert_eq!(first["nonce"], "nc");

    // The refreshed ID token carries the same connector claims, without a new call.
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", PUBLIC_CLIENT),
        ])
        .send()
        .await
        .unwrap();
    let refreshed = json(r).await;
    let second = payload(refreshed["id_token"].as_str().expect("an ID token"));
    check(&second);
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(
        api.bodies().len(),
        1,
        "stored with the grant, not called again"
    );

    // Each refused claim is a contract warning in the call record.
    let store = env.store().await;
    let calls = store
        .connector_calls(&usher_storage::CallFilter {
            connector_id: Some("claims".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    for claim in [
        "sub",
        "iss",
        "aud",
        "exp",
        "nonce",
        "email_verified",
        "SUB",
        "acr",
        "sid",
        "tfp",
    ] {
        assert!(
            calls[0]
                .warnings
                .iter()
                .any(|w| w.contains(&format!("{claim:?}"))),
            "{claim}: {:?}",
            calls[0].warnings
        );
    }
    env.finish(usher).await;
}

both!(a_blocked_or_failed_sign_up_leaves_no_user);
async fn a_blocked_or_failed_sign_up_leaves_no_user(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![
        (
            200,
            serde_json::json!({"version": "1.0.0", "action": "ShowBlockPage",
                "userMessage": "Sign-ups from <b>this</b> domain are closed."}),
        ),
        (500, serde_json::json!({"error": "boom"})),
    ])
    .await;
    let usher = env.start_with_connector(&api.url).await;

    // Blocked: the block page, the message escaped, a way back to the application.
    let browser = Browser::new();
    let flow = to_attribute_page(&usher, &browser, "blocked@example.com").await;
    let page = browser.get(&usher.url(&flow)).await;
    let r = browser
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "B")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("Sign-ups from &lt;b&gt;this&lt;&#x2f;b&gt; domain are closed.")
            || r.body
                .contains("Sign-ups from &lt;b&gt;this&lt;/b&gt; domain are closed."),
        "{}",
        r.body
    );
    let back = unescape(
        r.body
            .split("href=\"")
            .nth(2)
            .unwrap_or("")
            .split('"')
            .next()
            .unwrap_or(""),
    );
    assert!(back.starts_with(CALLBACK), "{back}");
    assert_eq!(query(&back)["error"], "access_denied");
    // The flow stays blocked.
    let again = browser.get(&usher.url(&flow)).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);

    // Failed: the generic page with a reference that is in the call record.
    let browser = Browser::new();
    let flow = to_attribute_page(&usher, &browser, "failed@example.com").await;
    let page = browser.get(&usher.url(&flow)).await;
    let r = browser
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "F")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.body.contains("error=server_error"),
        "a way back to the application"
    );
    assert!(!r.body.contains("boom"), "the API's message is not shown");
    let reference = r
        .body
        .split("Reference: ")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let store = env.store().await;
    let record = store
        .connector_call(&reference)
        .await
        .unwrap()
        .expect("a call record with the reference");
    assert_eq!(record.outcome, "failed");
    assert_eq!(record.http_status, Some(500));

    for email in ["blocked@example.com", "failed@example.com"] {
        assert!(
            store.users_by_email(email).await.unwrap().is_empty(),
            "{email} must not exist"
        );
    }
    env.finish(usher).await;
}

both!(email_one_time_passcode_signs_up_signs_in_and_links);
async fn email_one_time_passcode_signs_up_signs_in_and_links(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env
        .start_with(
            r#"
[[user_flows]]
id = "B2X_1_otp"
identity_providers = ["EmailPassword-OAUTH", "EmailOtpSignup-OAUTH"]
[[user_flows.attributes]]
id = "displayName"
required = true

[[applications]]
client_id = "otp-app"
name = "OTP app"
redirect_uris = ["http://127.0.0.1:9/callback"]
type = "public"
user_flow = "B2X_1_otp"
"#,
        )
        .await;
    // A new address: the attribute page, then the user with a `mail` identity.
    let b = Browser::new();
    let (flow, r) = otp(&env, &usher, &b, "otp@example.com").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), flow, "on to the attribute page");
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Otto")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK));
    let store = env.store().await;
    let user = store
        .user_by_identity(
            usher_domain::SignInType::Federated,
            "mail",
            "otp@example.com",
        )
        .await
        .unwrap()
        .expect("a user with the mail identity");
    assert_eq!(user.attributes["displayName"].as_str(), Some("Otto"));

    // The same address again: a sign-in, straight back to the application.
    let (_, r) = otp(&env, &usher, &Browser::new(), "otp@example.com").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location().starts_with(CALLBACK), "{}", r.location());

    // An address with a local account: never linked silently.
    Browser::new()
        .sign_up(
            &usher,
            &usher.authorize_url("otp-app", &[]),
            "local@example.com",
            "a long enough pass phrase",
            &[("displayName", "Lo")],
        )
        .await;
    let b = Browser::new();
    let (flow, r) = otp(&env, &usher, &b, "local@example.com").await;
    assert_eq!(r.location(), flow);
    let page = b.get(&usher.url(&flow)).await;
    assert!(page.body.contains("already exists"), "{}", page.body);
    let r = b
        .submit(
            &usher.url(&format!("{flow}/link")),
            &page,
            &[("password", "wrong password!")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = b
        .submit(
            &usher.url(&format!("{flow}/link")),
            &page,
            &[("password", "a long enough pass phrase")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let local = store.users_by_email("local@example.com").await.unwrap();
    assert_eq!(local.len(), 1, "no second account");
    assert_eq!(local[0].identities.len(), 2, "{:?}", local[0].identities);
    // Now a passcode signs in to it directly.
    let (_, r) = otp(&env, &usher, &Browser::new(), "local@example.com").await;
    assert!(r.location().starts_with(CALLBACK));
    let code = query(r.location())["code"].clone();
    let tokens = usher.redeem_public_for("otp-app", &code).await;
    let id_token = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], local[0].id.as_str());
    assert_eq!(id_token["amr"], serde_json::json!(["otp"]));
    env.finish(usher).await;
}

/// Email one-time passcode through the `otp-app`: returns the flow and the answer to
/// the code.
async fn otp(env: &TestEnv, usher: &Instance, b: &Browser, email: &str) -> (String, harness::Page) {
    let flow = b.start_flow(&usher.authorize_url("otp-app", &[])).await;
    let page = b.get(&usher.url(&flow)).await;
    assert!(
        page.body.contains("Email me a one-time code"),
        "{}",
        page.body
    );
    let r = b
        .submit(
            &usher.url(&format!("{flow}/provider")),
            &page,
            &[("provider", "EmailOtpSignup-OAUTH")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = b.get(&usher.url(&flow)).await;
    assert!(
        page.body.contains("one-time code to sign in"),
        "{}",
        page.body
    );
    b.submit(
        &usher.url(&format!("{flow}/email")),
        &page,
        &[("email", email)],
    )
    .await;
    let page = b.get(&usher.url(&flow)).await;
    let code = env.code_for(email);
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &code)],
        )
        .await;
    (flow, r)
}

/// An upstream Usher (the "social" provider) and a downstream Usher federating to it,
/// with a `postFederationSignup` connector at `api`. `token_endpoint` overrides where
/// the downstream redeems codes (for the tampering proxy).
async fn federation_pair(
    upstream_env: &TestEnv,
    downstream_env: &TestEnv,
    api: &str,
    token_endpoint: Option<&str>,
) -> (Instance, Instance) {
    federation_pair_with(upstream_env, downstream_env, api, token_endpoint, ("", "")).await
}

/// [`federation_pair`], the downstream with `connectors` declared as well and `slots`
/// added to its federated user flow's connectors.
async fn federation_pair_with(
    upstream_env: &TestEnv,
    downstream_env: &TestEnv,
    api: &str,
    token_endpoint: Option<&str>,
    (connectors, slots): (&str, &str),
) -> (Instance, Instance) {
    let (up_listener, up_url) = bind().await;
    let (down_listener, down_url) = bind().await;
    let upstream = upstream_env
        .start_on(
            up_listener,
            None,
            &format!(
                r#"
[[applications]]
client_id = "downstream"
name = "Downstream Usher"
redirect_uris = ["{down_url}/federation/callback"]
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
"#
            ),
        )
        .await;
    let endpoints = token_endpoint
        .map(|t| format!("[identity_providers.endpoints]\ntoken_endpoint = \"{t}\"\n"))
        .unwrap_or_default();
    let downstream = downstream_env
        .start_on(
            down_listener,
            None,
            &format!(
                r#"
[federation]
allow_insecure_endpoints = true

[connector_settings]
allow_insecure_targets = true

[[connectors]]
id = "allow-list"
target_url = "{api}"
retries = 0
{connectors}
[[identity_providers]]
id = "upstream"
type = "oidc"
display_name = "Upstream"
issuer = "{up_url}"
client_id = "downstream"
client_secret = {{ value = "{CONFIDENTIAL_SECRET}" }}
{endpoints}
[[user_flows]]
id = "B2X_1_fed"
identity_providers = ["EmailPassword-OAUTH", "upstream"]
[user_flows.connectors]
post_federation_signup = ["allow-list"]
{slots}
[[user_flows.attributes]]
id = "displayName"
required = true
[[user_flows.attributes]]
id = "givenName"

[[applications]]
client_id = "fed-app"
name = "Federated app"
redirect_uris = ["{CALLBACK}"]
type = "public"
user_flow = "B2X_1_fed"
"#
            ),
        )
        .await;
    (upstream, downstream)
}

/// From the downstream sign-in page to "Continue with Upstream"; returns the flow and
/// the upstream authorization URL.
async fn choose_upstream(downstream: &Instance, b: &Browser) -> (String, String) {
    let flow = b
        .start_flow(&downstream.authorize_url("fed-app", &[]))
        .await;
    let page = b.get(&downstream.url(&flow)).await;
    assert!(
        page.body.contains("Continue with Upstream"),
        "{}",
        page.body
    );
    // Each provider's button carries its mark, hidden from screen readers (the label
    // says it all).
    assert!(
        page.body
            .contains("<span class=\"provider-mark\" aria-hidden=\"true\">U</span>"),
        "{}",
        page.body
    );
    let r = b
        .submit(
            &downstream.url(&format!("{flow}/provider")),
            &page,
            &[("provider", "upstream")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    (flow, r.location().to_owned())
}

both!(federated_sign_up_through_an_upstream_usher);
async fn federated_sign_up_through_an_upstream_usher(backend: Backend) {
    let up_env = TestEnv::new(backend).await;
    let down_env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![
        (200, serde_json::json!({"version": "1.0.0", "action": "Continue", "givenName": "Prefilled"})),
        (200, serde_json::json!({"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "Your organisation is not on the allow-list."})),
    ])
    .await;
    let (upstream, downstream) = federation_pair(&up_env, &down_env, &api.url, None).await;

    // First visit: a sign-up at the upstream, then the downstream's page, prefilled.
    let b = Browser::new();
    let (flow, at_upstream) = choose_upstream(&downstream, &b).await;
    assert!(at_upstream.starts_with(&upstream.base), "{at_upstream}");
    let q = query(&at_upstream);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q.contains_key("nonce"));
    let callback = b
        .sign_up(
            &upstream,
            &at_upstream,
            "fed@example.com",
            "a long enough pass phrase",
            &[("displayName", "Fed Upstream")],
        )
        .await;
    assert!(
        callback.starts_with(&format!("{}/federation/callback", downstream.base)),
        "{callback}"
    );
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), flow);
    let sent = &api.bodies()[0];
    assert_eq!(sent["step"], "PostFederationSignup");
    assert_eq!(sent["email"], "fed@example.com");
    assert_eq!(sent["displayName"], "Fed Upstream");
    let identities = sent["identities"].as_array().expect("identities");
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["signInType"], "federated");
    assert_eq!(identities[0]["issuer"], "127.0.0.1");
    let upstream_sub = identities[0]["issuerAssignedId"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = b.get(&downstream.url(&flow)).await;
    assert!(
        page.body.contains("value=\"Prefilled\""),
        "the connector prefilled the page: {}",
        page.body
    );
    assert!(
        page.body.contains("value=\"Fed Upstream\""),
        "the provider's name prefilled the page"
    );
    let r = b
        .submit(
            &downstream.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Fed"), ("givenName", "Prefilled")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK));
    let store = down_env.store().await;
    // Keyed by the upstream's exact issuer; the contract's issuer is its host.
    let from_upstream = usher_domain::Identity {
        exact_issuer: Some(upstream.issuer.trim_end_matches('/').to_owned()),
        ..usher_domain::Identity::new(
            usher_domain::SignInType::Federated,
            "127.0.0.1",
            upstream_sub.as_str(),
        )
    };
    let user = store
        .user_by_provider_identity(&from_upstream, false)
        .await
        .unwrap()
        .expect("the downstream user has the upstream identity");
    assert_eq!(user.email.as_deref(), Some("fed@example.com"));
    assert_eq!(user.identities, std::slice::from_ref(&from_upstream));

    // As if stored before exact issuers were kept (or entered by an administrator):
    // the identity knows only the host. The next sign-in is the same user's, and
    // gives it the exact issuer back.
    let unresolved = usher_domain::Identity {
        exact_issuer: None,
        ..from_upstream.clone()
    };
    assert!(store.set_identities(&user.id, &[]).await.unwrap());
    assert!(store
        .set_identities(&user.id, std::slice::from_ref(&unresolved))
        .await
        .unwrap());

    // Second visit: a sign-in, no connectors.
    let calls = api.bodies().len();
    let b = Browser::new();
    let (_, at_upstream) = choose_upstream(&downstream, &b).await;
    let callback = b
        .sign_in(&at_upstream, "fed@example.com", "a long enough pass phrase")
        .await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK), "{}", r.location());
    assert_eq!(api.bodies().len(), calls, "no connector on sign-in");
    assert_eq!(
        store
            .user_by_provider_identity(&from_upstream, false)
            .await
            .unwrap()
            .map(|u| (u.id, u.identities)),
        Some((user.id.clone(), vec![from_upstream.clone()]))
    );

    // Single sign-on answers only where the provider of the session is offered: the
    // same application at once, an application whose flow offers only local accounts
    // not (its sign-in page instead, or login_required for prompt=none).
    let r = b.get(&downstream.authorize_url("fed-app", &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK), "{}", r.location());
    assert!(query(r.location()).contains_key("code"), "{}", r.location());
    let r = b.get(&downstream.authorize_url(PUBLIC_CLIENT, &[])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with("/flow/"), "{}", r.location());
    let r = b
        .get(&downstream.authorize_url(PUBLIC_CLIENT, &[("prompt", "none")]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        query(r.location())["error"],
        "login_required",
        "{}",
        r.location()
    );

    // A new identity the connector does not allow: blocked, no user.
    let b = Browser::new();
    let (_, at_upstream) = choose_upstream(&downstream, &b).await;
    let callback = b
        .sign_up(
            &upstream,
            &at_upstream,
            "outsider@example.com",
            "a long enough pass phrase",
            &[("displayName", "Out")],
        )
        .await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("not on the allow-list"));
    assert!(store
        .users_by_email("outsider@example.com")
        .await
        .unwrap()
        .is_empty());

    // A user cancels at the provider: a clear page, a way on.
    let b = Browser::new();
    let (flow, _) = choose_upstream(&downstream, &b).await;
    let page = b.get(&downstream.url(&flow)).await;
    let token = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .map(|_| ())
        .is_some();
    assert!(token);
    env_cancel(&downstream, &b, &flow).await;

    up_env.finish_instance(upstream).await;
    down_env.finish_instance(downstream).await;
}

/// The provider answers `error=access_denied` to the downstream's callback.
async fn env_cancel(downstream: &Instance, b: &Browser, flow: &str) {
    // The state the flow sent upstream is in the redirect it issued; start again to see it.
    let page = b.get(&downstream.url(flow)).await;
    let r = b
        .submit(
            &downstream.url(&format!("{flow}/provider")),
            &page,
            &[("provider", "upstream")],
        )
        .await;
    let state = query(r.location())["state"].clone();
    let r = b
        .get(&format!(
            "{}/federation/callback?error=access_denied&state={}",
            downstream.base,
            urlencode(&state)
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.body.contains("You cancelled the sign-in at Upstream"),
        "{}",
        r.body
    );
    // A forged state is refused outright.
    let r = b
        .get(&format!(
            "{}/federation/callback?code=x&state=forged",
            downstream.base
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A token endpoint between the downstream and the upstream that alters the ID token
/// on its way (an attacker in the middle, or a broken provider).
async fn tampering_proxy(target: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
    let app = Router::new().route(
        "/token",
        post(move |headers: HeaderMap, body: Bytes| {
            let upstream_token = target.lock().unwrap().clone();
            async move {
                let mut req = reqwest::Client::new()
                    .post(&upstream_token)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.to_vec());
                if let Some(auth) = headers.get("authorization") {
                    req = req.header("authorization", auth.to_str().unwrap());
                }
                let mut json: Value = req.send().await.unwrap().json().await.unwrap();
                if let Some(token) = json["id_token"].as_str() {
                    // Swap in a payload naming someone else; keep the signature.
                    use base64::Engine;
                    let parts: Vec<&str> = token.split('.').collect();
                    let mut claims = payload(token);
                    claims["sub"] = Value::from("someone-else");
                    let forged =
                        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
                    json["id_token"] = Value::from(format!("{}.{}.{}", parts[0], forged, parts[2]));
                }
                axum::Json(json)
            }
        }),
    );
    let (listener, url) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("{url}/token")
}

both!(federation_links_an_identity_only_after_a_sign_in);
async fn federation_links_an_identity_only_after_a_sign_in(backend: Backend) {
    let up_env = TestEnv::new(backend).await;
    let down_env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(
        200,
        serde_json::json!({"version": "1.0.0", "action": "Continue"}),
    )])
    .await;
    let (upstream, downstream) = federation_pair(&up_env, &down_env, &api.url, None).await;

    // A local account at the downstream, then the same address through the upstream.
    Browser::new()
        .sign_up(
            &downstream,
            &downstream.authorize_url("fed-app", &[]),
            "both@example.com",
            "downstream pass phrase",
            &[("displayName", "Both")],
        )
        .await;
    let b = Browser::new();
    let (flow, at_upstream) = choose_upstream(&downstream, &b).await;
    let callback = b
        .sign_up(
            &upstream,
            &at_upstream,
            "both@example.com",
            "upstream pass phrase",
            &[("displayName", "Both Up")],
        )
        .await;
    let r = b.get(&callback).await;
    assert_eq!(r.location(), flow, "never linked silently: the link page");
    let page = b.get(&downstream.url(&flow)).await;
    assert!(page.body.contains("already exists"), "{}", page.body);
    let r = b
        .submit(
            &downstream.url(&format!("{flow}/link")),
            &page,
            &[("password", "downstream pass phrase")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let store = down_env.store().await;
    let users = store.users_by_email("both@example.com").await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].identities.len(), 2);
    assert!(
        api.bodies().is_empty(),
        "linking is a sign-in: no connectors"
    );
    // Now the upstream identity signs in to the linked account directly.
    let b = Browser::new();
    let (_, at_upstream) = choose_upstream(&downstream, &b).await;
    let callback = b
        .sign_in(&at_upstream, "both@example.com", "upstream pass phrase")
        .await;
    let r = b.get(&callback).await;
    assert!(r.location().starts_with(CALLBACK), "{}", r.location());
    let tokens = downstream
        .redeem_public_for("fed-app", &query(r.location())["code"])
        .await;
    let id_token = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], users[0].id.as_str());
    // The session is the upstream provider's, whatever proved the account before.
    assert_eq!(id_token["amr"], serde_json::json!(["fed"]));
    down_env.finish_instance(downstream).await;
    up_env.finish_instance(upstream).await;
}

both!(federation_refuses_a_tampered_id_token);
async fn federation_refuses_a_tampered_id_token(backend: Backend) {
    let up_env = TestEnv::new(backend).await;
    let down_env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(
        200,
        serde_json::json!({"version": "1.0.0", "action": "Continue"}),
    )])
    .await;
    let target = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let proxy = tampering_proxy(target.clone()).await;
    let (upstream, downstream) = federation_pair(&up_env, &down_env, &api.url, Some(&proxy)).await;
    *target.lock().unwrap() = format!("{}/token", upstream.base);
    let b = Browser::new();
    let (_, at_upstream) = choose_upstream(&downstream, &b).await;
    let callback = b
        .sign_up(
            &upstream,
            &at_upstream,
            "tamper@example.com",
            "a long enough pass phrase",
            &[("displayName", "T")],
        )
        .await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("could not be verified"), "{}", r.body);
    assert!(
        api.bodies().is_empty(),
        "no connector for an unverified identity"
    );
    assert!(down_env
        .store()
        .await
        .users_by_email("tamper@example.com")
        .await
        .unwrap()
        .is_empty());
    down_env.finish_instance(downstream).await;
    up_env.finish_instance(upstream).await;
}

/// `usher connectors test` against a real endpoint: the request with the credential
/// masked, the answer, the interpretation with its warnings, and the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_test_command_shows_request_response_and_interpretation() {
    let api = harness::api::TestApi::start(vec![(
        200,
        serde_json::json!({"action": "Continue", "displayName": "From API", "jobTitle": "not selected"}),
    )])
    .await;
    let dir = std::env::temp_dir().join(format!("usher-cli-test-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("usher.toml");
    std::fs::write(
        &config,
        format!(
            r#"
data_dir = "{dir}"
[connector_settings]
allow_insecure_targets = true
[[connectors]]
id = "crm"
target_url = "{url}"
[connectors.authentication]
type = "apiKey"
header = "x-api-key"
value = {{ value = "super-secret-api-key" }}
[[user_flows]]
id = "B2X_1_cli"
identity_providers = ["EmailPassword-OAUTH"]
[user_flows.connectors]
post_attribute_collection = ["crm"]
[[user_flows.attributes]]
id = "displayName"
"#,
            dir = dir.display(),
            url = api.url
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("USHER_MASTER_KEY")
            .output()
            .unwrap()
    };
    let out = run(&[
        "connectors",
        "test",
        "crm",
        "--claims",
        r#"{"displayName": "Typed Name"}"#,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("x-api-key: ******"), "{stdout}");
    assert!(!stdout.contains("super-secret-api-key"));
    assert!(
        stdout.contains("Typed Name"),
        "the request body is shown: {stdout}"
    );
    assert!(stdout.contains("From API"), "the response is shown");
    assert!(
        stdout.contains("version"),
        "the missing version is a warning: {stdout}"
    );
    assert!(
        stdout.contains("jobTitle"),
        "the unselected claim is a warning"
    );
    let sent = api.bodies();
    assert_eq!(sent[0]["step"], "PostAttributeCollection");
    assert_eq!(sent[0]["displayName"], "Typed Name");
    assert_eq!(api.headers()[0]["x-api-key"], "super-secret-api-key");

    // Expecting a block: the exit code says it did not happen.
    let out = run(&["connectors", "test", "crm", "--expect", "block"]);
    assert_eq!(out.status.code(), Some(1));
    // JSON for scripts.
    let out = run(&["connectors", "test", "crm", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["interpretation"]["outcome"], "continue");
    // An unknown connector is a clear error.
    let out = run(&["connectors", "test", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no connector \"nope\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A scratch directory with a configuration file `usher.toml` holding `toml`, and a
/// way to run the `usher` command on it.
struct ConfigDir(std::path::PathBuf);

impl ConfigDir {
    fn new(toml: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("usher-cli-test-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = format!("data_dir = {:?}\n{toml}", dir.display().to_string());
        std::fs::write(dir.join("usher.toml"), toml).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("--config")
            .arg(self.0.join("usher.toml"))
            .args(args)
            .env("USHER_MASTER_KEY", MASTER_KEY)
            .env_remove("USHER_LOG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A connector behind a company CA that demands a client certificate (mutual TLS):
/// with the CA as the connector's extra root, or the operator's, the call goes
/// through with the client certificate; the same connector without it fails with a
/// message that says what to do. Only loopback is opened for the test server, not
/// plain http nor the private network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_behind_a_private_ca_is_called_with_mutual_tls() {
    let api = harness::mtls::MtlsApi::start().await;
    let connector = |id: &str, extra: &str| {
        format!(
            r#"
[[connectors]]
id = "{id}"
target_url = "{url}"
retries = 0
{extra}
[connectors.authentication]
type = "clientCertificate"
[[connectors.authentication.certificates]]
pem = """
{cert}"""
key = {{ value = """
{key}""" }}
"#,
            url = api.url,
            cert = api.client_cert_pem,
            key = api.client_key_pem,
        )
    };
    let dir = ConfigDir::new("");
    let ca_file = dir.write("company-ca.pem", &api.ca_pem);
    let config = format!(
        "data_dir = {data:?}\n[connector_settings]\nallow_loopback_targets = true\n{}{}",
        connector(
            "trusted",
            &format!("extra_root_certificates_file = {ca_file:?}")
        ),
        connector("untrusted", ""),
        data = dir.0.display().to_string(),
    );
    dir.write("usher.toml", &config);

    let (ok, stdout, stderr) = dir.run(&["connectors", "test", "trusted"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("OK: the outcome is continue"), "{stdout}");
    assert_eq!(
        api.mutual_tls_connections(),
        1,
        "the client certificate was presented"
    );
    assert!(!stderr.contains("deprecated"), "{stderr}");

    let (ok, stdout, stderr) = dir.run(&["connectors", "test", "untrusted", "--expect", "failed"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("tlsFailed"), "{stdout}");
    assert!(
        stdout.contains("not issued by a trusted CA") && stdout.contains("extra_root_certificates"),
        "the failure says what to do: {stdout}"
    );
    assert_eq!(api.mutual_tls_connections(), 1);

    // The operator's roots serve every connector.
    let config = format!(
        "data_dir = {data:?}\n[connector_settings]\nallow_loopback_targets = true\nextra_root_certificates = \"\"\"\n{ca}\"\"\"\n{}",
        connector("untrusted", ""),
        data = dir.0.display().to_string(),
        ca = api.ca_pem,
    );
    dir.write("usher.toml", &config);
    let (ok, stdout, stderr) = dir.run(&["connectors", "test", "untrusted"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(api.mutual_tls_connections(), 2);

    // A key where a CA certificate belongs is refused with its place.
    let config = format!(
        "data_dir = {data:?}\n[connector_settings]\nallow_loopback_targets = true\nextra_root_certificates = \"\"\"\n{key}\"\"\"\n",
        data = dir.0.display().to_string(),
        key = api.client_key_pem,
    );
    dir.write("usher.toml", &config);
    let (ok, _, stderr) = dir.run(&["config", "check"]);
    assert!(!ok);
    assert!(
        stderr.contains("connector_settings.extra_root_certificates")
            && stderr.contains("private key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("PRIVATE KEY-----\nMII"),
        "the key is not echoed: {stderr}"
    );
}

/// `allow_insecure_targets` still works, as all three target settings at once, and
/// every command warns that it is deprecated; the new settings open one door each.
#[test]
fn the_old_insecure_targets_setting_is_a_deprecated_alias() {
    let target = |url: &str| format!("[[connectors]]\nid = \"c\"\ntarget_url = \"{url}\"\n");
    let old = ConfigDir::new(&format!(
        "[connector_settings]\nallow_insecure_targets = true\n{}",
        target("http://10.1.2.3/hook")
    ));
    let (ok, stdout, stderr) = old.run(&["config", "check"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("allow_insecure_targets is deprecated")
            && stderr.contains(
                "allow_http_targets, allow_loopback_targets and allow_private_network_targets"
            ),
        "{stderr}"
    );
    // Loopback alone does not open the private network.
    let loopback = ConfigDir::new(&format!(
        "[connector_settings]\nallow_loopback_targets = true\nallow_http_targets = true\n{}",
        target("http://10.1.2.3/hook")
    ));
    let (ok, _, stderr) = loopback.run(&["config", "check"]);
    assert!(!ok);
    assert!(stderr.contains("allow_private_network_targets"), "{stderr}");
    assert!(!stderr.contains("deprecated"), "{stderr}");
    let private = ConfigDir::new(&format!(
        "[connector_settings]\nallow_private_network_targets = true\nallow_http_targets = true\n{}",
        target("http://10.1.2.3/hook")
    ));
    let (ok, stdout, stderr) = private.run(&["config", "check"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(!stderr.contains("deprecated"), "{stderr}");
}

/// A provider that answers as Facebook documents its OAuth 2.0 token endpoint and
/// Graph `/me`.
async fn fake_facebook() -> String {
    use axum::{routing::get, routing::post, Json, Router};
    let app = Router::new()
        .route(
            "/oauth/access_token",
            post(|| async { Json(serde_json::json!({"access_token": "fb-token", "token_type": "bearer", "expires_in": 5_183_944})) }),
        )
        .route(
            "/me",
            get(|| async {
                Json(serde_json::json!({"id": "1234567890", "name": "Fiona Book", "email": "fiona@example.com",
                    "first_name": "Fiona", "last_name": "Book"}))
            }),
        );
    let (listener, url) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

// The connector's `identities` for OAuth 2.0 (Facebook) and email one-time passcode
// users, exactly as the contract says.
both!(connectors_receive_identities_for_oauth_and_passcode_users);
async fn connectors_receive_identities_for_oauth_and_passcode_users(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(
        200,
        serde_json::json!({"version": "1.0.0", "action": "Continue"}),
    )])
    .await;
    let facebook = fake_facebook().await;
    let usher = env
        .start_with(&format!(
            r#"
[federation]
allow_insecure_endpoints = true
[connector_settings]
allow_insecure_targets = true
[[connectors]]
id = "pfs"
target_url = "{api}"
[[identity_providers]]
id = "Facebook-OAUTH"
type = "facebook"
client_id = "fb-app"
client_secret = {{ value = "fb-secret-value-0123456789" }}
[identity_providers.endpoints]
authorization_endpoint = "{facebook}/dialog/oauth"
token_endpoint = "{facebook}/oauth/access_token"
userinfo_endpoint = "{facebook}/me"
[[user_flows]]
id = "B2X_1_social"
identity_providers = ["Facebook-OAUTH", "EmailOtpSignup-OAUTH"]
[user_flows.connectors]
post_federation_signup = ["pfs"]
[[user_flows.attributes]]
id = "displayName"
[[applications]]
client_id = "otp-app"
name = "Social app"
redirect_uris = ["{CALLBACK}"]
type = "public"
user_flow = "B2X_1_social"
"#,
            api = api.url
        ))
        .await;

    // Facebook: the browser would go to the dialog; the provider sends it back with a code.
    let b = Browser::new();
    let flow = b.start_flow(&usher.authorize_url("otp-app", &[])).await;
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/provider")),
            &page,
            &[("provider", "Facebook-OAUTH")],
        )
        .await;
    let dialog = r.location().to_owned();
    assert!(
        dialog.starts_with(&format!("{facebook}/dialog/oauth")),
        "{dialog}"
    );
    let q = query(&dialog);
    assert_eq!(q["client_id"], "fb-app");
    assert!(!q.contains_key("nonce"), "Facebook is not OpenID Connect");
    let r = b
        .get(&format!(
            "{}?code=fb-code&state={}",
            q["redirect_uri"],
            urlencode(&q["state"])
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sent = &api.bodies()[0];
    assert_eq!(
        sent["identities"],
        serde_json::json!([{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "1234567890"}])
    );
    assert_eq!(sent["email"], "fiona@example.com");
    assert_eq!(sent["displayName"], "Fiona Book");
    assert_eq!(sent["step"], "PostFederationSignup");

    // Email one-time passcode.
    let (flow, r) = otp(&env, &usher, &Browser::new(), "pass@example.com").await;
    assert_eq!(r.location(), flow);
    let sent = &api.bodies()[1];
    assert_eq!(
        sent["identities"],
        serde_json::json!([{"signInType": "federated", "issuer": "mail", "issuerAssignedId": "pass@example.com"}])
    );
    assert_eq!(sent["email"], "pass@example.com");
    env.finish(usher).await;
}

/// Browser applications may call the token and userinfo endpoints from their own
/// origins, and read the key set from anywhere; other origins get no CORS grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_for_browser_applications() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let usher = env.start().await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, usher.url("/token"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let r = preflight("http://127.0.0.1:9").await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://127.0.0.1:9"
    );
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = http
        .get(usher.url("/jwks"))
        .header("origin", "https://anyone.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    env.finish(usher).await;
}

/// A client-credentials access token for `client` (secret `CONFIDENTIAL_SECRET`).
async fn admin_token(usher: &Instance, client: &str) -> String {
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .basic_auth(client, Some(CONFIDENTIAL_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body = json(r).await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

both!(the_built_in_approval_queue);
async fn the_built_in_approval_queue(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env
        .start_with(
            r#"
[[user_flows]]
id = "B2X_1_approval"
identity_providers = ["EmailPassword-OAUTH"]
requires_approval = true
[[user_flows.attributes]]
id = "displayName"
required = true

[[applications]]
client_id = "approval-app"
name = "Approval app"
redirect_uris = ["http://127.0.0.1:9/callback"]
type = "public"
user_flow = "B2X_1_approval"

[[applications]]
client_id = "approver"
name = "Approver"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_approval"
roles = ["User.ReadWrite.All"]
"#,
        )
        .await;
    let http = reqwest::Client::new();
    let token = admin_token(&usher, "approver").await;
    // Sign up: the pending page instead of the application.
    let r = held_sign_up(&usher, "wait@example.com").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("waiting for approval"), "{}", r.body);
    let store = env.store().await;
    assert!(
        store
            .users_by_email("wait@example.com")
            .await
            .unwrap()
            .is_empty(),
        "no user before approval"
    );

    // Coming back: still the pending page, after the password.
    let again = Browser::new()
        .try_sign_in_to(
            &usher,
            "approval-app",
            "wait@example.com",
            "a long enough pass phrase",
        )
        .await;
    assert!(
        again.body.contains("waiting for approval"),
        "{}",
        again.body
    );

    // The queue in the API; approve.
    let list: Value = http
        .get(usher.url("/v1.0/usher/signUpRequests?$filter=status eq 'pending'"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = list["value"].as_array().unwrap_or_else(|| panic!("{list}"));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["email"], "wait@example.com");
    assert!(
        requests[0].get("passwordHash").is_none(),
        "the password hash never leaves"
    );
    let id = requests[0]["id"].as_str().unwrap();
    let r = http
        .post(usher.url(&format!("/v1.0/usher/signUpRequests/{id}/approve")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(env.last_mail_to("wait@example.com").contains("approved"));
    let approved: Value = http
        .get(usher.url(&format!("/v1.0/usher/signUpRequests/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "approved");
    assert_eq!(
        approved["decidedBy"], "application:approver",
        "who decided is recorded, as an application"
    );
    // Now the user signs in to the application.
    let callback = Browser::new()
        .sign_in(
            &usher.authorize_url("approval-app", &[]),
            "wait@example.com",
            "a long enough pass phrase",
        )
        .await;
    assert!(callback.starts_with(CALLBACK), "{callback}");

    // Deny: blocked, by password and by a new sign-up, until cleared.
    held_sign_up(&usher, "no@example.com").await;
    let list: Value = http
        .get(usher.url("/v1.0/usher/signUpRequests?$filter=status eq 'pending'"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list["value"][0]["id"].as_str().unwrap().to_owned();
    let r = http
        .post(usher.url(&format!("/v1.0/usher/signUpRequests/{id}/deny")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    assert!(env.last_mail_to("no@example.com").contains("not approved"));
    let r = Browser::new()
        .try_sign_in_to(
            &usher,
            "approval-app",
            "no@example.com",
            "a long enough pass phrase",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("was not approved"), "{}", r.body);
    let r = to_code_page_and_verify(&usher, "no@example.com").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a new sign-up is blocked too"
    );
    // Cleared: the person may try again.
    let r = http
        .delete(usher.url(&format!("/v1.0/usher/signUpRequests/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = to_code_page_and_verify(&usher, "no@example.com").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "on to the password page");
    env.finish(usher).await;
}

/// A local sign-up at the approval app up to the code: returns the answer to the code.
async fn to_code_page_and_verify(usher: &Instance, email: &str) -> harness::Page {
    Browser::new()
        .verify_email(usher, "approval-app", email)
        .await
        .1
}

/// A whole local sign-up at the approval app; returns the answer to the attribute page.
async fn held_sign_up(usher: &Instance, email: &str) -> harness::Page {
    let b = Browser::new();
    let flow = b
        .to_attribute_page(usher, "approval-app", email, "a long enough pass phrase")
        .await;
    let page = b.get(&usher.url(&flow)).await;
    b.submit(
        &usher.url(&format!("{flow}/attributes")),
        &page,
        &[("displayName", "Held")],
    )
    .await
}

/// Runs the `usher` binary with the test master key and secrets in its environment.
fn usher_command(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(args)
        .env("USHER_MASTER_KEY", MASTER_KEY)
        .env("E2E_SECRET", CONFIDENTIAL_SECRET)
        .env("USHER_LOG", "warn")
        .output()
        .unwrap()
}

both!(export_then_apply_on_a_fresh_database_reproduces_the_tenant);
async fn export_then_apply_on_a_fresh_database_reproduces_the_tenant(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![]).await;
    let usher = env.start_with_connector(&api.url).await;
    let exported = env.dir.join("exported.toml");
    let out = usher_command(&[
        "--config".as_ref(),
        usher.config_path.as_os_str(),
        "export".as_ref(),
        "--secrets".as_ref(),
        "values".as_ref(),
        "--output".as_ref(),
        exported.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("[[user_flows]]") && text.contains("[[connectors]]"),
        "{text}"
    );
    assert!(
        !text.contains("database_url"),
        "the export holds the tenant only"
    );

    // A fresh database, served under the same issuer.
    let fresh = TestEnv::new(backend).await;
    let server = fresh.dir.join("server.toml");
    std::fs::write(
        &server,
        format!(
            "issuer = \"{}\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ndatabase_url = \"{}\"\n[connector_settings]\nallow_insecure_targets = true\n",
            usher.issuer,
            fresh.dir.display(),
            fresh.database_url
        ),
    )
    .unwrap();
    let apply = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--config".as_ref(),
            server.as_os_str(),
            "apply".as_ref(),
            exported.as_os_str(),
        ];
        args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
        usher_command(&args)
    };
    // Not before the database exists: `usher migrate` creates it, `apply` never does.
    let early = apply(&["--dry-run"]);
    assert!(!early.status.success(), "{}", output(&early));
    match backend {
        Backend::Sqlite => {
            assert!(
                output(&early).contains("does not exist"),
                "{}",
                output(&early)
            );
            assert!(!fresh.dir.join("usher.db").exists());
        }
        Backend::Postgres => {
            assert!(
                output(&early).contains("holds no Usher data"),
                "{}",
                output(&early)
            );
        }
    }
    let migrated = usher_command(&["--config".as_ref(), server.as_os_str(), "migrate".as_ref()]);
    assert!(migrated.status.success(), "{}", output(&migrated));
    let dry = apply(&["--dry-run"]);
    let dry_out = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        dry.status.success(),
        "{dry_out}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry_out.contains("+ userFlow"), "{dry_out}");
    assert!(dry_out.contains("dry run"), "{dry_out}");
    let applied = apply(&[]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let again = apply(&[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already matches"));
    // The restored tenant serves with a file of settings alone, and quietly: that
    // file declares no tenant to differ from.
    let log = serve_once(&server);
    assert!(!log.contains("differs"), "{log}");

    let master = std::sync::Arc::new(usher_oidc::crypto::MasterKey::parse(MASTER_KEY).unwrap());
    let original = usher_tenant::TenantService::new(env.store().await, master.clone())
        .current()
        .await
        .unwrap();
    let copy = usher_tenant::TenantService::new(fresh.store().await, master)
        .current()
        .await
        .unwrap();
    // Applications have no order that matters (the demo's come back where `demo = true`
    // puts them): compare them sorted.
    let sorted = |t: &usher_domain::Tenant| {
        let mut t = t.clone();
        t.applications.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        t
    };
    assert_eq!(sorted(&copy.tenant), sorted(&original.tenant));
    assert_eq!(copy.connectors, original.connectors);
    assert_eq!(
        copy.identity_providers.len(),
        original.identity_providers.len()
    );
    env.finish(usher).await;
    fresh.finish_empty().await;
}

/// One flow takes at most ten wrong passwords; guessing on needs new flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_refuses_password_guessing() {
    let env = TestEnv::new(Backend::Sqlite).await;
    let usher = env.start().await;
    let b = Browser::new();
    let flow = b.start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[])).await;
    let page = b.get(&usher.url(&flow)).await;
    for _ in 0..10 {
        let r = b
            .submit(
                &usher.url(&format!("{flow}/sign-in")),
                &page,
                &[("email", "guess@example.com"), ("password", "guess guess")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = b
        .submit(
            &usher.url(&format!("{flow}/sign-in")),
            &page,
            &[("email", "guess@example.com"), ("password", "guess guess")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many wrong passwords"));
    env.finish(usher).await;
}

async fn form_post(
    usher: &Instance,
    path: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().post(usher.url(path)).form(form);
    if let Some((id, secret)) = auth {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    (status, value)
}

both!(tokens_are_introspected_by_resource_servers_and_revoked_by_their_clients);
async fn tokens_are_introspected_by_resource_servers_and_revoked_by_their_clients(
    backend: Backend,
) {
    let env = TestEnv::new(backend).await;
    let usher = env.start().await;
    let discovery: Value = json(
        reqwest::get(usher.url("/.well-known/openid-configuration"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(discovery["revocation_endpoint"], usher.url("/revoke"));
    assert_eq!(
        discovery["introspection_endpoint"],
        usher.url("/introspect")
    );
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );

    let browser = Browser::new();
    let callback = browser
        .sign_up(
            &usher,
            &usher.authorize_url(PUBLIC_CLIENT, &[("scope", "openid offline_access")]),
            "resource@example.com",
            "a long enough pass phrase",
            &[("displayName", "Res")],
        )
        .await;
    assert_eq!(query(&callback)["iss"], usher.issuer, "RFC 9207");
    let tokens = usher.redeem_public(&query(&callback)["code"]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let rs = Some((CONFIDENTIAL_CLIENT, CONFIDENTIAL_SECRET));
    let introspect = |token: &str, hint: Option<&'static str>| {
        let token = token.to_owned();
        let usher = &usher;
        async move {
            let mut form = vec![("token", token.as_str())];
            if let Some(h) = hint {
                form.push(("token_type_hint", h));
            }
            form_post(usher, "/introspect", rs, &form).await
        }
    };

    // A resource server learns what a live token is.
    let (status, a) = introspect(access, None).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["active"], true);
    assert_eq!(a["client_id"], PUBLIC_CLIENT);
    assert_eq!(a["token_type"], "Bearer");
    assert_eq!(a["iss"], usher.issuer.as_str());
    assert!(a["scope"].as_str().unwrap().contains("offline_access"));
    let sub = payload(id_token)["sub"].clone();
    assert_eq!(a["sub"], sub);
    let (_, r) = introspect(refresh, Some("refresh_token")).await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "refresh_token");
    // Not tokens, or not access tokens: inactive, and nothing else said.
    for other in [id_token, "garbage", "a.b.c"] {
        let (status, v) = introspect(other, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, serde_json::json!({"active": false}), "{other}");
    }
    // Only an authenticated confidential client may ask.
    let (status, v) = form_post(
        &usher,
        "/introspect",
        None,
        &[("token", access), ("client_id", PUBLIC_CLIENT)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "invalid_client");
    let (status, _) = form_post(
        &usher,
        "/introspect",
        Some((CONFIDENTIAL_CLIENT, "wrong")),
        &[("token", access)],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, v) = form_post(&usher, "/introspect", rs, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_request");

    // Another client cannot revoke it: 200, and the token lives on.
    let (status, _) = form_post(&usher, "/revoke", rs, &[("token", refresh)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect(refresh, None).await.1["active"], true);
    // Unknown tokens are 200 too.
    let (status, _) = form_post(
        &usher,
        "/revoke",
        None,
        &[("token", "nope"), ("client_id", PUBLIC_CLIENT)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Its own client revokes the refresh token: the whole sign-in ends.
    let (status, _) = form_post(
        &usher,
        "/revoke",
        None,
        &[
            ("token", refresh),
            ("token_type_hint", "refresh_token"),
            ("client_id", PUBLIC_CLIENT),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect(refresh, None).await.1["active"], false);
    assert_eq!(introspect(access, None).await.1["active"], false);
    let (status, v) = form_post(
        &usher,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", PUBLIC_CLIENT),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_grant");
    let userinfo = reqwest::Client::new()
        .get(usher.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);

    // An access token can be revoked as well.
    let callback = browser
        .sign_in(
            &usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "login")]),
            "resource@example.com",
            "a long enough pass phrase",
        )
        .await;
    let tokens = usher.redeem_public(&query(&callback)["code"]).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(introspect(access, None).await.1["active"], true);
    let (status, _) = form_post(
        &usher,
        "/revoke",
        None,
        &[("token", access), ("client_id", PUBLIC_CLIENT)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspect(access, None).await.1["active"], false);
    env.finish(usher).await;
}
/// Runs `usher serve` until it says it is running, then stops it; returns what it
/// logged (standard error). Its configuration must listen on port 0.
fn serve_once(config: &std::path::Path) -> String {
    use std::io::{BufRead, Read};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env("USHER_MASTER_KEY", MASTER_KEY)
        .env("E2E_SECRET", CONFIDENTIAL_SECRET)
        .env("USHER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("Usher is running"));
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut log);
    assert!(started, "usher serve did not start:\n{log}");
    log
}

/// The test configuration of `usher`, listening on a port of the system's choosing.
fn on_port_zero(config: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let path = config.with_file_name(name);
    std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{text}")).unwrap();
    path
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

both!(the_servers_own_file_applies_as_no_change_and_restarts_quietly);
async fn the_servers_own_file_applies_as_no_change_and_restarts_quietly(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![]).await;
    let usher = env.start_with_connector(&api.url).await;
    let own = on_port_zero(&usher.config_path, "own.toml");
    let cli = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = vec!["--config".as_ref(), own.as_os_str()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        usher_command(&all)
    };

    // The very file the server runs with: nothing to apply (the built-in console
    // application stays, the re-hashed client secret is the same secret).
    let own_str = own.to_str().unwrap();
    let dry = cli(&["apply", own_str, "--dry-run"]);
    assert!(dry.status.success(), "{}", output(&dry));
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("already matches"),
        "{}",
        output(&dry)
    );
    assert!(
        output(&dry).contains("Using the "),
        "says which database: {}",
        output(&dry)
    );
    // Nor does a restart with it warn that it differs.
    let log = serve_once(&own);
    assert!(!log.contains("differs"), "{log}");

    // A real change: the dry run shows each field's old and new value; applying it
    // keeps the console working, and a restart with the old file says it differs.
    let changed = env.dir.join("changed.toml");
    let original = std::fs::read_to_string(&own).unwrap();
    std::fs::write(
        &changed,
        original
            .replace("name = \"E2E public\"", "name = \"E2E public, renamed\"")
            .replace("timeout_ms = 3000", "timeout_ms = 2500"),
    )
    .unwrap();
    let changed_str = changed.to_str().unwrap();
    let dry = cli(&["apply", changed_str, "--dry-run"]);
    let shown = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{}", output(&dry));
    assert!(
        shown.contains("~ connector e2e-connector: timeoutMs"),
        "{shown}"
    );
    assert!(shown.contains("    timeoutMs: 3000 → 2500"), "{shown}");
    assert!(
        shown.contains(r#"    name: "E2E public" → "E2E public, renamed""#),
        "{shown}"
    );
    assert!(!shown.contains("usher-console"), "{shown}");
    assert!(!shown.contains("secret_hash"), "{shown}");
    assert!(shown.contains("2 change(s) would be applied"), "{shown}");
    let applied = cli(&["apply", changed_str]);
    assert!(applied.status.success(), "{}", output(&applied));
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(usher.url("/console/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::SEE_OTHER,
        "the console still signs in"
    );
    let log = serve_once(&own);
    assert!(log.contains("differs"), "{log}");
    assert!(log.contains("application e2e-public"), "{log}");
    env.finish(usher).await;
}

both!(connectors_test_uses_the_deployed_connector_and_its_stored_secrets);
async fn connectors_test_uses_the_deployed_connector_and_its_stored_secrets(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let first = harness::api::TestApi::start(vec![]).await;
    let deployed = harness::api::TestApi::start(vec![]).await;
    let usher = env.start_with_connector(&first.url).await;
    // Deployed: another address and an API key that only `apply` was given.
    let file = env.dir.join("deployed.toml");
    let config = std::fs::read_to_string(&usher.config_path).unwrap();
    std::fs::write(
        &file,
        config
            .replace(
                &format!("target_url = \"{}\"", first.url),
                &format!("target_url = \"{}\"", deployed.url),
            )
            .replace(
                "budget_ms = 3000",
                "budget_ms = 3000\n[connectors.authentication]\ntype = \"apiKey\"\nheader = \"x-api-key\"\nvalue = { env = \"E2E_API_KEY\" }",
            ),
    )
    .unwrap();
    let applied = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("--config")
        .arg(&usher.config_path)
        .arg("apply")
        .arg(&file)
        .env("USHER_MASTER_KEY", MASTER_KEY)
        .env("E2E_SECRET", CONFIDENTIAL_SECRET)
        .env("E2E_API_KEY", "the-deployed-api-key")
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", output(&applied));

    // With the server's file (old address, no key): the deployed connector is called.
    let run = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--config".as_ref(),
            usher.config_path.as_os_str(),
            "connectors".as_ref(),
            "test".as_ref(),
            "e2e-connector".as_ref(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        usher_command(&args)
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", output(&out));
    assert!(output(&out).contains("tenant version"), "{}", output(&out));
    assert!(
        !output(&out).contains("the-deployed-api-key"),
        "{}",
        output(&out)
    );
    assert_eq!(deployed.bodies().len(), 1);
    assert_eq!(deployed.headers()[0]["x-api-key"], "the-deployed-api-key");
    assert!(first.bodies().is_empty());
    let out = run(&["--from-database", "--json"]);
    assert!(out.status.success(), "{}", output(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["interpretation"]["outcome"], "continue");
    assert_eq!(deployed.bodies().len(), 2);
    // The file's definition, on request.
    let out = run(&["--from-file"]);
    assert!(out.status.success(), "{}", output(&out));
    assert_eq!(first.bodies().len(), 1);
    // A connector the database does not have (yet) says where it looked.
    let missing = usher_command(&[
        "--config".as_ref(),
        usher.config_path.as_os_str(),
        "connectors".as_ref(),
        "test".as_ref(),
        "not-deployed".as_ref(),
    ]);
    assert!(!missing.status.success());
    let said = output(&missing);
    assert!(
        said.contains("no connector \"not-deployed\" in the "),
        "{said}"
    );
    assert!(
        said.contains("tenant version") && said.contains("--from-file"),
        "{said}"
    );
    env.finish(usher).await;
}

/// Operator commands run where there is no database refuse, and create nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_never_create_a_database() {
    let elsewhere =
        std::env::temp_dir().join(format!("usher-elsewhere-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&elsewhere).unwrap();
    for args in [
        &["admin", "grant", "someone@example.com"][..],
        &["admin", "revoke", "someone@example.com"],
        &["export"],
        &["keys", "rotate"],
        &["connectors", "test", "x", "--from-database"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(args)
            .current_dir(&elsewhere)
            .env_remove("USHER_CONFIG")
            .env_remove("USHER_DATABASE_URL")
            .env_remove("USHER_DATA_DIR")
            .env_remove("USHER_MASTER_KEY")
            .env_remove("USHER_MASTER_KEY_FILE")
            .output()
            .unwrap();
        let said = output(&out);
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(
            said.contains("there is no database") && said.contains("usher-data/usher.db"),
            "{args:?}: {said}"
        );
        assert!(!said.contains("no user has"), "{args:?}: {said}");
        assert!(
            std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
            "{args:?} created something"
        );
    }
    let _ = std::fs::remove_dir_all(&elsewhere);
}

/// `--log-format json`: every line parses as JSON, the access line of each request
/// and the lines logged while serving it carry its id (the caller's `X-Request-Id`
/// when it sent one, returned in the answer), and a refused authorization request
/// says which client and redirect URI it named. The query string never reaches the
/// access line.
#[tokio::test(flavor = "current_thread")]
async fn json_log_lines_carry_the_request_id() {
    use std::sync::{Arc, Mutex};
    use usher_cli::logging::{filter, subscriber, LogFormat};

    /// What the log wrote, kept for the test to read.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    let lines = Lines::default();
    // On this thread only, and so for the instance the test runs on it.
    let _log = tracing::subscriber::set_default(subscriber(
        LogFormat::Json,
        filter(Some("info"), None),
        lines.clone(),
        false,
    ));
    let env = TestEnv::new(Backend::Sqlite).await;
    let usher = env.start().await;
    let http = reqwest::Client::new();
    let r = http
        .get(usher.url("/authorize?client_id=no-such-app&redirect_uri=https%3A%2F%2Fevil.example%2F&state=secret-state"))
        .header("x-request-id", "req-from-the-proxy.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["x-request-id"], "req-from-the-proxy.1");
    // Without one (or with one that is no id), Usher makes one.
    let r = http
        .get(usher.url("/health/live"))
        .header("x-request-id", "not an id; it has spaces")
        .send()
        .await
        .unwrap();
    let made = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "{made}");

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let parsed: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |id: &str| -> Vec<&Value> {
        parsed
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let first = of("req-from-the-proxy.1");
    let access = first
        .iter()
        .find(|l| l["target"] == "usher::access")
        .expect("an access line");
    assert_eq!(access["fields"]["path"], "/authorize");
    assert_eq!(access["fields"]["method"], "GET");
    assert_eq!(access["fields"]["status"], 400);
    assert!(!text.contains("secret-state"), "the query reached the log");
    let refused = first
        .iter()
        .find(|l| l["fields"]["message"] == "authorization request refused")
        .expect("a line saying why the request was refused");
    let fields = refused["fields"].to_string();
    assert!(fields.contains("no-such-app"), "{fields}");
    assert!(fields.contains("evil.example"), "{fields}");
    assert!(of(&made)
        .iter()
        .any(|l| l["target"] == "usher::access" && l["fields"]["path"] == "/health/live"));
    usher.stop().await;
}
