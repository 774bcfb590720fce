//! Custom authentication extensions (Entra External ID's contract) through the real
//! pages: endpoints on loopback that check Usher's bearer token as Microsoft
//! documents, each event's answers, and a 1.0.0 connector on the same user flow.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::extension_api::{Answer, ExtensionApi};
use crate::harness::{self, *};
use crate::{both, paste_tests};

const PASSWORD: &str = "a long enough pass phrase";
const START: &str = "onAttributeCollectionStartResponseData";
const SUBMIT: &str = "onAttributeCollectionSubmitResponseData";
const TOKEN: &str = "onTokenIssuanceStartResponseData";
const OTP: &str = "OnOtpSendResponseData";
const SHOE_SIZE: &str = "extension_0123456789abcdef0123456789abcdef_ShoeSize";

fn extension(id: &str, api: &ExtensionApi, event: &str, extra: &str) -> String {
    format!(
        r#"
[[connectors]]
id = "{id}"
contract = "custom-authentication-extension"
target_url = "{url}"
{extra}
[connectors.authentication]
type = "issuedToken"
resource_id = "{resource}"
"#,
        url = api.url(event),
        resource = api.resource_id(),
    )
}

/// Every event on the e2e user flow, with a 1.0.0 connector (`legacy`) before the
/// token extension.
fn config(api: &ExtensionApi, legacy_url: &str, otp_policy: &str) -> String {
    format!(
        r#"
[connector_settings]
allow_insecure_targets = true
record_bodies = true
{start}{submit}{token}{otp}
[[connectors]]
id = "legacy"
target_url = "{legacy_url}"
retries = 0

[user_flows.connectors]
attribute_collection_start = ["start"]
post_attribute_collection = ["submit"]
pre_token_issuance = ["legacy", "token"]
email_otp_send = ["otp"]
"#,
        start = extension("start", api, "start", ""),
        submit = extension("submit", api, "submit", ""),
        token = extension(
            "token",
            api,
            "token",
            r#"claims_for_token = ["loyaltyTier", "groups"]"#
        ),
        otp = extension(
            "otp",
            api,
            "otp",
            &format!("event = \"emailOtpSend\"\nfailure_policy = \"{otp_policy}\"")
        ),
    )
}

fn otp_continue() -> Answer {
    Answer::action(
        OTP,
        json!({"@odata.type": "microsoft.graph.OtpSend.continueWithDefaultBehavior"}),
    )
}

/// Through the email and the code the extension was given: the flow, at the
/// password page.
async fn through_the_code(
    usher: &Instance,
    api: &ExtensionApi,
    b: &Browser,
    email: &str,
) -> String {
    api.then("otp", otp_continue());
    let (flow, r) = b.enter_email(usher, PUBLIC_CLIENT, email).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sent = api
        .bodies("otp")
        .pop()
        .expect("the extension was asked to send the code");
    assert_eq!(sent["data"]["otpContext"]["identifier"], email);
    let code = sent["data"]["otpContext"]["oneTimeCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    flow
}

async fn set_password(usher: &Instance, b: &Browser, flow: &str) -> Page {
    let page = b.get(&usher.url(flow)).await;
    b.submit(
        &usher.url(&format!("{flow}/password")),
        &page,
        &[("password", PASSWORD), ("confirmPassword", PASSWORD)],
    )
    .await
}

both!(extensions_run_every_event_of_a_sign_up_beside_a_1_0_0_connector);
async fn extensions_run_every_event_of_a_sign_up_beside_a_1_0_0_connector(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = ExtensionApi::start().await;
    let legacy = harness::api::TestApi::start(vec![(
        200,
        json!({"version": "1.0.0", "action": "Continue", "partnerTier": "silver"}),
    )])
    .await;
    let usher = env.start_with(&config(&api, &legacy.url, "block")).await;
    api.trust(&usher.issuer).await;
    let b = Browser::new();
    // Where Entra-minded code (Microsoft's SDK among it) looks for the discovery
    // document of a version 2.0 token's issuer: the same document.
    let get = |path: &str| {
        let url = usher.url(path);
        async move {
            reqwest::get(url)
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        get("/v2.0/.well-known/openid-configuration").await,
        get("/.well-known/openid-configuration").await
    );

    // The code goes through the extension, not Usher's mailer.
    let flow = through_the_code(&usher, &api, &b, "ada@contoso.com").await;
    assert_eq!(
        std::fs::read_dir(env.outbox()).map_or(0, Iterator::count),
        0,
        "Usher's mailer sent nothing"
    );
    let otp = &api.bodies("otp")[0];
    assert_eq!(
        otp["type"],
        "microsoft.graph.authenticationEvent.emailOtpSend"
    );
    assert_eq!(
        otp["data"]["authenticationContext"]["requestType"],
        "signUp"
    );

    // Start: prefilled (a key not on the page is ignored).
    api.then(
        "start",
        Answer::action(
            START,
            json!({"@odata.type": "microsoft.graph.attributeCollectionStart.setPrefillValues",
                   "inputs": {"givenName": "Ada", "city": "Bergen", "jobTitle": "ignored"}}),
        ),
    );
    let r = set_password(&usher, &b, &flow).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = b.get(&usher.url(&flow)).await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the start event runs, then the page"
    );
    let page = b.get(&usher.url(&flow)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("value=\"Ada\""),
        "prefilled: {}",
        page.body
    );
    let start = &api.bodies("start")[0];
    assert_eq!(
        start["type"],
        "microsoft.graph.authenticationEvent.attributeCollectionStart"
    );
    let data = &start["data"];
    assert_eq!(
        data["@odata.type"],
        "microsoft.graph.onAttributeCollectionStartCalloutData"
    );
    assert_eq!(data["customAuthenticationExtensionId"], "start");
    assert_eq!(
        data["userSignUpInfo"]["attributes"]["EmailAddress"]["value"],
        "ada@contoso.com"
    );
    let context = &data["authenticationContext"];
    assert_eq!(context["client"]["ip"], "127.0.0.1");
    assert_eq!(context["clientServicePrincipal"]["appId"], PUBLIC_CLIENT);
    assert_eq!(
        format!(
            "/tenants/{}/applications/{PUBLIC_CLIENT}",
            data["tenantId"].as_str().unwrap()
        ),
        start["source"]
    );
    // The correlation id is the call's reference in Usher's records.
    let store = env.store().await;
    let correlation = context["correlationId"].as_str().unwrap();
    let record = store.connector_call(correlation).await.unwrap().unwrap();
    assert_eq!(record.connector_id, "start");
    assert_eq!(record.step, "AttributeCollectionStart");
    assert_eq!(record.outcome, "continue");
    assert!(
        record.warnings.iter().any(|w| w.contains("jobTitle")),
        "{:?}",
        record.warnings
    );

    // Submit: per-field errors shown at their fields; fixed, then modified.
    api.then(
        "submit",
        Answer::action(
            SUBMIT,
            json!({"@odata.type": "microsoft.graph.attributeCollectionSubmit.showValidationError",
                   "message": "Please fix the highlighted fields.",
                   "attributeErrors": {"displayName": "Use the name on your badge.",
                                       format!("extension_{EXT}_ShoeSize"): "We have no such size."}}),
        ),
    );
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[
                ("displayName", "ada"),
                ("givenName", "Ada"),
                (SHOE_SIZE, "99"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(error_summary(&r.body).contains("Please fix the highlighted fields."));
    assert_field_error(&r.body, "displayName");
    assert!(r.body.contains("Use the name on your badge."));
    assert!(r.body.contains("We have no such size."));
    let submitted = &api.bodies("submit")[0]["data"]["userSignUpInfo"]["attributes"];
    assert_eq!(submitted["email"]["value"], "ada@contoso.com");
    assert_eq!(
        submitted[format!("extension_{EXT}_ShoeSize")],
        json!({"@odata.type": "microsoft.graph.int64DirectoryAttributeValue", "value": 99,
               "attributeType": "directorySchemaExtension"})
    );
    assert!(!api.bodies("submit")[0].to_string().contains(PASSWORD));
    api.then(
        "submit",
        Answer::action(
            SUBMIT,
            json!({"@odata.type": "microsoft.graph.attributeCollectionSubmit.modifyAttributeValues",
                   "attributes": {"displayName": "Ada Lovelace (Contoso)"}}),
        ),
    );
    api.then(
        "token",
        Answer::action(
            TOKEN,
            json!({"@odata.type": "microsoft.graph.tokenIssuanceStart.provideClaimsForToken",
                   "claims": {"loyaltyTier": "gold", "groups": ["a", "b"], "notConfigured": "dropped"}}),
        ),
    );
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &r,
            &[
                ("displayName", "Ada Lovelace"),
                ("givenName", "Ada"),
                (SHOE_SIZE, "38"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // The token: the extension's configured claims, the 1.0.0 connector's claim,
    // the modified name.
    let tokens = usher.redeem_public(&query(r.location())["code"]).await;
    let claims = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["name"], "Ada Lovelace (Contoso)");
    assert_eq!(claims["loyaltyTier"], "gold");
    assert_eq!(claims["groups"], json!(["a", "b"]));
    assert_eq!(
        claims["partnerTier"], "silver",
        "the 1.0.0 connector's claim"
    );
    assert!(claims.get("notConfigured").is_none());
    let token_call = &api.bodies("token")[0];
    let user = &token_call["data"]["authenticationContext"]["user"];
    assert_eq!(user["mail"], "ada@contoso.com");
    assert_eq!(user["id"], claims["sub"]);
    assert_eq!(legacy.bodies()[0]["step"], "PreTokenIssuance");

    // Every call carried a token the APIs accepted.
    assert!(api.refused().is_empty(), "{:?}", api.refused());
    let submits = api.headers("submit");
    assert_eq!(
        submits[0]["authorization"], submits[1]["authorization"],
        "a connector's token is reused while fresh"
    );

    // A second sign-up blocked at the start, with the extension's title.
    let b2 = Browser::new();
    let flow = through_the_code(&usher, &api, &b2, "grace@contoso.com").await;
    api.then(
        "start",
        Answer::action(
            START,
            json!({"@odata.type": "microsoft.graph.attributeCollectionStart.showBlockPage",
                   "title": "Sign-ups are paused", "message": "Come back on Monday."}),
        ),
    );
    set_password(&usher, &b2, &flow).await;
    let page = b2.get(&usher.url(&flow)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("<h1>Sign-ups are paused</h1>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Come back on Monday."));
    assert!(store
        .users_by_email("grace@contoso.com")
        .await
        .unwrap()
        .is_empty());
    env.finish(usher).await;
}

both!(a_failed_otp_extension_sends_no_code_unless_it_falls_back);
async fn a_failed_otp_extension_sends_no_code_unless_it_falls_back(backend: Backend) {
    for policy in ["block", "continue"] {
        let env = TestEnv::new(backend).await;
        let api = ExtensionApi::start().await;
        let legacy = harness::api::TestApi::start(vec![]).await;
        let usher = env.start_with(&config(&api, &legacy.url, policy)).await;
        api.trust(&usher.issuer).await;
        api.then(
            "otp",
            Answer {
                status: 500,
                content_type: "text/plain",
                body: "mail gateway down".into(),
            },
        );
        api.then(
            "otp",
            Answer {
                status: 503,
                content_type: "text/plain",
                body: "still down".into(),
            },
        );
        let b = Browser::new();
        let (flow, r) = b
            .enter_email(&usher, PUBLIC_CLIENT, "kim@contoso.com")
            .await;
        let store = env.store().await;
        let calls = store
            .connector_calls(&usher_storage::CallFilter {
                connector_id: Some("otp".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].error_code, Some(1_003_002), "{:?}", calls[0]);
        assert_eq!(calls[0].attempts, 2, "one retry after a 5xx");
        let recorded = calls[0].request_body.as_deref().unwrap_or_default();
        assert!(
            !recorded.contains("oneTimeCode"),
            "the code is never kept: {recorded}"
        );
        if policy == "block" {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
            assert!(r.body.contains("could not send your code"), "{}", r.body);
            assert!(r.body.contains(&calls[0].call_id), "the reference is shown");
            assert_eq!(
                std::fs::read_dir(env.outbox()).map_or(0, Iterator::count),
                0
            );
        } else {
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
            let code = env.code_for("kim@contoso.com");
            let page = b.get(&usher.url(&flow)).await;
            let r = b
                .submit(
                    &usher.url(&format!("{flow}/code")),
                    &page,
                    &[("code", &code)],
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::SEE_OTHER,
                "the mailed code works: {}",
                r.body
            );
        }
        env.finish(usher).await;
    }
}

both!(connectors_test_speaks_the_extension_contract);
async fn connectors_test_speaks_the_extension_contract(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = ExtensionApi::start().await;
    let legacy = harness::api::TestApi::start(vec![]).await;
    let usher = env.start_with(&config(&api, &legacy.url, "block")).await;
    api.trust(&usher.issuer).await;
    // A variant Microsoft's documents use: @odata.Type and setPreFillValues.
    api.then(
        "start",
        Answer::action(
            START,
            json!({"@odata.Type": "microsoft.graph.attributeCollectionStart.setPreFillValues",
                   "inputs": {"givenName": "Probe"}}),
        ),
    );
    api.then("token", Answer::json(json!({"data": {"actions": []}})));
    let run = |connector: &str, step: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
            .arg("--config")
            .arg(&usher.config_path)
            .args(["connectors", "test", connector, "--step", step, "--json"])
            .env("USHER_MASTER_KEY", MASTER_KEY)
            .env("E2E_SECRET", CONFIDENTIAL_SECRET)
            .env("USHER_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run("start", "attributeCollectionStart");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["contract"], "custom-authentication-extension");
    assert_eq!(report["step"], "attributeCollectionStart");
    assert_eq!(report["interpretation"]["outcome"], "continue");
    assert_eq!(report["interpretation"]["claims"]["givenName"], "Probe");
    assert!(
        report["warnings"].to_string().contains("setPrefillValues"),
        "the variant it accepted is named: {}",
        report["warnings"]
    );
    // The exact envelope, its token accepted by the API (checked against the JWKS).
    let sent: serde_json::Value =
        serde_json::from_str(report["request"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["type"],
        "microsoft.graph.authenticationEvent.attributeCollectionStart"
    );
    assert!(api.refused().is_empty(), "{:?}", api.refused());
    assert_eq!(api.bodies("start").len(), 1);

    // A failure names its Entra code; the exit code says it was not the outcome asked for.
    let out = run("token", "tokenIssuanceStart");
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["interpretation"]["outcome"], "failed");
    assert_eq!(report["errorCode"], 1_003_010);
    env.finish(usher).await;
}

both!(a_federated_sign_up_is_prefilled_at_the_start_event);
async fn a_federated_sign_up_is_prefilled_at_the_start_event(backend: Backend) {
    let up_env = TestEnv::new(backend).await;
    let down_env = TestEnv::new(backend).await;
    let legacy = harness::api::TestApi::start(vec![(
        200,
        json!({"version": "1.0.0", "action": "Continue"}),
    )])
    .await;
    let api = ExtensionApi::start().await;
    let (upstream, downstream) = crate::federation_pair_with(
        &up_env,
        &down_env,
        &legacy.url,
        None,
        (
            &extension("start", &api, "start", ""),
            "attribute_collection_start = [\"start\"]",
        ),
    )
    .await;
    api.trust(&downstream.issuer).await;
    api.then(
        "start",
        Answer::action(
            START,
            json!({"@odata.type": "microsoft.graph.attributeCollectionStart.setPrefillValues",
                   "inputs": {"givenName": "From the extension"}}),
        ),
    );
    let b = Browser::new();
    let (flow, at_upstream) = crate::choose_upstream(&downstream, &b).await;
    let callback = b
        .sign_up(
            &upstream,
            &at_upstream,
            "fed-ext@example.com",
            PASSWORD,
            &[("displayName", "Fed Upstream")],
        )
        .await;
    let r = b.get(&callback).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The 1.0.0 postFederationSignup connector, then the start event, then the page.
    let mut page = b.get(&downstream.url(&flow)).await;
    for _ in 0..3 {
        if page.status != StatusCode::SEE_OTHER {
            break;
        }
        page = b.get(&downstream.url(&flow)).await;
    }
    assert!(
        page.body.contains("value=\"From the extension\""),
        "prefilled at the start event: {}",
        page.body
    );
    assert!(
        page.body.contains("value=\"Fed Upstream\""),
        "and by the provider"
    );
    assert_eq!(legacy.bodies()[0]["step"], "PostFederationSignup");
    let start = &api.bodies("start")[0]["data"]["userSignUpInfo"];
    assert_eq!(
        start["attributes"]["EmailAddress"]["value"],
        "fed-ext@example.com"
    );
    assert_eq!(start["attributes"]["displayName"]["value"], "Fed Upstream");
    assert_eq!(start["identities"][0]["signInType"], "federated");
    assert!(api.refused().is_empty(), "{:?}", api.refused());
    up_env.finish(upstream).await;
    down_env.finish(downstream).await;
}

both!(listeners_run_extensions_for_their_applications);
async fn listeners_run_extensions_for_their_applications(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = ExtensionApi::start().await;
    let usher = env
        .start_with(&format!(
            r#"
[connector_settings]
allow_insecure_targets = true
record_bodies = true
{token}{otp}
[[event_listeners]]
id = "claims-for-the-public-app"
event = "tokenIssuanceStart"
extension = "token"
applications = ["{PUBLIC_CLIENT}"]

[[event_listeners]]
id = "codes-by-the-api"
event = "emailOtpSend"
extension = "otp"
applications = ["{PUBLIC_CLIENT}"]
fall_back_to_mailer = true

[[event_listeners]]
id = "not-for-this-app"
event = "tokenIssuanceStart"
extension = "token"
applications = ["{CONFIDENTIAL_CLIENT}"]
"#,
            token = extension(
                "token",
                &api,
                "token",
                r#"claims_for_token = ["loyaltyTier"]"#
            ),
            otp = extension("otp", &api, "otp", "retries = 0"),
        ))
        .await;
    api.trust(&usher.issuer).await;
    // The OTP extension fails; the listener falls back to Usher's mailer.
    api.then(
        "otp",
        Answer {
            status: 500,
            content_type: "text/plain",
            body: "down".into(),
        },
    );
    api.then(
        "token",
        Answer::action(
            TOKEN,
            json!({"@odata.type": "microsoft.graph.tokenIssuanceStart.provideClaimsForToken",
                   "claims": {"loyaltyTier": "platinum"}}),
        ),
    );
    let b = Browser::new();
    let (flow, r) = b
        .enter_email(&usher, PUBLIC_CLIENT, "lee@contoso.com")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        api.bodies("otp").len(),
        1,
        "the listener's extension was asked first"
    );
    let code = env.code_for("lee@contoso.com");
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = set_password(&usher, &b, &flow).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Lee")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let tokens = usher.redeem_public(&query(r.location())["code"]).await;
    let claims = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        claims["loyaltyTier"], "platinum",
        "the listener's extension ran"
    );
    assert_eq!(
        api.bodies("token").len(),
        1,
        "only the listener for this application"
    );
    assert!(api.refused().is_empty(), "{:?}", api.refused());
    env.finish(usher).await;
}
