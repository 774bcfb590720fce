//! `GET /console/users[?search=…][&after=…]`: the directory, searched by part of an
//! email address or display name, a page at a time (ordered by id; "next" carries
//! the last id shown as the cursor).

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;
use usher_storage::UserQuery;

use super::{
    display_name, done_notice, internal, msg_with, query_map, render, segment, time, Section, Time,
    View,
};
use crate::{
    oauth::append_query,
    pages::{request_locale, SummaryError},
    state::AppState,
};

/// Users per page.
const PAGE: u32 = 25;
/// Longer searches are refused: nobody types that, and it would only cost a scan.
pub const SEARCH_MAX: usize = 100;

#[derive(Serialize)]
struct Row {
    url: String,
    email: Option<String>,
    name: String,
    enabled: bool,
    created: Time,
}

#[derive(Serialize)]
struct Users {
    search: String,
    search_error: Option<String>,
    search_max: usize,
    users: Vec<Row>,
    next_url: Option<String>,
    first_url: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let back = match &query {
        Some(q) => format!("/console/users?{q}"),
        None => "/console/users".to_owned(),
    };
    let admin = match super::require(&state, &headers, &back).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let q = query_map(query.as_deref());
    let search = q
        .get("search")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let after = q.get("after").filter(|a| !a.is_empty()).cloned();
    let view = View::new("console_users.html", "console.users.title", Section::Users)
        .notice(done_notice(&state, locale, &q));

    if search.chars().count() > SEARCH_MAX {
        let message = msg_with(
            &state,
            locale,
            "console.users.search_too_long",
            &[("max", SEARCH_MAX.to_string())],
        );
        let page = Users {
            search,
            search_error: Some(message.clone()),
            search_max: SEARCH_MAX,
            users: Vec::new(),
            next_url: None,
            first_url: None,
        };
        let errors = vec![SummaryError {
            field: Some("search".into()),
            message,
        }];
        return render(
            &state,
            locale,
            Some(&admin),
            view.status(StatusCode::BAD_REQUEST).errors(errors),
            &page,
        );
    }

    let found = match state
        .store
        .list_users(&UserQuery {
            search: (!search.is_empty()).then(|| search.clone()),
            after: after.clone(),
            // One more than shown tells whether there is a next page.
            limit: PAGE + 1,
            ..UserQuery::default()
        })
        .await
    {
        Ok(u) => u,
        Err(e) => return internal(&state, locale, Some(&admin), e),
    };
    let more = found.len() > PAGE as usize;
    let shown = &found[..found.len().min(PAGE as usize)];
    let with_search = |extra: Option<&str>| {
        let mut params: Vec<(&str, &str)> = Vec::new();
        if !search.is_empty() {
            params.push(("search", search.as_str()));
        }
        if let Some(a) = extra {
            params.push(("after", a));
        }
        append_query("/console/users", &params)
    };
    let page = Users {
        next_url: match (more, shown.last()) {
            (true, Some(last)) => Some(with_search(Some(&last.id))),
            _ => None,
        },
        first_url: after.as_ref().map(|_| with_search(None)),
        users: shown
            .iter()
            .map(|u| Row {
                url: format!("/console/users/{}", segment(&u.id)),
                email: u.email.clone(),
                name: display_name(u),
                enabled: u.account_enabled,
                created: time(u.created_at),
            })
            .collect(),
        search,
        search_error: None,
        search_max: SEARCH_MAX,
    };
    render(&state, locale, Some(&admin), view, &page)
}
