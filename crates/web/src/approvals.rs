//! The built-in approval queue's decisions, shared by the admin API and the console:
//! approving creates the user from the held sign-up and emails them; denying emails
//! them and keeps the request, which blocks later attempts with its identities or
//! email until an administrator clears it. Every decision records who and when.
//!
//! Who decided (`decided_by`) is always one of two kinds, told apart by its form: an
//! administrator's user id (the console), or `application:<client id>` for an admin
//! API client, which acts as itself and not as any user.

use usher_domain::{NewUser, SignUpRequest, SignUpRequestStatus, User, UserProfile};
use usher_storage::StorageError;

use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no such sign-up request")]
    NotFound,
    #[error("the sign-up request has already been decided")]
    NotPending,
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Who makes a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    /// An administrator in the console, by user id.
    Admin(String),
    /// An admin API client (an application), by client id.
    Application(String),
}

/// The prefix that marks an application among the recorded deciders; user ids are
/// UUIDs, so they never begin with it.
pub const APPLICATION_PREFIX: &str = "application:";

impl Decider {
    /// The form stored as `decided_by`.
    pub fn recorded(&self) -> String {
        match self {
            Decider::Admin(user_id) => user_id.clone(),
            Decider::Application(client_id) => format!("{APPLICATION_PREFIX}{client_id}"),
        }
    }

    /// Reads a stored `decided_by` back.
    pub fn parse(recorded: &str) -> Self {
        match recorded.strip_prefix(APPLICATION_PREFIX) {
            Some(client_id) => Decider::Application(client_id.to_owned()),
            None => Decider::Admin(recorded.to_owned()),
        }
    }
}

async fn pending(state: &AppState, id: &str) -> Result<SignUpRequest, ApprovalError> {
    let request = state
        .store
        .sign_up_request(id)
        .await?
        .ok_or(ApprovalError::NotFound)?;
    if request.status != SignUpRequestStatus::Pending {
        return Err(ApprovalError::NotPending);
    }
    Ok(request)
}

/// Creates the user the request describes and records the approval, in one
/// transaction: there is never a user without its approval, nor an approval
/// without its user.
pub async fn approve(
    state: &AppState,
    id: &str,
    decided_by: &Decider,
) -> Result<User, ApprovalError> {
    let request = pending(state, id).await?;
    let now = state.clock.now();
    let decided_by = decided_by.recorded();
    let user = NewUser {
        id: state.new_id(),
        email: Some(request.email.clone()),
        attributes: request.attributes.clone(),
        identities: request.identities.clone(),
        password_hash: request.password_hash.clone(),
        created_at: now,
        // The held sign-up's address was proven by a code or vouched for by the
        // provider before the request was stored.
        account_enabled: true,
        email_verified: true,
        profile: UserProfile::default(),
    };
    let (_, user) = state
        .store
        .approve_sign_up_request(id, user, &decided_by, now)
        .await
        .map_err(|e| match e {
            StorageError::DuplicateIdentity => ApprovalError::Conflict(
                "an identity of this sign-up request already belongs to a user".into(),
            ),
            e => ApprovalError::Storage(e),
        })?
        .ok_or(ApprovalError::NotPending)?;
    tracing::info!(request_id = %id, user_id = %user.id, %decided_by, "sign-up request approved");
    notify(
        state,
        &request.email,
        "email.approved.subject",
        "email_approved.txt",
    )
    .await;
    Ok(user)
}

/// Records the denial; later attempts with the request's identities or email are
/// blocked until the request is cleared.
pub async fn deny(
    state: &AppState,
    id: &str,
    decided_by: &Decider,
) -> Result<SignUpRequest, ApprovalError> {
    let request = pending(state, id).await?;
    let decided_by = decided_by.recorded();
    let decided = state
        .store
        .decide_sign_up_request(
            id,
            SignUpRequestStatus::Denied,
            &decided_by,
            state.clock.now(),
            None,
        )
        .await?
        .ok_or(ApprovalError::NotPending)?;
    tracing::info!(request_id = %id, %decided_by, "sign-up request denied");
    notify(
        state,
        &request.email,
        "email.denied.subject",
        "email_denied.txt",
    )
    .await;
    Ok(decided)
}

/// Removes a request (typically a denial, so the person may try again).
pub async fn clear(state: &AppState, id: &str) -> Result<bool, ApprovalError> {
    let removed = state.store.delete_sign_up_request(id).await?;
    if removed {
        tracing::info!(request_id = %id, "sign-up request cleared");
    }
    Ok(removed)
}

/// Emails the decision. A failed delivery is logged, not fatal: the decision stands.
async fn notify(state: &AppState, to: &str, subject_key: &str, template: &str) {
    let locale = crate::i18n::DEFAULT_LOCALE;
    let subject = state
        .templates
        .catalogue()
        .message(locale, subject_key, &[]);
    let body = match state
        .templates
        .render(template, locale, &serde_json::json!({}))
    {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, template, "could not render the decision email");
            return;
        }
    };
    if let Err(e) = state.mailer.send(to, &subject, body).await {
        tracing::warn!(error = %e, "could not send the decision email");
    }
}
