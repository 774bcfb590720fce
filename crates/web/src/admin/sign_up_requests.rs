//! Sign-up requests of the built-in approval queue — a Usher resource in Graph's
//! style at `/v1.0/usher/signUpRequests`: the sign-ups of flows with
//! `usherRequiresApproval` that wait for a person, and the decisions on them. The
//! decisions themselves are [`crate::approvals`]'s, shared with the console; the
//! calling application is recorded as who decided, as `application:<client id>`
//! (an administrator deciding in the console is recorded by user id).
//!
//! A request shows what the user gave much as a user shows it: `email`, `identities`
//! and the attributes under their Graph names, next to `status`, `userFlowId`,
//! `clientId`, `createdDateTime`, `decidedBy`, `decidedDateTime` and `userId`.

use axum::{
    extract::{Path, State},
    http::Uri,
    response::Response,
    Extension,
};
use serde_json::{json, Map, Value};
use usher_domain::{SignUpRequest, SignUpRequestStatus};
use usher_storage::StorageError;

use super::auth::{Access, Area, Caller};
use super::errors::{ApiError, ApiResult};
use super::json::JsonBody;
use super::odata::{self, Condition, Op, QueryOptions};
use super::{no_content, ok, Route};
use crate::approvals::{ApprovalError, Decider};
use crate::state::AppState;

const RESOURCE: &str = "usherSignUpRequest";
const TAG: &str = "Sign-up requests";
const LIST_OPTIONS: &[&str] = &["$filter", "$top", "$skiptoken"];

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::Users);
    let write = Access::Write(Area::Users);
    vec![
        Route::get("/v1.0/usher/signUpRequests", list)
            .access(read)
            .doc(
                TAG,
                "List sign-up requests, newest first ($filter=status eq 'pending')",
            )
            .lists(RESOURCE, LIST_OPTIONS),
        Route::get("/v1.0/usher/signUpRequests/{id}", get)
            .access(read)
            .doc(TAG, "Get a sign-up request")
            .answers(200, RESOURCE),
        Route::post("/v1.0/usher/signUpRequests/{id}/approve", approve)
            .access(write)
            .doc(
                TAG,
                "Approve a pending sign-up: the user is created and emailed",
            )
            .answers(200, RESOURCE),
        Route::post("/v1.0/usher/signUpRequests/{id}/deny", deny)
            .access(write)
            .doc(
                TAG,
                "Deny a pending sign-up: later attempts are blocked until it is deleted",
            )
            .answers(200, RESOURCE),
        Route::delete("/v1.0/usher/signUpRequests/{id}", delete)
            .access(write)
            .doc(
                TAG,
                "Delete a sign-up request (clearing a denial, so the person may try again)",
            ),
    ]
}

fn to_json(r: &SignUpRequest) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id));
    m.insert("status".into(), json!(r.status.as_str()));
    m.insert("userFlowId".into(), json!(r.user_flow_id));
    m.insert("clientId".into(), json!(r.client_id));
    m.insert("email".into(), json!(r.email));
    m.insert(
        "identities".into(),
        Value::Array(
            r.identities
                .iter()
                .map(super::users::identity_json)
                .collect(),
        ),
    );
    for (k, v) in &r.attributes {
        m.insert(k.clone(), v.to_json());
    }
    m.insert(
        "createdDateTime".into(),
        json!(super::users::datetime(r.created_at)),
    );
    m.insert("decidedBy".into(), json!(r.decided_by));
    m.insert(
        "decidedDateTime".into(),
        json!(r.decided_at.map(super::users::datetime)),
    );
    m.insert("userId".into(), json!(r.user_id));
    Value::Object(m)
}

fn approval_error(e: ApprovalError, id: &str) -> ApiError {
    match e {
        ApprovalError::NotFound => ApiError::no_such("signUpRequest", id),
        ApprovalError::NotPending => ApiError::conflict(format!(
            "The sign-up request {id} is not pending: it has been decided."
        )),
        ApprovalError::Conflict(message) => ApiError::conflict(message),
        ApprovalError::Storage(e) => e.into(),
    }
}

async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let options = QueryOptions::parse(&uri, LIST_OPTIONS)?;
    let mut status = None;
    for condition in options.filter.iter().flatten() {
        match condition {
            Condition::Compare {
                property,
                op: Op::Eq,
                value,
            } if property.eq_ignore_ascii_case("status") && status.is_none() => {
                status = Some(
                    value
                        .as_string()
                        .and_then(SignUpRequestStatus::parse)
                        .ok_or_else(|| {
                            ApiError::unsupported_query(
                                "status is one of 'pending', 'approved', 'denied'.",
                            )
                        })?,
                );
            }
            other => return Err(odata::unsupported_condition(other, "status eq")),
        }
    }
    let top = options.page_size();
    let after = options.cursor()?;
    let mut requests = state
        .store
        .sign_up_requests(status, after.as_deref(), top + 1)
        .await
        .map_err(|e| match e {
            // The request a page ended at is gone: its place in the order is lost.
            StorageError::Conflict => ApiError::unsupported_query(
                "The $skiptoken is no longer valid (the request it continues from was deleted); start again from the first page.",
            ),
            e => e.into(),
        })?;
    let next_link = if requests.len() > top as usize {
        requests.truncate(top as usize);
        requests
            .last()
            .map(|r| options.next_link(&state, "/v1.0/usher/signUpRequests", &r.id))
    } else {
        None
    };
    let values = requests.iter().map(to_json).collect();
    Ok(ok(odata::collection(
        &state,
        "usher/signUpRequests",
        values,
        next_link,
    )))
}

async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let request = state
        .store
        .sign_up_request(&id)
        .await?
        .ok_or_else(|| ApiError::no_such("signUpRequest", &id))?;
    Ok(ok(to_json(&request)))
}

/// Actions take no body; `{}` is accepted as well.
fn no_body(body: &JsonBody) -> ApiResult<()> {
    if let Some(b) = body.optional_object("action")? {
        b.finish()?;
    }
    Ok(())
}

/// The optional `reason` of a denial (`{"reason": "…"}`), which the person's email
/// carries; nothing else may be in the body.
fn denial_reason(body: &JsonBody) -> ApiResult<Option<String>> {
    let Some(mut b) = body.optional_object("action")? else {
        return Ok(None);
    };
    let reason = b.string("reason")?;
    if let Some(r) = &reason {
        if r.chars().count() > usher_signup::approvals::MAX_DENIAL_REASON {
            return Err(b.error(
                "reason",
                format!(
                    "is longer than {} characters",
                    usher_signup::approvals::MAX_DENIAL_REASON
                ),
            ));
        }
    }
    b.finish()?;
    Ok(reason)
}

async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    no_body(&body)?;
    state
        .engine
        .approve(&id, &Decider::Application(caller.client_id))
        .await
        .map_err(|e| approval_error(e, &id))?;
    let request = state
        .store
        .sign_up_request(&id)
        .await?
        .ok_or_else(|| ApiError::no_such("signUpRequest", &id))?;
    Ok(ok(to_json(&request)))
}

async fn deny(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let reason = denial_reason(&body)?;
    let request = state
        .engine
        .deny(
            &id,
            &Decider::Application(caller.client_id),
            reason.as_deref(),
        )
        .await
        .map_err(|e| approval_error(e, &id))?;
    Ok(ok(to_json(&request)))
}

async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    if state
        .engine
        .clear(&id)
        .await
        .map_err(|e| approval_error(e, &id))?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("signUpRequest", &id))
    }
}
