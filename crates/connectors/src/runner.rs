//! The connector runner: runs the connectors of a step in order (contract §1), each
//! seeing the attributes as the ones before it left them, until one does not answer
//! `Continue`. Every call goes through the connector's circuit breaker, is recorded
//! (contract §6) and counted in the metrics, and a failed one is logged with the
//! reference the user sees.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use usher_domain::rules::TargetPolicy;
use usher_domain::{
    AttributeValues, Clock, ConnectorContract, ConnectorDefinition, ConnectorStep, FailurePolicy,
    Tenant, UserFlow,
};
use usher_storage::{ConnectorCallRecord, ConnectorCallRepository};

use crate::breaker::{Breaker, BreakerState};
use crate::extension::{self, Envelope, ExtensionContext};
use crate::failure::{Failure, FailureReason};
use crate::metrics::Metrics;
use crate::request::build_body;
use crate::response::{interpret, Interpretation, Interpreted, ResponseContext};
use crate::step::{StepConnectors, StepOutcome, StepRequest};
use crate::transport::{scrub, CallIds, Endpoint, TokenSigner, TransportSettings};

/// Recorded bodies are cut to this many bytes.
pub const MAX_RECORDED_BODY_BYTES: usize = 64 * 1024;

/// The operator's settings for every connector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerSettings {
    /// Which of plain `http://`, loopback and the private network connectors may
    /// call; each turns off part of the protection against calls into the private
    /// network, so the default allows none.
    pub targets: TargetPolicy,
    /// Keep request and response bodies in the call records (passwords and secrets
    /// removed, cut to 64 KiB).
    pub record_bodies: bool,
    /// PEM certificates to trust as roots besides the public web PKI, for connectors
    /// served with a certificate from a private CA.
    pub extra_root_certificates: Vec<String>,
    /// Usher's issuer URL: custom authentication extensions are told the tenant id
    /// derived from it.
    pub issuer: String,
}

impl RunnerSettings {
    pub(crate) fn transport(&self) -> TransportSettings {
        TransportSettings {
            targets: self.targets,
            extra_root_certificates: self.extra_root_certificates.clone(),
        }
    }
}

struct Connector {
    endpoint: Endpoint,
    breaker: Breaker,
    secrets: Vec<String>,
}

/// Runs API connectors for the sign-up flow: the production [`StepConnectors`].
pub struct ConnectorRunner {
    /// Shared with the runner a tenant edit replaces this one by, for every connector
    /// whose definition the edit left alone (see [`Self::succeed`]).
    connectors: HashMap<String, Arc<Connector>>,
    tenant: Arc<Tenant>,
    calls: Arc<dyn ConnectorCallRepository>,
    clock: Arc<dyn Clock>,
    settings: RunnerSettings,
    metrics: Arc<Metrics>,
    signer: Option<Arc<dyn TokenSigner>>,
}

impl ConnectorRunner {
    /// Builds each connector's HTTP client once. A connector that cannot be used as
    /// configured is logged now and fails its calls with `configurationError`.
    pub fn new(
        definitions: Vec<ConnectorDefinition>,
        tenant: Arc<Tenant>,
        calls: Arc<dyn ConnectorCallRepository>,
        clock: Arc<dyn Clock>,
        settings: RunnerSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::build(
            None,
            definitions,
            tenant,
            calls,
            clock,
            settings,
            metrics,
            None,
        )
    }

    /// A runner whose issued tokens (connectors with `IssuedToken` authentication)
    /// `signer` signs.
    #[allow(clippy::too_many_arguments)]
    pub fn with_signer(
        definitions: Vec<ConnectorDefinition>,
        tenant: Arc<Tenant>,
        calls: Arc<dyn ConnectorCallRepository>,
        clock: Arc<dyn Clock>,
        settings: RunnerSettings,
        metrics: Arc<Metrics>,
        signer: Arc<dyn TokenSigner>,
    ) -> Self {
        Self::build(
            None,
            definitions,
            tenant,
            calls,
            clock,
            settings,
            metrics,
            Some(signer),
        )
    }

    /// The runner for an edited tenant, taking over this one's live state: every
    /// connector whose definition (and the operator's settings) did not change keeps
    /// its circuit breaker, cached access token and HTTP connections, so an edit of
    /// connector A neither closes B's open breaker nor makes B fetch a new token.
    pub fn succeed(
        &self,
        definitions: Vec<ConnectorDefinition>,
        tenant: Arc<Tenant>,
        settings: RunnerSettings,
    ) -> Self {
        Self::build(
            Some(self),
            definitions,
            tenant,
            self.calls.clone(),
            self.clock.clone(),
            settings,
            self.metrics.clone(),
            self.signer.clone(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        previous: Option<&ConnectorRunner>,
        definitions: Vec<ConnectorDefinition>,
        tenant: Arc<Tenant>,
        calls: Arc<dyn ConnectorCallRepository>,
        clock: Arc<dyn Clock>,
        settings: RunnerSettings,
        metrics: Arc<Metrics>,
        signer: Option<Arc<dyn TokenSigner>>,
    ) -> Self {
        let transport = settings.transport();
        let kept = |definition: &ConnectorDefinition| {
            let previous = previous.filter(|p| p.settings == settings)?;
            previous
                .connectors
                .get(&definition.id)
                .filter(|c| c.endpoint.definition() == definition)
                .cloned()
        };
        let connectors = definitions
            .into_iter()
            .map(|definition| {
                if let Some(connector) = kept(&definition) {
                    return (definition.id, connector);
                }
                let breaker = Breaker::new(definition.breaker);
                let endpoint =
                    Endpoint::with_signer(definition, transport.clone(), signer.clone());
                if let Some(problem) = endpoint.configuration_error() {
                    tracing::error!(connector = %endpoint.definition().id, %problem, "API connector cannot be used as configured");
                }
                let secrets = endpoint.secret_values();
                (
                    endpoint.definition().id.clone(),
                    Arc::new(Connector {
                        endpoint,
                        breaker,
                        secrets,
                    }),
                )
            })
            .collect();
        Self {
            connectors,
            tenant,
            calls,
            clock,
            settings,
            metrics,
            signer,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The breaker of a connector, as of now; `None` for an unknown connector.
    pub fn breaker_state(&self, connector_id: &str) -> Option<BreakerState> {
        self.connectors
            .get(connector_id)
            .map(|c| c.breaker.state(self.clock.now()))
    }

    /// Every connector's breaker as of now, by id, for the metrics endpoint.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        let now = self.clock.now();
        let mut states: Vec<_> = self
            .connectors
            .iter()
            .map(|(id, c)| (id.clone(), c.breaker.state(now)))
            .collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }

    /// The request sent (with its retries, within the budget) and the answer read
    /// by the contract's rules.
    async fn exchange(
        &self,
        connector: &Connector,
        request: &StepRequest<'_>,
        user_flow: Option<&UserFlow>,
        call_id: &str,
        sent: &Sent<'_>,
    ) -> Called {
        let definition = connector.endpoint.definition();
        let report = connector
            .endpoint
            .call(
                sent.body,
                CallIds {
                    flow_id: request.flow_id,
                    idempotency_key: sent.idempotency_key,
                },
                call_id,
                self.clock.as_ref(),
            )
            .await;
        let interpretation = match &report.result {
            Ok(exchange) => {
                let ctx = ResponseContext {
                    step: request.step,
                    lenient: definition.lenient,
                    tenant: Some(&self.tenant),
                    user_flow,
                    email: sent.email,
                    identities: sent.identities,
                };
                match &definition.contract {
                    ConnectorContract::ApiConnector => {
                        interpret(&ctx, exchange.status, &exchange.body)
                    }
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
            Err(failure) => Interpretation {
                outcome: Interpreted::Failed(failure.clone()),
                warnings: Vec::new(),
            },
        };
        let (http_status, response_body) = match report.result {
            Ok(exchange) => (Some(exchange.status), Some(exchange.body)),
            Err(_) => (None, None),
        };
        Called {
            interpretation,
            attempts: report.attempts,
            latency: report.latency,
            http_status,
            response_body,
        }
    }

    /// The body of a call by the connector's contract, with the `identities` and
    /// `email` it told the API; `None` when the contract has no request at the step.
    fn request_body(
        &self,
        definition: &ConnectorDefinition,
        request: &StepRequest<'_>,
        attributes: &AttributeValues,
        call_id: &str,
    ) -> Option<(Value, Option<Value>, Option<String>)> {
        match &definition.contract {
            ConnectorContract::ApiConnector => {
                let body = build_body(request, attributes, &self.tenant);
                let identities = body.get("identities").cloned();
                let email = body
                    .get("email")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                Some((Value::Object(body), identities, email))
            }
            ConnectorContract::CustomAuthenticationExtension { .. } => {
                let envelope = extension::build_envelope(&Envelope {
                    request,
                    attributes,
                    tenant: &self.tenant,
                    connector_id: &definition.id,
                    call_id,
                    issuer: &self.settings.issuer,
                })?;
                Some((envelope, None, request.email.map(str::to_owned)))
            }
        }
    }

    /// A connector listed at a step its contract has no request for: refused and
    /// recorded (the tenant's rules keep this from being configured).
    async fn wrong_step(
        &self,
        definition: &ConnectorDefinition,
        request: &StepRequest<'_>,
        call_id: String,
    ) -> Interpretation {
        let failure = Failure::new(
            FailureReason::ConfigurationError,
            format!(
                "a {} connector cannot run at {}",
                definition.contract.name(),
                request.step.slot_name()
            ),
        );
        let code = failure
            .entra_code(definition, self.settings.targets)
            .map(i64::from);
        self.refused(&definition.id, request, &call_id, &failure, code)
            .await;
        Interpretation {
            outcome: Interpreted::Failed(failure),
            warnings: Vec::new(),
        }
    }

    /// One call of one connector, recorded. Returns the call id and what it meant.
    async fn call(
        &self,
        connector: &Connector,
        request: &StepRequest<'_>,
        attributes: &AttributeValues,
        user_flow: Option<&UserFlow>,
    ) -> (String, Interpretation) {
        let definition = connector.endpoint.definition();
        let call_id = new_id();
        let created_at = self.clock.now();
        let Some((body, identities_sent, email_sent)) =
            self.request_body(definition, request, attributes, &call_id)
        else {
            return (
                call_id.clone(),
                self.wrong_step(definition, request, call_id).await,
            );
        };
        let body_bytes = body.to_string().into_bytes();
        let idempotency_key = request
            .run_key
            .map(|run| format!("{run}.{}", definition.id));

        let sent = Sent {
            body: &body_bytes,
            idempotency_key: idempotency_key.as_deref(),
            email: email_sent.as_deref(),
            identities: identities_sent.as_ref(),
        };
        let Called {
            interpretation,
            attempts,
            latency,
            http_status,
            response_body,
        } = match connector.breaker.try_acquire(created_at) {
            None => Called {
                interpretation: Interpretation::failed(
                    FailureReason::CircuitOpen,
                    "the connector's circuit breaker is open after repeated failures",
                ),
                attempts: 0,
                latency: Duration::ZERO,
                http_status: None,
                response_body: None,
            },
            Some(permit) => {
                let called = self
                    .exchange(connector, request, user_flow, &call_id, &sent)
                    .await;
                let success = !matches!(called.interpretation.outcome, Interpreted::Failed(_));
                connector.breaker.record(permit, success, self.clock.now());
                called
            }
        };

        let outcome = interpretation.outcome.outcome_name();
        let step = request.step.wire_name();
        self.metrics.observe(&definition.id, step, outcome, latency);
        // Besides the connector's own secrets: the code it was to deliver and the
        // token it was sent, which an echoing answer would otherwise put on record.
        let mut secrets = connector.secrets.clone();
        secrets.extend(request.otp.map(|o| o.code.to_owned()));
        secrets.extend(connector.endpoint.bearer_in_use().await);
        let failure = interpretation.outcome.failure();
        let error_code = failure
            .and_then(|f| f.entra_code(definition, self.settings.targets))
            .map(i64::from);
        log_call(
            &call_id,
            &definition.id,
            request,
            &interpretation,
            error_code,
            (attempts, latency),
        );
        let record = ConnectorCallRecord {
            call_id: call_id.clone(),
            connector_id: definition.id.clone(),
            user_flow_id: request.user_flow_id.to_owned(),
            step: step.to_owned(),
            flow_id: request.flow_id.to_owned(),
            attempts,
            http_status,
            latency_ms: i64::try_from(latency.as_millis()).unwrap_or(i64::MAX),
            outcome: outcome.to_owned(),
            failure_reason: failure.map(|f| f.reason.as_str().to_owned()),
            error_code,
            warnings: interpretation.warnings.clone(),
            request_body: self
                .settings
                .record_bodies
                .then(|| redact_body(&body_bytes, &secrets)),
            response_body: response_body
                .filter(|_| self.settings.record_bodies)
                .map(|b| redact_body(&b, &secrets)),
            created_at,
        };
        self.store(&record).await;
        (call_id, interpretation)
    }

    /// Records a call; a storage failure is logged, never the user's problem.
    async fn store(&self, record: &ConnectorCallRecord) {
        if let Err(error) = self.calls.insert_connector_call(record).await {
            tracing::error!(call_id = %record.call_id, connector = %record.connector_id, %error, "the API connector call record could not be stored");
        }
    }

    async fn unknown_connector(&self, id: &str, request: &StepRequest<'_>) -> StepOutcome {
        let call_id = new_id();
        let failure = Failure::new(
            FailureReason::UnknownConnector,
            format!("the user flow names connector {id:?}, which is not configured"),
        );
        self.refused(id, request, &call_id, &failure, None).await;
        StepOutcome::Failed { reference: call_id }
    }

    /// A call Usher would not make (an unknown connector, or one whose contract has
    /// no request for the step), logged, counted and recorded as failed.
    async fn refused(
        &self,
        connector_id: &str,
        request: &StepRequest<'_>,
        call_id: &str,
        failure: &Failure,
        error_code: Option<i64>,
    ) {
        tracing::warn!(call_id = %call_id, connector = %connector_id, step = request.step.wire_name(), flow_id = %request.flow_id, reason = %failure.reason, error_code, detail = %failure.detail, "API connector call failed");
        self.metrics.observe(
            connector_id,
            request.step.wire_name(),
            "failed",
            Duration::ZERO,
        );
        self.store(&ConnectorCallRecord {
            call_id: call_id.to_owned(),
            connector_id: connector_id.to_owned(),
            user_flow_id: request.user_flow_id.to_owned(),
            step: request.step.wire_name().to_owned(),
            flow_id: request.flow_id.to_owned(),
            attempts: 0,
            http_status: None,
            latency_ms: 0,
            outcome: "failed".into(),
            failure_reason: Some(failure.reason.as_str().into()),
            error_code,
            warnings: Vec::new(),
            request_body: None,
            response_body: None,
            created_at: self.clock.now(),
        })
        .await;
    }
}

#[async_trait]
impl StepConnectors for ConnectorRunner {
    fn worst_case(&self, connector_ids: &[String]) -> Duration {
        connector_ids
            .iter()
            .filter_map(|id| self.connectors.get(id))
            .map(|c| c.endpoint.definition().budget)
            .sum()
    }

    async fn run(&self, request: StepRequest<'_>) -> StepOutcome {
        let user_flow = self.tenant.user_flow(request.user_flow_id);
        let mut attributes = request.attributes.clone();
        let mut token_claims = Map::new();
        for id in request.connector_ids {
            let Some(connector) = self.connectors.get(id) else {
                return self.unknown_connector(id, &request).await;
            };
            let (call_id, interpretation) =
                self.call(connector, &request, &attributes, user_flow).await;
            match interpretation.outcome {
                Interpreted::Continue {
                    changes,
                    token_claims: claims,
                } => {
                    for (attribute, value) in changes {
                        match value {
                            Some(v) => {
                                attributes.insert(attribute, v);
                            }
                            None => {
                                attributes.remove(&attribute);
                            }
                        }
                    }
                    token_claims.extend(claims);
                }
                Interpreted::Block {
                    user_message,
                    title,
                } => {
                    return StepOutcome::Block {
                        user_message,
                        title,
                    }
                }
                Interpreted::ValidationError(message) => {
                    return StepOutcome::ValidationError(message)
                }
                Interpreted::Failed(_) => {
                    // An account-recovery connector is a gate: when it cannot answer,
                    // the reset does not go through, whatever its policy says.
                    if connector.endpoint.definition().failure_policy == FailurePolicy::Continue
                        && request.step != ConnectorStep::PreAccountRecovery
                    {
                        if request.step == ConnectorStep::EmailOtpSend {
                            // The code was not delivered: whoever sends it now must
                            // know.
                            return StepOutcome::FellBack { reference: call_id };
                        }
                        continue;
                    }
                    return StepOutcome::Failed { reference: call_id };
                }
            }
        }
        StepOutcome::Continue {
            attributes,
            token_claims,
        }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "call record ids need to be unique, not reproducible"
)]
pub(crate) fn new_id() -> String {
    usher_domain::id::new_uuid(&mut rand::thread_rng())
}

/// A body as it may be stored: values under password-like keys removed, secret
/// values masked, cut to [`MAX_RECORDED_BODY_BYTES`].
pub fn redact_body(body: &[u8], secrets: &[String]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            redact_json(&mut json, 0);
            json.to_string()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    truncate_at_char(scrub(&text, secrets), MAX_RECORDED_BODY_BYTES)
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password")
        || matches!(
            k.as_str(),
            "client_secret" | "access_token" | "refresh_token" | "secret" | "onetimecode"
        )
}

fn redact_json(value: &mut Value, depth: usize) {
    // serde_json refuses nesting deeper than 128, so this recursion is bounded.
    if depth > 256 {
        return;
    }
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !is_secret_key(k));
            for v in map.values_mut() {
                redact_json(v, depth + 1);
            }
        }
        Value::Array(items) => {
            for v in items {
                redact_json(v, depth + 1);
            }
        }
        _ => {}
    }
}

fn truncate_at_char(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// What a call sends, besides the flow's ids.
struct Sent<'a> {
    body: &'a [u8],
    idempotency_key: Option<&'a str>,
    /// What the request told the connector, which its answer may not contradict.
    email: Option<&'a str>,
    identities: Option<&'a Value>,
}

/// What a call came to.
struct Called {
    interpretation: Interpretation,
    attempts: u32,
    latency: Duration,
    http_status: Option<u16>,
    response_body: Option<Vec<u8>>,
}

/// The log line of one call: a warning with the reason when it failed (the call id
/// is the reference the person sees), a debug line otherwise, and the contract
/// warnings the answer raised.
fn log_call(
    call_id: &str,
    connector_id: &str,
    request: &StepRequest<'_>,
    interpretation: &Interpretation,
    error_code: Option<i64>,
    (attempts, latency): (u32, Duration),
) {
    let step = request.step.wire_name();
    let outcome = interpretation.outcome.outcome_name();
    if let Some(failure) = interpretation.outcome.failure() {
        tracing::warn!(
            call_id = %call_id,
            connector = %connector_id,
            step,
            flow_id = %request.flow_id,
            reason = %failure.reason,
            error_code,
            detail = %failure.detail,
            attempts,
            "API connector call failed"
        );
    } else {
        tracing::debug!(call_id = %call_id, connector = %connector_id, step, outcome, attempts, latency_ms = latency.as_millis() as u64, "API connector call");
    }
    for warning in &interpretation.warnings {
        tracing::info!(call_id = %call_id, connector = %connector_id, %warning, "API connector contract warning");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_redacted_and_cut() {
        let body = br#"{"email":"a@b.c","password":"hunter2","nested":{"Password":"x","ok":"abcdSECRET"},"list":[{"client_secret":"y"}],"otpContext":{"identifier":"a@b.c","oneTimeCode":"123456"}}"#;
        let r = redact_body(body, &["abcdSECRET".into()]);
        assert_eq!(
            r,
            r#"{"email":"a@b.c","list":[{}],"nested":{"ok":"******"},"otpContext":{"identifier":"a@b.c"}}"#
        );
        let long = format!("\"{}\"", "é".repeat(MAX_RECORDED_BODY_BYTES));
        let r = redact_body(long.as_bytes(), &[]);
        assert!(r.len() <= MAX_RECORDED_BODY_BYTES);
        let r = redact_body(b"not json abcdSECRET", &["abcdSECRET".into()]);
        assert_eq!(r, "not json ******");
    }
}
