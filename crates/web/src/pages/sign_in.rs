//! `POST /flow/{id}/sign-in` (email and password), `POST /flow/{id}/sign-up` (go to
//! the sign-up pages) and `POST /flow/{id}/sign-in-instead`.

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
        .sign_in(
            loaded,
            first(&form, "email"),
            first(&form, "password"),
            client,
        )
        .await;
    respond(&state, next)
}

/// "Sign up now" (and "use a different email address").
pub async fn to_sign_up(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = state.engine.go_to_sign_up(loaded).await;
    respond(&state, next)
}

/// "Back to sign in".
pub async fn to_sign_in(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let next = state.engine.go_to_sign_in(loaded).await;
    respond(&state, next)
}
