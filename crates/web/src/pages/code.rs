//! `POST /flow/{id}/code`: the code from the email.

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
        .submit_code(loaded, first(&form, "code"), client)
        .await;
    respond(&state, next)
}
