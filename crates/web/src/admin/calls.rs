//! Connector call records (contract §6) — a Usher resource in Graph's style:
//! `GET /v1.0/usher/connectorCalls` and, for one connector,
//! `GET /v1.0/identity/apiConnectors/{id}/calls`. Newest first; `$filter` on
//! `connectorId`, `outcome` (`eq`) and `createdDateTime` (`ge`, `lt`), and `$top`.

use axum::{
    extract::{Path, State},
    http::Uri,
    response::Response,
};
use serde_json::{json, Value};
use usher_storage::{CallFilter, ConnectorCallRecord};

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::odata::{self, Condition, Op, QueryOptions};
use super::{connectors, ok, Route};
use crate::state::AppState;

const RESOURCE: &str = "usherConnectorCall";
const TAG: &str = "Connector calls";
const OPTIONS: &[&str] = &["$filter", "$top", "$select"];
const SUPPORTED: &str = "connectorId eq, outcome eq, createdDateTime ge and createdDateTime lt";

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::Connectors);
    vec![
        Route::get("/v1.0/usher/connectorCalls", list)
            .access(read)
            .doc(TAG, "List connector call records, newest first")
            .lists(RESOURCE, OPTIONS),
        Route::get(
            "/v1.0/identity/apiConnectors/{id}/calls",
            list_for_connector,
        )
        .access(read)
        .doc(TAG, "List one connector's call records, newest first")
        .lists(RESOURCE, OPTIONS),
    ]
}

async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    answer(&state, &uri, None).await
}

async fn list_for_connector(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let connector = connectors::find(&state, &id).await?;
    answer(&state, &uri, Some(connector.id)).await
}

async fn answer(state: &AppState, uri: &Uri, connector: Option<String>) -> ApiResult<Response> {
    let options = QueryOptions::parse(uri, OPTIONS)?;
    options.check_select(RESOURCE, &|p| {
        PROPERTIES.iter().any(|k| k.eq_ignore_ascii_case(p))
    })?;
    let mut filter = CallFilter {
        connector_id: connector.clone(),
        limit: options.page_size(),
        ..CallFilter::default()
    };
    for condition in options.filter.iter().flatten() {
        match condition {
            Condition::Compare {
                property,
                op: Op::Eq,
                value,
            } if property.eq_ignore_ascii_case("connectorId") => {
                let id = value.as_string().ok_or_else(|| {
                    ApiError::unsupported_query("connectorId takes a quoted string.")
                })?;
                match &connector {
                    // Within one connector's calls, another connector matches nothing.
                    Some(c) if !c.eq_ignore_ascii_case(id) => {
                        return Ok(ok(odata::collection(
                            state,
                            "usher/connectorCalls",
                            Vec::new(),
                            None,
                        )))
                    }
                    _ => filter.connector_id = Some(canonical_connector_id(state, id).await?),
                }
            }
            Condition::Compare {
                property,
                op: Op::Eq,
                value,
            } if property.eq_ignore_ascii_case("outcome") => {
                let outcome = value
                    .as_string()
                    .ok_or_else(|| ApiError::unsupported_query("outcome takes a quoted string."))?;
                if !["continue", "block", "validationError", "failed"].contains(&outcome) {
                    return Err(ApiError::unsupported_query(
                        "outcome is one of 'continue', 'block', 'validationError', 'failed'.",
                    ));
                }
                filter.outcome = Some(outcome.to_owned());
            }
            Condition::Compare {
                property,
                op: op @ (Op::Ge | Op::Lt),
                value,
            } if property.eq_ignore_ascii_case("createdDateTime") => {
                let at = value.as_datetime().ok_or_else(|| {
                    ApiError::unsupported_query(
                        "createdDateTime takes a date and time such as 2026-01-01T00:00:00Z.",
                    )
                })?;
                if *op == Op::Ge {
                    filter.since = Some(at);
                } else {
                    filter.until = Some(at);
                }
            }
            other => return Err(odata::unsupported_condition(other, SUPPORTED)),
        }
    }
    let records = state.store.connector_calls(&filter).await?;
    let values = records
        .iter()
        .map(|r| options.apply_select(to_json(r)))
        .collect();
    Ok(ok(odata::collection(
        state,
        "usher/connectorCalls",
        values,
        None,
    )))
}

/// Records name the connector as it was spelt when called: the current spelling of a
/// connector that still exists, else what was given.
async fn canonical_connector_id(state: &AppState, id: &str) -> ApiResult<String> {
    let snapshot = state.tenants.current().await?;
    Ok(snapshot
        .connector(id)
        .map_or_else(|| id.to_owned(), |c| c.id.clone()))
}

const PROPERTIES: [&str; 15] = [
    "id",
    "connectorId",
    "userFlowId",
    "step",
    "flowId",
    "attempts",
    "httpStatus",
    "latencyMs",
    "outcome",
    "failureReason",
    "errorCode",
    "warnings",
    "requestBody",
    "responseBody",
    "createdDateTime",
];

fn to_json(r: &ConnectorCallRecord) -> Value {
    json!({
        "id": r.call_id,
        "connectorId": r.connector_id,
        "userFlowId": r.user_flow_id,
        "step": r.step,
        "flowId": r.flow_id,
        "attempts": r.attempts,
        "httpStatus": r.http_status,
        "latencyMs": r.latency_ms,
        "outcome": r.outcome,
        "failureReason": r.failure_reason,
        "errorCode": r.error_code,
        "warnings": r.warnings,
        "requestBody": r.request_body,
        "responseBody": r.response_body,
        "createdDateTime": super::users::datetime(r.created_at),
    })
}
