//! The account pages: `POST /flow/{id}/forgot-password` ("Forgot your password?"),
//! `/new-password` (a reset's or a change's new password), `/profile` (the profile
//! page, then, in the engine, the `onProfileUpdate` connectors) and
//! `/delete-account` (send the code that confirms a deletion); and `GET|POST /reset`, an
//! administrator's reset link and the button that follows it.

use std::collections::BTreeMap;

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::Response,
};
use serde::Deserialize;

use super::{error_page, request_locale, respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

/// The `token` of a reset link's query or of its page's form, read leniently: a
/// garbled one is an unknown token, which gets the page saying the link does not
/// work rather than a bare extractor error.
fn link_token(raw: &[u8]) -> String {
    super::first(&super::parse_form(raw), "token").to_owned()
}

/// `GET /reset?token=…`: the page of an administrator's reset link, which asks the
/// person to go on. Nothing is started by the link alone, so a mail scanner that
/// follows it changes nothing. The token is in the query, which the access log
/// leaves out; the page sends no referrer.
pub async fn reset_link_page(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let token = link_token(query.unwrap_or_default().as_bytes());
    #[derive(serde::Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        errors: Vec<super::SummaryError>,
        notice: Option<String>,
        application: &'a str,
        token: &'a str,
    }
    let locale = request_locale(&headers, None);
    match state.engine.check_reset_link(&token).await {
        Ok(application) => super::render(
            &state,
            axum::http::StatusCode::OK,
            "reset_link.html",
            locale,
            &Ctx {
                title_key: "reset_link.title",
                errors: Vec::new(),
                notice: None,
                application: &application,
                token: &token,
            },
        ),
        Err(e) => error_page(&state, locale, e),
    }
}

/// `POST /reset` with the link's token: a reset flow for this browser.
pub async fn start_reset_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = link_token(&body);
    let locale = request_locale(&headers, None);
    let browser = crate::pages::browser_token(&state, &headers);
    let flow_id = match state
        .engine
        .open_reset_link(&token, locale, &browser.0)
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
