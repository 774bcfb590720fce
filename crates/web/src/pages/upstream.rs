//! Upstream identity providers: the redirect there and the callback from there.

use axum::{http::StatusCode, response::Response};

use super::{flow_message, render_step, Feedback, Loaded};
use crate::state::AppState;

/// Sends the browser to `provider_id`.
pub async fn start(state: &AppState, loaded: &mut Loaded, provider_id: &str) -> Response {
    let fb = Feedback::general(flow_message(
        state,
        loaded,
        "error.provider_unavailable",
        &[("provider", provider_id.to_owned())],
    ));
    render_step(state, loaded, fb, StatusCode::SERVICE_UNAVAILABLE)
}
