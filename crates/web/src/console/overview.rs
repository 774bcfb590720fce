//! `GET /console`: what needs attention at a glance: sign-ups waiting for a
//! decision, how many users there are, and each API connector's circuit breaker.

use axum::{extract::State, http::HeaderMap, response::Response};
use serde::Serialize;
use usher_domain::SignUpRequestStatus;
use usher_storage::UserQuery;

use super::{connectors::breaker, internal, render, segment, Section, View};
use crate::{pages::request_locale, state::AppState};

/// Counting stops here: the overview reads at most this many rows per count, and
/// shows "1000+" beyond (the lists page through everything).
pub const COUNT_CAP: u32 = 1000;

#[derive(Serialize)]
struct Count {
    value: u32,
    more: bool,
}

impl Count {
    fn of(n: usize) -> Self {
        let more = n > COUNT_CAP as usize;
        Self {
            value: if more { COUNT_CAP } else { n as u32 },
            more,
        }
    }
}

#[derive(Serialize)]
struct ConnectorRow {
    id: String,
    name: String,
    url: String,
    breaker: super::connectors::Breaker,
}

#[derive(Serialize)]
struct Overview {
    pending_count: Count,
    user_count: Count,
    flow_count: usize,
    connectors: Vec<ConnectorRow>,
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = match super::require(&state, &headers, "/console").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let pending = match state
        .store
        .sign_up_requests(Some(SignUpRequestStatus::Pending), None, COUNT_CAP + 1)
        .await
    {
        Ok(p) => p.len(),
        Err(e) => return internal(&state, locale, Some(&admin), e),
    };
    let users = match state
        .store
        .list_users(&UserQuery {
            limit: COUNT_CAP + 1,
            ..UserQuery::default()
        })
        .await
    {
        Ok(u) => u.len(),
        Err(e) => return internal(&state, locale, Some(&admin), e),
    };
    let snapshot = state.snapshot();
    let connectors = snapshot
        .connectors
        .iter()
        .map(|c| ConnectorRow {
            id: c.id.clone(),
            name: c.display_name.clone(),
            url: format!("/console/connectors/{}", segment(&c.id)),
            breaker: breaker(&state, locale, &c.id),
        })
        .collect();
    let page = Overview {
        pending_count: Count::of(pending),
        user_count: Count::of(users),
        flow_count: snapshot.tenant.user_flows.len(),
        connectors,
    };
    render(
        &state,
        locale,
        Some(&admin),
        View::new(
            "console_overview.html",
            "console.overview.title",
            Section::Overview,
        ),
        &page,
    )
}
