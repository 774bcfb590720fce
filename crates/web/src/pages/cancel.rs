//! `POST /flow/{id}/cancel`: the user gives up; the application hears `access_denied`.

use axum::{extract::State, response::Response};

use super::{respond, FlowForm};
use crate::state::AppState;

pub async fn post(
    State(state): State<AppState>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    respond(&state, state.engine.cancel(&loaded))
}
