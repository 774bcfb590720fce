//! `POST /flow/{id}/attributes`: the attribute page (then, in the engine, the
//! `postAttributeCollection` connectors and the new user).

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};

use super::{begin, respond};
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
    let next = state.engine.submit_attributes(loaded, &form).await;
    respond(&state, next)
}
