//! `/console/requests`: the approval queue. Pending sign-ups (email, identities,
//! attributes, when) with Approve and Deny buttons, then the decided ones with who
//! decided and when; a denial can be cleared so the person may try again. The
//! decisions are [`crate::approvals`]'s, shared with the admin API, recorded as
//! decided by the administrator's user id.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;
use usher_domain::{SignUpRequest, SignUpRequestStatus};
use usher_storage::StorageError;

use super::{
    attribute_pairs, display_name, done_notice, identity_rows, internal, msg, not_found, query_map,
    render, segment, time, Admin, IdentityRow, Pair, Section, Time, View,
};
use crate::{
    approvals::{ApprovalError, Decider},
    pages::{first, request_locale, see_other, SummaryError},
    state::AppState,
};

/// Requests per page, pending and decided each.
const PAGE: u32 = 50;

#[derive(Serialize)]
struct Row {
    id: String,
    email: String,
    user_flow_id: String,
    identities: Vec<IdentityRow>,
    attributes: Vec<Pair>,
    created: Time,
    status: &'static str,
    status_label: String,
    decided_by: Option<String>,
    decided_at: Option<Time>,
    user_url: Option<String>,
    approve_url: String,
    deny_url: String,
    clear_url: String,
}

#[derive(Serialize)]
struct Requests {
    pending: Vec<Row>,
    decided: Vec<Row>,
    /// The next page of pending requests.
    next_url: Option<String>,
    first_url: Option<String>,
}

/// Who decided, as a person reads it: an administrator's name and email, else the
/// API client that decided.
async fn decider(state: &AppState, decided_by: &str) -> String {
    let user_id = match Decider::parse(decided_by) {
        Decider::Application(client_id) => return format!("API client {client_id}"),
        Decider::Admin(user_id) => user_id,
    };
    match state.store.user_by_id(&user_id).await {
        Ok(Some(u)) => match &u.email {
            Some(email) if display_name(&u) != *email => format!("{} ({email})", display_name(&u)),
            _ => display_name(&u),
        },
        _ => decided_by.to_owned(),
    }
}

/// The deciders named so far on this page: one administrator decides many.
type Deciders = std::collections::BTreeMap<String, String>;

async fn row(state: &AppState, locale: &str, r: &SignUpRequest, deciders: &mut Deciders) -> Row {
    let base = format!("/console/requests/{}", segment(&r.id));
    Row {
        id: r.id.clone(),
        email: r.email.clone(),
        user_flow_id: r.user_flow_id.clone(),
        identities: identity_rows(&r.identities),
        attributes: attribute_pairs(state, locale, &r.attributes),
        created: time(r.created_at),
        status: r.status.as_str(),
        status_label: msg(
            state,
            locale,
            &format!("console.requests.status_{}", r.status.as_str()),
        ),
        decided_by: match &r.decided_by {
            Some(d) => Some(match deciders.get(d) {
                Some(name) => name.clone(),
                None => {
                    let name = decider(state, d).await;
                    deciders.insert(d.clone(), name.clone());
                    name
                }
            }),
            None => None,
        },
        decided_at: r.decided_at.map(time),
        user_url: r
            .user_id
            .as_ref()
            .map(|id| format!("/console/users/{}", segment(id))),
        approve_url: format!("{base}/approve"),
        deny_url: format!("{base}/deny"),
        clear_url: format!("{base}/clear"),
    }
}

/// Renders the queue, with `errors` from a decision that could not be made.
async fn show(
    state: &AppState,
    locale: &str,
    admin: &Admin,
    after: Option<&str>,
    view: View,
) -> Response {
    let pending = match state
        .store
        .sign_up_requests(Some(SignUpRequestStatus::Pending), after, PAGE + 1)
        .await
    {
        Ok(p) => p,
        // The request the page continued from was cleared meanwhile: start over.
        Err(StorageError::Conflict) => return see_other("/console/requests"),
        Err(e) => return internal(state, locale, Some(admin), e),
    };
    let mut decided = Vec::new();
    for status in [SignUpRequestStatus::Approved, SignUpRequestStatus::Denied] {
        match state.store.sign_up_requests(Some(status), None, PAGE).await {
            Ok(list) => decided.extend(list),
            Err(e) => return internal(state, locale, Some(admin), e),
        }
    }
    // Most recently decided first, across both outcomes.
    decided.sort_by(|a, b| b.decided_at.cmp(&a.decided_at).then(b.id.cmp(&a.id)));
    decided.truncate(PAGE as usize);

    let more = pending.len() > PAGE as usize;
    let shown = &pending[..pending.len().min(PAGE as usize)];
    let mut page = Requests {
        pending: Vec::new(),
        decided: Vec::new(),
        next_url: match (more, shown.last()) {
            (true, Some(last)) => Some(crate::oauth::append_query(
                "/console/requests",
                &[("after", last.id.as_str())],
            )),
            _ => None,
        },
        first_url: after.map(|_| "/console/requests".to_owned()),
    };
    let mut deciders = Deciders::new();
    for r in shown {
        page.pending
            .push(row(state, locale, r, &mut deciders).await);
    }
    for r in &decided {
        page.decided
            .push(row(state, locale, r, &mut deciders).await);
    }
    render(state, locale, Some(admin), view, &page)
}

fn view() -> View {
    View::new(
        "console_requests.html",
        "console.requests.title",
        Section::Requests,
    )
}

/// `GET /console/requests[?after=…]`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let back = match &query {
        Some(q) => format!("/console/requests?{q}"),
        None => "/console/requests".to_owned(),
    };
    let admin = match super::require(&state, &headers, &back).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let q = query_map(query.as_deref());
    let notice = done_notice(&state, locale, &q);
    show(
        &state,
        locale,
        &admin,
        q.get("after").map(String::as_str),
        view().notice(notice),
    )
    .await
}

#[derive(Clone, Copy)]
enum Decision {
    Approve,
    Deny,
    Clear,
}

async fn decide(
    state: AppState,
    headers: HeaderMap,
    id: String,
    body: Bytes,
    decision: Decision,
) -> Response {
    let (admin, form) =
        match super::require_form(&state, &headers, &body, "/console/requests").await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let locale = request_locale(&headers, None);
    let by = Decider::Admin(admin.user.id.clone());
    let reason = Some(first(&form, "reason")).filter(|r| !r.trim().is_empty());
    let result = match decision {
        Decision::Approve => state.engine.approve(&id, &by).await.map(|_| true),
        Decision::Deny => state.engine.deny(&id, &by, reason).await.map(|_| true),
        Decision::Clear => state.engine.clear(&id).await,
    };
    let (status, error_key) = match result {
        Ok(true) => {
            let done = match decision {
                Decision::Approve => "approved",
                Decision::Deny => "denied",
                Decision::Clear => "cleared",
            };
            return see_other(&format!("/console/requests?done={done}"));
        }
        Ok(false) | Err(ApprovalError::NotFound) => {
            (StatusCode::NOT_FOUND, "console.requests.not_found")
        }
        Err(ApprovalError::NotPending) => (StatusCode::CONFLICT, "console.requests.not_pending"),
        Err(ApprovalError::Conflict(reason)) => {
            tracing::info!(request_id = %id, %reason, "console: the approval cannot be made");
            (StatusCode::CONFLICT, "console.requests.conflict")
        }
        Err(ApprovalError::Storage(e)) => return internal(&state, locale, Some(&admin), e),
    };
    // The queue again, saying why nothing happened.
    let errors = vec![SummaryError {
        field: None,
        message: msg(&state, locale, error_key),
    }];
    show(
        &state,
        locale,
        &admin,
        None,
        view().status(status).errors(errors),
    )
    .await
}

/// `POST /console/requests/{id}/approve`: the user is created and emailed.
pub async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, headers, id, body, Decision::Approve).await
}

/// The denial's confirmation page: who is denied, and the optional reason their
/// email carries.
#[derive(Serialize)]
struct DenyPage {
    email: String,
    user_flow_id: String,
    deny_url: String,
    cancel_url: &'static str,
    reason_max: usize,
}

/// `GET /console/requests/{id}/deny`: are you sure, and why (optional)?
pub async fn confirm_deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let admin = match super::require(&state, &headers, "/console/requests").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let request = match state.store.sign_up_request(&id).await {
        Ok(Some(r)) if r.status == usher_domain::SignUpRequestStatus::Pending => r,
        Ok(_) => return not_found(&state, locale, &admin, "console.requests.not_found"),
        Err(e) => return internal(&state, locale, Some(&admin), e),
    };
    let page = DenyPage {
        deny_url: format!("/console/requests/{}/deny", segment(&request.id)),
        cancel_url: "/console/requests",
        email: request.email,
        user_flow_id: request.user_flow_id,
        reason_max: usher_signup::approvals::MAX_DENIAL_REASON,
    };
    render(
        &state,
        locale,
        Some(&admin),
        View::new(
            "console_request_deny.html",
            "console.request_deny.title",
            Section::Requests,
        ),
        &page,
    )
}

/// `POST /console/requests/{id}/deny`: emailed, with the reason if one was given;
/// their later attempts are blocked.
pub async fn deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, headers, id, body, Decision::Deny).await
}

/// `POST /console/requests/{id}/clear`: forget a decision, so the person may sign
/// up again.
pub async fn clear(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    decide(state, headers, id, body, Decision::Clear).await
}
