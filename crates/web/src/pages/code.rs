//! `POST /flow/{id}/code`: the code from the email.

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::{respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CodeForm {
    code: String,
}

pub async fn post(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, form }: FlowForm<CodeForm>,
) -> Response {
    let next = state.engine.submit_code(loaded, &form.code, client).await;
    respond(&state, next)
}
