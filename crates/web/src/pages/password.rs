//! `POST /flow/{id}/password`: the new account's password.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};

use super::{begin, first, respond};
use crate::state::AppState;

pub async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (loaded, form) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = state
        .engine
        .submit_password(
            loaded,
            first(&form, "password"),
            first(&form, "confirmPassword"),
        )
        .await;
    respond(&state, next)
}
