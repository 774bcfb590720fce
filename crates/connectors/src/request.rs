//! The request of contract §2: one flat JSON object of claims, and the headers that go
//! with it (Usher's tracing headers and the Standard Webhooks signature).
//!
//! Everything here is pure so that the exact wire format can be unit-tested without a
//! server.

use base64::Engine as _;
use serde_json::{Map, Value};
use usher_domain::{
    AttributeDefinition, AttributeValue, AttributeValues, BuiltInAttribute, DataType, Identity,
    Secret, SignInType, Tenant,
};

use crate::step::StepRequest;

/// Stable for the whole sign-up attempt.
pub const HEADER_FLOW_ID: &str = "usher-flow-id";
/// Stable across the retries of one call: usable as an idempotency key.
pub const HEADER_CALL_ID: &str = "usher-call-id";
/// Stable across a run of a step's connectors, also when the run is resumed after
/// the instance running it stopped: `<flow id>.<step>.<start>.<connector id>`.
pub const HEADER_IDEMPOTENCY_KEY: &str = "idempotency-key";
/// 1, 2, … for each attempt of one call.
pub const HEADER_ATTEMPT: &str = "usher-attempt";
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";
pub const CONTENT_TYPE_JSON: &str = "application/json; charset=utf-8";

/// The JSON body for `request`, with `attributes` as they are now (after the changes
/// of the connectors that ran before this one).
///
/// Attributes are sent under their canonical ids (custom ones as
/// `extension_<appId>_<Name>`), typed by the tenant's schema. When the user flow is
/// known, only the attributes it selects are sent, as Entra sends only the attributes
/// of the user flow; attributes the tenant does not know are never sent. A claim
/// without a value is left out.
pub fn build_body(
    request: &StepRequest<'_>,
    attributes: &AttributeValues,
    tenant: &Tenant,
) -> Map<String, Value> {
    let mut body = Map::new();
    let email = request
        .email
        .map(str::to_owned)
        .or_else(|| {
            attributes
                .iter()
                .find(|(k, _)| BuiltInAttribute::from_id(k) == Some(BuiltInAttribute::Email))
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        })
        .filter(|e| !e.is_empty());
    if let Some(email) = email {
        body.insert("email".into(), Value::String(email));
    }
    let identities = identities_json(request.identities);
    if !identities.is_empty() {
        body.insert("identities".into(), Value::Array(identities));
    }
    let flow = tenant.user_flow(request.user_flow_id);
    for (id, value) in attributes {
        let Some(definition) = tenant.attribute(id) else {
            continue;
        };
        if BuiltInAttribute::from_id(&definition.id) == Some(BuiltInAttribute::Email) {
            continue;
        }
        if let Some(flow) = flow {
            if !flow.selects(id) && !flow.selects(&definition.id) {
                continue;
            }
        }
        if let Some(v) = wire_value(&definition, value) {
            body.insert(definition.id.clone(), v);
        }
    }
    if !request.ui_locales.is_empty() {
        body.insert(
            "ui_locales".into(),
            Value::String(request.ui_locales.to_owned()),
        );
    }
    body.insert(
        "step".into(),
        Value::String(request.step.wire_name().to_owned()),
    );
    if !request.client_id.is_empty() {
        body.insert(
            "client_id".into(),
            Value::String(request.client_id.to_owned()),
        );
    }
    body
}

/// The `identities` claim: federated identities only (contract §2: sent when the user
/// signed up with an external provider or email one-time passcode; a local account's
/// own sign-in name is not an identity the API needs).
pub fn identities_json(identities: &[Identity]) -> Vec<Value> {
    identities
        .iter()
        .filter(|i| i.sign_in_type == SignInType::Federated)
        .map(|i| {
            serde_json::json!({
                "signInType": i.sign_in_type.as_str(),
                "issuer": i.issuer,
                "issuerAssignedId": i.issuer_assigned_id,
            })
        })
        .collect()
}

/// An attribute value as its data type is sent; `None` for "no value" (an empty
/// string) or a stored value that cannot be read as its type.
pub(crate) fn wire_value(
    definition: &AttributeDefinition,
    value: &AttributeValue,
) -> Option<Value> {
    let data_type = if definition.built_in {
        DataType::String
    } else {
        definition.data_type
    };
    match data_type {
        DataType::String => {
            let s = value.to_form_string();
            (!s.is_empty()).then_some(Value::String(s))
        }
        DataType::Boolean => match value {
            AttributeValue::Boolean(b) => Some(Value::Bool(*b)),
            AttributeValue::String(s) if s == "true" => Some(Value::Bool(true)),
            AttributeValue::String(s) if s == "false" => Some(Value::Bool(false)),
            _ => None,
        },
        DataType::Int => match value {
            AttributeValue::Int(i) => Some(Value::from(*i)),
            AttributeValue::String(s) => s.trim().parse::<i64>().ok().map(Value::from),
            AttributeValue::Boolean(_) => None,
        },
    }
}

/// The HMAC key of a signing secret. Standard Webhooks secrets are `whsec_<base64>` and
/// the key is the decoded bytes; anything else is used as its UTF-8 bytes.
pub fn signing_key(secret: &Secret) -> Vec<u8> {
    let s = secret.expose();
    if let Some(encoded) = s.strip_prefix("whsec_") {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) {
            if !bytes.is_empty() {
                return bytes;
            }
        }
    }
    s.as_bytes().to_vec()
}

/// The `webhook-signature` header value: one `v1,<base64>` per secret, separated by
/// spaces (several while a secret is being rotated). `None` without secrets.
pub fn webhook_signature(
    secrets: &[Secret],
    message_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    let mut signed = Vec::with_capacity(message_id.len() + body.len() + 24);
    signed.extend_from_slice(message_id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let signatures: Vec<String> = secrets
        .iter()
        .map(|secret| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &signing_key(secret));
            let tag = ring::hmac::sign(&key, &signed);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
            )
        })
        .collect();
    Some(signatures.join(" "))
}

/// `Basic base64(username:password)`.
pub fn basic_authorization(username: &str, password: &Secret) -> String {
    let raw = format!("{username}:{}", password.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use usher_domain::{
        AttributeAssignment, ConnectorSlots, ConnectorStep, UserFlow, UserInputType,
    };

    const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn custom(name: &str, data_type: DataType) -> AttributeDefinition {
        AttributeDefinition {
            id: format!("extension_{APP}_{name}"),
            display_name: name.into(),
            description: String::new(),
            data_type,
            built_in: false,
        }
    }

    fn assign(id: &str, input_type: UserInputType) -> AttributeAssignment {
        AttributeAssignment {
            attribute_id: id.into(),
            label: None,
            is_optional: true,
            input_type,
            options: vec![],
            is_claim: true,
        }
    }

    fn tenant() -> Tenant {
        Tenant {
            extensions_app_id: APP.into(),
            custom_attributes: vec![
                custom("ShoeSize", DataType::Int),
                custom("Terms", DataType::Boolean),
                custom("Colors", DataType::String),
                custom("Unselected", DataType::String),
            ],
            user_flows: vec![UserFlow {
                id: "B2X_1_signup".into(),
                identity_providers: vec![],
                attributes: vec![
                    assign("displayName", UserInputType::TextBox),
                    assign("givenName", UserInputType::TextBox),
                    assign("city", UserInputType::TextBox),
                    assign(
                        &format!("extension_{APP}_ShoeSize"),
                        UserInputType::NumericTextBox,
                    ),
                    assign(
                        &format!("extension_{APP}_Terms"),
                        UserInputType::CheckboxSingleSelect,
                    ),
                    assign(
                        &format!("extension_{APP}_Colors"),
                        UserInputType::CheckboxMultiSelect,
                    ),
                ],
                extra_claims: vec!["email".into()],
                connectors: ConnectorSlots::default(),
                requires_approval: false,
            }],
            applications: vec![],
        }
    }

    fn request<'a>(
        step: ConnectorStep,
        email: Option<&'a str>,
        identities: &'a [Identity],
        attributes: &'a AttributeValues,
    ) -> StepRequest<'a> {
        StepRequest {
            step,
            flow_id: "flow-1",
            user_flow_id: "B2X_1_signup",
            connector_ids: &[],
            client_id: "client-1",
            ui_locales: "en-US",
            email,
            identities,
            attributes,
            run_key: None,
            client_ip: None,
            user: None,
            otp: None,
        }
    }

    #[test]
    fn body_has_the_contract_shape() {
        let attributes: AttributeValues = [
            ("displayName", AttributeValue::String("John Smith".into())),
            ("givenName", AttributeValue::String(String::new())),
            ("city", AttributeValue::String("Oslo".into())),
            (
                &*format!("extension_{APP}_ShoeSize"),
                AttributeValue::Int(44),
            ),
            (
                &*format!("extension_{APP}_Terms"),
                AttributeValue::Boolean(true),
            ),
            (
                &*format!("extension_{APP}_Colors"),
                AttributeValue::String("red,blue".into()),
            ),
            (
                &*format!("extension_{APP}_Unselected"),
                AttributeValue::String("x".into()),
            ),
            ("notAnAttribute", AttributeValue::String("x".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let identities = [
            Identity {
                sign_in_type: SignInType::Federated,
                issuer: "facebook.com".into(),
                issuer_assigned_id: "0123456789".into(),
                exact_issuer: None,
            },
            Identity {
                sign_in_type: SignInType::EmailAddress,
                issuer: "usher".into(),
                issuer_assigned_id: "john@fabrikam.com".into(),
                exact_issuer: None,
            },
        ];
        let req = request(
            ConnectorStep::PostAttributeCollection,
            Some("johnsmith@fabrikam.com"),
            &identities,
            &attributes,
        );
        let body = build_body(&req, &attributes, &tenant());
        assert_eq!(
            Value::Object(body),
            json!({
                "email": "johnsmith@fabrikam.com",
                "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "0123456789"}],
                "displayName": "John Smith",
                "city": "Oslo",
                format!("extension_{APP}_ShoeSize"): 44,
                format!("extension_{APP}_Terms"): true,
                format!("extension_{APP}_Colors"): "red,blue",
                "ui_locales": "en-US",
                "step": "PostAttributeCollection",
                "client_id": "client-1",
            })
        );
    }

    #[test]
    fn values_are_coerced_to_the_schema_and_empty_ones_left_out() {
        let attributes: AttributeValues = [
            (
                format!("extension_{APP}_ShoeSize"),
                AttributeValue::String("42".into()),
            ),
            (
                format!("extension_{APP}_Terms"),
                AttributeValue::String("false".into()),
            ),
            ("displayName".to_owned(), AttributeValue::Int(7)),
        ]
        .into();
        let req = request(ConnectorStep::PreTokenIssuance, None, &[], &attributes);
        let body = build_body(&req, &attributes, &tenant());
        assert_eq!(body[&format!("extension_{APP}_ShoeSize")], json!(42));
        assert_eq!(body[&format!("extension_{APP}_Terms")], json!(false));
        assert_eq!(body["displayName"], json!("7"));
        assert!(!body.contains_key("email"));
        assert!(!body.contains_key("identities"));
        assert!(body.values().all(|v| !v.is_null() && v != &json!("")));
    }

    #[test]
    fn short_form_keys_are_sent_under_full_ids() {
        let attributes: AttributeValues =
            [("extension_ShoeSize".to_owned(), AttributeValue::Int(40))].into();
        let req = request(
            ConnectorStep::PostFederationSignup,
            Some("a@b.c"),
            &[],
            &attributes,
        );
        let body = build_body(&req, &attributes, &tenant());
        assert_eq!(body[&format!("extension_{APP}_ShoeSize")], json!(40));
        assert_eq!(body["email"], json!("a@b.c"));
        assert_eq!(body["step"], json!("PostFederationSignup"));
    }

    #[test]
    fn without_a_known_flow_every_known_attribute_is_sent() {
        let attributes: AttributeValues = [
            (
                format!("extension_{APP}_Unselected"),
                AttributeValue::String("x".into()),
            ),
            (
                "jobTitle".to_owned(),
                AttributeValue::String("Supplier".into()),
            ),
        ]
        .into();
        let mut req = request(ConnectorStep::PreTokenIssuance, None, &[], &attributes);
        req.user_flow_id = "B2X_1_other";
        let body = build_body(&req, &attributes, &tenant());
        assert_eq!(body[&format!("extension_{APP}_Unselected")], json!("x"));
        assert_eq!(body["jobTitle"], json!("Supplier"));
    }

    #[test]
    fn standard_webhooks_signature() {
        // The example of the Standard Webhooks specification.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = webhook_signature(
            std::slice::from_ref(&secret),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let two = webhook_signature(&[secret, Secret::new("raw")], "m", 1, b"{}").unwrap();
        assert_eq!(two.split(' ').count(), 2);
        assert!(two.split(' ').all(|s| s.starts_with("v1,")));
        assert_eq!(webhook_signature(&[], "m", 1, b"{}"), None);
    }

    #[test]
    fn raw_secrets_are_used_as_bytes() {
        assert_eq!(signing_key(&Secret::new("plain")), b"plain");
        assert_eq!(signing_key(&Secret::new("whsec_!!!")), b"whsec_!!!");
        assert_eq!(signing_key(&Secret::new("whsec_AQID")), vec![1, 2, 3]);
    }

    #[test]
    fn basic_header() {
        assert_eq!(
            basic_authorization("Aladdin", &Secret::new("open sesame")),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }
}
