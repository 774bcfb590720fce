//! The connector client against real HTTP endpoints on loopback: small axum servers
//! (and raw TCP and TLS ones where HTTP itself must misbehave) started by each test.
//! Every row of the contract's response table and every failure class is exercised
//! through `ConnectorRunner`, the way the sign-up flow calls it.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usher_connectors::{
    probe, probe_with_schema, BreakerState, ConnectorRunner, Metrics, ProbeSchema, RunnerSettings,
    StepConnectors, StepOutcome, StepRequest,
};
use usher_domain::rules::TargetPolicy;
use usher_domain::{
    AttributeValue, AttributeValues, BreakerSettings, CertificateSource, ClientCertificate,
    ConnectorAuthentication, ConnectorDefinition, ConnectorSlots, ConnectorStep, DataType,
    FailurePolicy, Identity, MockClock, Secret, SignInType, Tenant, UserFlow, UserInputType,
};
use usher_storage::{CallFilter, ConnectorCallRecord, ConnectorCallRepository, StorageError};

const APP: &str = usher_testkit::tenant::EXTENSIONS_APP_ID;
const FLOW: &str = "B2X_1_signup";
const PFS: ConnectorStep = ConnectorStep::PostFederationSignup;
const PAC: ConnectorStep = ConnectorStep::PostAttributeCollection;
const PTI: ConnectorStep = ConnectorStep::PreTokenIssuance;

// ---------------------------------------------------------------------------------
// The tenant, the call records and the runner
// ---------------------------------------------------------------------------------

use usher_testkit::tenant::{assign, custom, ext};

fn tenant() -> Tenant {
    Tenant {
        extensions_app_id: APP.into(),
        custom_attributes: vec![
            custom("ShoeSize", DataType::Int),
            custom("Terms", DataType::Boolean),
            custom("Colors", DataType::String),
            custom("Loyalty", DataType::String),
            custom("Hidden", DataType::String),
        ],
        user_flows: vec![UserFlow {
            id: FLOW.into(),
            identity_providers: vec!["Google-OAUTH".into()],
            attributes: vec![
                assign("displayName", UserInputType::TextBox),
                assign("givenName", UserInputType::TextBox),
                assign("surname", UserInputType::TextBox),
                assign("city", UserInputType::TextBox),
                assign("country", UserInputType::TextBox),
                assign(&ext("ShoeSize"), UserInputType::NumericTextBox),
                assign(&ext("Terms"), UserInputType::CheckboxSingleSelect),
                assign(&ext("Colors"), UserInputType::CheckboxMultiSelect),
                assign(&ext("Loyalty"), UserInputType::TextBox),
            ],
            extra_claims: vec!["email".into()],
            connectors: ConnectorSlots::default(),
            requires_approval: false,
        }],
        applications: vec![],
    }
}

fn attributes() -> AttributeValues {
    [
        (
            "displayName".to_owned(),
            AttributeValue::String("John Smith".into()),
        ),
        (
            "givenName".to_owned(),
            AttributeValue::String("John".into()),
        ),
        ("surname".to_owned(), AttributeValue::String(String::new())),
        ("city".to_owned(), AttributeValue::String("Oslo".into())),
        (ext("ShoeSize"), AttributeValue::Int(44)),
        (ext("Terms"), AttributeValue::Boolean(true)),
        (ext("Colors"), AttributeValue::String("red,blue".into())),
        (
            ext("Hidden"),
            AttributeValue::String("not for the API".into()),
        ),
    ]
    .into()
}

fn identities() -> Vec<Identity> {
    vec![Identity {
        sign_in_type: SignInType::Federated,
        issuer: "facebook.com".into(),
        issuer_assigned_id: "0123456789".into(),
        exact_issuer: None,
    }]
}

#[derive(Default)]
struct MemoryCalls {
    records: Mutex<Vec<ConnectorCallRecord>>,
    broken: bool,
}

#[async_trait]
impl ConnectorCallRepository for MemoryCalls {
    async fn insert_connector_call(
        &self,
        record: &ConnectorCallRecord,
    ) -> usher_storage::Result<()> {
        if self.broken {
            return Err(StorageError::Corrupt("the disk is on fire".into()));
        }
        let mut records = self.records.lock().unwrap();
        if records.iter().any(|r| r.call_id == record.call_id) {
            return Err(StorageError::AlreadyExists);
        }
        records.push(record.clone());
        Ok(())
    }

    async fn connector_call(
        &self,
        call_id: &str,
    ) -> usher_storage::Result<Option<ConnectorCallRecord>> {
        Ok(self
            .records
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.call_id == call_id)
            .cloned())
    }

    async fn connector_calls(
        &self,
        filter: &CallFilter,
    ) -> usher_storage::Result<Vec<ConnectorCallRecord>> {
        let records = self.records.lock().unwrap();
        Ok(records
            .iter()
            .rev()
            .filter(|r| {
                filter
                    .connector_id
                    .as_ref()
                    .is_none_or(|c| &r.connector_id == c)
            })
            .filter(|r| filter.outcome.as_ref().is_none_or(|o| &r.outcome == o))
            .take(filter.limit as usize)
            .cloned()
            .collect())
    }
}

struct Harness {
    runner: ConnectorRunner,
    calls: Arc<MemoryCalls>,
    clock: MockClock,
    metrics: Arc<Metrics>,
}

fn settings() -> RunnerSettings {
    RunnerSettings {
        targets: TargetPolicy::ALL,
        record_bodies: true,
        ..Default::default()
    }
}

fn harness(definitions: Vec<ConnectorDefinition>) -> Harness {
    harness_with(definitions, settings(), MemoryCalls::default())
}

fn harness_with(
    definitions: Vec<ConnectorDefinition>,
    settings: RunnerSettings,
    calls: MemoryCalls,
) -> Harness {
    let calls = Arc::new(calls);
    let clock = MockClock::default();
    let metrics = Arc::new(Metrics::new());
    let runner = ConnectorRunner::new(
        definitions,
        Arc::new(tenant()),
        calls.clone(),
        Arc::new(clock.clone()),
        settings,
        metrics.clone(),
    );
    Harness {
        runner,
        calls,
        clock,
        metrics,
    }
}

impl Harness {
    async fn run(&self, step: ConnectorStep, ids: &[&str]) -> StepOutcome {
        self.run_with(step, ids, &attributes()).await
    }

    async fn run_with(
        &self,
        step: ConnectorStep,
        ids: &[&str],
        attributes: &AttributeValues,
    ) -> StepOutcome {
        let ids: Vec<String> = ids.iter().map(std::string::ToString::to_string).collect();
        let identities = identities();
        self.runner
            .run(StepRequest {
                step,
                flow_id: "flow-42",
                user_flow_id: FLOW,
                connector_ids: &ids,
                client_id: "client-7",
                ui_locales: "en-US",
                email: Some("john@example.com"),
                identities: &identities,
                attributes,
                run_key: None,
                client_ip: None,
                user: None,
                otp: None,
            })
            .await
    }

    fn records(&self) -> Vec<ConnectorCallRecord> {
        self.calls.records.lock().unwrap().clone()
    }

    fn last(&self) -> ConnectorCallRecord {
        self.records().last().cloned().expect("a call record")
    }

    /// Runs one connector expecting a failure; returns its reason from the record.
    async fn failure(&self, step: ConnectorStep, id: &str) -> String {
        let outcome = self.run(step, &[id]).await;
        let StepOutcome::Failed { reference } = outcome else {
            panic!("expected a failure, got {outcome:?}");
        };
        let record = self.last();
        assert_eq!(record.call_id, reference);
        assert_eq!(record.outcome, "failed");
        record.failure_reason.expect("a failure reason")
    }
}

fn connector(id: &str, url: &str) -> ConnectorDefinition {
    ConnectorDefinition {
        timeout: Duration::from_secs(3),
        budget: Duration::from_secs(6),
        ..ConnectorDefinition::new(id, url)
    }
}

// ---------------------------------------------------------------------------------
// Test servers
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

fn continue_with(claims: Value) -> Reply {
    let mut body = json!({"version": "1.0.0", "action": "Continue"});
    if let (Some(b), Some(c)) = (body.as_object_mut(), claims.as_object()) {
        b.extend(c.clone());
    }
    Reply::json(200, body)
}

type Handler = Arc<dyn Fn(usize, &Seen) -> Reply + Send + Sync>;
type ReplyFn = Arc<dyn Fn() -> Reply + Send + Sync>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[derive(Clone)]
struct ServerState {
    handler: Handler,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn handle(
    axum::extract::State(state): axum::extract::State<ServerState>,
    _method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let seen = Seen {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let index = {
        let mut all = state.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let reply = (state.handler)(index, &seen);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response =
        axum::response::Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    response.body(axum::body::Body::from(reply.body)).unwrap()
}

fn router(handler: Handler, seen: Arc<Mutex<Vec<Seen>>>) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(ServerState { handler, seen })
}

/// An HTTP server on loopback whose every answer comes from `handler(index, request)`.
async fn serve(handler: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Server {
    let (listener, _) = usher_testkit::net::bind().await;
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = router(Arc::new(handler), seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server { addr, seen }
}

async fn serve_reply(reply: impl Fn() -> Reply + Send + Sync + 'static) -> Server {
    serve(move |_, _| reply()).await
}

// ---------------------------------------------------------------------------------
// §2: the request
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_request_body_and_headers_follow_the_contract() {
    let server = serve_reply(|| continue_with(json!({}))).await;
    let h = harness(vec![connector("c", &server.url())]);
    let outcome = h.run(PAC, &["c"]).await;
    assert!(
        matches!(outcome, StepOutcome::Continue { .. }),
        "{outcome:?}"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(
        request.json(),
        json!({
            "email": "john@example.com",
            "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "0123456789"}],
            "displayName": "John Smith",
            "givenName": "John",
            "city": "Oslo",
            ext("ShoeSize"): 44,
            ext("Terms"): true,
            ext("Colors"): "red,blue",
            "ui_locales": "en-US",
            "step": "PostAttributeCollection",
            "client_id": "client-7",
        })
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(request.header("accept"), Some("application/json"));
    assert_eq!(request.header("usher-flow-id"), Some("flow-42"));
    assert_eq!(request.header("usher-attempt"), Some("1"));
    let call_id = request.header("usher-call-id").unwrap();
    assert_eq!(call_id.len(), 36);
    assert_eq!(h.last().call_id, call_id);
    assert!(request.header("authorization").is_none());
    assert!(request.header("webhook-signature").is_none());
}

#[tokio::test]
async fn email_is_sent_at_federation_and_identities_only_when_there_are_some() {
    let server = serve_reply(|| continue_with(json!({}))).await;
    let h = harness(vec![connector("c", &server.url())]);
    h.run(PFS, &["c"]).await;
    let body = server.seen()[0].json();
    assert_eq!(body["email"], json!("john@example.com"));
    assert_eq!(body["step"], json!("PostFederationSignup"));

    let ids = vec!["c".to_string()];
    let attrs = AttributeValues::new();
    h.runner
        .run(StepRequest {
            step: PTI,
            flow_id: "f",
            user_flow_id: FLOW,
            connector_ids: &ids,
            client_id: "client-7",
            ui_locales: "nb-NO",
            email: None,
            identities: &[],
            attributes: &attrs,
            run_key: None,
            client_ip: None,
            user: None,
            otp: None,
        })
        .await;
    let body = server.seen()[1].json();
    assert_eq!(
        body,
        json!({"ui_locales": "nb-NO", "step": "PreTokenIssuance", "client_id": "client-7"})
    );
}

// ---------------------------------------------------------------------------------
// §3: each action at each step
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn continue_prefills_at_federation_overwrites_at_collection_and_fills_the_token_at_issuance()
{
    let server = serve_reply(|| {
        continue_with(json!({"city": "Bergen", "extension_Loyalty": "gold", "loyaltyTier": "gold"}))
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    for step in [PFS, PAC] {
        let StepOutcome::Continue {
            attributes,
            token_claims,
        } = h.run(step, &["c"]).await
        else {
            panic!("expected Continue at {step:?}");
        };
        assert_eq!(attributes["city"], AttributeValue::String("Bergen".into()));
        assert_eq!(
            attributes[&ext("Loyalty")],
            AttributeValue::String("gold".into())
        );
        assert_eq!(attributes[&ext("ShoeSize")], AttributeValue::Int(44));
        assert!(token_claims.is_empty());
        assert_eq!(h.last().outcome, "continue");
    }
    let StepOutcome::Continue {
        attributes: unchanged,
        token_claims,
    } = h.run(PTI, &["c"]).await
    else {
        panic!("expected Continue at PreTokenIssuance");
    };
    assert_eq!(unchanged, attributes());
    assert_eq!(
        Value::Object(token_claims),
        json!({"city": "Bergen", "extension_Loyalty": "gold", "loyaltyTier": "gold"})
    );
}

#[tokio::test]
async fn show_block_page_blocks_except_at_token_issuance() {
    let server = serve_reply(|| {
        Reply::json(
            200,
            json!({"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "Your access request is already processing."}),
        )
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    for step in [PFS, PAC] {
        assert_eq!(
            h.run(step, &["c"]).await,
            StepOutcome::Block {
                user_message: "Your access request is already processing.".into(),
                title: None,
            }
        );
        assert_eq!(h.last().outcome, "block");
    }
    assert_eq!(h.failure(PTI, "c").await, "blockNotAllowed");
}

#[tokio::test]
async fn validation_error_only_at_attribute_collection_and_only_with_http_400() {
    let ve = json!({"version": "1.0.0", "status": 400, "action": "ValidationError",
                    "userMessage": "Please enter a valid Postal Code.", "code": "E42",
                    "attributeErrors": {"extension_ShoeSize": "Too big", "City": "Unknown"}});
    let with_400 = {
        let ve = ve.clone();
        serve_reply(move || Reply::json(400, ve.clone())).await
    };
    let with_200 = {
        let ve = ve.clone();
        serve_reply(move || Reply::json(200, ve.clone())).await
    };
    let string_status = serve_reply(|| {
        Reply::json(
            400,
            json!({"version": "1.0.0", "status": "400", "action": "ValidationError", "userMessage": "No"}),
        )
    })
    .await;
    let lenient = ConnectorDefinition {
        lenient: true,
        ..connector("lenient", &with_200.url())
    };
    let h = harness(vec![
        connector("400", &with_400.url()),
        connector("200", &with_200.url()),
        connector("string", &string_status.url()),
        lenient,
    ]);
    let StepOutcome::ValidationError(message) = h.run(PAC, &["400"]).await else {
        panic!("expected a ValidationError");
    };
    assert_eq!(message.user_message, "Please enter a valid Postal Code.");
    assert_eq!(message.attribute_errors[&ext("ShoeSize")], "Too big");
    assert_eq!(message.attribute_errors["city"], "Unknown");
    let record = h.last();
    assert_eq!(record.outcome, "validationError");
    assert_eq!(record.http_status, Some(400));

    assert!(
        matches!(h.run(PAC, &["string"]).await, StepOutcome::ValidationError(m) if m.user_message == "No")
    );
    assert_eq!(h.failure(PAC, "200").await, "validationErrorWrongStatus");
    assert!(matches!(
        h.run(PAC, &["lenient"]).await,
        StepOutcome::ValidationError(_)
    ));
    assert!(!h.last().warnings.is_empty());
    for step in [PFS, PTI] {
        assert_eq!(h.failure(step, "400").await, "validationErrorNotAllowed");
        assert_eq!(
            h.failure(step, "lenient").await,
            "validationErrorNotAllowed"
        );
    }
}

#[tokio::test]
async fn a_400_that_is_not_a_validation_error_fails() {
    let server = serve_reply(|| Reply::json(400, json!({"error": "bad request"}))).await;
    let h = harness(vec![connector("c", &server.url())]);
    assert_eq!(h.failure(PAC, "c").await, "malformedValidationError");
}

#[tokio::test]
async fn lenient_mode_reads_allow_as_continue() {
    let server = serve_reply(|| {
        Reply::json(
            200,
            json!({"version": "1.0.0", "action": "Allow", "city": "Paris"}),
        )
    })
    .await;
    let strict = connector("strict", &server.url());
    let lenient = ConnectorDefinition {
        lenient: true,
        ..connector("lenient", &server.url())
    };
    let h = harness(vec![strict, lenient]);
    assert_eq!(h.failure(PAC, "strict").await, "unknownAction");
    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["lenient"]).await else {
        panic!("lenient Allow must continue");
    };
    assert_eq!(attributes["city"], AttributeValue::String("Paris".into()));
}

// ---------------------------------------------------------------------------------
// §3: claims
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn null_empty_string_and_coercions() {
    let server = serve_reply(|| {
        continue_with(json!({
            "city": null,
            "givenName": "",
            "extension_ShoeSize": "45",
            ext("Terms"): "false",
            "Country": "Norway",
            "displayName": "Ada Lovelace",
        }))
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["c"]).await else {
        panic!("expected Continue");
    };
    assert_eq!(attributes["city"], AttributeValue::String("Oslo".into()));
    assert!(!attributes.contains_key("givenName"));
    assert_eq!(attributes[&ext("ShoeSize")], AttributeValue::Int(45));
    assert_eq!(attributes[&ext("Terms")], AttributeValue::Boolean(false));
    assert_eq!(
        attributes["country"],
        AttributeValue::String("Norway".into())
    );
    assert_eq!(
        attributes["displayName"],
        AttributeValue::String("Ada Lovelace".into())
    );
    assert!(h.last().warnings.is_empty(), "{:?}", h.last().warnings);
}

#[tokio::test]
async fn wrong_claim_types_fail_the_call() {
    for claims in [
        json!({"extension_ShoeSize": 44.5}),
        json!({"extension_ShoeSize": "forty"}),
        json!({"extension_Terms": "yes"}),
        json!({"extension_Terms": 1}),
        json!({"city": 7}),
        json!({"displayName": ["a"]}),
    ] {
        let c = claims.clone();
        let server = serve_reply(move || continue_with(c.clone())).await;
        let h = harness(vec![connector("c", &server.url())]);
        assert_eq!(h.failure(PAC, "c").await, "contractViolation", "{claims}");
    }
}

#[tokio::test]
async fn unselected_attributes_email_and_identities_are_not_changed() {
    let server = serve_reply(|| {
        continue_with(json!({
            "jobTitle": "CEO",
            "extension_Hidden": "changed",
            "email": "someone-else@example.com",
            "identities": [{"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "1"}],
            "city": "Trondheim",
            "code": "ignored",
        }))
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["c"]).await else {
        panic!("expected Continue");
    };
    let mut expected = self::attributes();
    expected.insert("city".into(), AttributeValue::String("Trondheim".into()));
    assert_eq!(attributes, expected);
    let warnings = h.last().warnings;
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    for key in ["jobTitle", "extension_Hidden", "email", "identities"] {
        assert!(
            warnings.iter().any(|w| w.contains(key)),
            "{key}: {warnings:?}"
        );
    }
}

#[tokio::test]
async fn missing_version_is_a_warning() {
    let server = serve_reply(|| Reply::json(200, json!({"action": "Continue"}))).await;
    let h = harness(vec![connector("c", &server.url())]);
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    let record = h.last();
    assert_eq!(record.outcome, "continue");
    assert_eq!(record.warnings.len(), 1);
    assert!(record.warnings[0].contains("version"));
}

#[tokio::test]
async fn reserved_token_claims_are_protected() {
    let server = serve_reply(|| {
        continue_with(json!({"sub": "someone-else", "aud": "x", "roles": ["admin"], "extension_ShoeSize": 41}))
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    let StepOutcome::Continue { token_claims, .. } = h.run(PTI, &["c"]).await else {
        panic!("expected Continue");
    };
    assert_eq!(
        Value::Object(token_claims),
        json!({"roles": ["admin"], "extension_ShoeSize": 41})
    );
    assert_eq!(h.last().warnings.len(), 2);
}

// ---------------------------------------------------------------------------------
// §3: failed calls
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn answers_that_are_failures() {
    let cases: Vec<(&str, ReplyFn)> = vec![
        (
            "notJson",
            Arc::new(|| Reply::raw(200, "<html>It works!</html>")),
        ),
        ("notJson", Arc::new(|| Reply::raw(200, ""))),
        (
            "missingAction",
            Arc::new(|| Reply::json(200, json!({"version": "1.0.0"}))),
        ),
        (
            "unknownAction",
            Arc::new(|| Reply::json(200, json!({"version": "1.0.0", "action": "Deny"}))),
        ),
        ("unauthorized", Arc::new(|| Reply::raw(401, "no"))),
        ("forbidden", Arc::new(|| Reply::raw(403, "no"))),
        ("http4xx", Arc::new(|| Reply::raw(404, "not found"))),
        (
            "http5xx",
            Arc::new(|| Reply::json(500, json!({"version": "1.0.0", "action": "Continue"}))),
        ),
        ("unexpectedStatus", Arc::new(|| Reply::raw(204, ""))),
    ];
    for (expected, reply) in cases {
        let server = serve_reply(move || reply()).await;
        let h = harness(vec![connector("c", &server.url())]);
        assert_eq!(h.failure(PAC, "c").await, expected);
        // 500 and the others are not retried.
        assert_eq!(server.hits(), 1, "{expected}");
        assert_eq!(h.last().attempts, 1);
    }
}

#[tokio::test]
async fn an_oversized_body_fails() {
    let server = serve_reply(|| {
        let mut body = br#"{"version":"1.0.0","action":"Continue","pad":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 1024 * 1024));
        body.extend(br#""}"#);
        Reply::raw(200, body)
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    assert_eq!(h.failure(PAC, "c").await, "tooLarge");

    // A chunked body (no Content-Length) is cut off while reading.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await;
                let chunk = vec![b' '; 64 * 1024];
                for _ in 0..40 {
                    let head = format!("{:x}\r\n", chunk.len());
                    if stream.write_all(head.as_bytes()).await.is_err()
                        || stream.write_all(&chunk).await.is_err()
                        || stream.write_all(b"\r\n").await.is_err()
                    {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    let h = harness(vec![connector("c", &format!("http://{addr}/api"))]);
    assert_eq!(h.failure(PAC, "c").await, "tooLarge");
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let server = serve(|_, seen| {
        if seen.path == "/elsewhere" {
            continue_with(json!({}))
        } else {
            Reply::raw(302, "").header("location", "/elsewhere")
        }
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    assert_eq!(h.failure(PAC, "c").await, "redirect");
    assert_eq!(server.hits(), 1);
    assert!(server.seen().iter().all(|s| s.path != "/elsewhere"));
    assert_eq!(h.last().http_status, Some(302));
}

// ---------------------------------------------------------------------------------
// §5: time limits and retries
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_timeout_is_retried_once_then_fails() {
    let server = serve_reply(|| continue_with(json!({})).after(Duration::from_secs(5))).await;
    let definition = ConnectorDefinition {
        timeout: Duration::from_millis(300),
        budget: Duration::from_secs(3),
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    let started = Instant::now();
    assert_eq!(h.failure(PAC, "c").await, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let attempts: Vec<_> = server
        .seen()
        .iter()
        .map(|s| s.header("usher-attempt").unwrap().to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2"]);
    assert_eq!(h.last().attempts, 2);
    assert_eq!(h.last().http_status, None);
}

#[tokio::test]
async fn a_hanging_endpoint_is_abandoned_at_the_budget() {
    let server = serve_reply(|| continue_with(json!({})).after(Duration::from_mins(1))).await;
    let definition = ConnectorDefinition {
        timeout: Duration::from_secs(10),
        budget: Duration::from_millis(600),
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    let started = Instant::now();
    assert_eq!(h.failure(PAC, "c").await, "timeout");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1200), "{elapsed:?}");
    assert!(h.last().latency_ms < 1200);
}

#[tokio::test]
async fn connection_refused_is_retried_then_fails() {
    let addr = format!("127.0.0.1:{}", usher_testkit::net::unused_port());
    let h = harness(vec![connector("c", &format!("http://{addr}/api"))]);
    assert_eq!(h.failure(PAC, "c").await, "connectionRefused");
    assert_eq!(h.last().attempts, 2);
}

/// A raw server that answers part of a response and then resets (or closes) the
/// connection.
async fn broken_server(reset: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 8192];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"version\":\"1.0.0\",")
                .await;
            let _ = stream.flush().await;
            if reset {
                // SO_LINGER 0: closing sends RST instead of FIN.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
            }
            drop(stream);
        }
    });
    (addr, connections)
}

#[tokio::test]
async fn a_connection_reset_mid_response_is_retried_then_fails() {
    for reset in [true, false] {
        let (addr, connections) = broken_server(reset).await;
        let h = harness(vec![connector("c", &format!("http://{addr}/api"))]);
        assert_eq!(
            h.failure(PAC, "c").await,
            "connectionReset",
            "reset: {reset}"
        );
        assert_eq!(connections.load(Ordering::SeqCst), 2);
        assert_eq!(h.last().attempts, 2);
    }
}

#[tokio::test]
async fn a_5xx_is_retried_with_the_same_call_id_and_the_next_attempt_number() {
    let server = serve(|i, _| {
        if i == 0 {
            Reply::raw(503, "busy")
        } else {
            continue_with(json!({"city": "Bergen"}))
        }
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("usher-attempt"), Some("1"));
    assert_eq!(seen[1].header("usher-attempt"), Some("2"));
    assert_eq!(
        seen[0].header("usher-call-id"),
        seen[1].header("usher-call-id")
    );
    assert_eq!(seen[0].body, seen[1].body);
    let record = h.last();
    assert_eq!(record.attempts, 2);
    assert_eq!(record.http_status, Some(200));
    assert_eq!(record.call_id, seen[0].header("usher-call-id").unwrap());

    // 502, 504 too; after the retries the failure stands.
    let always = serve_reply(|| Reply::raw(502, "bad gateway")).await;
    let h = harness(vec![ConnectorDefinition {
        retries: 2,
        ..connector("c", &always.url())
    }]);
    assert_eq!(h.failure(PAC, "c").await, "http5xx");
    assert_eq!(always.hits(), 3);
    assert_eq!(h.last().attempts, 3);
}

#[tokio::test]
async fn retry_after_is_honoured_when_it_fits_the_budget() {
    let server = serve(|i, _| {
        if i == 0 {
            Reply::raw(429, "slow down").header("retry-after", "1")
        } else {
            continue_with(json!({}))
        }
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    let started = Instant::now();
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(), 2);
    assert_eq!(h.last().attempts, 2);
}

#[tokio::test]
async fn retry_after_beyond_the_budget_fails_without_waiting() {
    let server = serve_reply(|| Reply::raw(429, "slow down").header("retry-after", "30")).await;
    let definition = ConnectorDefinition {
        budget: Duration::from_secs(3),
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    let started = Instant::now();
    assert_eq!(h.failure(PAC, "c").await, "http429");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.hits(), 1);
}

// ---------------------------------------------------------------------------------
// §4: authentication, signing and targets
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn basic_authentication() {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("usher:p@ss:word")
    );
    let server = serve(move |_, seen| {
        if seen.header("authorization") == Some(expected.as_str()) {
            continue_with(json!({}))
        } else {
            Reply::raw(401, "")
        }
    })
    .await;
    let good = ConnectorDefinition {
        authentication: ConnectorAuthentication::Basic {
            username: "usher".into(),
            password: Secret::new("p@ss:word"),
        },
        ..connector("good", &server.url())
    };
    let bad = ConnectorDefinition {
        authentication: ConnectorAuthentication::Basic {
            username: "usher".into(),
            password: Secret::new("nope-nope"),
        },
        ..connector("bad", &server.url())
    };
    let h = harness(vec![good, bad]);
    assert!(matches!(
        h.run(PAC, &["good"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(h.failure(PAC, "bad").await, "unauthorized");
    // No secret ends up in a record.
    for r in h.records() {
        let text = format!("{r:?}");
        assert!(!text.contains("p@ss:word") && !text.contains("nope-nope"));
    }
}

#[tokio::test]
async fn api_key_authentication() {
    let server = serve(|_, seen| {
        if seen.header("x-api-key") == Some("k-123456") {
            continue_with(json!({}))
        } else {
            Reply::raw(403, "")
        }
    })
    .await;
    let definition = ConnectorDefinition {
        authentication: ConnectorAuthentication::ApiKey {
            header: "X-Api-Key".into(),
            value: Secret::new("k-123456"),
        },
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition, connector("none", &server.url())]);
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(h.failure(PAC, "none").await, "forbidden");
}

#[tokio::test]
async fn oauth_client_credentials_are_cached_refreshed_and_refetched_on_401() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let revoked = Arc::new(AtomicUsize::new(0));
    let deny_all = Arc::new(AtomicUsize::new(0));
    let (f, r, d) = (fetches.clone(), revoked.clone(), deny_all.clone());
    let client_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("usher-client:s%26cret%3D1")
    );
    let server = serve(move |_, seen| {
        if seen.path == "/token" {
            let form = String::from_utf8_lossy(&seen.body).into_owned();
            if seen.header("authorization") != Some(client_auth.as_str())
                || !form.contains("grant_type=client_credentials")
                || !form.contains("scope=api%3A%2F%2Fconnector%2F.default")
            {
                return Reply::json(401, json!({"error": "invalid_client"}));
            }
            let n = f.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::json(
                200,
                json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 300}),
            );
        }
        if d.load(Ordering::SeqCst) == 1 {
            return Reply::raw(401, "");
        }
        let current = format!("Bearer tok-{}", f.load(Ordering::SeqCst));
        let revoked_token = format!("Bearer tok-{}", r.load(Ordering::SeqCst));
        match seen.header("authorization") {
            Some(a) if a == current && a != revoked_token => continue_with(json!({})),
            _ => Reply::raw(401, ""),
        }
    })
    .await;
    let definition = ConnectorDefinition {
        authentication: ConnectorAuthentication::OAuthClientCredentials {
            token_url: format!("http://{}/token", server.addr),
            client_id: "usher-client".into(),
            client_secret: Secret::new("s&cret=1"),
            scope: Some("api://connector/.default".into()),
        },
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    for _ in 0..3 {
        assert!(matches!(
            h.run(PAC, &["c"]).await,
            StepOutcome::Continue { .. }
        ));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the token is cached");

    // Sixty seconds before it expires, a new one is fetched.
    h.clock.advance(chrono::Duration::seconds(239));
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    h.clock.advance(chrono::Duration::seconds(2));
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);

    // A token revoked early: one 401, one new token, one more attempt.
    revoked.store(2, Ordering::SeqCst);
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
    assert_eq!(h.last().attempts, 2);

    // A 401 with a fresh token is a failure, after one refetch only.
    deny_all.store(1, Ordering::SeqCst);
    let before = fetches.load(Ordering::SeqCst);
    assert_eq!(h.failure(PAC, "c").await, "unauthorized");
    assert_eq!(fetches.load(Ordering::SeqCst), before + 1);
    assert_eq!(h.last().attempts, 2);

    // Bearer tokens never reach the records.
    for r in h.records() {
        assert!(!format!("{r:?}").contains("tok-"));
    }
}

#[tokio::test]
async fn a_failing_token_endpoint_fails_the_call() {
    let server = serve(|_, seen| {
        if seen.path == "/token" {
            Reply::json(400, json!({"error": "invalid_client"}))
        } else {
            continue_with(json!({}))
        }
    })
    .await;
    let definition = ConnectorDefinition {
        authentication: ConnectorAuthentication::OAuthClientCredentials {
            token_url: format!("http://{}/token", server.addr),
            client_id: "x".into(),
            client_secret: Secret::new("y"),
            scope: None,
        },
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    assert_eq!(h.failure(PAC, "c").await, "tokenRequestFailed");
    assert!(server.seen().iter().all(|s| s.path == "/token"));
}

#[tokio::test]
async fn requests_are_signed_with_every_secret() {
    let raw_key = b"0123456789abcdef0123456789abcdef".to_vec();
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(&raw_key)
    );
    let keys = [raw_key, b"plain-old-secret".to_vec()];
    let server = serve(move |_, seen| {
        let id = seen.header("webhook-id").unwrap_or_default();
        let ts = seen.header("webhook-timestamp").unwrap_or_default();
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(&seen.body);
        let expected: Vec<String> = keys
            .iter()
            .map(|k| {
                let tag =
                    ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k), &signed);
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
                )
            })
            .collect();
        let got: Vec<String> = seen
            .header("webhook-signature")
            .unwrap_or_default()
            .split(' ')
            .map(str::to_owned)
            .collect();
        if got == expected && Some(id) == seen.header("usher-call-id") {
            continue_with(json!({}))
        } else {
            Reply::raw(401, "bad signature")
        }
    })
    .await;
    let definition = ConnectorDefinition {
        signing_secrets: vec![Secret::new(whsec), Secret::new("plain-old-secret")],
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    let seen = &server.seen()[0];
    let ts: i64 = seen.header("webhook-timestamp").unwrap().parse().unwrap();
    assert_eq!(ts, h.clock_now());
}

impl Harness {
    fn clock_now(&self) -> i64 {
        use usher_domain::Clock;
        self.clock.now().timestamp()
    }
}

#[tokio::test]
async fn non_public_targets_and_plain_http_are_refused_unless_allowed() {
    let server = serve_reply(|| continue_with(json!({}))).await;
    let strict = RunnerSettings {
        targets: TargetPolicy::default(),
        record_bodies: false,
        ..Default::default()
    };
    let port = server.addr.port();
    let h = harness_with(
        vec![
            connector("http-ip", &format!("http://127.0.0.1:{port}/api")),
            connector("https-ip", &format!("https://127.0.0.1:{port}/api")),
            connector(
                "https-mapped",
                &format!("https://[::ffff:127.0.0.1]:{port}/api"),
            ),
            connector("https-name", &format!("https://localhost:{port}/api")),
            connector("http-name", &format!("http://localhost:{port}/api")),
        ],
        strict,
        MemoryCalls::default(),
    );
    for id in [
        "http-ip",
        "https-ip",
        "https-mapped",
        "https-name",
        "http-name",
    ] {
        assert_eq!(h.failure(PAC, id).await, "targetNotAllowed", "{id}");
        // IP literals are refused before any attempt; names when they resolve, inside
        // the first attempt (and never retried).
        let attempts = u32::from(id == "https-name");
        assert_eq!(h.last().attempts, attempts, "{id}");
    }
    assert_eq!(server.hits(), 0, "the server is never reached");
}

#[tokio::test]
async fn misconfigured_connectors_fail_without_calling() {
    let server = serve_reply(|| continue_with(json!({}))).await;
    let bad_header = ConnectorDefinition {
        authentication: ConnectorAuthentication::ApiKey {
            header: "not a header".into(),
            value: Secret::new("v"),
        },
        ..connector("header", &server.url())
    };
    let bad_roots = harness_with(
        vec![connector("roots", &server.url())],
        RunnerSettings {
            extra_root_certificates: vec![
                "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n".into(),
            ],
            ..settings()
        },
        MemoryCalls::default(),
    );
    let h = harness(vec![bad_header, connector("url", "not a url")]);
    for id in ["header", "url"] {
        assert_eq!(h.failure(PAC, id).await, "configurationError", "{id}");
        assert_eq!(h.last().attempts, 0);
    }
    assert_eq!(bad_roots.failure(PAC, "roots").await, "configurationError");
    assert_eq!(server.hits(), 0);
}

// ---------------------------------------------------------------------------------
// Mutual TLS with client certificates
// ---------------------------------------------------------------------------------

struct Pki {
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Usher Test CA");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2090, 1, 1);
    let ca = params.self_signed(&ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca,
        ca_key,
    }
}

impl Pki {
    fn issue(
        &self,
        names: &[&str],
        usage: rcgen::ExtendedKeyUsagePurpose,
        from: i32,
        to: i32,
    ) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(
            names
                .iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        params.extended_key_usages = vec![usage];
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert, key)
    }
}

/// A TLS listener that requires a client certificate issued by the test CA and notes
/// the certificate each connection presented.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    peers: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client without an acceptable certificate fails here; keep listening.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                if let Some(certs) = tls.get_ref().1.peer_certificates() {
                    if let Some(leaf) = certs.first() {
                        self.peers.lock().unwrap().push(leaf.to_vec());
                    }
                }
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn pkcs12(cert: &rcgen::Certificate, key: &rcgen::KeyPair, password: &str) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        b"usher-test".to_vec(),
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    store.add_entry(
        "client",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().unwrap()
}

#[tokio::test]
async fn client_certificates_authenticate_with_the_newest_valid_upload() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let pki = pki();
    let (server_cert, server_key) = pki.issue(
        &["localhost", "127.0.0.1"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        2020,
        2090,
    );
    let (valid_cert, valid_key) = pki.issue(
        &["usher-client"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        2020,
        2090,
    );
    let (expired_cert, expired_key) = pki.issue(
        &["usher-client-old"],
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        2020,
        2022,
    );

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca.der().to_vec()))
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        peers: peers.clone(),
    };
    let app = router(
        Arc::new(|_, _| continue_with(json!({"city": "Stavanger"}))),
        seen.clone(),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let url = format!("https://localhost:{}/api", addr.port());
    let uploaded = |y: i32| -> chrono::DateTime<chrono::Utc> {
        format!("{y}-01-01T00:00:00Z").parse().unwrap()
    };
    let with_certs = ConnectorDefinition {
        authentication: ConnectorAuthentication::ClientCertificate {
            certificates: vec![
                ClientCertificate {
                    source: CertificateSource::Pkcs12 {
                        der: pkcs12(&valid_cert, &valid_key, "pfx-password"),
                        password: Secret::new("pfx-password"),
                    },
                    uploaded_at: uploaded(2021),
                },
                // Newer, but expired: skipped.
                ClientCertificate {
                    source: CertificateSource::Pem {
                        chain: expired_cert.pem(),
                        key: Secret::new(expired_key.serialize_pem()),
                    },
                    uploaded_at: uploaded(2023),
                },
            ],
        },
        ..connector("mtls", &url)
    };
    let only_expired = ConnectorDefinition {
        authentication: ConnectorAuthentication::ClientCertificate {
            certificates: vec![ClientCertificate {
                source: CertificateSource::Pem {
                    chain: expired_cert.pem(),
                    key: Secret::new(expired_key.serialize_pem()),
                },
                uploaded_at: uploaded(2023),
            }],
        },
        ..connector("expired", &url)
    };
    let pem_only = ConnectorDefinition {
        authentication: ConnectorAuthentication::ClientCertificate {
            certificates: vec![ClientCertificate {
                source: CertificateSource::Pem {
                    chain: valid_cert.pem(),
                    key: Secret::new(valid_key.serialize_pem()),
                },
                uploaded_at: uploaded(2021),
            }],
        },
        ..connector("pem", &url)
    };
    let without = ConnectorDefinition {
        retries: 0,
        ..connector("none", &url)
    };
    let h = harness_with(
        vec![with_certs, only_expired, pem_only, without],
        RunnerSettings {
            extra_root_certificates: vec![pki.ca_pem.clone()],
            ..settings()
        },
        MemoryCalls::default(),
    );

    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["mtls"]).await else {
        panic!(
            "mutual TLS with the valid certificate must work: {:?}",
            h.last()
        );
    };
    assert_eq!(
        attributes["city"],
        AttributeValue::String("Stavanger".into())
    );
    assert_eq!(
        peers.lock().unwrap().last().unwrap(),
        &valid_cert.der().to_vec()
    );

    assert!(matches!(
        h.run(PAC, &["pem"]).await,
        StepOutcome::Continue { .. }
    ));

    let hits = seen.lock().unwrap().len();
    assert_eq!(h.failure(PAC, "expired").await, "noValidCertificate");
    assert_eq!(h.last().attempts, 0);
    let reason = h.failure(PAC, "none").await;
    assert!(
        ["tlsFailed", "connectionReset"].contains(&reason.as_str()),
        "without a client certificate: {reason}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        hits,
        "the API never saw those calls"
    );

    // The server certificate must come from a trusted CA: the same connector without
    // the extra root fails, and says why.
    let own_root = ConnectorDefinition {
        authentication: ConnectorAuthentication::ClientCertificate {
            certificates: vec![ClientCertificate {
                source: CertificateSource::Pem {
                    chain: valid_cert.pem(),
                    key: Secret::new(valid_key.serialize_pem()),
                },
                uploaded_at: uploaded(2021),
            }],
        },
        extra_root_certificates: vec![pki.ca_pem.clone()],
        ..connector("own-root", &url)
    };
    let untrusted = harness(vec![connector("mtls", &url), own_root]);
    assert_eq!(untrusted.failure(PAC, "mtls").await, "tlsFailed");
    // A root of the connector's own is enough, without the operator's.
    let StepOutcome::Continue { .. } = untrusted.run(PAC, &["own-root"]).await else {
        panic!(
            "the connector's own root must be trusted: {:?}",
            untrusted.last()
        );
    };
}

// ---------------------------------------------------------------------------------
// Circuit breaker, failure policy, ordering
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_closes_after_a_good_trial() {
    let healthy = Arc::new(AtomicUsize::new(0));
    let flag = healthy.clone();
    let server = serve(move |_, _| {
        if flag.load(Ordering::SeqCst) == 1 {
            continue_with(json!({}))
        } else {
            Reply::raw(500, "down")
        }
    })
    .await;
    let definition = ConnectorDefinition {
        breaker: BreakerSettings {
            failure_threshold: 3,
            open_for: Duration::from_secs(30),
        },
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    for _ in 0..3 {
        assert_eq!(h.failure(PAC, "c").await, "http5xx");
    }
    assert_eq!(server.hits(), 3);
    assert_eq!(h.runner.breaker_state("c"), Some(BreakerState::Open));
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(h.failure(PAC, "c").await, "circuitOpen");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(h.last().attempts, 0);
    }
    assert_eq!(server.hits(), 3, "an open breaker makes no HTTP call");

    h.clock.advance(chrono::Duration::seconds(29));
    assert_eq!(h.failure(PAC, "c").await, "circuitOpen");
    h.clock.advance(chrono::Duration::seconds(1));
    healthy.store(1, Ordering::SeqCst);
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(server.hits(), 4);
    assert_eq!(h.runner.breaker_state("c"), Some(BreakerState::Closed));
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
    assert_eq!(server.hits(), 5);
    assert_eq!(h.metrics.calls("c", "PostAttributeCollection", "failed"), 8);
}

#[tokio::test]
async fn a_tenant_edit_keeps_the_breakers_of_connectors_it_did_not_touch() {
    let down = serve_reply(|| Reply::raw(500, "down")).await;
    let breaker = BreakerSettings {
        failure_threshold: 1,
        open_for: Duration::from_mins(1),
    };
    let a = ConnectorDefinition {
        breaker,
        ..connector("a", &down.url())
    };
    let b = ConnectorDefinition {
        breaker,
        ..connector("b", &down.url())
    };
    let h = harness(vec![a.clone(), b.clone()]);
    assert_eq!(h.failure(PAC, "a").await, "http5xx");
    assert_eq!(h.failure(PAC, "b").await, "http5xx");
    assert_eq!(h.runner.breaker_state("a"), Some(BreakerState::Open));
    assert_eq!(h.runner.breaker_state("b"), Some(BreakerState::Open));

    // The edit changes A's timeout; B is as it was.
    let edited_a = ConnectorDefinition {
        timeout: Duration::from_millis(1500),
        ..a
    };
    let next = h
        .runner
        .succeed(vec![edited_a, b.clone()], Arc::new(tenant()), settings());
    assert_eq!(next.breaker_state("a"), Some(BreakerState::Closed));
    assert_eq!(next.breaker_state("b"), Some(BreakerState::Open));
    let hits = down.hits();
    let identities = identities();
    let ids = vec!["b".to_owned()];
    let outcome = next
        .run(StepRequest {
            step: PAC,
            flow_id: "flow-43",
            user_flow_id: FLOW,
            connector_ids: &ids,
            client_id: "client-7",
            ui_locales: "en-US",
            email: None,
            identities: &identities,
            attributes: &attributes(),
            run_key: None,
            client_ip: None,
            user: None,
            otp: None,
        })
        .await;
    assert!(matches!(outcome, StepOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(h.last().failure_reason.as_deref(), Some("circuitOpen"));
    assert_eq!(down.hits(), hits, "B's open breaker still spares the API");

    // Other operator settings are another transport: nothing carries over.
    let fresh = next.succeed(
        vec![b],
        Arc::new(tenant()),
        RunnerSettings {
            record_bodies: false,
            ..settings()
        },
    );
    assert_eq!(fresh.breaker_state("b"), Some(BreakerState::Closed));
}

#[tokio::test]
async fn a_failing_trial_opens_the_breaker_again() {
    let server = serve_reply(|| Reply::raw(500, "down")).await;
    let definition = ConnectorDefinition {
        breaker: BreakerSettings {
            failure_threshold: 1,
            open_for: Duration::from_secs(10),
        },
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition]);
    assert_eq!(h.failure(PAC, "c").await, "http5xx");
    assert_eq!(h.failure(PAC, "c").await, "circuitOpen");
    h.clock.advance(chrono::Duration::seconds(10));
    assert_eq!(h.failure(PAC, "c").await, "http5xx");
    assert_eq!(h.failure(PAC, "c").await, "circuitOpen");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_fail_open_connector_continues_without_changes() {
    let down = serve_reply(|| Reply::raw(500, "down")).await;
    let up = serve_reply(|| continue_with(json!({"city": "Tromsø"}))).await;
    let definition = ConnectorDefinition {
        failure_policy: FailurePolicy::Continue,
        ..connector("optional", &down.url())
    };
    let h = harness(vec![definition, connector("next", &up.url())]);
    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["optional"]).await else {
        panic!("fail-open must continue");
    };
    assert_eq!(attributes, self::attributes());
    let record = h.last();
    assert_eq!(record.outcome, "failed");
    assert_eq!(record.failure_reason.as_deref(), Some("http5xx"));
    // The next connector still runs.
    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["optional", "next"]).await else {
        panic!("expected Continue");
    };
    assert_eq!(attributes["city"], AttributeValue::String("Tromsø".into()));
    // An account-recovery gate never fails open.
    assert!(matches!(
        h.run(ConnectorStep::PreAccountRecovery, &["optional"])
            .await,
        StepOutcome::Failed { .. }
    ));
}

#[tokio::test]
async fn connectors_run_in_order_each_seeing_the_changes_before_it() {
    let first = serve_reply(|| continue_with(json!({"city": "Bergen", "givenName": ""}))).await;
    let second = serve(|_, seen| {
        let body = seen.json();
        let tier = if body["city"] == json!("Bergen") && body.get("givenName").is_none() {
            "gold"
        } else {
            "stale"
        };
        continue_with(json!({"extension_Loyalty": tier}))
    })
    .await;
    let blocker = serve_reply(|| {
        Reply::json(200, json!({"version": "1.0.0", "action": "ShowBlockPage", "userMessage": "Waiting for approval"}))
    })
    .await;
    let h = harness(vec![
        connector("first", &first.url()),
        connector("second", &second.url()),
        connector("blocker", &blocker.url()),
    ]);
    let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["first", "second"]).await else {
        panic!("expected Continue");
    };
    assert_eq!(attributes["city"], AttributeValue::String("Bergen".into()));
    assert_eq!(
        attributes[&ext("Loyalty")],
        AttributeValue::String("gold".into())
    );
    assert!(!attributes.contains_key("givenName"));

    let hits = second.hits();
    assert_eq!(
        h.run(PAC, &["blocker", "second"]).await,
        StepOutcome::Block {
            user_message: "Waiting for approval".into(),
            title: None,
        }
    );
    assert_eq!(second.hits(), hits, "the second connector is never called");
}

#[tokio::test]
async fn token_claims_of_several_connectors_are_merged() {
    let a = serve_reply(|| continue_with(json!({"tier": "gold", "region": "eu"}))).await;
    let b = serve_reply(|| continue_with(json!({"region": "us"}))).await;
    let h = harness(vec![connector("a", &a.url()), connector("b", &b.url())]);
    let StepOutcome::Continue { token_claims, .. } = h.run(PTI, &["a", "b"]).await else {
        panic!("expected Continue");
    };
    assert_eq!(
        Value::Object(token_claims),
        json!({"tier": "gold", "region": "us"})
    );
}

// ---------------------------------------------------------------------------------
// §6: records and metrics
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_call_is_recorded_with_its_fields() {
    let server =
        serve_reply(|| continue_with(json!({"city": "Bergen", "password": "leaked?"}))).await;
    let definition = ConnectorDefinition {
        authentication: ConnectorAuthentication::ApiKey {
            header: "x-api-key".into(),
            value: Secret::new("super-secret-key"),
        },
        ..connector("c", &server.url())
    };
    let h = harness(vec![definition.clone()]);
    let mut attrs = attributes();
    attrs.insert("password".into(), AttributeValue::String("hunter2".into()));
    h.run_with(PAC, &["c"], &attrs).await;
    let r = h.last();
    assert_eq!(r.connector_id, "c");
    assert_eq!(r.user_flow_id, FLOW);
    assert_eq!(r.step, "PostAttributeCollection");
    assert_eq!(r.flow_id, "flow-42");
    assert_eq!(r.attempts, 1);
    assert_eq!(r.http_status, Some(200));
    assert!(r.latency_ms >= 0 && r.latency_ms < 3000);
    assert_eq!(r.outcome, "continue");
    assert_eq!(r.failure_reason, None);
    assert!(r.warnings.is_empty());
    use usher_domain::Clock;
    assert_eq!(r.created_at, h.clock.now());
    let request_body: Value = serde_json::from_str(r.request_body.as_deref().unwrap()).unwrap();
    assert_eq!(request_body["city"], json!("Oslo"));
    assert!(request_body.get("password").is_none());
    let response_body = r.response_body.unwrap();
    assert!(response_body.contains("Bergen"));
    assert!(!response_body.contains("leaked?"));
    assert!(!format!("{:?}", h.records()).contains("super-secret-key"));

    // Bodies only when the operator asks for them.
    let quiet = harness_with(
        vec![definition],
        RunnerSettings {
            record_bodies: false,
            ..settings()
        },
        MemoryCalls::default(),
    );
    quiet.run(PAC, &["c"]).await;
    let r = quiet.last();
    assert!(r.request_body.is_none() && r.response_body.is_none());
}

#[tokio::test]
async fn an_unknown_connector_fails_with_a_recorded_reference() {
    let h = harness(vec![]);
    assert_eq!(h.failure(PAC, "ghost").await, "unknownConnector");
    assert_eq!(h.last().connector_id, "ghost");
}

#[tokio::test]
async fn a_storage_failure_does_not_fail_the_sign_up() {
    let server = serve_reply(|| continue_with(json!({"city": "Bergen"}))).await;
    let h = harness_with(
        vec![connector("c", &server.url())],
        settings(),
        MemoryCalls {
            broken: true,
            ..Default::default()
        },
    );
    assert!(matches!(
        h.run(PAC, &["c"]).await,
        StepOutcome::Continue { .. }
    ));
}

#[tokio::test]
async fn metrics_count_calls_by_connector_step_and_outcome() {
    let ok = serve_reply(|| continue_with(json!({}))).await;
    let down = serve_reply(|| Reply::raw(500, "")).await;
    let h = harness(vec![
        connector("ok", &ok.url()),
        connector("down", &down.url()),
    ]);
    h.run(PAC, &["ok"]).await;
    h.run(PAC, &["ok"]).await;
    h.run(PFS, &["down"]).await;
    let text = h.metrics.render_prometheus();
    assert!(text.contains(
        "usher_connector_calls_total{connector=\"ok\",step=\"PostAttributeCollection\",outcome=\"continue\"} 2\n"
    ), "{text}");
    assert!(text.contains(
        "usher_connector_calls_total{connector=\"down\",step=\"PostFederationSignup\",outcome=\"failed\"} 1\n"
    ));
    assert!(text.contains(
        "usher_connector_call_duration_seconds_count{connector=\"ok\",step=\"PostAttributeCollection\",outcome=\"continue\"} 2\n"
    ));
    assert!(text.contains("usher_connector_call_duration_seconds_bucket{connector=\"ok\",step=\"PostAttributeCollection\",outcome=\"continue\",le=\"30\"} 2\n"));
    assert!(Arc::ptr_eq(h.runner.metrics(), &h.metrics));
}

// ---------------------------------------------------------------------------------
// The diagnostic probe
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn probe_shows_the_masked_request_the_answer_and_its_reading() {
    let server = serve_reply(|| {
        Reply::json(200, json!({"action": "Continue", "city": "Bergen", "extension_Loyalty": "gold", "email": "x@y.z"}))
            .header("x-trace", "abc")
    })
    .await;
    let definition = ConnectorDefinition {
        authentication: ConnectorAuthentication::ApiKey {
            header: "x-api-key".into(),
            value: Secret::new("probe-api-key"),
        },
        signing_secrets: vec![Secret::new("probe-signing-secret")],
        ..connector("probe-me", &server.url())
    };
    let mut claims = Map::new();
    claims.insert("email".into(), json!("john@example.com"));
    claims.insert("city".into(), json!("Oslo"));
    let report = probe(&definition, PAC, claims.clone(), &settings()).await;
    assert_eq!(server.hits(), 1);
    let seen = &server.seen()[0];
    assert_eq!(seen.header("x-api-key"), Some("probe-api-key"));
    assert_eq!(seen.json()["step"], json!("PostAttributeCollection"));

    assert_eq!(report.connector_id, "probe-me");
    assert_eq!(report.request.method, "POST");
    assert_eq!(report.request.url, server.url());
    let header = |name: &str| {
        report
            .request
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.clone())
    };
    assert_eq!(header("x-api-key").as_deref(), Some("******"));
    assert_eq!(header("webhook-signature").as_deref(), Some("******"));
    assert_eq!(header("usher-call-id"), Some(report.call_id.clone()));
    assert_eq!(header("usher-attempt").as_deref(), Some("1"));
    assert!(report.request.body.contains("\"city\":\"Oslo\""));
    let response = report.response.as_ref().unwrap();
    assert_eq!(response.status, 200);
    assert!(response
        .headers
        .iter()
        .any(|h| h.name == "x-trace" && h.value == "abc"));
    assert!(response.body.contains("Bergen"));
    assert_eq!(report.attempts, 1);
    assert_eq!(report.interpretation.outcome, "continue");
    assert_eq!(report.interpretation.claims["city"], json!("Bergen"));
    assert_eq!(
        report.interpretation.claims["extension_Loyalty"],
        json!("gold")
    );
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);

    let text = report.to_string();
    assert!(text.contains("Outcome    continue"));
    assert!(text.contains("x-api-key: ******"));
    assert!(!text.contains("probe-api-key") && !text.contains("probe-signing-secret"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["interpretation"]["outcome"], json!("continue"));
    assert!(!json.to_string().contains("probe-api-key"));

    // With the tenant's schema, claims are read as a sign-up would.
    let t = tenant();
    let report = probe_with_schema(
        &definition,
        PAC,
        claims.clone(),
        &settings(),
        Some(ProbeSchema {
            tenant: &t,
            user_flow_id: Some(FLOW),
        }),
        None,
    )
    .await;
    assert_eq!(report.interpretation.claims[&ext("Loyalty")], json!("gold"));

    // A failure is reported with its reason, and the probe ignores breakers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let report = probe(
        &connector("gone", &format!("http://{closed}/api")),
        PTI,
        Map::new(),
        &settings(),
    )
    .await;
    assert_eq!(report.interpretation.outcome, "failed");
    assert_eq!(
        report
            .interpretation
            .failure_reason
            .map(usher_connectors::FailureReason::as_str),
        Some("connectionRefused")
    );
    assert!(report.response.is_none());
    assert!(report.to_string().contains("failed: connectionRefused"));

    let report = probe(&definition, PAC, Map::new(), &RunnerSettings::default()).await;
    assert_eq!(
        report
            .interpretation
            .failure_reason
            .map(usher_connectors::FailureReason::as_str),
        Some("targetNotAllowed")
    );
    assert_eq!(report.attempts, 0);
    assert_eq!(server.hits(), 2);
}

// ---------------------------------------------------------------------------------
// Custom authentication extensions (Entra External ID's contract)
// ---------------------------------------------------------------------------------

/// Stands in for Usher's token keys (signatures are checked against a real JWKS in
/// the end-to-end tests): a JWT whose payload is the claims.
struct TestSigner {
    signed: AtomicUsize,
}

#[async_trait]
impl usher_connectors::TokenSigner for TestSigner {
    fn issuer(&self) -> &'static str {
        "https://id.example"
    }

    async fn sign(&self, claims: &Value) -> Result<String, String> {
        self.signed.fetch_add(1, Ordering::SeqCst);
        let part =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        Ok(format!(
            "{}.{}.c2ln",
            part(&json!({"alg": "ES256", "typ": "JWT"})),
            part(claims)
        ))
    }
}

fn extension_connector(id: &str, server: &Server) -> ConnectorDefinition {
    ConnectorDefinition::extension(id, server.url(), format!("api://{}/app-1", server.addr))
}

fn extension_harness(definitions: Vec<ConnectorDefinition>) -> (Harness, Arc<TestSigner>) {
    let signer = Arc::new(TestSigner {
        signed: AtomicUsize::new(0),
    });
    let calls = Arc::new(MemoryCalls::default());
    let clock = MockClock::default();
    let metrics = Arc::new(Metrics::new());
    let runner = ConnectorRunner::with_signer(
        definitions,
        Arc::new(tenant()),
        calls.clone(),
        Arc::new(clock.clone()),
        RunnerSettings {
            issuer: "https://id.example".into(),
            ..settings()
        },
        metrics.clone(),
        signer.clone(),
    );
    (
        Harness {
            runner,
            calls,
            clock,
            metrics,
        },
        signer,
    )
}

fn submit_action(action: Value) -> Reply {
    Reply::json(
        200,
        json!({"data": {"@odata.type": "microsoft.graph.onAttributeCollectionSubmitResponseData",
                        "actions": [action]}}),
    )
}

#[tokio::test]
async fn each_way_an_extension_fails_is_recorded_with_its_entra_code() {
    let ok = || {
        submit_action(
            json!({"@odata.type": "microsoft.graph.attributeCollectionSubmit.continueWithDefaultBehavior"}),
        )
    };
    let cases: Vec<(u32, ReplyFn)> = vec![
        (1_003_002, Arc::new(|| Reply::json(404, json!({})))),
        (1_003_002, Arc::new(|| Reply::json(500, json!({})))),
        (
            1_003_003,
            Arc::new(|| Reply::raw(200, "{oops").header("content-type", "application/json")),
        ),
        (1_003_004, Arc::new(|| Reply::json(429, json!({})))),
        (
            1_003_006,
            Arc::new(move || Reply::raw(200, ok().body).header("content-type", "text/html")),
        ),
        (
            1_003_010,
            Arc::new(|| Reply::json(200, json!({"data": {"actions": []}}))),
        ),
        (
            1_003_012,
            Arc::new(|| {
                submit_action(
                    json!({"@odata.type": "microsoft.graph.attributeCollectionStart.setPrefillValues", "inputs": {}}),
                )
            }),
        ),
        (
            1_003_024,
            Arc::new(|| {
                Reply::raw(200, vec![b' '; usher_connectors::MAX_BODY_BYTES + 10])
                    .header("content-type", "application/json")
            }),
        ),
    ];
    for (code, reply) in cases {
        let server = serve_reply(move || reply()).await;
        let (h, signer) = extension_harness(vec![extension_connector("x", &server)]);
        let reason = h.failure(PAC, "x").await;
        let record = h.last();
        assert_eq!(
            record.error_code,
            Some(i64::from(code)),
            "{reason}: {record:?}"
        );
        assert!(signer.signed.load(Ordering::SeqCst) >= 1);
    }

    // Timed out: 1003005 (the contract's one retry, then no more time).
    let server =
        serve_reply(|| Reply::json(200, json!({})).after(Duration::from_millis(900))).await;
    let mut slow = extension_connector("slow", &server);
    slow.timeout = Duration::from_millis(200);
    slow.budget = Duration::from_millis(400);
    let (h, _) = extension_harness(vec![slow]);
    h.failure(PAC, "slow").await;
    assert_eq!(h.last().error_code, Some(1_003_005));

    // Nobody listening: a connection error, 1003027.
    let (listener, _) = usher_testkit::net::bind().await;
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (h, _) = extension_harness(vec![ConnectorDefinition::extension(
        "gone",
        format!("http://{addr}/api"),
        format!("api://{addr}/app-1"),
    )]);
    h.failure(PAC, "gone").await;
    assert_eq!(h.last().error_code, Some(1_003_027));

    // A resource id for another host: refused before any call, 1003020.
    let server = serve_reply(ok).await;
    let mut elsewhere = extension_connector("elsewhere", &server);
    elsewhere.authentication = ConnectorAuthentication::IssuedToken {
        resource_id: "api://other.example/app-1".into(),
        caller_id: usher_domain::ENTRA_EXTENSION_CALLER_ID.into(),
    };
    let (h, _) = extension_harness(vec![elsewhere]);
    h.failure(PAC, "elsewhere").await;
    assert_eq!(h.last().error_code, Some(1_003_020));
    assert_eq!(server.hits(), 0);

    // Plain http without the operator's permission: 1003014.
    let server = serve_reply(ok).await;
    let calls = MemoryCalls::default();
    let strict = harness_with(
        vec![extension_connector("plain", &server)],
        RunnerSettings::default(),
        calls,
    );
    strict.failure(PAC, "plain").await;
    assert_eq!(strict.last().error_code, Some(1_003_014));

    // A resource id that is not api://<host>/<app id> (every entry point refuses
    // one; the runner checks again before it calls): 1003015.
    let server = serve_reply(ok).await;
    let mut malformed = extension_connector("malformed", &server);
    malformed.authentication = ConnectorAuthentication::IssuedToken {
        resource_id: "https://not-an-api-uri".into(),
        caller_id: usher_domain::ENTRA_EXTENSION_CALLER_ID.into(),
    };
    let (h, _) = extension_harness(vec![malformed]);
    h.failure(PAC, "malformed").await;
    assert_eq!(h.last().error_code, Some(1_003_015));
    assert_eq!(server.hits(), 0);

    // Plain http allowed, but an address the operator has not opened: 1003023.
    let private =
        ConnectorDefinition::extension("private", "http://10.1.2.3/api", "api://10.1.2.3/app-1");
    let http_only = harness_with(
        vec![private],
        RunnerSettings {
            targets: TargetPolicy {
                allow_http: true,
                ..TargetPolicy::default()
            },
            ..RunnerSettings::default()
        },
        MemoryCalls::default(),
    );
    http_only.failure(PAC, "private").await;
    assert_eq!(http_only.last().error_code, Some(1_003_023));

    // A 1.0.0 connector's failures carry no Entra code.
    let server = serve_reply(|| Reply::json(500, json!({}))).await;
    let h = harness(vec![connector("old", &server.url())]);
    h.failure(PAC, "old").await;
    assert_eq!(h.last().error_code, None);
}

#[tokio::test]
async fn an_extension_gets_its_envelope_and_an_issued_token_reused_while_fresh() {
    let server = serve(|_, _| {
        submit_action(
            json!({"@odata.type": "microsoft.graph.attributeCollectionSubmit.modifyAttributeValues",
                             "attributes": {"displayName": "From the API"}}),
        )
    })
    .await;
    let (h, signer) = extension_harness(vec![extension_connector("x", &server)]);
    for _ in 0..2 {
        let StepOutcome::Continue { attributes, .. } = h.run(PAC, &["x"]).await else {
            panic!("expected Continue");
        };
        assert_eq!(
            attributes["displayName"],
            AttributeValue::String("From the API".into())
        );
    }
    assert_eq!(
        signer.signed.load(Ordering::SeqCst),
        1,
        "one token for both calls"
    );
    let seen = server.seen();
    let bearer = seen[0]
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    let claims = usher_testkit::oauth::payload(bearer);
    assert_eq!(claims["aud"], format!("api://{}/app-1", server.addr));
    assert_eq!(claims["azp"], usher_domain::ENTRA_EXTENSION_CALLER_ID);
    assert_eq!(claims["iss"], "https://id.example");
    assert_eq!(
        seen[1].header("authorization"),
        seen[0].header("authorization")
    );
    let body = seen[0].json();
    assert_eq!(
        body["type"],
        "microsoft.graph.authenticationEvent.attributeCollectionSubmit"
    );
    assert_eq!(
        body["data"]["authenticationContext"]["correlationId"],
        h.records()[0].call_id
    );
    // Past its refresh time, a new one.
    h.clock.advance(chrono::Duration::minutes(10));
    h.run(PAC, &["x"]).await;
    assert_eq!(signer.signed.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_1_0_0_connector_at_attribute_collection_start_prefills() {
    let server = serve(|_, _| continue_with(json!({"displayName": "Prefilled"}))).await;
    let h = harness(vec![connector("c", &server.url())]);
    let StepOutcome::Continue { attributes, .. } =
        h.run(ConnectorStep::AttributeCollectionStart, &["c"]).await
    else {
        panic!("expected Continue");
    };
    assert_eq!(
        attributes["displayName"],
        AttributeValue::String("Prefilled".into())
    );
    assert_eq!(server.seen()[0].json()["step"], "AttributeCollectionStart");
    // A ValidationError has no page to show yet.
    let server = serve(|_, _| {
        Reply::json(400, json!({"version": "1.0.0", "status": 400, "action": "ValidationError", "userMessage": "x"}))
    })
    .await;
    let h = harness(vec![connector("c", &server.url())]);
    assert_eq!(
        h.failure(ConnectorStep::AttributeCollectionStart, "c")
            .await,
        "validationErrorNotAllowed"
    );
}

#[tokio::test]
async fn the_code_and_the_token_never_reach_the_record_even_when_echoed() {
    // An API that echoes what it got as plain text (and fails).
    let server = serve(|_, seen| {
        let mut echo = String::from_utf8_lossy(&seen.body).into_owned();
        echo.push_str(seen.header("authorization").unwrap_or(""));
        Reply::raw(500, echo)
    })
    .await;
    let mut otp = extension_connector("otp", &server);
    otp.retries = 0;
    let (h, _) = extension_harness(vec![otp]);
    let ids = vec!["otp".to_owned()];
    let outcome = h
        .runner
        .run(StepRequest {
            step: ConnectorStep::EmailOtpSend,
            flow_id: "flow-1",
            user_flow_id: FLOW,
            connector_ids: &ids,
            client_id: "client-7",
            ui_locales: "en",
            email: Some("kim@example.com"),
            identities: &[],
            attributes: &AttributeValues::new(),
            run_key: None,
            client_ip: None,
            user: None,
            otp: Some(usher_connectors::OtpContext {
                identifier: "kim@example.com",
                code: "482913",
                request_type: "signUp",
            }),
        })
        .await;
    assert!(matches!(outcome, StepOutcome::Failed { .. }), "{outcome:?}");
    let record = h.last();
    let seen = server.seen();
    let token = seen[0]
        .header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned();
    for body in [record.request_body.unwrap(), record.response_body.unwrap()] {
        assert!(!body.contains("482913"), "{body}");
        assert!(!body.contains(&token), "{body}");
    }
}
