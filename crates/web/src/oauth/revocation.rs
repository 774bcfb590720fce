//! `POST /revoke`: token revocation (RFC 7009). A client revokes one of its own
//! refresh or access tokens; Usher revokes the grant behind it, so every token of
//! that sign-in stops working together (§2.1 allows revoking related tokens).

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};

use super::{
    token::{authenticate_client, no_store, parse_form, TokenError},
    tokens::{identify, Presented},
};
use crate::{state::AppState, throttle::ClientAddress};

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Extension(client): Extension<ClientAddress>,
    body: Bytes,
) -> Response {
    match revoke(&state, &headers, client, &body).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => e.into_response(),
    }
}

async fn revoke(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientAddress,
    body: &[u8],
) -> Result<(), TokenError> {
    let form = parse_form(headers, body)?;
    let app = authenticate_client(state, headers, client, &form).await?;
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return Err(TokenError::new("invalid_request", "token is missing."));
    };
    let hint = form.get("token_type_hint").map(String::as_str);
    let presented = identify(state, token, hint)
        .await
        .map_err(|e| TokenError::server(state, e))?;
    // An unknown, expired or foreign token answers the same 200 (§2.2): the answer
    // must not tell a client whether some other client's token exists.
    let Some(presented) = presented else {
        return Ok(());
    };
    let Some(grant_id) = presented.grant_id() else {
        return Ok(());
    };
    let grant = state
        .store
        .grant(grant_id)
        .await
        .map_err(|e| TokenError::server(state, e))?;
    let belongs = grant.as_ref().is_some_and(|g| g.client_id == app.client_id)
        && match &presented {
            Presented::Access(c) => {
                c.get("client_id").and_then(serde_json::Value::as_str)
                    == Some(app.client_id.as_str())
            }
            Presented::Refresh(_) => true,
        };
    if belongs {
        state
            .store
            .revoke_grant(grant_id, state.clock.now())
            .await
            .map_err(|e| TokenError::server(state, e))?;
        tracing::info!(client_id = %app.client_id, %grant_id, "grant revoked by its client");
    }
    Ok(())
}
