//! Reading a connector's answer (contract §3). Pure: an HTTP status and body bytes in,
//! an outcome and the contract warnings out, whatever the bytes are.
//!
//! Choices where the contract leaves room, all documented here so operators can rely
//! on them:
//! - `version` may be missing or not a string (a warning); its value is not checked.
//! - `action` is matched exactly (`Continue`, `ShowBlockPage`, `ValidationError`;
//!   `Allow` in lenient mode).
//! - A `ShowBlockPage` without a string `userMessage` still blocks (with a warning
//!   and an empty message): the API clearly meant to stop the sign-up.
//! - A `ValidationError` whose `status` is missing is accepted with a warning (the HTTP
//!   status already says 400); any value other than `400`/`"400"` makes it malformed.
//!   It needs a `userMessage` or at least one `attributeErrors` entry.
//! - Claim keys other than attributes are ignored, except at `PreTokenIssuance`,
//!   where (as in Azure AD B2C) they become token claims; the protocol's reserved
//!   claims (`iss`, `sub`, `aud`, …) are never overridden (a warning).
//! - At `PreTokenIssuance` a selected attribute's claim goes into the token under the
//!   name the token uses for it (`name`, `given_name`, `extension_<Name>`, …); `""`
//!   cannot remove a claim from a token and is ignored with a warning.
//! - An Int takes a JSON integer or a string of ASCII digits with an optional leading
//!   `-`; `""` clears only string attributes. A string value must pass the same checks
//!   as the attribute page (no control characters, the attribute's maximum length).
//! - `email` and `identities` equal to what was sent are an echo, not an attempt.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use usher_domain::{
    attribute::check_text, flow::PageMessage, AttributeDefinition, AttributeValue,
    BuiltInAttribute, ConnectorStep, DataType, Tenant, UserFlow,
};

use crate::failure::{Failure, FailureReason};

/// Keys of the contract itself, never claims: the answer's own, and the request's
/// (a connector that echoes its request must not turn `step` into a token claim).
const CONTRACT_KEYS: [&str; 8] = [
    "version",
    "action",
    "status",
    "userMessage",
    "attributeErrors",
    "code",
    "step",
    "ui_locales",
];

/// Token claims a connector may not set: the protocol owns them (OpenID Connect
/// Core's ID token claims, JWT's registered claims, the session and confirmation
/// claims of logout and DPoP, and what Usher itself vouches for).
pub const RESERVED_TOKEN_CLAIMS: [&str; 26] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "s_hash",
    "jti",
    "sid",
    "cnf",
    "typ",
    "tfp",
    "idp",
    "scope",
    "scp",
    "client_id",
    "grant_id",
    "email_verified",
    "phone_number_verified",
];

/// Whether `claim` is one a connector may not set. Compared without case: a relying
/// party that reads claims case-insensitively must not be fooled by `SUB`.
pub fn is_protected_token_claim(claim: &str) -> bool {
    RESERVED_TOKEN_CLAIMS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(claim))
}

/// What the answer is read against.
#[derive(Debug, Clone, Copy)]
pub struct ResponseContext<'a> {
    pub step: ConnectorStep,
    pub lenient: bool,
    /// The tenant's schema. Without it (a diagnostic probe), attribute claims are
    /// reported as sent, typed by their JSON type.
    pub tenant: Option<&'a Tenant>,
    /// Which attributes may change. With a tenant but no flow, none may.
    pub user_flow: Option<&'a UserFlow>,
    /// The `email` that was sent: echoing it back is not an attempt to change it.
    pub email: Option<&'a str>,
    /// The `identities` that were sent, as sent.
    pub identities: Option<&'a Value>,
}

impl ResponseContext<'_> {
    pub fn new(step: ConnectorStep, lenient: bool) -> Self {
        Self {
            step,
            lenient,
            tenant: None,
            user_flow: None,
            email: None,
            identities: None,
        }
    }
}

/// What the connector's answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Interpreted {
    /// `changes` are the selected attributes to set (`Some`) or clear (`None`), by
    /// canonical attribute id; `token_claims` go into the token (`PreTokenIssuance`).
    Continue {
        changes: BTreeMap<String, Option<AttributeValue>>,
        token_claims: Map<String, Value>,
    },
    Block {
        user_message: String,
        /// The page's heading (extensions only).
        title: Option<String>,
    },
    ValidationError(PageMessage),
    Failed(Failure),
}

impl Interpreted {
    /// The outcome as call records and metrics name it.
    pub fn outcome_name(&self) -> &'static str {
        match self {
            Interpreted::Continue { .. } => "continue",
            Interpreted::Block { .. } => "block",
            Interpreted::ValidationError(_) => "validationError",
            Interpreted::Failed(_) => "failed",
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Interpreted::Failed(f) => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interpretation {
    pub outcome: Interpreted,
    /// Contract warnings: accepted, but the API should be fixed.
    pub warnings: Vec<String>,
}

impl Interpretation {
    pub fn failed(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            outcome: Interpreted::Failed(Failure::new(reason, detail)),
            warnings: Vec::new(),
        }
    }
}

/// Reads one answer. Never panics, whatever `body` holds.
pub fn interpret(ctx: &ResponseContext<'_>, status: u16, body: &[u8]) -> Interpretation {
    let mut warnings = Vec::new();
    let outcome = match status {
        200 => read_ok(ctx, body, &mut warnings),
        400 => read_bad_request(ctx, body, &mut warnings),
        300..=399 => fail(
            FailureReason::Redirect,
            format!("HTTP {status}: redirects are not followed"),
        ),
        401 => fail(FailureReason::Unauthorized, "HTTP 401"),
        403 => fail(FailureReason::Forbidden, "HTTP 403"),
        429 => fail(FailureReason::Http429, "HTTP 429"),
        402..=499 => fail(FailureReason::Http4xx, format!("HTTP {status}")),
        500..=599 => fail(FailureReason::Http5xx, format!("HTTP {status}")),
        _ => fail(
            FailureReason::UnexpectedStatus,
            format!("HTTP {status}: only 200 and 400 carry an answer"),
        ),
    };
    Interpretation { outcome, warnings }
}

fn fail(reason: FailureReason, detail: impl Into<String>) -> Interpreted {
    Interpreted::Failed(Failure::new(reason, detail))
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, String> {
    // Some servers (.NET among them) start JSON with a byte order mark.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "the body is JSON {} where an object was expected",
            json_type(&other)
        )),
        Err(e) => Err(format!(
            "the body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

fn check_version(obj: &Map<String, Value>, warnings: &mut Vec<String>) {
    match obj.get("version") {
        None => warnings.push("the response has no \"version\"".into()),
        Some(Value::String(_)) => {}
        Some(other) => warnings.push(format!(
            "\"version\" is {} where a string was expected",
            json_type(other)
        )),
    }
}

fn read_ok(ctx: &ResponseContext<'_>, body: &[u8], warnings: &mut Vec<String>) -> Interpreted {
    let obj = match parse_object(body) {
        Ok(o) => o,
        Err(detail) => return fail(FailureReason::NotJson, detail),
    };
    check_version(&obj, warnings);
    let action = match obj.get("action") {
        None | Some(Value::Null) => {
            return fail(
                FailureReason::MissingAction,
                "the response has no \"action\"",
            )
        }
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return fail(
                FailureReason::UnknownAction,
                format!(
                    "\"action\" is {} where a string was expected",
                    json_type(other)
                ),
            )
        }
    };
    match action {
        "Continue" => read_continue(ctx, &obj, warnings),
        "Allow" if ctx.lenient => {
            warnings.push("lenient mode: \"Allow\" read as \"Continue\"".into());
            read_continue(ctx, &obj, warnings)
        }
        "Allow" => fail(
            FailureReason::UnknownAction,
            "\"Allow\" is accepted only in lenient mode; the action is \"Continue\"",
        ),
        "ShowBlockPage" => {
            if ctx.step == ConnectorStep::PreTokenIssuance {
                return fail(
                    FailureReason::BlockNotAllowed,
                    "ShowBlockPage is not allowed at PreTokenIssuance",
                );
            }
            let user_message = match obj.get("userMessage") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    warnings.push("ShowBlockPage without a string \"userMessage\"".into());
                    String::new()
                }
            };
            Interpreted::Block {
                user_message,
                title: None,
            }
        }
        "ValidationError" => {
            if !ctx.step.takes_validation_errors() {
                return fail(
                    FailureReason::ValidationErrorNotAllowed,
                    format!(
                        "ValidationError is allowed only after a form (PostAttributeCollection, OnProfileUpdate), not at {}",
                        ctx.step.wire_name()
                    ),
                );
            }
            if !ctx.lenient {
                return fail(
                    FailureReason::ValidationErrorWrongStatus,
                    "ValidationError must come with HTTP 400, not 200",
                );
            }
            warnings.push("lenient mode: ValidationError accepted with HTTP 200".into());
            read_validation_error(ctx, &obj, warnings)
        }
        other => fail(
            FailureReason::UnknownAction,
            format!("unknown action {:?}", truncate_chars(other, 64)),
        ),
    }
}

fn read_bad_request(
    ctx: &ResponseContext<'_>,
    body: &[u8],
    warnings: &mut Vec<String>,
) -> Interpreted {
    let obj = match parse_object(body) {
        Ok(o) => o,
        Err(detail) => {
            return fail(
                FailureReason::MalformedValidationError,
                format!("HTTP 400: {detail}"),
            )
        }
    };
    check_version(&obj, warnings);
    match obj.get("action") {
        Some(Value::String(s)) if s == "ValidationError" => {}
        Some(Value::String(s)) => {
            return fail(
                FailureReason::MalformedValidationError,
                format!(
                    "HTTP 400 with action {:?} instead of \"ValidationError\"",
                    truncate_chars(s, 64)
                ),
            )
        }
        _ => {
            return fail(
                FailureReason::MalformedValidationError,
                "HTTP 400 without \"action\": \"ValidationError\"",
            )
        }
    }
    if !ctx.step.takes_validation_errors() {
        return fail(
            FailureReason::ValidationErrorNotAllowed,
            format!(
                "ValidationError is allowed only after a form (PostAttributeCollection, OnProfileUpdate), not at {}",
                ctx.step.wire_name()
            ),
        );
    }
    read_validation_error(ctx, &obj, warnings)
}

fn read_validation_error(
    ctx: &ResponseContext<'_>,
    obj: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Interpreted {
    match obj.get("status") {
        None => warnings.push("ValidationError without \"status\"".into()),
        Some(Value::Number(n)) if n.as_u64() == Some(400) => {}
        Some(Value::String(s)) if s.trim() == "400" => {}
        Some(other) => {
            return fail(
                FailureReason::MalformedValidationError,
                format!(
                    "\"status\" must be 400 or \"400\"; got {}",
                    describe_scalar(other)
                ),
            )
        }
    }
    let mut attribute_errors = BTreeMap::new();
    match obj.get("attributeErrors") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, message) in map {
                let Value::String(message) = message else {
                    warnings.push(format!(
                        "attributeErrors[{key:?}] is {} where a string was expected; ignored",
                        json_type(message)
                    ));
                    continue;
                };
                let id = ctx
                    .tenant
                    .and_then(|t| t.attribute(key))
                    .map_or_else(|| key.clone(), |d| d.id);
                if ctx.user_flow.is_some_and(|f| f.assignment(&id).is_none()) {
                    // The person still has to see it: the page shows it for the whole form.
                    warnings.push(format!(
                        "attributeErrors[{key:?}] names an attribute that is not on the page; \
                         shown as a message for the whole form"
                    ));
                }
                attribute_errors.insert(id, message.clone());
            }
        }
        Some(other) => warnings.push(format!(
            "\"attributeErrors\" is {} where an object was expected; ignored",
            json_type(other)
        )),
    }
    let user_message = match obj.get("userMessage") {
        Some(Value::String(s)) => s.clone(),
        _ if !attribute_errors.is_empty() => {
            warnings.push("ValidationError without a string \"userMessage\"".into());
            String::new()
        }
        _ => {
            return fail(
                FailureReason::MalformedValidationError,
                "ValidationError without a string \"userMessage\"",
            )
        }
    };
    Interpreted::ValidationError(PageMessage {
        user_message,
        attribute_errors,
    })
}

/// How one claim key is read.
pub(crate) enum Key {
    Email,
    Identities,
    Attribute(AttributeDefinition),
    /// `extension_…` that the tenant does not know.
    UnknownExtension,
    Other,
}

pub(crate) fn classify_key(ctx: &ResponseContext<'_>, key: &str) -> Key {
    if key.eq_ignore_ascii_case("email") {
        return Key::Email;
    }
    if key.eq_ignore_ascii_case("identities") {
        return Key::Identities;
    }
    if let Some(tenant) = ctx.tenant {
        if let Some(def) = tenant.attribute(key) {
            return Key::Attribute(def);
        }
    } else if let Some(b) = BuiltInAttribute::from_id(key) {
        return Key::Attribute(AttributeDefinition::built_in(b));
    }
    if key.starts_with("extension_") {
        Key::UnknownExtension
    } else {
        Key::Other
    }
}

fn read_continue(
    ctx: &ResponseContext<'_>,
    obj: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Interpreted {
    let pre_token = ctx.step == ConnectorStep::PreTokenIssuance;
    let mut changes = BTreeMap::new();
    let mut token_claims = Map::new();
    for (key, value) in obj {
        if CONTRACT_KEYS.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        match classify_key(ctx, key) {
            Key::Email => {
                let echo = matches!((value, ctx.email), (Value::String(v), Some(sent)) if v.eq_ignore_ascii_case(sent));
                if !echo {
                    warnings.push(
                        "\"email\" cannot be changed by a connector (the address was verified); ignored"
                            .into(),
                    );
                }
            }
            Key::Identities => {
                if ctx.identities != Some(value) {
                    warnings
                        .push("\"identities\" cannot be changed by a connector; ignored".into());
                }
            }
            Key::Attribute(def) => {
                let selected = match (ctx.tenant, ctx.user_flow) {
                    (None, _) => true,
                    (Some(_), Some(flow)) => flow.selects(&def.id),
                    (Some(_), None) => false,
                };
                if !selected {
                    warnings.push(format!(
                        "claim {key:?} is for an attribute the user flow does not select; ignored"
                    ));
                    continue;
                }
                let definition = if ctx.tenant.is_none() && !def.built_in {
                    inferred_definition(key, value)
                } else {
                    def
                };
                let coerced = match coerce(&definition, value) {
                    Ok(c) => c,
                    Err(detail) => {
                        return fail(
                            FailureReason::ContractViolation,
                            format!("claim {key:?}: {detail}"),
                        )
                    }
                };
                if pre_token {
                    match coerced {
                        Some(v) => {
                            let name = claim_name(ctx.tenant, &definition.id);
                            token_claims.insert(name, v.to_json());
                        }
                        None => warnings.push(format!(
                            "claim {key:?}: \"\" cannot remove a claim from a token; ignored"
                        )),
                    }
                } else {
                    changes.insert(definition.id.clone(), coerced);
                }
            }
            Key::UnknownExtension if ctx.tenant.is_some() => warnings.push(format!(
                "claim {key:?} is for an attribute the user flow does not select; ignored"
            )),
            Key::UnknownExtension | Key::Other => {
                if !pre_token {
                    if ctx.tenant.is_none() && key.starts_with("extension_") {
                        // A probe without the tenant's schema: show what would apply.
                        let def = inferred_definition(key, value);
                        match coerce(&def, value) {
                            Ok(c) => {
                                changes.insert(key.clone(), c);
                            }
                            Err(detail) => {
                                return fail(
                                    FailureReason::ContractViolation,
                                    format!("claim {key:?}: {detail}"),
                                )
                            }
                        }
                    }
                    continue;
                }
                if is_protected_token_claim(key) {
                    warnings.push(format!(
                        "claim {key:?} is reserved for the protocol and cannot be set; ignored"
                    ));
                    continue;
                }
                token_claims.insert(key.clone(), value.clone());
            }
        }
    }
    Interpreted::Continue {
        changes,
        token_claims,
    }
}

/// Without the tenant's schema, a custom attribute's type is read from the JSON.
fn inferred_definition(key: &str, value: &Value) -> AttributeDefinition {
    let data_type = match value {
        Value::Bool(_) => DataType::Boolean,
        Value::Number(_) => DataType::Int,
        _ => DataType::String,
    };
    AttributeDefinition {
        id: key.to_owned(),
        display_name: key.to_owned(),
        description: String::new(),
        data_type,
        built_in: false,
    }
}

/// One claim value for one attribute: `Some(v)` sets, `None` clears. `null` never gets
/// here (it means "no change").
pub fn coerce(
    definition: &AttributeDefinition,
    value: &Value,
) -> Result<Option<AttributeValue>, String> {
    let data_type = if definition.built_in {
        DataType::String
    } else {
        definition.data_type
    };
    match (data_type, value) {
        (DataType::String, Value::String(s)) if s.is_empty() => Ok(None),
        (DataType::String, Value::String(s)) => {
            check_text(s, definition.max_length()).map_err(|e| e.to_string())?;
            Ok(Some(AttributeValue::String(s.clone())))
        }
        (DataType::Boolean, Value::Bool(b)) => Ok(Some(AttributeValue::Boolean(*b))),
        (DataType::Boolean, Value::String(s)) if s == "true" => {
            Ok(Some(AttributeValue::Boolean(true)))
        }
        (DataType::Boolean, Value::String(s)) if s == "false" => {
            Ok(Some(AttributeValue::Boolean(false)))
        }
        (DataType::Int, Value::Number(n)) => n
            .as_i64()
            .map(|i| Some(AttributeValue::Int(i)))
            .ok_or_else(|| "an Int attribute takes a whole number that fits 64 bits".into()),
        (DataType::Int, Value::String(s)) if is_integer_string(s) => s
            .parse::<i64>()
            .map(|i| Some(AttributeValue::Int(i)))
            .map_err(|_| "an Int attribute takes a whole number that fits 64 bits".into()),
        (DataType::String, other) => Err(format!(
            "a string attribute takes a string; got {}",
            json_type(other)
        )),
        (DataType::Boolean, other) => Err(format!(
            "a Boolean attribute takes true, false, \"true\" or \"false\"; got {}",
            describe_scalar(other)
        )),
        (DataType::Int, other) => Err(format!(
            "an Int attribute takes an integer or a string of digits; got {}",
            describe_scalar(other)
        )),
    }
}

fn is_integer_string(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The name a token gives an attribute's claim (as the OpenID Connect layer names it).
pub fn claim_name(tenant: Option<&Tenant>, attribute_id: &str) -> String {
    match BuiltInAttribute::from_id(attribute_id) {
        Some(BuiltInAttribute::DisplayName) => "name".into(),
        Some(BuiltInAttribute::GivenName) => "given_name".into(),
        Some(BuiltInAttribute::Surname) => "family_name".into(),
        Some(BuiltInAttribute::Email) => "email".into(),
        Some(other) => other.id().into(),
        None => {
            let Some(tenant) = tenant else {
                return attribute_id.to_owned();
            };
            let prefix = format!("extension_{}_", tenant.extensions_app_id);
            match attribute_id.strip_prefix(&prefix) {
                Some(name) => format!("extension_{name}"),
                None => attribute_id.to_owned(),
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Short descriptions only: a claim's value may be personal data and this text is
/// logged.
fn describe_scalar(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() <= 16 => format!("the string {s:?}"),
        other => json_type(other).to_owned(),
    }
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use usher_domain::{AttributeAssignment, ConnectorSlots, UserInputType};

    const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    use ConnectorStep::{
        PostAttributeCollection as PAC, PostFederationSignup as PFS, PreTokenIssuance as PTI,
    };

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
                custom("ShoeSize", DataType::Int),
                custom("Terms", DataType::Boolean),
                custom("Loyalty", DataType::String),
                custom("Hidden", DataType::String),
            ],
            user_flows: vec![UserFlow {
                id: "B2X_1_f".into(),
                identity_providers: vec![],
                attributes: vec![
                    assign("displayName"),
                    assign("givenName"),
                    assign("city"),
                    assign(&format!("extension_{APP}_ShoeSize")),
                    assign(&format!("extension_{APP}_Terms")),
                    assign(&format!("extension_{APP}_Loyalty")),
                ],
                extra_claims: vec!["email".into()],
                connectors: ConnectorSlots::default(),
                requires_approval: false,
            }],
            applications: vec![],
        }
    }

    fn run(step: ConnectorStep, lenient: bool, status: u16, body: Value) -> Interpretation {
        let t = tenant();
        let ctx = ResponseContext {
            step,
            lenient,
            tenant: Some(&t),
            user_flow: t.user_flow("B2X_1_f"),
            email: Some("john@example.com"),
            identities: None,
        };
        interpret(&ctx, status, body.to_string().as_bytes())
    }

    fn reason(i: &Interpretation) -> Option<FailureReason> {
        i.outcome.failure().map(|f| f.reason)
    }

    fn changes(i: &Interpretation) -> BTreeMap<String, Option<AttributeValue>> {
        match &i.outcome {
            Interpreted::Continue { changes, .. } => changes.clone(),
            other => panic!("expected Continue, got {other:?}"),
        }
    }

    fn ext(name: &str) -> String {
        format!("extension_{APP}_{name}")
    }

    #[test]
    fn continue_at_every_step() {
        for step in [PFS, PAC, PTI] {
            let i = run(
                step,
                false,
                200,
                json!({"version": "1.0.0", "action": "Continue"}),
            );
            assert!(
                matches!(i.outcome, Interpreted::Continue { .. }),
                "{step:?}"
            );
            assert!(i.warnings.is_empty());
        }
    }

    #[test]
    fn version_is_optional_and_unchecked() {
        for v in ["1.0.0", "0.0.1", "1.0.0.0"] {
            let i = run(PAC, false, 200, json!({"version": v, "action": "Continue"}));
            assert!(i.warnings.is_empty());
        }
        let i = run(PAC, false, 200, json!({"action": "Continue"}));
        assert!(matches!(i.outcome, Interpreted::Continue { .. }));
        assert_eq!(i.warnings.len(), 1);
        assert!(i.warnings[0].contains("version"));
        let i = run(PAC, false, 200, json!({"version": 1, "action": "Continue"}));
        assert!(matches!(i.outcome, Interpreted::Continue { .. }));
        assert_eq!(i.warnings.len(), 1);
    }

    #[test]
    fn block_page() {
        for step in [PFS, PAC] {
            let i = run(
                step,
                false,
                200,
                json!({"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "<b>No</b>"}),
            );
            assert_eq!(
                i.outcome,
                Interpreted::Block {
                    user_message: "<b>No</b>".into(),
                    title: None,
                }
            );
        }
        let i = run(
            PTI,
            false,
            200,
            json!({"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "x"}),
        );
        assert_eq!(reason(&i), Some(FailureReason::BlockNotAllowed));
        let i = run(
            PAC,
            false,
            200,
            json!({"version": "1.0.0", "action": "ShowBlockPage"}),
        );
        assert_eq!(
            i.outcome,
            Interpreted::Block {
                user_message: String::new(),
                title: None,
            }
        );
        assert_eq!(i.warnings.len(), 1);
    }

    #[test]
    #[allow(
        clippy::many_single_char_names,
        reason = "one letter per answer being tried"
    )]
    fn validation_error_rules() {
        let ve = json!({"version": "1.0.0", "status": 400, "action": "ValidationError", "userMessage": "Fix it", "code": "E1"});
        let i = run(PAC, false, 400, ve.clone());
        assert_eq!(
            i.outcome,
            Interpreted::ValidationError(PageMessage {
                user_message: "Fix it".into(),
                attribute_errors: BTreeMap::new()
            })
        );
        assert!(i.warnings.is_empty());
        // Status as a string.
        let mut s = ve.clone();
        s["status"] = json!("400");
        assert!(matches!(
            run(PAC, false, 400, s.clone()).outcome,
            Interpreted::ValidationError(_)
        ));
        // HTTP 200: wrong status, unless lenient.
        assert_eq!(
            reason(&run(PAC, false, 200, ve.clone())),
            Some(FailureReason::ValidationErrorWrongStatus)
        );
        let lenient = run(PAC, true, 200, ve.clone());
        assert!(matches!(lenient.outcome, Interpreted::ValidationError(_)));
        assert_eq!(lenient.warnings.len(), 1);
        // Other steps.
        for step in [PFS, PTI] {
            assert_eq!(
                reason(&run(step, false, 400, ve.clone())),
                Some(FailureReason::ValidationErrorNotAllowed)
            );
            assert_eq!(
                reason(&run(step, false, 200, ve.clone())),
                Some(FailureReason::ValidationErrorNotAllowed)
            );
            assert_eq!(
                reason(&run(step, true, 200, ve.clone())),
                Some(FailureReason::ValidationErrorNotAllowed)
            );
        }
        // Wrong status value.
        let mut w = ve.clone();
        w["status"] = json!(409);
        assert_eq!(
            reason(&run(PAC, false, 400, w)),
            Some(FailureReason::MalformedValidationError)
        );
        // Missing status: accepted with a warning.
        let mut m = ve.clone();
        m.as_object_mut().unwrap().remove("status");
        let i = run(PAC, false, 400, m);
        assert!(matches!(i.outcome, Interpreted::ValidationError(_)));
        assert_eq!(i.warnings.len(), 1);
        // No message at all.
        let mut n = ve.clone();
        n.as_object_mut().unwrap().remove("userMessage");
        assert_eq!(
            reason(&run(PAC, false, 400, n)),
            Some(FailureReason::MalformedValidationError)
        );
    }

    #[test]
    fn a_400_must_be_a_validation_error() {
        assert_eq!(
            reason(&run(PAC, false, 400, json!({"action": "Continue"}))),
            Some(FailureReason::MalformedValidationError)
        );
        assert_eq!(
            reason(&run(PAC, false, 400, json!({"error": "bad"}))),
            Some(FailureReason::MalformedValidationError)
        );
        let t = tenant();
        let ctx = ResponseContext::new(PAC, false);
        let _ = &t;
        assert_eq!(
            reason(&interpret(&ctx, 400, b"Bad Request")),
            Some(FailureReason::MalformedValidationError)
        );
    }

    #[test]
    fn attribute_errors_extension() {
        let i = run(
            PAC,
            false,
            400,
            json!({"version": "1.0.0", "status": 400, "action": "ValidationError", "userMessage": "Fix",
                   "attributeErrors": {"extension_ShoeSize": "Too big", "City": "Unknown city", "givenName": 5}}),
        );
        let Interpreted::ValidationError(m) = i.outcome else {
            panic!()
        };
        assert_eq!(m.attribute_errors[&ext("ShoeSize")], "Too big");
        assert_eq!(m.attribute_errors["city"], "Unknown city");
        assert!(!m.attribute_errors.contains_key("givenName"));
        assert_eq!(i.warnings.len(), 1);
        // attributeErrors alone is enough.
        let i = run(
            PAC,
            false,
            400,
            json!({"status": "400", "action": "ValidationError", "attributeErrors": {"city": "x"}}),
        );
        assert!(matches!(i.outcome, Interpreted::ValidationError(_)));
    }

    #[test]
    fn actions() {
        assert_eq!(
            reason(&run(PAC, false, 200, json!({"version": "1.0.0"}))),
            Some(FailureReason::MissingAction)
        );
        assert_eq!(
            reason(&run(PAC, false, 200, json!({"action": null}))),
            Some(FailureReason::MissingAction)
        );
        assert_eq!(
            reason(&run(PAC, false, 200, json!({"action": "Deny"}))),
            Some(FailureReason::UnknownAction)
        );
        assert_eq!(
            reason(&run(PAC, false, 200, json!({"action": 1}))),
            Some(FailureReason::UnknownAction)
        );
        assert_eq!(
            reason(&run(PAC, false, 200, json!({"action": "continue"}))),
            Some(FailureReason::UnknownAction)
        );
        assert_eq!(
            reason(&run(PAC, false, 200, json!({"action": "Allow"}))),
            Some(FailureReason::UnknownAction)
        );
        let i = run(PAC, true, 200, json!({"action": "Allow", "city": "Oslo"}));
        assert_eq!(
            changes(&i)["city"],
            Some(AttributeValue::String("Oslo".into()))
        );
    }

    #[test]
    fn statuses() {
        let body = json!({"version": "1.0.0", "action": "Continue"});
        for (status, r) in [
            (301, FailureReason::Redirect),
            (302, FailureReason::Redirect),
            (307, FailureReason::Redirect),
            (401, FailureReason::Unauthorized),
            (403, FailureReason::Forbidden),
            (404, FailureReason::Http4xx),
            (429, FailureReason::Http429),
            (500, FailureReason::Http5xx),
            (503, FailureReason::Http5xx),
            (201, FailureReason::UnexpectedStatus),
            (204, FailureReason::UnexpectedStatus),
            (100, FailureReason::UnexpectedStatus),
        ] {
            assert_eq!(
                reason(&run(PAC, true, status, body.clone())),
                Some(r),
                "{status}"
            );
        }
    }

    #[test]
    fn not_json() {
        let ctx = ResponseContext::new(PAC, false);
        for body in [
            &b"<html>oops</html>"[..],
            b"",
            b"[1,2]",
            b"\"Continue\"",
            b"{\"action\":",
        ] {
            assert_eq!(
                reason(&interpret(&ctx, 200, body)),
                Some(FailureReason::NotJson)
            );
        }
        let bom = b"\xEF\xBB\xBF{\"version\":\"1\",\"action\":\"Continue\"}";
        assert!(matches!(
            interpret(&ctx, 200, bom).outcome,
            Interpreted::Continue { .. }
        ));
    }

    #[test]
    fn claims_are_coerced_by_type() {
        let i = run(
            PAC,
            false,
            200,
            json!({"version": "1.0.0", "action": "Continue",
                   "extension_ShoeSize": "45", ext("Terms"): "true", "displayName": "Ada",
                   "givenName": "", "city": null, "extension_Loyalty": "gold", "code": "X", "foo": [1]}),
        );
        let c = changes(&i);
        assert_eq!(c[&ext("ShoeSize")], Some(AttributeValue::Int(45)));
        assert_eq!(c[&ext("Terms")], Some(AttributeValue::Boolean(true)));
        assert_eq!(c["displayName"], Some(AttributeValue::String("Ada".into())));
        assert_eq!(c["givenName"], None);
        assert_eq!(
            c[&ext("Loyalty")],
            Some(AttributeValue::String("gold".into()))
        );
        assert!(!c.contains_key("city"));
        assert_eq!(c.len(), 5);
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);

        let i = run(
            PAC,
            false,
            200,
            json!({"action": "Continue", ext("ShoeSize"): -3, ext("Terms"): false, "version": "1"}),
        );
        let c = changes(&i);
        assert_eq!(c[&ext("ShoeSize")], Some(AttributeValue::Int(-3)));
        assert_eq!(c[&ext("Terms")], Some(AttributeValue::Boolean(false)));
    }

    #[test]
    fn wrong_types_are_contract_violations() {
        for (key, value) in [
            (ext("ShoeSize"), json!(44.5)),
            (ext("ShoeSize"), json!("44.5")),
            (ext("ShoeSize"), json!("")),
            (ext("ShoeSize"), json!(true)),
            (ext("ShoeSize"), json!("99999999999999999999")),
            (ext("ShoeSize"), json!(18_446_744_073_709_551_615_u64)),
            (ext("Terms"), json!("yes")),
            (ext("Terms"), json!(1)),
            (ext("Terms"), json!("")),
            ("displayName".into(), json!(5)),
            ("displayName".into(), json!(["a"])),
            ("city".into(), json!({"a": 1})),
            ("city".into(), json!("line\nbreak")),
            ("givenName".into(), json!("x".repeat(65))),
        ] {
            let mut body = json!({"version": "1.0.0", "action": "Continue"});
            body[&key] = value.clone();
            let i = run(PAC, false, 200, body);
            assert_eq!(
                reason(&i),
                Some(FailureReason::ContractViolation),
                "{key} = {value}"
            );
        }
    }

    #[test]
    fn unselected_and_protected_claims_are_ignored_with_warnings() {
        let i = run(
            PAC,
            false,
            200,
            json!({"version": "1.0.0", "action": "Continue", "jobTitle": "CEO", ext("Hidden"): "x",
                   "extension_Nope": "x", "email": "other@example.com",
                   "identities": [{"signInType": "federated", "issuer": "x", "issuerAssignedId": "y"}],
                   "city": "Oslo"}),
        );
        let c = changes(&i);
        assert_eq!(c.len(), 1);
        assert_eq!(c["city"], Some(AttributeValue::String("Oslo".into())));
        assert_eq!(i.warnings.len(), 5, "{:?}", i.warnings);
        assert!(i.warnings.iter().any(|w| w.contains("\"jobTitle\"")));
        assert!(i.warnings.iter().any(|w| w.contains("\"email\"")));
        assert!(i.warnings.iter().any(|w| w.contains("\"identities\"")));
        // An echo is not an attempt.
        let i = run(
            PAC,
            false,
            200,
            json!({"version": "1", "action": "Continue", "email": "John@Example.com"}),
        );
        assert!(i.warnings.is_empty());
    }

    #[test]
    fn pre_token_claims_go_into_the_token_only() {
        let i = run(
            PTI,
            false,
            200,
            json!({"version": "1.0.0", "action": "Continue", "displayName": "Ada L", "extension_ShoeSize": "40",
                   "loyaltyTier": "gold", "roles": ["a", "b"], "sub": "evil", "iss": "evil", "nonce": "x",
                   "jobTitle": "CEO", "givenName": "", "email": "x@y.z", "nothing": null}),
        );
        let Interpreted::Continue {
            changes,
            token_claims,
        } = i.outcome
        else {
            panic!()
        };
        assert!(changes.is_empty());
        assert_eq!(
            Value::Object(token_claims),
            json!({"name": "Ada L", "extension_ShoeSize": 40, "loyaltyTier": "gold", "roles": ["a", "b"]})
        );
        // sub, iss, nonce reserved; jobTitle unselected; givenName "" ; email.
        assert_eq!(i.warnings.len(), 6, "{:?}", i.warnings);
    }

    #[test]
    fn without_a_schema_claims_are_reported_as_sent() {
        let ctx = ResponseContext::new(PAC, false);
        let body = json!({"version": "1", "action": "Continue", "city": "Oslo", "extension_X": 4, "extension_Y": true, "foo": 1});
        let i = interpret(&ctx, 200, body.to_string().as_bytes());
        let c = changes(&i);
        assert_eq!(c["city"], Some(AttributeValue::String("Oslo".into())));
        assert_eq!(c["extension_X"], Some(AttributeValue::Int(4)));
        assert_eq!(c["extension_Y"], Some(AttributeValue::Boolean(true)));
        assert_eq!(c.len(), 3);
        let ctx = ResponseContext::new(PTI, false);
        let i = interpret(&ctx, 200, body.to_string().as_bytes());
        let Interpreted::Continue { token_claims, .. } = i.outcome else {
            panic!()
        };
        assert_eq!(token_claims.len(), 4);
    }

    #[test]
    fn an_echoed_request_adds_no_token_claims() {
        let ctx = ResponseContext::new(PTI, false);
        let body = json!({"version": "1.0.0", "action": "Continue", "step": "PreTokenIssuance",
                          "ui_locales": "en-US", "client_id": "app", "tier": "gold"});
        let i = interpret(&ctx, 200, body.to_string().as_bytes());
        let Interpreted::Continue { token_claims, .. } = i.outcome else {
            panic!()
        };
        assert_eq!(Value::Object(token_claims), json!({"tier": "gold"}));
    }

    #[test]
    fn claim_names() {
        let t = tenant();
        assert_eq!(claim_name(Some(&t), "displayName"), "name");
        assert_eq!(claim_name(Some(&t), "surname"), "family_name");
        assert_eq!(claim_name(Some(&t), "city"), "city");
        assert_eq!(claim_name(Some(&t), &ext("ShoeSize")), "extension_ShoeSize");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(status in 0u16..1000, body in proptest::collection::vec(proptest::num::u8::ANY, 0..512), lenient: bool, step in 0usize..3) {
            let t = tenant();
            let step = [PFS, PAC, PTI][step];
            let ctx = ResponseContext { step, lenient, tenant: Some(&t), user_flow: t.user_flow("B2X_1_f"), email: None, identities: None };
            let _ = interpret(&ctx, status, &body);
            let _ = interpret(&ResponseContext::new(step, lenient), status, &body);
        }

        #[test]
        fn arbitrary_json_objects_never_panic(
            keys in proptest::collection::vec(proptest::sample::select(vec![
                "version", "action", "status", "userMessage", "attributeErrors", "email", "identities",
                "displayName", "City", "extension_ShoeSize", "extension_Terms", "extension_Hidden", "extension_x", "sub", "foo",
            ]), 0..8),
            values in proptest::collection::vec(proptest::sample::select(vec![
                json!(null), json!(true), json!(1), json!(-1.5), json!(""), json!("400"), json!("Continue"),
                json!("ShowBlockPage"), json!("ValidationError"), json!("true"), json!([1]), json!({"city": "x"}), json!(400),
            ]), 0..8),
            status in proptest::sample::select(vec![200u16, 400]),
            lenient: bool,
            step in 0usize..3,
        ) {
            let mut obj = Map::new();
            for (k, v) in keys.iter().zip(values.iter()) {
                obj.insert((*k).to_owned(), v.clone());
            }
            let t = tenant();
            let step = [PFS, PAC, PTI][step];
            let ctx = ResponseContext { step, lenient, tenant: Some(&t), user_flow: t.user_flow("B2X_1_f"), email: Some("a@b.c"), identities: None };
            let i = interpret(&ctx, status, Value::Object(obj).to_string().as_bytes());
            if step == PTI {
                let ok = !matches!(i.outcome, Interpreted::Block { .. } | Interpreted::ValidationError(_));
                proptest::prop_assert!(ok);
            }
            if step != PAC {
                proptest::prop_assert!(!matches!(i.outcome, Interpreted::ValidationError(_)));
            }
        }
    }
}
