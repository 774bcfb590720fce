//! The provider buttons (`POST /flow/{id}/provider`) and the link page's actions
//! (`POST /flow/{id}/link`, `POST /flow/{id}/link-code`); what happens once a provider
//! vouched for an identity is the engine's.

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::{respond, FlowForm};
use crate::{state::AppState, throttle::ClientAddress};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LinkForm {
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ProviderForm {
    provider: String,
}

/// `POST /flow/{id}/link`: the existing account's password, then the link.
pub async fn link_with_password(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, form }: FlowForm<LinkForm>,
) -> Response {
    let next = state
        .engine
        .link_with_password(loaded, &form.password, client)
        .await;
    respond(&state, next)
}

/// `POST /flow/{id}/link-code`: prove the existing account's address with a code.
pub async fn link_with_code(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddress>,
    FlowForm { loaded, .. }: FlowForm<()>,
) -> Response {
    let next = state.engine.link_with_code(loaded, client).await;
    respond(&state, next)
}

/// `POST /flow/{id}/provider`: a provider button. Email one-time passcode is built
/// in; upstream providers redirect there.
pub async fn choose_provider(
    State(state): State<AppState>,
    FlowForm { loaded, form }: FlowForm<ProviderForm>,
) -> Response {
    let next = state.engine.choose_provider(loaded, &form.provider).await;
    respond(&state, next)
}
