//! The flow's side of the approval queue: a sign-up to a flow that requires approval
//! is held as a pending request instead of creating the user; a person who comes
//! back while it is pending sees the pending page, and one who was denied sees the
//! block page, until an administrator clears the request.

use axum::{http::StatusCode, response::Response};
use usher_domain::{Identity, SignUpRequest, SignUpRequestStatus};
use usher_storage::StorageError;

use super::{error_page, flow_message, save, show, Feedback, Loaded, PageError};
use crate::state::AppState;

/// Stores the sign-up for approval and shows the pending page.
pub async fn hold(state: &AppState, loaded: &mut Loaded, request: SignUpRequest) -> Response {
    let locale = loaded.flow.locale.clone();
    match state.store.insert_sign_up_request(&request).await {
        // A second run of the same step stored it already: the id is the draft's.
        Ok(()) | Err(StorageError::AlreadyExists) => {}
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    }
    tracing::info!(request_id = %request.id, user_flow = %request.user_flow_id, "sign-up held for approval");
    if loaded
        .flow
        .awaiting_approval(request.id.clone(), state.clock.now())
        .is_err()
    {
        return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(state, loaded).await {
        return r;
    }
    show::pending_page(state, loaded)
}

/// If this email or identity has a pending or denied request, the page to show
/// (and the flow ends there); `None` if there is none.
pub async fn returning(
    state: &AppState,
    loaded: &mut Loaded,
    email: Option<&str>,
    identities: &[Identity],
) -> Option<Response> {
    let locale = loaded.flow.locale.clone();
    let open = match state
        .store
        .open_sign_up_requests_for(email, identities)
        .await
    {
        Ok(o) => o,
        Err(e) => return Some(error_page(state, &locale, PageError::internal(state, e))),
    };
    // A denial outweighs a pending request.
    if open.iter().any(|r| r.status == SignUpRequestStatus::Denied) {
        let message = flow_message(state, loaded, "blocked.denied", &[]);
        loaded.flow.block(message.clone());
        if let Err(r) = save(state, loaded).await {
            return Some(r);
        }
        return Some(show::blocked_page(state, loaded, &message));
    }
    let pending = open
        .into_iter()
        .find(|r| r.status == SignUpRequestStatus::Pending)?;
    if loaded
        .flow
        .awaiting_approval(pending.id, state.clock.now())
        .is_err()
    {
        return Some(
            show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await,
        );
    }
    if let Err(r) = save(state, loaded).await {
        return Some(r);
    }
    Some(show::pending_page(state, loaded))
}
