//! The account pages: `POST /flow/{id}/forgot-password` ("Forgot your password?"),
//! `/new-password` (a reset's or a change's new password), `/profile` (the profile
//! page, then, in the engine, the `onProfileUpdate` connectors) and
//! `/delete-account` (send the code that confirms a deletion); and `GET /reset`, an
//! administrator's reset link.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::Response,
};
use serde::Deserialize;

use super::{error_page, request_locale, respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

/// The query of an administrator's reset link.
#[derive(Deserialize)]
pub struct ResetLinkQuery {
    #[serde(default)]
    token: String,
}

/// `GET /reset?token=…`: an administrator's reset link opens a reset flow. The token
/// is in the query, which the access log leaves out; the page it leads to sends no
/// referrer.
pub async fn reset_link(
    State(state): State<AppState>,
    Query(ResetLinkQuery { token }): Query<ResetLinkQuery>,
    headers: HeaderMap,
) -> Response {
    let locale = request_locale(&headers, None);
    let browser = crate::pages::browser_token(&state, &headers);
    let browser_token = browser.0.clone();
    let flow_id = match state
        .engine
        .open_reset_link(&token, locale, &browser_token)
        .await
    {
        Ok(id) => id,
        Err(e) => return error_page(&state, locale, e),
    };
    crate::pages::to_new_flow(&state, &flow_id, browser)
}

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
    let next = state.engine.send_deletion_code(loaded, client).await;
    respond(&state, next)
}
