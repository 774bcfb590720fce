//! `POST /flow/{id}/sign-in` (email and password), `POST /flow/{id}/sign-up` (go to
//! the sign-up pages) and `POST /flow/{id}/sign-in-instead`.

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::{respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignInForm {
    email: String,
    password: String,
}

pub async fn post(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, form }: FlowForm<SignInForm>,
) -> Response {
    let next = state
        .engine
        .sign_in(loaded, &form.email, &form.password, client)
        .await;
    respond(&state, next)
}

/// "Sign up now" (and "use a different email address").
pub async fn to_sign_up(
    State(state): State<AppState>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.go_to_sign_up(loaded).await;
    respond(&state, next)
}

/// "Back to sign in".
pub async fn to_sign_in(
    State(state): State<AppState>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.go_to_sign_in(loaded).await;
    respond(&state, next)
}
