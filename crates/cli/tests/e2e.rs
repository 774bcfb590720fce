//! End-to-end tests: real Usher instances on loopback, on SQLite and on PostgreSQL,
//! driven by an HTTP client that behaves like a browser without JavaScript (cookies,
//! forms, no automatic redirects) and by a real relying-party library.
//!
//! PostgreSQL cases run when `USHER_TEST_POSTGRES_URL` names a server (each case
//! creates and drops its own database); with `USHER_REQUIRE_POSTGRES=1` they fail
//! instead of skipping when it is unset.

mod admin_api;
mod console;
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
    outcomes.sort();
    assert_eq!(outcomes, ["continue", "validationError"]);
    let cont = calls.iter().find(|c| c.outcome == "continue").unwrap();
    assert!(
        cont.warnings.iter().any(|w| w.contains("jobTitle")),
        "{:?}",
        cont.warnings
    );
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
    assert_eq!(
        payload(tokens["id_token"].as_str().unwrap())["sub"],
        local[0].id.as_str()
    );
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
    let user = store
        .user_by_identity(
            usher_domain::SignInType::Federated,
            "127.0.0.1",
            &upstream_sub,
        )
        .await
        .unwrap()
        .expect("the downstream user has the upstream identity");
    assert_eq!(user.email.as_deref(), Some("fed@example.com"));

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
    assert_eq!(
        payload(tokens["id_token"].as_str().unwrap())["sub"],
        users[0].id.as_str()
    );
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

/// A provider that answers as Facebook documents its OAuth 2.0 token endpoint and
/// Graph `/me`.
async fn fake_facebook() -> String {
    use axum::{routing::get, routing::post, Json, Router};
    let app = Router::new()
        .route(
            "/oauth/access_token",
            post(|| async { Json(serde_json::json!({"access_token": "fb-token", "token_type": "bearer", "expires_in": 5183944})) }),
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

/// A client-credentials access token for `client` (secret CONFIDENTIAL_SECRET).
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
            "issuer = \"{}\"\ndata_dir = \"{}\"\ndatabase_url = \"{}\"\n[connector_settings]\nallow_insecure_targets = true\n",
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
