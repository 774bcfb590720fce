//! `GET /console/calls/{call_id}`: one recorded API connector call in full, the
//! record a user's error reference points at: step, flow, attempts, HTTP status,
//! latency, outcome, why it failed, contract warnings, and the bodies when the
//! operator records them (already stripped of passwords and secrets).

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use serde::Serialize;

use super::{internal, not_found, render, segment, time, Section, Time, View};
use crate::{pages::request_locale, state::AppState};

#[derive(Serialize)]
struct CallPage {
    call_id: String,
    connector_id: String,
    connector_url: String,
    user_flow_id: String,
    step: String,
    flow_id: String,
    attempts: u32,
    http_status: Option<u16>,
    latency_ms: i64,
    outcome: String,
    failure_reason: Option<String>,
    warnings: Vec<String>,
    request_body: Option<String>,
    response_body: Option<String>,
    created: Time,
}

/// A JSON body pretty-printed for reading; anything else as it was recorded.
fn readable(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
) -> Response {
    let back = format!("/console/calls/{}", segment(&call_id));
    let admin = match super::require(&state, &headers, &back).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let record = match state.store.connector_call(&call_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&state, locale, &admin, "console.call.not_found"),
        Err(e) => return internal(&state, locale, Some(&admin), e),
    };
    let page = CallPage {
        connector_url: format!("/console/connectors/{}", segment(&record.connector_id)),
        call_id: record.call_id,
        connector_id: record.connector_id,
        user_flow_id: record.user_flow_id,
        step: record.step,
        flow_id: record.flow_id,
        attempts: record.attempts,
        http_status: record.http_status,
        latency_ms: record.latency_ms,
        outcome: record.outcome,
        failure_reason: record.failure_reason,
        warnings: record.warnings,
        request_body: record.request_body.as_deref().map(readable),
        response_body: record.response_body.as_deref().map(readable),
        created: time(record.created_at),
    };
    render(
        &state,
        locale,
        Some(&admin),
        View::new(
            "console_call.html",
            "console.call.title",
            Section::Connectors,
        ),
        &page,
    )
}
