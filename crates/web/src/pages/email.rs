//! `POST /flow/{id}/email` (the address to verify), `POST /flow/{id}/resend` and
//! `POST /flow/{id}/change-email`.

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::{respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EmailForm {
    email: String,
}

pub async fn post(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, form }: FlowForm<EmailForm>,
) -> Response {
    let next = state.engine.submit_email(loaded, &form.email, client).await;
    respond(&state, next)
}

/// "Send a new code", to the address of the flow.
pub async fn resend(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.resend_code(loaded, client).await;
    respond(&state, next)
}

/// "Use a different email address" on the code page.
pub async fn change(
    State(state): State<AppState>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.change_email(loaded).await;
    respond(&state, next)
}
