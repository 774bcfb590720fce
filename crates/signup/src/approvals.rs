//! The built-in approval queue's decisions, shared by the admin API and the console:
//! approving creates the user from the held sign-up and emails them; denying emails
//! them and keeps the request, which blocks later attempts with its identities or
//! email until an administrator clears it. Every decision records who and when.
//!
//! The flow's side is here too: a sign-up to a flow that requires approval is held as
//! a pending request instead of creating the user; a person who comes back while it is
//! pending sees the pending page, and one who was denied sees the block page, until an
//! administrator clears the request.
//!
//! Who decided (`decided_by`) is always one of two kinds, told apart by its form: an
//! administrator's user id (the console), or `application:<client id>` for an admin
//! API client, which acts as itself and not as any user.

use usher_domain::{Identity, NewUser, SignUpRequest, SignUpRequestStatus, User, UserProfile};
use usher_storage::StorageError;

use crate::{Engine, Letter, Loaded, Next};

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

impl Engine {
    async fn pending(&self, id: &str) -> Result<SignUpRequest, ApprovalError> {
        let request = self
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
    pub async fn approve(&self, id: &str, decided_by: &Decider) -> Result<User, ApprovalError> {
        let request = self.pending(id).await?;
        let now = self.clock.now();
        let decided_by = decided_by.recorded();
        let user = NewUser {
            id: self.random.new_id(),
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
        let (_, user) = self
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
        self.notify(&request.email, &Letter::Approved).await;
        Ok(user)
    }

    /// Records the denial; later attempts with the request's identities or email are
    /// blocked until the request is cleared.
    pub async fn deny(
        &self,
        id: &str,
        decided_by: &Decider,
        reason: Option<&str>,
    ) -> Result<SignUpRequest, ApprovalError> {
        let request = self.pending(id).await?;
        let decided_by = decided_by.recorded();
        let decided = self
            .store
            .decide_sign_up_request(
                id,
                SignUpRequestStatus::Denied,
                &decided_by,
                self.clock.now(),
                None,
            )
            .await?
            .ok_or(ApprovalError::NotPending)?;
        tracing::info!(request_id = %id, %decided_by, "sign-up request denied");
        let reason = reason.map(denial_reason).filter(|r| !r.is_empty());
        self.notify(&request.email, &Letter::Denied { reason })
            .await;
        Ok(decided)
    }

    /// Removes a request (typically a denial, so the person may try again).
    pub async fn clear(&self, id: &str) -> Result<bool, ApprovalError> {
        let removed = self.store.delete_sign_up_request(id).await?;
        if removed {
            tracing::info!(request_id = %id, "sign-up request cleared");
        }
        Ok(removed)
    }

    /// Emails the decision. A failed delivery is logged, not fatal: the decision stands.
    async fn notify(&self, to: &str, letter: &Letter) {
        let written = match self.postman.write(to, crate::DEFAULT_LOCALE, letter, None) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "could not write the decision email");
                return;
            }
        };
        if let Err(e) = self.postman.deliver(to, written).await {
            tracing::warn!(error = %e, "could not send the decision email");
        }
    }

    /// Stores the sign-up for approval and shows the pending page.
    pub(crate) async fn hold(&self, mut loaded: Loaded, request: SignUpRequest) -> Next {
        match self.store.insert_sign_up_request(&request).await {
            // A second run of the same step stored it already: the id is the draft's.
            Ok(()) | Err(StorageError::AlreadyExists) => {}
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        }
        tracing::info!(request_id = %request.id, user_flow = %request.user_flow_id, "sign-up held for approval");
        if loaded
            .flow
            .awaiting_approval(request.id.clone(), self.clock.now())
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        Next::Pending {
            loaded: Box::new(loaded),
        }
    }

    /// A held or denied sign-up for this email or identity decides: `Err` with the page
    /// to show (the flow ends there); `Ok` with the flow when there is none.
    pub(crate) async fn returning(
        &self,
        mut loaded: Loaded,
        email: Option<&str>,
        identities: &[Identity],
    ) -> Result<Loaded, Box<Next>> {
        let open = match self
            .store
            .open_sign_up_requests_for(email, identities)
            .await
        {
            Ok(o) => o,
            Err(e) => return Err(Box::new(self.fail_with(&loaded.flow.locale, e))),
        };
        // A denial outweighs a pending request.
        if open.iter().any(|r| r.status == SignUpRequestStatus::Denied) {
            let message = self.text(&loaded, "blocked.denied", &[]);
            loaded.flow.block(message.clone(), None);
            self.save(&mut loaded).await?;
            return Err(Box::new(Next::Blocked {
                loaded: Box::new(loaded),
                user_message: message,
                title: None,
            }));
        }
        let Some(pending) = open
            .into_iter()
            .find(|r| r.status == SignUpRequestStatus::Pending)
        else {
            return Ok(loaded);
        };
        if loaded
            .flow
            .awaiting_approval(pending.id, self.clock.now())
            .is_err()
        {
            return Err(Box::new(self.as_is(loaded)));
        }
        self.save(&mut loaded).await?;
        Err(Box::new(Next::Pending {
            loaded: Box::new(loaded),
        }))
    }
}

/// The longest reason a denial's email carries, in characters.
pub const MAX_DENIAL_REASON: usize = 500;

/// A denial's reason as the email carries it: control characters (but line breaks)
/// become spaces, the ends are trimmed, and it is cut at [`MAX_DENIAL_REASON`].
pub fn denial_reason(reason: &str) -> String {
    reason
        .trim()
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .take(MAX_DENIAL_REASON)
        .collect::<String>()
        .trim_end()
        .to_owned()
}
