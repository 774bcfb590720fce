//! The sign-up-or-sign-in state machine.
//!
//! A flow begins at `/authorize` and ends with the browser going back to the
//! application. Every step is a state stored in the database, so any Usher instance
//! can continue a flow another one started, and a restart loses nothing. The
//! transitions here are pure: the web layer loads a flow, applies one transition with
//! the inputs it gathered (a hashed code, a hashed password, parsed attributes, a
//! connector's outcome) and saves the flow with optimistic concurrency.
//!
//! Local-account sign-up:
//!
//! ```text
//! SignIn ──"sign up"──▶ SignUpEmail ──email──▶ SignUpCode ──code──▶ SignUpPassword
//!   │                                                                   │ password
//!   │ email + password                                                  ▼
//!   │                     ┌──── ValidationError ──── RunningConnectors ◀── SignUpAttributes
//!   │                     ▼                    (PostAttributeCollection)
//!   │              SignUpAttributes                 │ Continue    │ ShowBlockPage / failure
//!   ▼                                               ▼             ▼
//! Completed ◀──────────────────── user created ─────┘        Blocked / Failed
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{attribute::AttributeValues, connector::ConnectorStep, user::Identity};

/// How long a flow may take from `/authorize` to the application.
pub const FLOW_LIFETIME: Duration = Duration::minutes(60);
/// How long an emailed code is valid.
pub const CODE_LIFETIME: Duration = Duration::minutes(10);
/// Wrong codes allowed for one code before a new one must be sent.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Codes one flow may send, so a flow cannot be used to flood a mailbox.
pub const MAX_CODES_SENT: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prompt {
    /// Ask for credentials even when a session exists.
    Login,
    /// Start at sign-up rather than sign-in.
    Create,
    /// Never show a page: answer `login_required` if there is no session.
    None,
}

/// A validated OpenID Connect authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    pub ui_locales: Option<String>,
    pub login_hint: Option<String>,
    pub prompt: Option<Prompt>,
}

/// What a sign-up has gathered so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUpDraft {
    /// The verified email address.
    pub email: String,
    /// Argon2id PHC string; `None` for federated sign-ups.
    pub password_hash: Option<String>,
    pub identities: Vec<Identity>,
    /// What the user entered (or a connector set).
    pub attributes: AttributeValues,
    /// Values the attribute page starts with.
    pub prefill: AttributeValues,
}

/// A message from a connector shown on the attribute page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMessage {
    pub user_message: String,
    /// Attribute id → message.
    pub attribute_errors: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum FlowStep {
    /// Email + password sign-in, with a way to sign up.
    SignIn,
    /// Asks for the email address to verify.
    SignUpEmail,
    /// A code was (or, for an existing account, was not) sent to `email`.
    #[serde(rename_all = "camelCase")]
    SignUpCode {
        email: String,
        /// HMAC of the code; `None` when the address already has an account, so no
        /// code can match and the page does not reveal why.
        code_hash: Option<String>,
        code_expires_at: DateTime<Utc>,
        attempts: u32,
        codes_sent: u32,
    },
    #[serde(rename_all = "camelCase")]
    SignUpPassword { email: String },
    #[serde(rename_all = "camelCase")]
    SignUpAttributes {
        draft: SignUpDraft,
        message: Option<PageMessage>,
    },
    /// The connectors of `connector_step` are running (or must be re-run after a
    /// restart) on `draft`.
    #[serde(rename_all = "camelCase")]
    RunningConnectors {
        connector_step: ConnectorStep,
        draft: SignUpDraft,
    },
    /// The user is known; the browser goes back to the application.
    #[serde(rename_all = "camelCase")]
    Completed { user_id: String, signed_up: bool },
    /// A connector blocked the sign-up.
    #[serde(rename_all = "camelCase")]
    Blocked { user_message: String },
    /// A connector call failed; `reference` is in the call record and the log.
    #[serde(rename_all = "camelCase")]
    Failed { reference: String },
}

impl FlowStep {
    pub fn name(&self) -> &'static str {
        match self {
            FlowStep::SignIn => "signIn",
            FlowStep::SignUpEmail => "signUpEmail",
            FlowStep::SignUpCode { .. } => "signUpCode",
            FlowStep::SignUpPassword { .. } => "signUpPassword",
            FlowStep::SignUpAttributes { .. } => "signUpAttributes",
            FlowStep::RunningConnectors { .. } => "runningConnectors",
            FlowStep::Completed { .. } => "completed",
            FlowStep::Blocked { .. } => "blocked",
            FlowStep::Failed { .. } => "failed",
        }
    }

    /// Whether the flow has ended (successfully or not).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            FlowStep::Completed { .. } | FlowStep::Blocked { .. } | FlowStep::Failed { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("this step does not belong here (the flow is at {0})")]
    WrongStep(&'static str),
    #[error("the flow has expired")]
    Expired,
    #[error("the code has expired")]
    CodeExpired,
    #[error("the code is wrong")]
    WrongCode { attempts_left: u32 },
    #[error("too many wrong codes")]
    TooManyAttempts,
    #[error("too many codes sent")]
    TooManyCodes,
}

/// One sign-up-or-sign-in attempt by one browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub id: String,
    pub user_flow_id: String,
    pub authorization: AuthorizationRequest,
    /// The language the pages are shown in.
    pub locale: String,
    /// SHA-256 of the browser cookie that started the flow: only that browser may
    /// continue it.
    pub browser_binding: String,
    /// Token every form of this flow carries.
    pub csrf_token: String,
    pub step: FlowStep,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Incremented on every save; a save against a stale version is refused.
    pub version: i64,
}

impl Flow {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        id: String,
        user_flow_id: String,
        authorization: AuthorizationRequest,
        locale: String,
        browser_binding: String,
        csrf_token: String,
        now: DateTime<Utc>,
    ) -> Self {
        let step = if authorization.prompt == Some(Prompt::Create) {
            FlowStep::SignUpEmail
        } else {
            FlowStep::SignIn
        };
        Self {
            id,
            user_flow_id,
            authorization,
            locale,
            browser_binding,
            csrf_token,
            step,
            created_at: now,
            expires_at: now + FLOW_LIFETIME,
            version: 0,
        }
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    fn check_live(&self, now: DateTime<Utc>) -> Result<(), FlowError> {
        if self.is_expired(now) {
            Err(FlowError::Expired)
        } else {
            Ok(())
        }
    }

    fn wrong(&self) -> FlowError {
        FlowError::WrongStep(self.step.name())
    }

    /// From sign-in (or anywhere before a code is verified) to the sign-up email page.
    pub fn go_to_sign_up(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        match self.step {
            FlowStep::SignIn | FlowStep::SignUpEmail | FlowStep::SignUpCode { .. } => {
                self.step = FlowStep::SignUpEmail;
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    /// Back to sign-in from any sign-up page before the account exists.
    pub fn go_to_sign_in(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        match self.step {
            FlowStep::SignIn
            | FlowStep::SignUpEmail
            | FlowStep::SignUpCode { .. }
            | FlowStep::SignUpPassword { .. }
            | FlowStep::SignUpAttributes { .. } => {
                self.step = FlowStep::SignIn;
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    /// A code was sent to `email` (or deliberately not, `code_hash: None`, because the
    /// address already has an account). Also used to send a new code.
    pub fn code_sent(
        &mut self,
        email: String,
        code_hash: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let codes_sent = match &self.step {
            FlowStep::SignUpEmail => 0,
            FlowStep::SignUpCode {
                email: previous,
                codes_sent,
                ..
            } if *previous == email => *codes_sent,
            FlowStep::SignUpCode { .. } => 0,
            _ => return Err(self.wrong()),
        };
        if codes_sent >= MAX_CODES_SENT {
            return Err(FlowError::TooManyCodes);
        }
        self.step = FlowStep::SignUpCode {
            email,
            code_hash,
            code_expires_at: now + CODE_LIFETIME,
            attempts: 0,
            codes_sent: codes_sent + 1,
        };
        Ok(())
    }

    /// Whether another code may be sent in this flow.
    pub fn may_send_code(&self) -> bool {
        match &self.step {
            FlowStep::SignUpEmail => true,
            FlowStep::SignUpCode { codes_sent, .. } => *codes_sent < MAX_CODES_SENT,
            _ => false,
        }
    }

    /// Checks a code. `candidate_hash` is the HMAC of what the user typed, computed the
    /// same way as the stored one. A wrong code counts against the attempts (the
    /// caller must save the flow on error too).
    pub fn verify_code(
        &mut self,
        candidate_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::SignUpCode {
            email,
            code_hash,
            code_expires_at,
            attempts,
            ..
        } = &mut self.step
        else {
            return Err(self.wrong());
        };
        if *attempts >= MAX_CODE_ATTEMPTS {
            return Err(FlowError::TooManyAttempts);
        }
        if now >= *code_expires_at {
            return Err(FlowError::CodeExpired);
        }
        *attempts += 1;
        let matches = code_hash
            .as_deref()
            .is_some_and(|h| constant_time_eq(h.as_bytes(), candidate_hash.as_bytes()));
        if !matches {
            let left = MAX_CODE_ATTEMPTS - *attempts;
            return Err(if left == 0 {
                FlowError::TooManyAttempts
            } else {
                FlowError::WrongCode {
                    attempts_left: left,
                }
            });
        }
        let email = std::mem::take(email);
        self.step = FlowStep::SignUpPassword { email };
        Ok(())
    }

    /// The password (already checked against the policy and hashed) is set.
    pub fn password_set(
        &mut self,
        password_hash: String,
        prefill: AttributeValues,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::SignUpPassword { email } = &self.step else {
            return Err(self.wrong());
        };
        self.step = FlowStep::SignUpAttributes {
            draft: SignUpDraft {
                email: email.clone(),
                password_hash: Some(password_hash),
                identities: Vec::new(),
                attributes: AttributeValues::new(),
                prefill,
            },
            message: None,
        };
        Ok(())
    }

    /// The attribute page was submitted with valid values: the
    /// `PostAttributeCollection` connectors run next.
    pub fn attributes_submitted(
        &mut self,
        attributes: AttributeValues,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::SignUpAttributes { draft, .. } = &mut self.step else {
            return Err(self.wrong());
        };
        let mut draft = std::mem::take(draft);
        draft.attributes = attributes;
        self.step = FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PostAttributeCollection,
            draft,
        };
        Ok(())
    }

    /// A connector answered `ValidationError`: back to the attribute page with the
    /// user's input and the message.
    pub fn connector_validation_error(&mut self, message: PageMessage) -> Result<(), FlowError> {
        let FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PostAttributeCollection,
            draft,
        } = &mut self.step
        else {
            return Err(self.wrong());
        };
        let mut draft = std::mem::take(draft);
        draft.prefill = draft.attributes.clone();
        self.step = FlowStep::SignUpAttributes {
            draft,
            message: Some(message),
        };
        Ok(())
    }

    /// The draft the running connectors work on.
    pub fn running_draft(&self) -> Option<(ConnectorStep, &SignUpDraft)> {
        match &self.step {
            FlowStep::RunningConnectors {
                connector_step,
                draft,
            } => Some((*connector_step, draft)),
            _ => None,
        }
    }

    /// The user exists (created by this sign-up, or signed in).
    pub fn complete(
        &mut self,
        user_id: String,
        signed_up: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        match self.step {
            FlowStep::SignIn | FlowStep::RunningConnectors { .. } => {
                self.step = FlowStep::Completed { user_id, signed_up };
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    pub fn block(&mut self, user_message: String) {
        self.step = FlowStep::Blocked { user_message };
    }

    pub fn fail(&mut self, reference: String) {
        self.step = FlowStep::Failed { reference };
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::AttributeValue;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn request(prompt: Option<Prompt>) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: vec!["openid".into()],
            state: None,
            nonce: None,
            code_challenge: None,
            ui_locales: None,
            login_hint: None,
            prompt,
        }
    }

    fn flow(prompt: Option<Prompt>) -> Flow {
        Flow::start(
            "f".into(),
            "B2X_1_x".into(),
            request(prompt),
            "en".into(),
            "b".into(),
            "c".into(),
            now(),
        )
    }

    #[test]
    fn prompt_create_starts_at_sign_up() {
        assert_eq!(flow(None).step, FlowStep::SignIn);
        assert_eq!(flow(Some(Prompt::Create)).step, FlowStep::SignUpEmail);
    }

    #[test]
    fn full_local_sign_up() {
        let mut f = flow(None);
        f.go_to_sign_up(now()).unwrap();
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        assert_eq!(
            f.verify_code("x", now()),
            Err(FlowError::WrongCode { attempts_left: 4 })
        );
        f.verify_code("h", now()).unwrap();
        assert_eq!(
            f.step,
            FlowStep::SignUpPassword {
                email: "a@example.com".into()
            }
        );
        f.password_set("$argon2id$…".into(), AttributeValues::new(), now())
            .unwrap();
        let attrs: AttributeValues =
            [("displayName".to_owned(), AttributeValue::String("A".into()))].into();
        f.attributes_submitted(attrs.clone(), now()).unwrap();
        let (step, draft) = f.running_draft().unwrap();
        assert_eq!(step, ConnectorStep::PostAttributeCollection);
        assert_eq!(draft.attributes, attrs);
        f.connector_validation_error(PageMessage {
            user_message: "no".into(),
            ..Default::default()
        })
        .unwrap();
        match &f.step {
            FlowStep::SignUpAttributes { draft, message } => {
                assert_eq!(draft.prefill, attrs);
                assert_eq!(message.as_ref().unwrap().user_message, "no");
            }
            other => panic!("{other:?}"),
        }
        f.attributes_submitted(attrs, now()).unwrap();
        f.complete("u".into(), true, now()).unwrap();
        assert!(f.step.is_final());
    }

    #[test]
    fn codes_are_limited() {
        let mut f = flow(Some(Prompt::Create));
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        for left in (1..MAX_CODE_ATTEMPTS).rev() {
            assert_eq!(
                f.verify_code("x", now()),
                Err(FlowError::WrongCode {
                    attempts_left: left
                })
            );
        }
        assert_eq!(f.verify_code("x", now()), Err(FlowError::TooManyAttempts));
        // Even the right code is refused now.
        assert_eq!(f.verify_code("h", now()), Err(FlowError::TooManyAttempts));
        // A new code resets the attempts.
        f.code_sent("a@example.com".into(), Some("h2".into()), now())
            .unwrap();
        f.verify_code("h2", now()).unwrap();
    }

    #[test]
    fn codes_expire() {
        let mut f = flow(Some(Prompt::Create));
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        let later = now() + CODE_LIFETIME;
        assert_eq!(f.verify_code("h", later), Err(FlowError::CodeExpired));
    }

    #[test]
    fn existing_account_code_never_matches() {
        let mut f = flow(Some(Prompt::Create));
        f.code_sent("a@example.com".into(), None, now()).unwrap();
        assert!(matches!(
            f.verify_code("", now()),
            Err(FlowError::WrongCode { .. })
        ));
    }

    #[test]
    fn sends_are_limited() {
        let mut f = flow(Some(Prompt::Create));
        for _ in 0..MAX_CODES_SENT {
            f.code_sent("a@example.com".into(), Some("h".into()), now())
                .unwrap();
        }
        assert!(!f.may_send_code());
        assert_eq!(
            f.code_sent("a@example.com".into(), Some("h".into()), now()),
            Err(FlowError::TooManyCodes)
        );
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let mut f = flow(None);
        assert!(matches!(
            f.verify_code("h", now()),
            Err(FlowError::WrongStep("signIn"))
        ));
        assert!(matches!(
            f.password_set("h".into(), AttributeValues::new(), now()),
            Err(FlowError::WrongStep(_))
        ));
        assert!(matches!(
            f.attributes_submitted(AttributeValues::new(), now()),
            Err(FlowError::WrongStep(_))
        ));
    }

    #[test]
    fn expired_flows_refuse_everything() {
        let mut f = flow(None);
        assert_eq!(
            f.go_to_sign_up(now() + FLOW_LIFETIME),
            Err(FlowError::Expired)
        );
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut f = flow(None);
        f.go_to_sign_up(now()).unwrap();
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        let json = serde_json::to_string(&f).unwrap();
        let back: Flow = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
    }
}
