//! The wire contract of Entra External ID's custom authentication extensions: the
//! event envelope sent at each step, the one action read back, and the token Usher
//! issues itself to authenticate the call. Pure, like [`crate::request`] and
//! [`crate::response`], so the exact format is tested without a server.
//!
//! Where Microsoft's documents disagree with themselves (`setPreFillValues` and
//! `setPrefillValues`, `@odata.Type`, arrays or comma strings), every variant is
//! accepted, with a warning in the call record.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use usher_domain::{
    connector_limits::extension::CLAIMS_BYTES, flow::PageMessage, AttributeDefinition,
    AttributeValue, AttributeValues, BuiltInAttribute, ConnectorStep, DataType, Tenant, User,
};

use crate::failure::{Failure, FailureReason};
use crate::request::{identities_json, wire_value};
use crate::response::{
    classify_key, is_protected_token_claim, Interpretation, Interpreted, Key, ResponseContext,
};
use crate::step::StepRequest;

const GRAPH: &str = "microsoft.graph.";

/// A GUID derived from `name`, the same on every instance and every run: Usher
/// has no directory of object ids, yet the contract wants a GUID where Entra has
/// one (the tenant, a service principal, a listener). RFC 9562 version 8.
pub fn name_guid(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The tenant id extensions are told (`tenantId`, the token's `tid`): derived from
/// the issuer, so it is stable for a deployment.
pub fn tenant_id(issuer: &str) -> String {
    name_guid(&format!("tenant:{issuer}"))
}

/// The issuer's host, which Entra calls the tenant's domain.
fn issuer_domain(issuer: &str) -> String {
    usher_domain::connector::url_authority(issuer).unwrap_or_else(|| issuer.to_owned())
}

/// The `type` suffix of the event at `step`, and the name inside its data types
/// (`OtpSend` for `emailOtpSend`).
fn event_names(step: ConnectorStep) -> Option<(&'static str, &'static str)> {
    Some(match step {
        ConnectorStep::AttributeCollectionStart => {
            ("attributeCollectionStart", "AttributeCollectionStart")
        }
        ConnectorStep::PostAttributeCollection => {
            ("attributeCollectionSubmit", "AttributeCollectionSubmit")
        }
        ConnectorStep::PreTokenIssuance => ("tokenIssuanceStart", "TokenIssuanceStart"),
        ConnectorStep::EmailOtpSend => ("emailOtpSend", "OtpSend"),
        ConnectorStep::PostFederationSignup
        | ConnectorStep::PreAccountRecovery
        | ConnectorStep::OnProfileUpdate => return None,
    })
}

/// What an envelope is made of besides the step's request.
pub struct Envelope<'a> {
    pub request: &'a StepRequest<'a>,
    /// The attributes as the connectors before this one left them.
    pub attributes: &'a AttributeValues,
    pub tenant: &'a Tenant,
    pub connector_id: &'a str,
    /// The call's id: the `correlationId`, and the reference a failure shows.
    pub call_id: &'a str,
    pub issuer: &'a str,
}

/// The request body of the event at the request's step; `None` at a step the
/// contract has no event for (`postFederationSignup`).
pub fn build_envelope(e: &Envelope<'_>) -> Option<Value> {
    let request = e.request;
    let (event, data_name) = event_names(request.step)?;
    let tenant_id = tenant_id(e.issuer);
    let app = e.tenant.application(request.client_id);
    let app_name = app.map_or(request.client_id, |a| a.name.as_str());
    let principal = json!({
        "id": name_guid(&format!("servicePrincipal:{}", request.client_id)),
        "appId": request.client_id,
        "appDisplayName": app_name,
        "displayName": app_name,
    });
    let locale = first_locale(request.ui_locales);
    let mut context = Map::new();
    context.insert("correlationId".into(), Value::from(e.call_id));
    context.insert(
        "client".into(),
        json!({
            "ip": request.client_ip.map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string()),
            "locale": locale,
            "market": locale,
        }),
    );
    context.insert("protocol".into(), Value::from("OAUTH2.0"));
    if let Some(otp) = &request.otp {
        context.insert("requestType".into(), Value::from(otp.request_type));
    }
    context.insert("clientServicePrincipal".into(), principal.clone());
    // An application is its own resource: its tokens are meant for it.
    context.insert("resourceServicePrincipal".into(), principal);
    if let (ConnectorStep::PreTokenIssuance, Some(user)) = (request.step, request.user) {
        context.insert("user".into(), graph_user(user, e.issuer));
    }

    let mut data = Map::new();
    data.insert(
        "@odata.type".into(),
        Value::from(format!("{GRAPH}on{data_name}CalloutData")),
    );
    data.insert("tenantId".into(), Value::from(tenant_id.clone()));
    data.insert(
        "authenticationEventListenerId".into(),
        Value::from(name_guid(&format!(
            "listener:{}:{}",
            request.user_flow_id,
            request.step.slot_name()
        ))),
    );
    data.insert(
        "customAuthenticationExtensionId".into(),
        Value::from(e.connector_id),
    );
    data.insert("authenticationContext".into(), Value::Object(context));
    match request.step {
        ConnectorStep::AttributeCollectionStart | ConnectorStep::PostAttributeCollection => {
            data.insert("userSignUpInfo".into(), sign_up_info(e));
        }
        ConnectorStep::EmailOtpSend => {
            if let Some(otp) = &request.otp {
                data.insert(
                    "otpContext".into(),
                    json!({ "identifier": otp.identifier, "oneTimeCode": otp.code }),
                );
            }
        }
        _ => {}
    }
    Some(json!({
        "type": format!("{GRAPH}authenticationEvent.{event}"),
        "source": format!("/tenants/{tenant_id}/applications/{}", request.client_id),
        "data": data,
    }))
}

/// `en-us` from `en-US fr`: the first of the person's locales, as Entra writes it.
fn first_locale(ui_locales: &str) -> String {
    ui_locales
        .split([' ', ','])
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// `userSignUpInfo`: the typed attributes (only those the user flow selects, as for
/// 1.0.0 connectors) and the identities.
fn sign_up_info(e: &Envelope<'_>) -> Value {
    let request = e.request;
    let flow = e.tenant.user_flow(request.user_flow_id);
    let mut attributes = Map::new();
    let email = request
        .email
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            e.attributes
                .get(BuiltInAttribute::Email.id())
                .and_then(|v| v.as_str().map(str::to_owned))
        });
    if let Some(email) = &email {
        // Microsoft's captures name it `EmailAddress` before the page and `email`
        // after it.
        let key = if request.step == ConnectorStep::AttributeCollectionStart {
            "EmailAddress"
        } else {
            "email"
        };
        attributes.insert(
            key.into(),
            typed(DataType::String, true, Value::from(email.as_str())),
        );
    }
    for (id, value) in e.attributes {
        let Some(definition) = e.tenant.attribute(id) else {
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
            let data_type = if definition.built_in {
                DataType::String
            } else {
                definition.data_type
            };
            attributes.insert(
                definition.id.clone(),
                typed(data_type, definition.built_in, v),
            );
        }
    }
    let mut identities = identities_json(request.identities);
    if identities.is_empty() {
        if let Some(email) = &email {
            // A local account: its sign-in name is its address.
            identities.push(json!({
                "signInType": "email",
                "issuer": issuer_domain(e.issuer),
                "issuerAssignedId": email,
            }));
        }
    }
    json!({ "attributes": attributes, "identities": identities })
}

fn typed(data_type: DataType, built_in: bool, value: Value) -> Value {
    let kind = match data_type {
        DataType::String => "string",
        DataType::Int => "int64",
        DataType::Boolean => "boolean",
    };
    json!({
        "@odata.type": format!("{GRAPH}{kind}DirectoryAttributeValue"),
        "value": value,
        "attributeType": if built_in { "builtIn" } else { "directorySchemaExtension" },
    })
}

/// `authenticationContext.user`: the user's Graph fields, those that have a value.
fn graph_user(user: &User, issuer: &str) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(user.id.as_str()));
    let text = |b: BuiltInAttribute| {
        user.attributes
            .get(b.id())
            .map(AttributeValue::to_form_string)
            .filter(|s| !s.is_empty())
    };
    for (key, attribute) in [
        ("displayName", BuiltInAttribute::DisplayName),
        ("givenName", BuiltInAttribute::GivenName),
        ("surname", BuiltInAttribute::Surname),
    ] {
        if let Some(v) = text(attribute) {
            out.insert(key.into(), Value::from(v));
        }
    }
    if let Some(mail) = &user.email {
        out.insert("mail".into(), Value::from(mail.as_str()));
    }
    let upn = user
        .profile
        .user_principal_name
        .clone()
        .unwrap_or_else(|| format!("{}@{}", user.id, issuer_domain(issuer)));
    out.insert("userPrincipalName".into(), Value::from(upn));
    out.insert(
        "createdDateTime".into(),
        Value::from(user.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    out.insert(
        "userType".into(),
        Value::from(user.profile.user_type.as_str()),
    );
    if let Some(company) = user.profile.strings.get("companyName") {
        out.insert("companyName".into(), Value::from(company.as_str()));
    }
    Value::Object(out)
}

/// The claims of the token Usher issues for a call (Entra's
/// `azureAdTokenAuthentication`): what Microsoft's SDK and samples check.
pub fn issued_token_claims(
    issuer: &str,
    resource_id: &str,
    caller_id: &str,
    token_id: &str,
    now: DateTime<Utc>,
    lifetime: chrono::Duration,
) -> Value {
    let iat = now.timestamp();
    json!({
        "iss": issuer,
        "aud": resource_id,
        "azp": caller_id,
        "appid": caller_id,
        "sub": name_guid(&format!("servicePrincipal:{caller_id}")),
        "oid": name_guid(&format!("servicePrincipal:{caller_id}")),
        "tid": tenant_id(issuer),
        "idtyp": "app",
        "ver": "2.0",
        "iat": iat,
        "nbf": iat,
        "exp": (now + lifetime).timestamp(),
        "jti": token_id,
    })
}

/// What an answer is read against, besides the 1.0.0 context.
pub struct ExtensionContext<'a> {
    pub base: ResponseContext<'a>,
    /// `claimsForTokenConfiguration`: the only claims that reach the token.
    pub claims_for_token: &'a [String],
}

/// Reads one answer. Never panics, whatever `body` holds.
pub fn interpret(
    ctx: &ExtensionContext<'_>,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> Interpretation {
    let mut warnings = Vec::new();
    let outcome = match read(ctx, status, headers, body, &mut warnings) {
        Ok(o) => o,
        Err(f) => Interpreted::Failed(f),
    };
    Interpretation { outcome, warnings }
}

fn failure(reason: FailureReason, detail: impl Into<String>) -> Failure {
    Failure::new(reason, detail)
}

/// The answer's JSON, when its status and content type let it be read.
fn answer_json(status: u16, headers: &[(String, String)], body: &[u8]) -> Result<Value, Failure> {
    match status {
        200 => {}
        429 => return Err(failure(FailureReason::Http429, "HTTP 429")),
        300..=399 => {
            return Err(failure(
                FailureReason::Redirect,
                format!("HTTP {status}: redirects are not followed"),
            ))
        }
        401 => return Err(failure(FailureReason::Unauthorized, "HTTP 401")),
        403 => return Err(failure(FailureReason::Forbidden, "HTTP 403")),
        400..=499 => return Err(failure(FailureReason::Http4xx, format!("HTTP {status}"))),
        500..=599 => return Err(failure(FailureReason::Http5xx, format!("HTTP {status}"))),
        _ => {
            return Err(failure(
                FailureReason::UnexpectedStatus,
                format!("HTTP {status}: an extension answers 200"),
            ))
        }
    }
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map_or("", |(_, v)| v.as_str());
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" && !essence.ends_with("+json") {
        return Err(failure(
            FailureReason::WrongContentType,
            format!("Content-Type {content_type:?}: the answer must be application/json"),
        ));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(body)
        .map_err(|e| failure(FailureReason::NotJson, format!("the body is not JSON: {e}")))
}

/// `data.actions[0]`, when there is exactly one action.
fn the_action<'a>(
    json: &'a Value,
    data_name: &str,
    warnings: &mut Vec<String>,
) -> Result<&'a Value, Failure> {
    let data = json.get("data").and_then(Value::as_object).ok_or_else(|| {
        failure(
            FailureReason::NotOneAction,
            "the answer has no \"data\" object with its \"actions\"",
        )
    })?;
    let expected_data = format!("on{data_name}ResponseData");
    match odata_type(data) {
        Some(t) if t.eq_ignore_ascii_case(&expected_data) => {}
        Some(t) => warnings.push(format!(
            "data's @odata.type is {t:?}; expected microsoft.graph.{expected_data}"
        )),
        None => warnings.push(format!(
            "data has no @odata.type; expected microsoft.graph.{expected_data}"
        )),
    }
    let Some(Value::Array(actions)) = data.get("actions") else {
        return Err(failure(
            FailureReason::NotOneAction,
            "data.actions is not a list of one action",
        ));
    };
    match actions.as_slice() {
        [action] => Ok(action),
        _ => Err(failure(
            FailureReason::NotOneAction,
            format!(
                "data.actions holds {} actions; exactly one is allowed",
                actions.len()
            ),
        )),
    }
}

fn read(
    ctx: &ExtensionContext<'_>,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Interpreted, Failure> {
    let step = ctx.base.step;
    let (_, data_name) = event_names(step).unwrap_or(("", ""));
    let json = answer_json(status, headers, body)?;
    let action = the_action(&json, data_name, warnings)?;
    let action = action
        .as_object()
        .ok_or_else(|| failure(FailureReason::UnknownAction, "the action is not an object"))?;
    let kind = odata_type(action).unwrap_or_default();
    let kind_lower = kind.to_ascii_lowercase();
    let (event_prefix, name) = kind_lower.split_once('.').unwrap_or(("", ""));
    let event = event_prefix.to_owned();
    let name = name.to_owned();
    let wrong = || {
        failure(
            FailureReason::UnknownAction,
            format!(
                "{kind:?} is not an action of {} ",
                event_names(step).map_or("this step", |(e, _)| e)
            ),
        )
    };
    let expected_event = data_name.to_ascii_lowercase();
    if event != expected_event {
        return Err(wrong());
    }
    note_variants(action, &kind, warnings);
    match (step, name.as_str()) {
        // Token issuance has no default behaviour to continue with: it provides claims.
        (step, "continuewithdefaultbehavior") if step != ConnectorStep::PreTokenIssuance => {
            Ok(Interpreted::Continue {
                changes: BTreeMap::new(),
                token_claims: Map::new(),
            })
        }
        (ConnectorStep::AttributeCollectionStart, "setprefillvalues") => {
            let values = object_field(action, "inputs")?;
            Ok(Interpreted::Continue {
                changes: attribute_values(ctx, values, "inputs", warnings)?,
                token_claims: Map::new(),
            })
        }
        (ConnectorStep::PostAttributeCollection, "modifyattributevalues") => {
            let values = object_field(action, "attributes")?;
            Ok(Interpreted::Continue {
                changes: attribute_values(ctx, values, "attributes", warnings)?,
                token_claims: Map::new(),
            })
        }
        (ConnectorStep::PostAttributeCollection, "showvalidationerror") => Ok(
            Interpreted::ValidationError(validation_error(ctx, action, warnings)?),
        ),
        (
            ConnectorStep::AttributeCollectionStart | ConnectorStep::PostAttributeCollection,
            "showblockpage",
        ) => Ok(Interpreted::Block {
            user_message: text_field(action, "message")?.unwrap_or_default(),
            title: text_field(action, "title")?.filter(|t| !t.is_empty()),
        }),
        (ConnectorStep::PreTokenIssuance, "provideclaimsfortoken") => Ok(Interpreted::Continue {
            changes: BTreeMap::new(),
            token_claims: token_claims(ctx, action, warnings)?,
        }),
        _ => Err(wrong()),
    }
}

/// The action's spellings that differ from Microsoft's reference ones, as warnings:
/// they were accepted, and the API should still be fixed.
fn note_variants(action: &Map<String, Value>, kind: &str, warnings: &mut Vec<String>) {
    if let Some((key, _)) = action
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("@odata.type") && k.as_str() != "@odata.type")
    {
        warnings.push(format!(
            "the action's type is under {key:?}, not \"@odata.type\"; accepted"
        ));
    }
    let written = action
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("@odata.type"))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("");
    if kind.contains("setPreFillValues") {
        warnings.push("setPreFillValues is spelled setPrefillValues; accepted".into());
    } else if let Some(reference) = ACTIONS.iter().find(|a| a.eq_ignore_ascii_case(kind)) {
        if written != format!("{GRAPH}{reference}") {
            warnings.push(format!(
                "the action type {written:?} is {GRAPH}{reference} written differently; accepted"
            ));
        }
    }
}

/// Every action as Microsoft's reference spells it.
const ACTIONS: [&str; 9] = [
    "attributeCollectionStart.continueWithDefaultBehavior",
    "attributeCollectionStart.setPrefillValues",
    "attributeCollectionStart.showBlockPage",
    "attributeCollectionSubmit.continueWithDefaultBehavior",
    "attributeCollectionSubmit.modifyAttributeValues",
    "attributeCollectionSubmit.showValidationError",
    "attributeCollectionSubmit.showBlockPage",
    "tokenIssuanceStart.provideClaimsForToken",
    "OtpSend.continueWithDefaultBehavior",
];

/// The `@odata.type` of an object (also under `@odata.Type`, any case), without
/// its `#` and `microsoft.graph.` prefix.
fn odata_type(object: &Map<String, Value>) -> Option<String> {
    let value = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("@odata.type"))
        .and_then(|(_, v)| v.as_str())?;
    let value = value.trim().trim_start_matches('#');
    // `get`, not indexing: the prefix's length may fall inside a character.
    let value = match (value.get(..GRAPH.len()), value.get(GRAPH.len()..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case(GRAPH) => rest,
        _ => value,
    };
    Some(value.to_owned())
}

fn object_field<'a>(
    action: &'a Map<String, Value>,
    key: &str,
) -> Result<&'a Map<String, Value>, Failure> {
    match action.get(key) {
        Some(Value::Object(m)) => Ok(m),
        None | Some(Value::Null) => Err(failure(
            FailureReason::ContractViolation,
            format!("the action has no {key:?} object"),
        )),
        Some(_) => Err(failure(
            FailureReason::ContractViolation,
            format!("the action's {key:?} is not an object"),
        )),
    }
}

fn text_field(action: &Map<String, Value>, key: &str) -> Result<Option<String>, Failure> {
    match action.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(crate::response::truncate_chars(s, 1024))),
        Some(_) => Err(failure(
            FailureReason::ContractViolation,
            format!("the action's {key:?} is not a string"),
        )),
    }
}

/// `inputs` (prefill) or `attributes` (modify): values for the attributes on the
/// page, typed as they were sent; other keys are ignored.
fn attribute_values(
    ctx: &ExtensionContext<'_>,
    values: &Map<String, Value>,
    field: &str,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, Option<AttributeValue>>, Failure> {
    let mut changes = BTreeMap::new();
    for (key, value) in values {
        if value.is_null() {
            continue;
        }
        let definition = match classify_key(&ctx.base, key) {
            Key::Attribute(def) if on_page(ctx, &def) => def,
            Key::Attribute(_) | Key::UnknownExtension | Key::Other if ctx.base.tenant.is_none() => {
                probe_definition(key, value)
            }
            Key::Email => {
                warnings.push(format!(
                    "{field}.{key}: the verified address cannot be changed; ignored"
                ));
                continue;
            }
            _ => {
                warnings.push(format!(
                    "{field}.{key}: not an attribute on the user flow's page; ignored"
                ));
                continue;
            }
        };
        let coerced = strict_value(&definition, value).map_err(|detail| {
            failure(
                FailureReason::ContractViolation,
                format!("{field}.{key}: {detail}"),
            )
        })?;
        if value.is_array() {
            warnings.push(format!("{field}.{key}: a list, joined with commas"));
        }
        changes.insert(definition.id.clone(), coerced);
    }
    Ok(changes)
}

/// Whether `definition` is collected on the user flow's page.
fn on_page(ctx: &ExtensionContext<'_>, definition: &AttributeDefinition) -> bool {
    match (ctx.base.tenant, ctx.base.user_flow) {
        (None, _) => true,
        (Some(_), Some(flow)) => flow.assignment(&definition.id).is_some(),
        (Some(_), None) => false,
    }
}

/// Without the tenant's schema (a diagnostic probe) a value is typed by its JSON.
fn probe_definition(key: &str, value: &Value) -> AttributeDefinition {
    AttributeDefinition {
        id: key.to_owned(),
        display_name: key.to_owned(),
        description: String::new(),
        data_type: match value {
            Value::Bool(_) => DataType::Boolean,
            Value::Number(_) => DataType::Int,
            _ => DataType::String,
        },
        built_in: false,
    }
}

/// A value of the type the attribute was sent as: a string (a list of strings is
/// joined with commas, as multi-values travel), an int64 as a JSON integer, a
/// boolean as `true` or `false`. An empty string clears.
fn strict_value(
    definition: &AttributeDefinition,
    value: &Value,
) -> Result<Option<AttributeValue>, String> {
    let data_type = if definition.built_in {
        DataType::String
    } else {
        definition.data_type
    };
    let joined;
    let value = match value {
        Value::Array(items) if data_type == DataType::String => {
            let parts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            let parts = parts.ok_or("a list of values must hold only strings")?;
            joined = Value::from(parts.join(","));
            &joined
        }
        v => v,
    };
    match (data_type, value) {
        (DataType::String, Value::String(_))
        | (DataType::Int, Value::Number(_))
        | (DataType::Boolean, Value::Bool(_)) => crate::response::coerce(definition, value),
        (DataType::String, _) => Err("a string attribute takes a string".into()),
        (DataType::Int, _) => Err("an int64 attribute takes a JSON integer".into()),
        (DataType::Boolean, _) => Err("a boolean attribute takes true or false".into()),
    }
}

fn validation_error(
    ctx: &ExtensionContext<'_>,
    action: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<PageMessage, Failure> {
    let message = text_field(action, "message")?.unwrap_or_default();
    let mut attribute_errors = BTreeMap::new();
    match action.get("attributeErrors") {
        None | Some(Value::Null) => {}
        Some(Value::Object(errors)) => {
            for (key, text) in errors {
                let Some(text) = text.as_str() else {
                    return Err(failure(
                        FailureReason::ContractViolation,
                        format!("attributeErrors.{key} is not a string"),
                    ));
                };
                match classify_key(&ctx.base, key) {
                    Key::Attribute(def) if on_page(ctx, &def) => {
                        attribute_errors.insert(
                            def.id.clone(),
                            crate::response::truncate_chars(text, 1024),
                        );
                    }
                    _ if ctx.base.tenant.is_none() => {
                        attribute_errors
                            .insert(key.clone(), crate::response::truncate_chars(text, 1024));
                    }
                    _ => warnings.push(format!(
                        "attributeErrors.{key}: not an attribute on the page; its message is not shown"
                    )),
                }
            }
        }
        Some(_) => {
            return Err(failure(
                FailureReason::ContractViolation,
                "attributeErrors is not an object",
            ))
        }
    }
    if message.is_empty() && attribute_errors.is_empty() {
        return Err(failure(
            FailureReason::ContractViolation,
            "showValidationError needs a message or attributeErrors",
        ));
    }
    Ok(PageMessage {
        user_message: message,
        attribute_errors,
    })
}

/// `provideClaimsForToken`: strings and lists of strings, 3 KB at most in all; only
/// the claims `claimsForTokenConfiguration` names reach the token.
fn token_claims(
    ctx: &ExtensionContext<'_>,
    action: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Value>, Failure> {
    let claims = object_field(action, "claims")?;
    let size = Value::Object(claims.clone()).to_string().len();
    if size > CLAIMS_BYTES {
        return Err(failure(
            FailureReason::ClaimsTooLarge,
            format!("the claims take {size} bytes; at most {CLAIMS_BYTES} are allowed"),
        ));
    }
    let mut out = Map::new();
    for (name, value) in claims {
        let ok = match value {
            Value::String(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !ok {
            return Err(failure(
                FailureReason::ContractViolation,
                format!("claim {name:?} must be a string or a list of strings"),
            ));
        }
        if !ctx.claims_for_token.iter().any(|c| c == name) {
            warnings.push(format!(
                "claim {name:?} is not in the connector's claims_for_token; dropped"
            ));
            continue;
        }
        if is_protected_token_claim(name) {
            warnings.push(format!(
                "claim {name:?} is reserved for the protocol and cannot be set; dropped"
            ));
            continue;
        }
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
