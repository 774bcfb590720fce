//! What Usher adds to a connector call: the same loopback endpoint (answering
//! `Continue` at once) called through `ConnectorRunner` (request building, headers,
//! signing, breaker, interpretation, call record, metrics) and with bare reqwest
//! POSTs; and the same for a custom authentication extension (the event envelope,
//! the token Usher issues, cached, and the one-action answer). Iterations alternate
//! so all see the same machine state.
//!
//! `cargo bench -p usher-connectors --bench connector_overhead` (set
//! `USHER_BENCH_CALLS` to change the number of calls, 2000 by default).
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive Usher from outside, with the real clock, their own HTTP clients and random names"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a benchmark reads best as one run, set-up to report"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use usher_connectors::{
    ConnectorRunner, Metrics, RunnerSettings, StepConnectors, StepOutcome, StepRequest,
};
use usher_domain::{
    AttributeAssignment, AttributeDefinition, AttributeValue, AttributeValues, ConnectorDefinition,
    ConnectorSlots, ConnectorStep, DataType, Identity, Secret, SignInType, SystemClock, Tenant,
    UserFlow, UserInputType,
};
use usher_storage::{CallFilter, ConnectorCallRecord, ConnectorCallRepository};

const APP: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// Signs issued tokens with an ES256 key of its own, as Usher's token keys do.
struct Es256Signer(ring::signature::EcdsaKeyPair);

impl Es256Signer {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Self(ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap())
    }
}

#[async_trait]
impl usher_connectors::TokenSigner for Es256Signer {
    fn issuer(&self) -> &'static str {
        "https://id.example"
    }

    async fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"ES256","typ":"JWT","kid":"bench"}"#),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .0
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .map_err(|e| e.to_string())?;
        Ok(format!("{input}.{}", b64(signature.as_ref())))
    }
}

#[derive(Default)]
struct MemoryCalls(Mutex<Vec<ConnectorCallRecord>>);

#[async_trait]
impl ConnectorCallRepository for MemoryCalls {
    async fn insert_connector_call(
        &self,
        record: &ConnectorCallRecord,
    ) -> usher_storage::Result<()> {
        self.0.lock().unwrap().push(record.clone());
        Ok(())
    }

    async fn connector_call(
        &self,
        call_id: &str,
    ) -> usher_storage::Result<Option<ConnectorCallRecord>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.call_id == call_id)
            .cloned())
    }

    async fn connector_calls(
        &self,
        _: &CallFilter,
    ) -> usher_storage::Result<Vec<ConnectorCallRecord>> {
        Ok(self.0.lock().unwrap().clone())
    }
}

fn tenant() -> Tenant {
    let assign = |id: &str| AttributeAssignment {
        attribute_id: id.into(),
        label: None,
        is_optional: true,
        input_type: UserInputType::TextBox,
        options: vec![],
        is_claim: true,
    };
    Tenant {
        extensions_app_id: APP.into(),
        custom_attributes: vec![AttributeDefinition {
            id: format!("extension_{APP}_ShoeSize"),
            display_name: "ShoeSize".into(),
            description: String::new(),
            data_type: DataType::Int,
            built_in: false,
        }],
        user_flows: vec![UserFlow {
            id: "B2X_1_bench".into(),
            identity_providers: vec![],
            attributes: vec![
                assign("displayName"),
                assign("city"),
                assign(&format!("extension_{APP}_ShoeSize")),
            ],
            extra_claims: vec!["email".into()],
            connectors: ConnectorSlots::default(),
            requires_approval: false,
        }],
        applications: vec![],
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let calls: usize = std::env::var("USHER_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(calls));
}

async fn run(calls: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/extension",
            axum::routing::post(|| async {
                axum::Json(json!({"data": {
                    "@odata.type": "microsoft.graph.onAttributeCollectionSubmitResponseData",
                    "actions": [{"@odata.type": "microsoft.graph.attributeCollectionSubmit.modifyAttributeValues",
                                 "attributes": {"city": "Bergen"}}]}}))
            }),
        )
        .fallback(|| async {
            axum::Json(json!({"version": "1.0.0", "action": "Continue", "city": "Bergen"}))
        });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://{addr}/api");

    let definition = ConnectorDefinition {
        signing_secrets: vec![Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        ..ConnectorDefinition::new("bench", &url)
    };
    let extension = ConnectorDefinition::extension(
        "bench-extension",
        format!("http://{addr}/extension"),
        format!("api://{addr}/bench"),
    );
    let repository = Arc::new(MemoryCalls::default());
    let runner = ConnectorRunner::with_signer(
        vec![definition, extension],
        Arc::new(tenant()),
        repository.clone(),
        Arc::new(SystemClock),
        RunnerSettings {
            targets: usher_domain::rules::TargetPolicy::ALL,
            issuer: "https://id.example".into(),
            ..Default::default()
        },
        Arc::new(Metrics::new()),
        Arc::new(Es256Signer::new()),
    );
    let attributes: AttributeValues = [
        (
            "displayName".to_owned(),
            AttributeValue::String("John Smith".into()),
        ),
        ("city".to_owned(), AttributeValue::String("Oslo".into())),
        (format!("extension_{APP}_ShoeSize"), AttributeValue::Int(44)),
    ]
    .into();
    let identities = vec![Identity {
        sign_in_type: SignInType::Federated,
        issuer: "google.com".into(),
        issuer_assigned_id: "123".into(),
        exact_issuer: None,
    }];
    let through_usher = |id: &'static str| {
        let ids = vec![id.to_owned()];
        let runner = &runner;
        let identities = &identities;
        let attributes = &attributes;
        async move {
            let outcome = runner
                .run(StepRequest {
                    step: ConnectorStep::PostAttributeCollection,
                    flow_id: "flow-bench",
                    user_flow_id: "B2X_1_bench",
                    connector_ids: &ids,
                    client_id: "client-bench",
                    ui_locales: "en-US",
                    email: Some("john@example.com"),
                    identities,
                    attributes,
                    run_key: None,
                    client_ip: None,
                    user: None,
                    otp: None,
                })
                .await;
            assert!(
                matches!(outcome, StepOutcome::Continue { .. }),
                "{outcome:?}"
            );
        }
    };

    let bare_client = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    let bare_body = json!({
        "email": "john@example.com",
        "identities": [{"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "123"}],
        "displayName": "John Smith", "city": "Oslo", format!("extension_{APP}_ShoeSize"): 44,
        "ui_locales": "en-US", "step": "PostAttributeCollection", "client_id": "client-bench",
    })
    .to_string();
    let bare = || async {
        let response = bare_client
            .post(&url)
            .header("content-type", "application/json; charset=utf-8")
            .body(bare_body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let _ = response.bytes().await.unwrap();
    };

    for _ in 0..100 {
        through_usher("bench").await;
        through_usher("bench-extension").await;
        bare().await;
    }

    let mut usher_times = Vec::with_capacity(calls);
    let mut extension_times = Vec::with_capacity(calls);
    let mut bare_times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        through_usher("bench").await;
        usher_times.push(t.elapsed());
        let t = Instant::now();
        through_usher("bench-extension").await;
        extension_times.push(t.elapsed());
        let t = Instant::now();
        bare().await;
        bare_times.push(t.elapsed());
    }
    usher_times.sort();
    extension_times.sort();
    bare_times.sort();
    let (e50, e99) = (
        percentile(&extension_times, 0.50),
        percentile(&extension_times, 0.99),
    );
    let (u50, u99) = (
        percentile(&usher_times, 0.50),
        percentile(&usher_times, 0.99),
    );
    let (b50, b99) = (percentile(&bare_times, 0.50), percentile(&bare_times, 0.99));
    println!(
        "connector_overhead: {calls} sequential calls to a loopback endpoint answering Continue"
    );
    println!(
        "  through ConnectorRunner: p50 {:8.1} µs   p99 {:8.1} µs",
        micros(u50),
        micros(u99)
    );
    println!(
        "  bare reqwest POST:       p50 {:8.1} µs   p99 {:8.1} µs",
        micros(b50),
        micros(b99)
    );
    println!(
        "  Usher adds:              p50 {:8.1} µs   p99 {:8.1} µs",
        micros(u50) - micros(b50),
        micros(u99) - micros(b99)
    );
    println!(
        "  extension (issued token): p50 {:8.1} µs   p99 {:8.1} µs   adds p50 {:.1} µs, p99 {:.1} µs",
        micros(e50),
        micros(e99),
        micros(e50) - micros(b50),
        micros(e99) - micros(b99)
    );
    println!(
        "  call records written:    {}",
        repository.0.lock().unwrap().len()
    );
}
