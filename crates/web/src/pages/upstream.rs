//! `GET /federation/callback`: the browser back from an upstream identity provider,
//! registered with every provider (see [`usher_signup::Settings::federation_callback`]).

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::Response,
};

use super::{browser, request_locale, respond};
use crate::state::AppState;

pub async fn callback(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<crate::throttle::ClientAddress>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let next = state
        .engine
        .federation_callback(
            &params,
            browser(&headers),
            client,
            request_locale(&headers, None),
        )
        .await;
    respond(&state, next)
}
