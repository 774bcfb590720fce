use super::*;
use std::net::{IpAddr, Ipv4Addr};

use usher_domain::{
    AttributeAssignment, ConnectorSlots, Identity, SignInType, UserFlow, UserInputType, UserProfile,
};

use crate::step::OtpContext;

const APP: &str = "9ce7f42908d14395aed7c48e9b6b957f";
const ISSUER: &str = "https://login.contoso.com";

fn custom(name: &str, data_type: DataType) -> AttributeDefinition {
    AttributeDefinition {
        id: format!("extension_{APP}_{name}"),
        display_name: name.into(),
        description: String::new(),
        data_type,
        built_in: false,
    }
}

fn assign(id: &str) -> AttributeAssignment {
    AttributeAssignment {
        attribute_id: id.into(),
        label: None,
        is_optional: true,
        input_type: UserInputType::TextBox,
        options: vec![],
        is_claim: true,
    }
}

fn tenant() -> Tenant {
    Tenant {
        extensions_app_id: APP.into(),
        custom_attributes: vec![
            custom("SpecialDiet", DataType::String),
            custom("LoyaltyNumber", DataType::Int),
            custom("Newsletter", DataType::Boolean),
        ],
        user_flows: vec![UserFlow {
            id: "B2X_1_signup".into(),
            identity_providers: vec![],
            attributes: vec![
                assign("displayName"),
                assign("city"),
                assign("country"),
                assign(&format!("extension_{APP}_SpecialDiet")),
                assign(&format!("extension_{APP}_LoyaltyNumber")),
                assign(&format!("extension_{APP}_Newsletter")),
            ],
            extra_claims: vec!["email".into()],
            connectors: ConnectorSlots::default(),
            requires_approval: false,
        }],
        applications: vec![usher_domain::Application {
            client_id: "77552a27-2fbf-4fb0-873e-af165ec071d5".into(),
            name: "My test web application".into(),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            client_type: usher_domain::ClientType::Public,
            user_flow_id: "B2X_1_signup".into(),
            roles: vec![],
        }],
    }
}

fn request<'a>(
    step: ConnectorStep,
    identities: &'a [Identity],
    attributes: &'a AttributeValues,
) -> StepRequest<'a> {
    StepRequest {
        step,
        flow_id: "flow-1",
        user_flow_id: "B2X_1_signup",
        connector_ids: &[],
        client_id: "77552a27-2fbf-4fb0-873e-af165ec071d5",
        ui_locales: "en-US fr",
        email: Some("someone@contoso.com"),
        identities,
        attributes,
        run_key: None,
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        user: None,
        otp: None,
    }
}

fn envelope(request: &StepRequest<'_>, attributes: &AttributeValues) -> Value {
    build_envelope(&Envelope {
        request,
        attributes,
        tenant: &tenant(),
        connector_id: "144875a0-c69a-4cd5-8349-ecbf02a85a1d",
        call_id: "859e2a76-b9ea-41fd-82c8-f8815a2b5123",
        issuer: ISSUER,
    })
    .unwrap()
}

/// Every key of `expected` is in `actual` with a value of the same JSON type, all
/// the way down: the shape of Microsoft's captured payloads (`wwwroot/Help/*.json`
/// of microsoft/woodgrove-auth-api), with values of our own.
fn same_shape(path: &str, expected: &Value, actual: &Value) {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert_eq!(kind(expected), kind(actual), "{path}: {actual}");
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let Some(got) = a.get(k) else {
                    panic!("{path}.{k} is missing from {actual}");
                };
                same_shape(&format!("{path}.{k}"), v, got);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let (Some(e0), Some(a0)) = (e.first(), a.first()) {
                same_shape(&format!("{path}[0]"), e0, a0);
            }
        }
        _ => {}
    }
}

fn principal() -> Value {
    json!({"id": "s", "appId": "s", "appDisplayName": "s", "displayName": "s"})
}

fn context_shape() -> Value {
    json!({
        "correlationId": "s",
        "client": {"ip": "s", "locale": "s", "market": "s"},
        "protocol": "s",
        "clientServicePrincipal": principal(),
        "resourceServicePrincipal": principal(),
    })
}

fn string_value() -> Value {
    json!({"value": "s", "@odata.type": "s", "attributeType": "s"})
}

#[test]
fn submit_has_the_shape_of_microsofts_capture() {
    let attributes: AttributeValues = [
        ("displayName", AttributeValue::String("Emily".into())),
        ("city", AttributeValue::String("Sydney".into())),
        ("country", AttributeValue::String("au".into())),
        (
            &*format!("extension_{APP}_SpecialDiet"),
            AttributeValue::String("Eggs".into()),
        ),
        (
            &*format!("extension_{APP}_LoyaltyNumber"),
            AttributeValue::Int(42),
        ),
        (
            &*format!("extension_{APP}_Newsletter"),
            AttributeValue::Boolean(true),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let req = request(ConnectorStep::PostAttributeCollection, &[], &attributes);
    let body = envelope(&req, &attributes);
    let shape = json!({
        "type": "s",
        "source": "s",
        "data": {
            "@odata.type": "s",
            "userSignUpInfo": {"attributes": {
                "email": string_value(),
                "city": string_value(),
                "country": string_value(),
                "displayName": string_value(),
                format!("extension_{APP}_SpecialDiet"): string_value(),
            }},
            "tenantId": "s",
            "authenticationEventListenerId": "s",
            "customAuthenticationExtensionId": "s",
            "authenticationContext": context_shape(),
        }
    });
    same_shape("", &shape, &body);
    assert_eq!(
        body["type"],
        "microsoft.graph.authenticationEvent.attributeCollectionSubmit"
    );
    let data = &body["data"];
    assert_eq!(
        data["@odata.type"],
        "microsoft.graph.onAttributeCollectionSubmitCalloutData"
    );
    let tid = tenant_id(ISSUER);
    assert_eq!(data["tenantId"], tid.as_str());
    assert_eq!(
        body["source"],
        format!("/tenants/{tid}/applications/77552a27-2fbf-4fb0-873e-af165ec071d5")
    );
    let ctx = &data["authenticationContext"];
    assert_eq!(ctx["correlationId"], "859e2a76-b9ea-41fd-82c8-f8815a2b5123");
    assert_eq!(
        ctx["client"],
        json!({"ip": "203.0.113.7", "locale": "en-us", "market": "en-us"})
    );
    assert_eq!(
        ctx["clientServicePrincipal"]["appDisplayName"],
        "My test web application"
    );
    let attrs = &data["userSignUpInfo"]["attributes"];
    assert_eq!(
        attrs["email"],
        json!({"@odata.type": "microsoft.graph.stringDirectoryAttributeValue", "value": "someone@contoso.com", "attributeType": "builtIn"})
    );
    assert_eq!(
        attrs[format!("extension_{APP}_LoyaltyNumber")],
        json!({"@odata.type": "microsoft.graph.int64DirectoryAttributeValue", "value": 42, "attributeType": "directorySchemaExtension"})
    );
    assert_eq!(
        attrs[format!("extension_{APP}_Newsletter")]["@odata.type"],
        "microsoft.graph.booleanDirectoryAttributeValue"
    );
    assert_eq!(attrs[format!("extension_{APP}_Newsletter")]["value"], true);
    // A local account's identity is its address.
    assert_eq!(
        data["userSignUpInfo"]["identities"],
        json!([{"signInType": "email", "issuer": "login.contoso.com", "issuerAssignedId": "someone@contoso.com"}])
    );
    assert!(!body.to_string().contains("password"));
}

#[test]
fn start_has_the_shape_of_microsofts_social_capture() {
    let identities = [Identity {
        sign_in_type: SignInType::Federated,
        issuer: "google.com".into(),
        issuer_assigned_id: "1234567890".into(),
        exact_issuer: None,
    }];
    let attributes = AttributeValues::new();
    let req = request(
        ConnectorStep::AttributeCollectionStart,
        &identities,
        &attributes,
    );
    let body = envelope(&req, &attributes);
    let shape = json!({
        "type": "s",
        "source": "s",
        "data": {
            "@odata.type": "s",
            "userSignUpInfo": {
                "attributes": {"EmailAddress": string_value()},
                "identities": [{"signInType": "s", "issuer": "s", "issuerAssignedId": "s"}],
            },
            "tenantId": "s",
            "authenticationEventListenerId": "s",
            "customAuthenticationExtensionId": "s",
            "authenticationContext": context_shape(),
        }
    });
    same_shape("", &shape, &body);
    assert_eq!(
        body["data"]["@odata.type"],
        "microsoft.graph.onAttributeCollectionStartCalloutData"
    );
    assert_eq!(
        body["data"]["userSignUpInfo"]["identities"][0],
        json!({"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "1234567890"})
    );
}

#[test]
fn token_issuance_carries_the_user_and_otp_the_code() {
    let mut attributes = AttributeValues::new();
    attributes.insert("displayName".into(), AttributeValue::String("Emily".into()));
    let user = User {
        id: "7f122226-0000-0000-0000-000000000000".into(),
        email: Some("someone@contoso.com".into()),
        attributes: attributes.clone(),
        identities: vec![],
        account_enabled: true,
        created_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        email_verified: true,
        profile: UserProfile::default(),
        version: 1,
        password_changed_at: None,
    };
    let mut req = request(ConnectorStep::PreTokenIssuance, &[], &attributes);
    req.user = Some(&user);
    let body = envelope(&req, &attributes);
    let mut ctx = context_shape();
    ctx["user"] = json!({"displayName": "s", "id": "s", "mail": "s", "userPrincipalName": "s", "userType": "s"});
    let shape = json!({
        "type": "s", "source": "s",
        "data": {"@odata.type": "s", "tenantId": "s", "authenticationEventListenerId": "s",
                 "customAuthenticationExtensionId": "s", "authenticationContext": ctx}
    });
    same_shape("", &shape, &body);
    assert!(body["data"].get("userSignUpInfo").is_none());
    let u = &body["data"]["authenticationContext"]["user"];
    assert_eq!(
        u["userPrincipalName"],
        "7f122226-0000-0000-0000-000000000000@login.contoso.com"
    );
    assert_eq!(u["createdDateTime"], "2023-11-14T22:13:20Z");
    assert_eq!(u["userType"], "Member");

    let mut req = request(ConnectorStep::EmailOtpSend, &[], &attributes);
    req.otp = Some(OtpContext {
        identifier: "casey@contoso.com",
        code: "17479132",
        request_type: "signUp",
    });
    let body = envelope(&req, &attributes);
    let mut ctx = context_shape();
    ctx["requestType"] = json!("s");
    let shape = json!({
        "type": "s", "source": "s",
        "data": {"@odata.type": "s", "otpContext": {"identifier": "s", "oneTimeCode": "s"},
                 "tenantId": "s", "authenticationEventListenerId": "s",
                 "customAuthenticationExtensionId": "s", "authenticationContext": ctx}
    });
    same_shape("", &shape, &body);
    assert_eq!(
        body["type"],
        "microsoft.graph.authenticationEvent.emailOtpSend"
    );
    assert_eq!(
        body["data"]["@odata.type"],
        "microsoft.graph.onOtpSendCalloutData"
    );
    assert_eq!(body["data"]["otpContext"]["oneTimeCode"], "17479132");
    // No envelope at a step the contract has no event for.
    let req = request(ConnectorStep::PostFederationSignup, &[], &attributes);
    assert!(build_envelope(&Envelope {
        request: &req,
        attributes: &attributes,
        tenant: &tenant(),
        connector_id: "c",
        call_id: "x",
        issuer: ISSUER,
    })
    .is_none());
}

#[test]
fn guids_are_stable_and_well_formed() {
    let a = tenant_id(ISSUER);
    assert_eq!(a, tenant_id(ISSUER));
    assert_ne!(a, tenant_id("https://other.example"));
    assert_eq!(a.len(), 36);
    assert_eq!(&a[14..15], "8", "version 8");
    assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "RFC variant");
}

fn read(
    step: ConnectorStep,
    claims: &[String],
    status: u16,
    content_type: &str,
    body: &str,
) -> Interpretation {
    let tenant = tenant();
    let ctx = ExtensionContext {
        base: ResponseContext {
            step,
            lenient: false,
            tenant: Some(&tenant),
            user_flow: tenant.user_flow("B2X_1_signup"),
            email: Some("someone@contoso.com"),
            identities: None,
        },
        claims_for_token: claims,
    };
    let headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
    interpret(&ctx, status, &headers, body.as_bytes())
}

fn answer(data_type: &str, action: Value) -> String {
    json!({"data": {"@odata.type": format!("microsoft.graph.{data_type}"), "actions": [action]}})
        .to_string()
}

const JSON: &str = "application/json; charset=utf-8";

fn code(i: &Interpretation) -> Option<u32> {
    i.outcome
        .failure()
        .map(|f| f.reason.entra_error_code(false))
}

#[test]
fn start_answers_are_read_with_their_variants() {
    use ConnectorStep::AttributeCollectionStart as S;
    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionStartResponseData",
            json!({"@odata.type": "microsoft.graph.attributeCollectionStart.continueWithDefaultBehavior"}),
        ),
    );
    assert!(
        matches!(i.outcome, Interpreted::Continue { ref changes, .. } if changes.is_empty()),
        "{i:?}"
    );
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);

    // setPreFillValues under @odata.Type, a list for a string, an unknown key.
    let i = read(
        S,
        &[],
        200,
        "application/json",
        &answer(
            "onAttributeCollectionStartResponseData",
            json!({
                "@odata.Type": "#Microsoft.Graph.AttributeCollectionStart.SetPreFillValues",
                "inputs": {"city": "Oslo", "country": ["no", "se"], format!("extension_{APP}_LoyaltyNumber"): 7, "jobTitle": "x", "email": "evil@example.com"}
            }),
        ),
    );
    let Interpreted::Continue { changes, .. } = &i.outcome else {
        panic!("{i:?}")
    };
    assert_eq!(changes["city"], Some(AttributeValue::String("Oslo".into())));
    assert_eq!(
        changes["country"],
        Some(AttributeValue::String("no,se".into()))
    );
    assert_eq!(
        changes[&format!("extension_{APP}_LoyaltyNumber")],
        Some(AttributeValue::Int(7))
    );
    assert!(!changes.contains_key("jobTitle"));
    assert!(
        i.warnings.iter().any(|w| w.contains("jobTitle")),
        "{:?}",
        i.warnings
    );
    assert!(
        i.warnings.iter().any(|w| w.contains("email")),
        "{:?}",
        i.warnings
    );

    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionStartResponseData",
            json!({
                "@odata.type": "microsoft.graph.attributeCollectionStart.showBlockPage",
                "title": "Closed", "message": "Sign-ups are closed."
            }),
        ),
    );
    assert_eq!(
        i.outcome,
        Interpreted::Block {
            user_message: "Sign-ups are closed.".into(),
            title: Some("Closed".into())
        }
    );

    // An int64 sent as a string is not the type it was sent as.
    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionStartResponseData",
            json!({
                "@odata.type": "microsoft.graph.attributeCollectionStart.setPrefillValues",
                "inputs": {format!("extension_{APP}_LoyaltyNumber"): "7"}
            }),
        ),
    );
    assert_eq!(code(&i), Some(1_003_003));
    // A submit action at the start event.
    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionStartResponseData",
            json!({
                "@odata.type": "microsoft.graph.attributeCollectionSubmit.showValidationError", "message": "x"
            }),
        ),
    );
    assert_eq!(code(&i), Some(1_003_012));
}

#[test]
fn submit_answers_carry_field_errors_and_changes() {
    use ConnectorStep::PostAttributeCollection as S;
    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionSubmitResponseData",
            json!({
                "@odata.type": "microsoft.graph.attributeCollectionSubmit.showValidationError",
                "message": "Please fix the highlighted fields.",
                "attributeErrors": {"city": "We don't ship there yet.", format!("extension_{APP}_LoyaltyNumber"): "Unknown number."}
            }),
        ),
    );
    let Interpreted::ValidationError(m) = &i.outcome else {
        panic!("{i:?}")
    };
    assert_eq!(m.user_message, "Please fix the highlighted fields.");
    assert_eq!(m.attribute_errors["city"], "We don't ship there yet.");
    assert_eq!(
        m.attribute_errors[&format!("extension_{APP}_LoyaltyNumber")],
        "Unknown number."
    );

    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionSubmitResponseData",
            json!({
                "@odata.type": "microsoft.graph.attributeCollectionSubmit.modifyAttributeValues",
                "attributes": {"displayName": "Ada L.", format!("extension_{APP}_Newsletter"): false}
            }),
        ),
    );
    let Interpreted::Continue { changes, .. } = &i.outcome else {
        panic!("{i:?}")
    };
    assert_eq!(
        changes["displayName"],
        Some(AttributeValue::String("Ada L.".into()))
    );
    assert_eq!(
        changes[&format!("extension_{APP}_Newsletter")],
        Some(AttributeValue::Boolean(false))
    );

    let i = read(
        S,
        &[],
        200,
        JSON,
        &answer(
            "onAttributeCollectionSubmitResponseData",
            json!({
                "@odata.type": "microsoft.graph.attributeCollectionSubmit.showBlockPage", "message": "No."
            }),
        ),
    );
    assert_eq!(
        i.outcome,
        Interpreted::Block {
            user_message: "No.".into(),
            title: None
        }
    );
}

#[test]
fn token_claims_are_only_the_configured_ones() {
    use ConnectorStep::PreTokenIssuance as S;
    let configured = vec![
        "loyaltyTier".to_owned(),
        "roles".to_owned(),
        "sub".to_owned(),
    ];
    let i = read(
        S,
        &configured,
        200,
        JSON,
        &answer(
            "onTokenIssuanceStartResponseData",
            json!({
                "@odata.type": "microsoft.graph.tokenIssuanceStart.provideClaimsForToken",
                "claims": {"loyaltyTier": "gold", "roles": ["a", "b"], "extra": "dropped", "sub": "x"}
            }),
        ),
    );
    let Interpreted::Continue { token_claims, .. } = &i.outcome else {
        panic!("{i:?}")
    };
    assert_eq!(
        Value::Object(token_claims.clone()),
        json!({"loyaltyTier": "gold", "roles": ["a", "b"]})
    );
    assert!(i.warnings.iter().any(|w| w.contains("extra")));
    assert!(i.warnings.iter().any(|w| w.contains("reserved")));

    let i = read(
        S,
        &configured,
        200,
        JSON,
        &answer(
            "onTokenIssuanceStartResponseData",
            json!({
                "@odata.type": "microsoft.graph.tokenIssuanceStart.provideClaimsForToken",
                "claims": {"loyaltyTier": 3}
            }),
        ),
    );
    assert_eq!(code(&i), Some(1_003_003));
    let i = read(
        S,
        &configured,
        200,
        JSON,
        &answer(
            "onTokenIssuanceStartResponseData",
            json!({
                "@odata.type": "microsoft.graph.tokenIssuanceStart.provideClaimsForToken",
                "claims": {"loyaltyTier": "x".repeat(3100)}
            }),
        ),
    );
    assert_eq!(code(&i), Some(1_003_025));

    // The OTP event's only action, with its capital-O data type.
    let i = read(
        ConnectorStep::EmailOtpSend,
        &[],
        200,
        JSON,
        &answer(
            "OnOtpSendResponseData",
            json!({"@odata.type": "microsoft.graph.OtpSend.continueWithDefaultBehavior"}),
        ),
    );
    assert!(matches!(i.outcome, Interpreted::Continue { .. }), "{i:?}");
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
}

#[test]
fn each_failure_has_its_entra_code() {
    use ConnectorStep::PostAttributeCollection as S;
    let ok = answer(
        "onAttributeCollectionSubmitResponseData",
        json!({"@odata.type": "microsoft.graph.attributeCollectionSubmit.continueWithDefaultBehavior"}),
    );
    assert_eq!(code(&read(S, &[], 500, JSON, &ok)), Some(1_003_002));
    assert_eq!(code(&read(S, &[], 201, JSON, &ok)), Some(1_003_002));
    assert_eq!(code(&read(S, &[], 200, JSON, "{not json")), Some(1_003_003));
    assert_eq!(code(&read(S, &[], 429, JSON, &ok)), Some(1_003_004));
    assert_eq!(code(&read(S, &[], 200, "text/plain", &ok)), Some(1_003_006));
    let two = json!({"data": {"actions": [
        {"@odata.type": "microsoft.graph.attributeCollectionSubmit.continueWithDefaultBehavior"},
        {"@odata.type": "microsoft.graph.attributeCollectionSubmit.continueWithDefaultBehavior"}]}});
    assert_eq!(
        code(&read(S, &[], 200, JSON, &two.to_string())),
        Some(1_003_010)
    );
    assert_eq!(
        code(&read(S, &[], 200, JSON, r#"{"data":{"actions":[]}}"#)),
        Some(1_003_010)
    );
    assert_eq!(
        code(&read(S, &[], 200, JSON, r#"{"actions":[]}"#)),
        Some(1_003_010)
    );
    let wrong = answer(
        "onAttributeCollectionSubmitResponseData",
        json!({"@odata.type": "microsoft.graph.tokenIssuanceStart.provideClaimsForToken", "claims": {}}),
    );
    assert_eq!(code(&read(S, &[], 200, JSON, &wrong)), Some(1_003_012));
    assert!(read(S, &[], 200, JSON, &ok).outcome.failure().is_none());
    for (reason, expected) in [
        (FailureReason::Timeout, 1_003_005),
        (FailureReason::TooLarge, 1_003_024),
        (FailureReason::ConnectionRefused, 1_003_027),
        (FailureReason::TargetNotAllowed, 1_003_023),
        (FailureReason::ResourceIdMalformed, 1_003_015),
        (FailureReason::ResourceHostMismatch, 1_003_020),
    ] {
        assert_eq!(reason.entra_error_code(false), expected, "{reason}");
    }
    assert_eq!(
        FailureReason::TargetNotAllowed.entra_error_code(true),
        1_003_014
    );
}

#[test]
fn issued_tokens_name_what_the_sdk_checks() {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let c = issued_token_claims(
        ISSUER,
        "api://api.contoso.com/abc",
        usher_domain::ENTRA_EXTENSION_CALLER_ID,
        "j",
        now,
        chrono::Duration::minutes(10),
    );
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], "api://api.contoso.com/abc");
    assert_eq!(c["azp"], "99045fe1-7639-4a75-9d4a-577b6ca3810f");
    assert_eq!(c["appid"], "99045fe1-7639-4a75-9d4a-577b6ca3810f");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    assert_eq!(c["tid"], tenant_id(ISSUER).as_str());
}

proptest::proptest! {
    /// Whatever the type strings and the body, reading an answer never panics.
    #[test]
    fn reading_any_answer_never_panics(
        data_type in ".{0,40}",
        action_type in ".{0,60}",
        key in "(@odata\\.type|@odata\\.Type|@ODATA\\.TYPE)",
        raw in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
    ) {
        for step in ConnectorStep::ALL {
            let body = json!({"data": {"@odata.type": data_type, "actions": [{key.clone(): action_type, "inputs": {"city": action_type}, "claims": {"x": action_type}}]}}).to_string();
            let _ = read(step, &[], 200, JSON, &body);
            let _ = read(step, &[], 200, JSON, &String::from_utf8_lossy(&raw));
        }
    }
}

#[test]
fn a_type_cut_inside_a_character_is_read_not_panicked_on() {
    let i = read(
        ConnectorStep::AttributeCollectionStart,
        &[],
        200,
        JSON,
        &answer(START_DATA, json!({"@odata.type": "microsoft.graphé.x"})),
    );
    assert_eq!(code(&i), Some(1_003_012));
    // Token issuance must provide claims: continuing is not one of its actions.
    let i = read(
        ConnectorStep::PreTokenIssuance,
        &[],
        200,
        JSON,
        &answer(
            "onTokenIssuanceStartResponseData",
            json!({"@odata.type": "microsoft.graph.tokenIssuanceStart.continueWithDefaultBehavior"}),
        ),
    );
    assert_eq!(code(&i), Some(1_003_012));
}

const START_DATA: &str = "onAttributeCollectionStartResponseData";
