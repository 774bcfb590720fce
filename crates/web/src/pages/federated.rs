//! The provider buttons (`POST /flow/{id}/provider`) and the link page's actions
//! (`POST /flow/{id}/link`, `POST /flow/{id}/link-code`); what happens once a provider
//! vouched for an identity is the engine's.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};

use super::{begin, first, respond};
use crate::{state::AppState, throttle::ClientAddress};

/// `POST /flow/{id}/link`: the existing account's password, then the link.
pub async fn link_with_password(
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
        .link_with_password(loaded, first(&form, "password"), client)
        .await;
    respond(&state, next)
}

/// `POST /flow/{id}/link-code`: prove the existing account's address with a code.
pub async fn link_with_code(
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
    let next = state.engine.link_with_code(loaded, client).await;
    respond(&state, next)
}

/// `POST /flow/{id}/provider`: a provider button. Email one-time passcode is built
/// in; upstream providers redirect there.
pub async fn choose_provider(
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
        .choose_provider(loaded, first(&form, "provider"))
        .await;
    respond(&state, next)
}
