//! `POST /flow/{id}/email` (the address to verify), `POST /flow/{id}/resend` and
//! `POST /flow/{id}/change-email`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};

use super::{begin, first, respond};
use crate::{state::AppState, throttle::ClientAddress};

pub async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Extension(client): axum::Extension<ClientAddress>,
    body: Bytes,
) -> Response {
    let (loaded, form) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = state
        .engine
        .submit_email(loaded, first(&form, "email"), client)
        .await;
    respond(&state, next)
}

pub async fn resend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Extension(client): axum::Extension<ClientAddress>,
    body: Bytes,
) -> Response {
    let (loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = state.engine.resend_code(loaded, client).await;
    respond(&state, next)
}

/// "Use a different email address" on the code page.
pub async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = state.engine.change_email(loaded).await;
    respond(&state, next)
}
