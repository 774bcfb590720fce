//! One diagnostic call for `usher connectors test`: the real request (credentials
//! masked), the real answer, and what Usher would make of it, without the circuit
//! breaker and without a call record. A custom authentication extension gets the
//! event envelope built from the same sample claims, and its answer is read by its
//! own contract; the report names the contract and, for a failure, the Entra code.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use usher_domain::{ConnectorDefinition, ConnectorStep, SystemClock, Tenant};

use crate::extension::{self, Envelope, ExtensionContext};
use crate::failure::FailureReason;
use crate::response::{interpret, Interpretation, Interpreted, ResponseContext};
use crate::runner::RunnerSettings;
use crate::step::{OtpContext, StepRequest};
use crate::transport::{CallIds, Endpoint, NamedValue, SentRequest, TokenSigner};
use usher_domain::{
    AttributeValue, AttributeValues, ConnectorContract, Identity, SignInType, User,
};

/// How much of the response body a report shows.
pub const MAX_SHOWN_BODY_BYTES: usize = 64 * 1024;

/// The tenant's schema, to read claims as a real sign-up would.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSchema<'a> {
    pub tenant: &'a Tenant,
    /// The user flow whose selected attributes a `Continue` may change.
    pub user_flow_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResponse {
    pub status: u16,
    pub headers: Vec<NamedValue>,
    /// The body as text (lossy UTF-8), at most 64 KiB of it.
    pub body: String,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeInterpretation {
    /// `continue`, `block`, `validationError` or `failed`.
    pub outcome: String,
    /// Attribute changes a `Continue` would apply (`null`: cleared).
    pub claims: Map<String, Value>,
    /// Claims a `Continue` at `PreTokenIssuance` would put into the token.
    pub token_claims: Map<String, Value>,
    pub user_message: Option<String>,
    pub attribute_errors: BTreeMap<String, String>,
    pub failure_reason: Option<FailureReason>,
    pub failure_detail: Option<String>,
}

/// What `probe` found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    pub connector_id: String,
    /// `api-connector-1.0.0` or `custom-authentication-extension`.
    pub contract: String,
    pub step: String,
    pub call_id: String,
    /// The last request sent (or the one that would have been), credentials and
    /// signatures masked as `******`.
    pub request: SentRequest,
    pub response: Option<ProbeResponse>,
    pub attempts: u32,
    pub latency_ms: u64,
    pub interpretation: ProbeInterpretation,
    /// A failed call of an extension: the Entra error code.
    pub error_code: Option<u32>,
    pub warnings: Vec<String>,
}

/// Calls `definition` once at `step` with `claims` as the body (`step` is added when
/// missing), with the connector's retries and budget but no circuit breaker and no
/// call record. Without a schema, claims are read by their JSON types.
pub async fn probe(
    definition: &ConnectorDefinition,
    step: ConnectorStep,
    claims: Map<String, Value>,
    settings: &RunnerSettings,
) -> ProbeReport {
    probe_with_schema(definition, step, claims, settings, None, None).await
}

/// What the probe sends: the claims as they are (with `step`) for a 1.0.0 connector,
/// the event envelope built from them for an extension.
fn probe_body(
    definition: &ConnectorDefinition,
    step: ConnectorStep,
    mut claims: Map<String, Value>,
    schema: Option<ProbeSchema<'_>>,
    ids: (&str, &str),
) -> Vec<u8> {
    if !definition.contract.is_extension() {
        claims
            .entry("step")
            .or_insert_with(|| Value::String(step.wire_name().to_owned()));
        return Value::Object(claims).to_string().into_bytes();
    }
    let empty = Tenant {
        extensions_app_id: String::new(),
        custom_attributes: Vec::new(),
        user_flows: Vec::new(),
        applications: Vec::new(),
    };
    envelope_from_claims(
        definition,
        step,
        &claims,
        schema.map_or(&empty, |s| s.tenant),
        schema.and_then(|s| s.user_flow_id),
        ids,
    )
    .unwrap_or(Value::Null)
    .to_string()
    .into_bytes()
}

/// The sample claims as the typed request of an extension's event.
fn envelope_from_claims(
    definition: &ConnectorDefinition,
    step: ConnectorStep,
    claims: &Map<String, Value>,
    tenant: &Tenant,
    user_flow_id: Option<&str>,
    (call_id, issuer): (&str, &str),
) -> Option<Value> {
    let text = |key: &str| claims.get(key).and_then(Value::as_str).unwrap_or("");
    let email = text("email");
    let identities: Vec<Identity> = claims
        .get("identities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| Identity {
            sign_in_type: SignInType::Federated,
            issuer: i["issuer"].as_str().unwrap_or("").to_owned(),
            issuer_assigned_id: i["issuerAssignedId"].as_str().unwrap_or("").to_owned(),
            exact_issuer: None,
        })
        .collect();
    let reserved = ["email", "identities", "ui_locales", "client_id", "step"];
    let attributes: AttributeValues = claims
        .iter()
        .filter(|(k, _)| !reserved.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => AttributeValue::String(s.clone()),
                Value::Bool(b) => AttributeValue::Boolean(*b),
                Value::Number(n) => AttributeValue::Int(n.as_i64()?),
                _ => return None,
            };
            Some((k.clone(), value))
        })
        .collect();
    let user = User {
        id: "00000000-0000-4000-8000-000000000001".into(),
        email: Some(email.to_owned()),
        attributes: attributes.clone(),
        identities: identities.clone(),
        account_enabled: true,
        created_at: chrono::DateTime::UNIX_EPOCH,
        email_verified: true,
        profile: usher_domain::UserProfile::default(),
        version: 1,
        password_changed_at: None,
    };
    let request = StepRequest {
        step,
        flow_id: "",
        user_flow_id: user_flow_id.unwrap_or(""),
        connector_ids: &[],
        client_id: text("client_id"),
        ui_locales: text("ui_locales"),
        email: Some(email),
        identities: &identities,
        attributes: &attributes,
        run_key: None,
        client_ip: None,
        user: (step == ConnectorStep::PreTokenIssuance).then_some(&user),
        otp: (step == ConnectorStep::EmailOtpSend).then_some(OtpContext {
            identifier: email,
            code: "000000",
            request_type: "signUp",
        }),
    };
    extension::build_envelope(&Envelope {
        request: &request,
        attributes: &attributes,
        tenant,
        connector_id: &definition.id,
        call_id,
        issuer,
    })
}

/// [`probe`], reading the answer against the tenant's schema and a user flow.
pub async fn probe_with_schema(
    definition: &ConnectorDefinition,
    step: ConnectorStep,
    claims: Map<String, Value>,
    settings: &RunnerSettings,
    schema: Option<ProbeSchema<'_>>,
    signer: Option<std::sync::Arc<dyn TokenSigner>>,
) -> ProbeReport {
    #[allow(
        clippy::disallowed_methods,
        reason = "a probe is an operator tool outside any flow: its ids need to be unique, not reproducible"
    )]
    let mut rng = rand::thread_rng();
    let call_id = usher_domain::id::new_uuid(&mut rng);
    let flow_id = usher_domain::id::new_uuid(&mut rng);
    let identities = claims.get("identities").cloned();
    let email = claims
        .get("email")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let body = probe_body(
        definition,
        step,
        claims,
        schema,
        (&call_id, &settings.issuer),
    );
    let endpoint = Endpoint::with_signer(definition.clone(), settings.transport(), signer);
    let ids = CallIds {
        flow_id: &flow_id,
        idempotency_key: None,
    };
    let report = endpoint.call(&body, ids, &call_id, &SystemClock).await;

    let tenant = schema.map(|s| s.tenant);
    let user_flow = schema
        .and_then(|s| s.user_flow_id)
        .and_then(|id| tenant.and_then(|t| t.user_flow(id)));
    let (interpretation, response) = match &report.result {
        Ok(exchange) => {
            let ctx = ResponseContext {
                step,
                lenient: definition.lenient,
                tenant,
                user_flow,
                email: email.as_deref(),
                identities: identities.as_ref(),
            };
            let interpretation = read_by_contract(definition, ctx, exchange);
            let shown = &exchange.body[..exchange.body.len().min(MAX_SHOWN_BODY_BYTES)];
            let response = ProbeResponse {
                status: exchange.status,
                headers: exchange
                    .headers
                    .iter()
                    .map(|(name, value)| NamedValue {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                body: String::from_utf8_lossy(shown).into_owned(),
                truncated: exchange.truncated || shown.len() < exchange.body.len(),
            };
            (interpretation, Some(response))
        }
        Err(failure) => (
            Interpretation {
                outcome: Interpreted::Failed(failure.clone()),
                warnings: Vec::new(),
            },
            None,
        ),
    };

    let error_code = interpretation
        .outcome
        .failure()
        .and_then(|f| f.entra_code(definition, settings.targets));
    ProbeReport {
        connector_id: definition.id.clone(),
        contract: definition.contract.name().to_owned(),
        step: step
            .extension_event()
            .filter(|_| definition.contract.is_extension())
            .unwrap_or(step.wire_name())
            .to_owned(),
        call_id,
        request: report.last_request,
        response,
        attempts: report.attempts,
        latency_ms: u64::try_from(report.latency.as_millis()).unwrap_or(u64::MAX),
        interpretation: describe(&interpretation.outcome),
        error_code,
        warnings: interpretation.warnings,
    }
}

/// An answer read by the connector's own contract.
fn read_by_contract(
    definition: &ConnectorDefinition,
    ctx: ResponseContext<'_>,
    exchange: &crate::transport::Exchange,
) -> Interpretation {
    match &definition.contract {
        ConnectorContract::ApiConnector => interpret(&ctx, exchange.status, &exchange.body),
        ConnectorContract::CustomAuthenticationExtension {
            claims_for_token, ..
        } => extension::interpret(
            &ExtensionContext {
                base: ctx,
                claims_for_token,
            },
            exchange.status,
            &exchange.headers,
            &exchange.body,
        ),
    }
}

fn describe(outcome: &Interpreted) -> ProbeInterpretation {
    let mut p = ProbeInterpretation {
        outcome: outcome.outcome_name().to_owned(),
        claims: Map::new(),
        token_claims: Map::new(),
        user_message: None,
        attribute_errors: BTreeMap::new(),
        failure_reason: None,
        failure_detail: None,
    };
    match outcome {
        Interpreted::Continue {
            changes,
            token_claims,
        } => {
            p.claims = changes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_ref()
                            .map_or(Value::Null, usher_domain::AttributeValue::to_json),
                    )
                })
                .collect();
            p.token_claims.clone_from(token_claims);
        }
        Interpreted::Block { user_message, .. } => p.user_message = Some(user_message.clone()),
        Interpreted::ValidationError(m) => {
            p.user_message = Some(m.user_message.clone());
            p.attribute_errors = m.attribute_errors.clone();
        }
        Interpreted::Failed(f) => {
            p.failure_reason = Some(f.reason);
            p.failure_detail = Some(f.detail.clone());
        }
    }
    p
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Connector  {} at {}", self.connector_id, self.step)?;
        writeln!(f, "Contract   {}", self.contract)?;
        writeln!(f, "Call id    {}", self.call_id)?;
        writeln!(f)?;
        writeln!(f, "Request    {} {}", self.request.method, self.request.url)?;
        for h in &self.request.headers {
            writeln!(f, "  {}: {}", h.name, h.value)?;
        }
        writeln!(f)?;
        writeln!(f, "{}", indent(&pretty(&self.request.body)))?;
        writeln!(f)?;
        match &self.response {
            Some(r) => {
                writeln!(
                    f,
                    "Response   HTTP {} after {} attempt{}, {} ms",
                    r.status,
                    self.attempts,
                    if self.attempts == 1 { "" } else { "s" },
                    self.latency_ms
                )?;
                for h in &r.headers {
                    writeln!(f, "  {}: {}", h.name, h.value)?;
                }
                writeln!(f)?;
                if !r.body.is_empty() {
                    writeln!(f, "{}", indent(&pretty(&r.body)))?;
                }
                if r.truncated {
                    writeln!(f, "  … (body truncated)")?;
                }
            }
            None => writeln!(
                f,
                "Response   none after {} attempt{}, {} ms",
                self.attempts,
                if self.attempts == 1 { "" } else { "s" },
                self.latency_ms
            )?,
        }
        writeln!(f)?;
        let i = &self.interpretation;
        match (&i.failure_reason, &i.failure_detail) {
            (Some(reason), detail) => {
                writeln!(
                    f,
                    "Outcome    failed: {reason} ({})",
                    detail.as_deref().unwrap_or("")
                )?;
                if let Some(code) = self.error_code {
                    writeln!(f, "  Entra error code {code}")?;
                }
            }
            _ => writeln!(f, "Outcome    {}", i.outcome)?,
        }
        if let Some(m) = &i.user_message {
            writeln!(f, "  userMessage: {m}")?;
        }
        for (attribute, message) in &i.attribute_errors {
            writeln!(f, "  error for {attribute}: {message}")?;
        }
        for (claim, value) in &i.claims {
            if value.is_null() {
                writeln!(f, "  would clear {claim}")?;
            } else {
                writeln!(f, "  would set {claim} = {value}")?;
            }
        }
        for (claim, value) in &i.token_claims {
            writeln!(f, "  token claim {claim} = {value}")?;
        }
        if self.warnings.is_empty() {
            writeln!(f, "Warnings   none")?;
        } else {
            writeln!(f, "Warnings")?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
        }
        Ok(())
    }
}

fn pretty(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
