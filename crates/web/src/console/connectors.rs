//! `GET /console/connectors`: every API connector with where it calls, how Usher
//! authenticates to it (the kind only, never a credential), its circuit breaker on
//! this instance, and its health over its most recent recorded calls: how many,
//! how many failed, and the latency percentiles of the calls that were made (a call
//! the breaker refused took no time, and would pull the percentiles to 0 ms).

use axum::{extract::State, http::HeaderMap, response::Response};
use serde::Serialize;
use usher_connectors::BreakerState;
use usher_domain::{ConnectorAuthentication, ConnectorDefinition};
use usher_storage::{CallFilter, ConnectorCallRecord};

use super::{internal, msg, render, segment, Section, View};
use crate::{pages::request_locale, state::AppState};

/// The failure reason of a call the circuit breaker refused.
const CIRCUIT_OPEN: &str = "circuitOpen";

/// Health is computed over at most this many of a connector's latest calls.
pub const HEALTH_WINDOW: u32 = 200;

/// A breaker's state, as a stable id (for styling and tests) and words.
#[derive(Serialize, Clone)]
pub struct Breaker {
    pub state: &'static str,
    pub label: String,
}

pub fn breaker(state: &AppState, locale: &str, connector_id: &str) -> Breaker {
    let id = match state.breaker_state(connector_id) {
        Some(BreakerState::Closed) => "closed",
        Some(BreakerState::Open) => "open",
        Some(BreakerState::HalfOpen) => "half-open",
        None => "unknown",
    };
    Breaker {
        state: id,
        label: msg(state, locale, &format!("console.breaker.{id}")),
    }
}

/// The kind of authentication, in words; what the credentials are is not shown.
pub fn authentication(state: &AppState, locale: &str, c: &ConnectorDefinition) -> String {
    let key = match &c.authentication {
        ConnectorAuthentication::None => "console.auth.none",
        ConnectorAuthentication::Basic { .. } => "console.auth.basic",
        ConnectorAuthentication::ClientCertificate { .. } => "console.auth.certificate",
        ConnectorAuthentication::ApiKey { .. } => "console.auth.api_key",
        ConnectorAuthentication::OAuthClientCredentials { .. } => "console.auth.oauth",
        ConnectorAuthentication::IssuedToken { .. } => "console.auth.issued_token",
    };
    msg(state, locale, key)
}

/// How a connector has been doing over its latest calls.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Health {
    pub calls: usize,
    pub failures: usize,
    /// `12.5 %`, or empty without calls.
    pub failure_rate: String,
    /// Of `calls`, those the breaker refused without calling (counted as failures,
    /// left out of the percentiles).
    pub refused: usize,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
}

/// Health over `records` (one connector's latest calls).
pub fn health(records: &[ConnectorCallRecord]) -> Health {
    let failures = records.iter().filter(|r| r.outcome == "failed").count();
    let mut latencies: Vec<i64> = records
        .iter()
        .filter(|r| r.failure_reason.as_deref() != Some(CIRCUIT_OPEN))
        .map(|r| r.latency_ms)
        .collect();
    latencies.sort_unstable();
    Health {
        calls: records.len(),
        failures,
        refused: records.len() - latencies.len(),
        failure_rate: if records.is_empty() {
            String::new()
        } else {
            format!("{:.1} %", failures as f64 * 100.0 / records.len() as f64)
        },
        p50: percentile(&latencies, 50),
        p95: percentile(&latencies, 95),
        p99: percentile(&latencies, 99),
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at least
/// `p` % of the values at or below it (so p99 of few calls is their slowest).
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// A connector's latest calls, newest first.
pub async fn recent_calls(
    state: &AppState,
    connector_id: &str,
) -> Result<Vec<ConnectorCallRecord>, usher_storage::StorageError> {
    state
        .store
        .connector_calls(&CallFilter {
            connector_id: Some(connector_id.to_owned()),
            limit: HEALTH_WINDOW,
            ..CallFilter::default()
        })
        .await
}

#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    url: String,
    target_url: String,
    authentication: String,
    breaker: Breaker,
    health: Health,
}

#[derive(Serialize)]
struct Connectors {
    connectors: Vec<Row>,
    window: u32,
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = match super::require(&state, &headers, "/console/connectors").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let snapshot = state.snapshot();
    let mut connectors = Vec::new();
    for c in &snapshot.connectors {
        let calls = match recent_calls(&state, &c.id).await {
            Ok(calls) => calls,
            Err(e) => return internal(&state, locale, Some(&admin), e),
        };
        connectors.push(Row {
            id: c.id.clone(),
            name: c.display_name.clone(),
            url: format!("/console/connectors/{}", segment(&c.id)),
            target_url: c.target_url.clone(),
            authentication: authentication(&state, locale, c),
            breaker: breaker(&state, locale, &c.id),
            health: health(&calls),
        });
    }
    render(
        &state,
        locale,
        Some(&admin),
        View::new(
            "console_connectors.html",
            "console.connectors.title",
            Section::Connectors,
        ),
        &Connectors {
            connectors,
            window: HEALTH_WINDOW,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(outcome: &str, latency_ms: i64) -> ConnectorCallRecord {
        ConnectorCallRecord {
            call_id: "c".into(),
            connector_id: "x".into(),
            user_flow_id: "B2X_1_f".into(),
            step: "PostAttributeCollection".into(),
            flow_id: "f".into(),
            attempts: 1,
            http_status: Some(200),
            latency_ms,
            outcome: outcome.into(),
            failure_reason: None,
            error_code: None,
            warnings: Vec::new(),
            request_body: None,
            response_body: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3], 99), Some(3));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn health_counts_failures_and_sorts_latencies() {
        let h = health(&[
            record("continue", 30),
            record("failed", 3000),
            record("block", 10),
            record("validationError", 20),
        ]);
        assert_eq!(h.calls, 4);
        assert_eq!(h.failures, 1);
        assert_eq!(h.failure_rate, "25.0 %");
        assert_eq!(h.p50, Some(20));
        assert_eq!(h.p95, Some(3000));
        assert_eq!(health(&[]).failure_rate, "");
        assert_eq!(health(&[]).p99, None);
    }

    #[test]
    fn calls_the_breaker_refused_are_left_out_of_the_percentiles() {
        let refused = || ConnectorCallRecord {
            failure_reason: Some("circuitOpen".into()),
            error_code: None,
            attempts: 0,
            ..record("failed", 0)
        };
        let h = health(&[record("continue", 40), refused(), refused(), refused()]);
        assert_eq!(h.calls, 4);
        assert_eq!(h.failures, 3);
        assert_eq!(h.refused, 3);
        assert_eq!((h.p50, h.p95, h.p99), (Some(40), Some(40), Some(40)));
        // Only refused calls: no latency to speak of.
        assert_eq!(health(&[refused()]).p50, None);
    }
}
