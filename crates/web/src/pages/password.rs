//! `POST /flow/{id}/password`: the new account's password, twice.

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::{respond, FlowForm};
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PasswordForm {
    password: String,
    confirm_password: String,
}

pub async fn post(
    State(state): State<AppState>,
    FlowForm { loaded, form }: FlowForm<PasswordForm>,
) -> Response {
    let next = state
        .engine
        .submit_password(loaded, &form.password, &form.confirm_password)
        .await;
    respond(&state, next)
}
