//! The account pages: `POST /flow/{id}/forgot-password` ("Forgot your password?"),
//! `/new-password` (a reset's or a change's new password), `/profile` (the profile
//! page, then, in the engine, the `onProfileUpdate` connectors) and
//! `/delete-account` (send the code that confirms a deletion).

use std::collections::BTreeMap;

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::{respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

pub async fn forgot_password(
    State(state): State<AppState>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.forgot_password(loaded).await;
    respond(&state, next)
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct NewPasswordForm {
    current_password: String,
    password: String,
    confirm_password: String,
}

pub async fn new_password(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, form }: FlowForm<NewPasswordForm>,
) -> Response {
    let next = state
        .engine
        .submit_new_password(
            loaded,
            &form.current_password,
            &form.password,
            &form.confirm_password,
            client,
        )
        .await;
    respond(&state, next)
}

pub async fn profile(
    State(state): State<AppState>,
    FlowForm { loaded, form }: FlowForm<BTreeMap<String, Vec<String>>>,
) -> Response {
    let next = state.engine.submit_profile(loaded, &form).await;
    respond(&state, next)
}

pub async fn delete_account(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.confirm_deletion(loaded, client).await;
    respond(&state, next)
}
