//! `GET /console/calls?reference=…`: the box that finds the call a person's error
//! page names; `GET /console/calls/{call_id}`: one recorded API connector call in
//! full, the record a user's error reference points at: step, flow, attempts, HTTP status,
//! latency, outcome, why it failed, contract warnings, and the bodies when the
//! operator records them (already stripped of passwords and secrets).

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::Response,
};
use serde::Serialize;

use super::{internal, not_found, render, segment, time, Section, Time, View};
use crate::{
    pages::{request_locale, see_other},
    state::AppState,
};

#[derive(serde::Deserialize)]
pub struct Find {
    #[serde(default)]
    reference: String,
}

/// The reference a person read off an error page ("Reference: …"), as typed: the
/// call's page when a connector call has it; otherwise a page saying so, since a
/// reference of Usher's own failures is only in the log.
pub async fn find(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(find): Query<Find>,
) -> Response {
    let reference = find.reference.trim();
    let back = format!("/console/calls?reference={}", segment(reference));
    let admin = match super::require(&state, &headers, &back).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    if reference.is_empty() {
        return see_other("/console");
    }
    // References are UUIDs; anything much longer is not one and not worth a query.
    let found = if reference.len() <= 64 {
        match state.store.connector_call(reference).await {
            Ok(found) => found,
            Err(e) => return internal(&state, locale, Some(&admin), e),
        }
    } else {
        None
    };
    match found {
        Some(call) => see_other(&format!("/console/calls/{}", segment(&call.call_id))),
        None => not_found(&state, locale, &admin, "console.call.reference_unknown"),
    }
}

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
    /// The Entra error code of a failed extension call.
    error_code: Option<i64>,
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
        error_code: record.error_code,
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
