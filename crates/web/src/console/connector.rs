//! `GET /console/connectors/{id}`: one API connector, its settings (never its
//! credentials), which user flows call it at which step, its health, and its
//! recent calls, each linking to the full record.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use serde::Serialize;

use super::{
    connectors::{authentication, breaker, health, recent_calls, Breaker, Health, HEALTH_WINDOW},
    internal, msg, not_found, render, segment, time, Section, Time, View,
};
use crate::{pages::request_locale, state::AppState};

/// The calls listed on the page (the health uses the whole window).
const LISTED: usize = 50;

#[derive(Serialize)]
pub struct CallRow {
    pub url: String,
    pub call_id: String,
    pub created: Time,
    pub step: String,
    pub user_flow_id: String,
    pub outcome: String,
    pub http_status: Option<u16>,
    pub latency_ms: i64,
    pub attempts: u32,
    pub failure_reason: Option<String>,
    pub error_code: Option<i64>,
}

#[derive(Serialize)]
struct UsedBy {
    user_flow_id: String,
    step: &'static str,
}

#[derive(Serialize)]
struct ConnectorPage {
    id: String,
    name: String,
    target_url: String,
    authentication: String,
    timeout_ms: u64,
    retries: u32,
    budget_ms: u64,
    failure_policy: String,
    signing: bool,
    breaker: Breaker,
    breaker_threshold: u32,
    breaker_open_seconds: u64,
    used_by: Vec<UsedBy>,
    health: Health,
    window: u32,
    calls: Vec<CallRow>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let back = format!("/console/connectors/{}", segment(&id));
    let admin = match super::require(&state, &headers, &back).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let snapshot = state.snapshot();
    let Some(c) = snapshot.connector(&id) else {
        return not_found(&state, locale, &admin, "console.connector.not_found");
    };
    let calls = match recent_calls(&state, &c.id).await {
        Ok(calls) => calls,
        Err(e) => return internal(&state, locale, Some(&admin), e),
    };
    let mut used_by = Vec::new();
    for f in &snapshot.tenant.user_flows {
        for (step, ids) in f.connectors.iter() {
            let step = step.slot_name();
            if ids.iter().any(|i| i.eq_ignore_ascii_case(&c.id)) {
                used_by.push(UsedBy {
                    user_flow_id: f.id.clone(),
                    step,
                });
            }
        }
    }
    let page = ConnectorPage {
        id: c.id.clone(),
        name: c.display_name.clone(),
        target_url: c.target_url.clone(),
        authentication: authentication(&state, locale, c),
        timeout_ms: c.timeout.as_millis() as u64,
        retries: c.retries,
        budget_ms: c.budget.as_millis() as u64,
        failure_policy: msg(
            &state,
            locale,
            match c.failure_policy {
                usher_domain::FailurePolicy::Block => "console.policy.block",
                usher_domain::FailurePolicy::Continue => "console.policy.continue",
            },
        ),
        signing: !c.signing_secrets.is_empty(),
        breaker: breaker(&state, locale, &c.id),
        breaker_threshold: c.breaker.failure_threshold,
        breaker_open_seconds: c.breaker.open_for.as_secs(),
        used_by,
        health: health(&calls),
        window: HEALTH_WINDOW,
        calls: calls.iter().take(LISTED).map(call_row).collect(),
    };
    render(
        &state,
        locale,
        Some(&admin),
        View::new(
            "console_connector.html",
            "console.connector.title",
            Section::Connectors,
        ),
        &page,
    )
}

pub fn call_row(r: &usher_storage::ConnectorCallRecord) -> CallRow {
    CallRow {
        url: format!("/console/calls/{}", segment(&r.call_id)),
        call_id: r.call_id.clone(),
        created: time(r.created_at),
        step: r.step.clone(),
        user_flow_id: r.user_flow_id.clone(),
        outcome: r.outcome.clone(),
        http_status: r.http_status,
        latency_ms: r.latency_ms,
        attempts: r.attempts,
        failure_reason: r.failure_reason.clone(),
        error_code: r.error_code,
    }
}
