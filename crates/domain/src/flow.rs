//! The sign-up-or-sign-in state machine.
//!
//! A flow begins at `/authorize` and ends with the browser going back to the
//! application. Every step is a state stored in the database, so any Usher instance
//! can continue a flow another one started, and a restart loses nothing. The
//! transitions here are pure: the web layer loads a flow, applies one transition with
//! the inputs it gathered (a hashed code, a hashed password, an upstream identity,
//! a connector's outcome) and saves the flow with optimistic concurrency.
//!
//! ```text
//!            ┌──────────── "sign up" ───────────┐
//!            │                                  ▼
//! SignIn ────┼── provider ──▶ FederationRedirect  EnterEmail(SignUp) ─▶ EnterCode(SignUp) ─▶ SignUpPassword
//!   │        └── "email me a code" ─▶ EnterEmail(Otp) ─▶ EnterCode(Otp)                            │
//!   │                                 │ known identity: Completed                                  │
//!   │                                 │ email of another account: LinkAccount ─▶ (sign in) ─▶ Completed
//!   │                                 ▼ new: RunningConnectors(PostFederationSignup)               │
//!   │                                    │ Continue (prefill)                                      │
//!   │                                    ▼                                                         ▼
//!   │                                 SignUpAttributes ◀── ValidationError ── RunningConnectors(PostAttributeCollection)
//!   │                                    └────────── submit ──────────────────▶ │ Continue: user created
//!   └── email + password ─────────────────────────────────────────────▶ Completed ◀──┘
//!                                                             ShowBlockPage / failure: Blocked / Failed
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{attribute::AttributeValues, connector::ConnectorStep, user::Identity};

/// How long a flow may take from `/authorize` to the application.
pub const FLOW_LIFETIME: Duration = Duration::minutes(60);
/// How long an emailed code is valid.
pub const CODE_LIFETIME: Duration = Duration::minutes(10);
/// Wrong codes allowed for one code before a new one must be sent.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Wrong passwords one flow accepts before it refuses more: guessing needs new flows,
/// which cost a round trip through `/authorize` each.
pub const MAX_PASSWORD_FAILURES: u32 = 10;
/// Codes one flow may send, whatever the address or purpose, so a flow cannot be used
/// to flood a mailbox or to get fresh codes to guess without end.
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
    /// The browser's first `Accept-Language` choice when the request was made.
    #[serde(default)]
    pub browser_language: Option<String>,
    /// What the person came to do to their account instead of signing in or up
    /// (`usher_action`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_action: Option<AccountAction>,
}

/// Self-service on an existing account, asked for by the application with
/// `usher_action` (as B2C's password-reset and profile-editing policies are asked for
/// with `p=`). Each ends like a sign-in: back to the application with a code — except
/// deleting the account, which ends with the account gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountAction {
    /// A forgotten password: an emailed code, then a new password.
    ResetPassword,
    /// Signed in, the current password, then a new one.
    ChangePassword,
    /// Signed in, the user flow's attribute page for the account.
    EditProfile,
    /// Signed in, a confirmation and a fresh code, then the account is gone.
    DeleteAccount,
}

impl AccountAction {
    pub const ALL: [AccountAction; 4] = [
        AccountAction::ResetPassword,
        AccountAction::ChangePassword,
        AccountAction::EditProfile,
        AccountAction::DeleteAccount,
    ];

    /// The `usher_action` value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountAction::ResetPassword => "reset_password",
            AccountAction::ChangePassword => "change_password",
            AccountAction::EditProfile => "edit_profile",
            AccountAction::DeleteAccount => "delete_account",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }

    /// Whether the person must be signed in first (everything but a reset, which is
    /// for someone who cannot sign in).
    pub fn needs_sign_in(self) -> bool {
        self != AccountAction::ResetPassword
    }
}

impl AuthorizationRequest {
    /// The person's locales as connectors are told them: the application's
    /// `ui_locales`, else the browser's language, else the page's locale.
    pub fn end_user_locales(&self, page_locale: &str) -> String {
        self.ui_locales
            .clone()
            .or_else(|| self.browser_language.clone())
            .unwrap_or_else(|| page_locale.to_owned())
    }
}

/// What a sign-up has gathered so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUpDraft {
    /// The verified email address.
    pub email: String,
    /// Argon2id PHC string; `None` for federated sign-ups.
    pub password_hash: Option<String>,
    /// Federated identities (an upstream provider, or `mail` for email one-time
    /// passcode); the local identity is added when the user is created.
    pub identities: Vec<Identity>,
    /// What the user entered (or a connector set).
    pub attributes: AttributeValues,
    /// Values the attribute page starts with.
    pub prefill: AttributeValues,
    /// The id the new user gets, fixed before the `postAttributeCollection`
    /// connectors run, so a second run of the same step (a reload, a restart) finds
    /// the user the first one created instead of making another.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A message from a connector shown on the attribute page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMessage {
    pub user_message: String,
    /// Attribute id → message.
    pub attribute_errors: BTreeMap<String, String>,
}

/// Why an email address is being verified with a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CodePurpose {
    /// A local-account sign-up; a password comes next.
    SignUp,
    /// Email one-time passcode as an identity provider: sign-in or sign-up without a
    /// password.
    OneTimePasscode,
    /// An upstream provider did not vouch for an email address; the user gives one.
    #[serde(rename_all = "camelCase")]
    FederatedEmail {
        identity: Identity,
        attributes: AttributeValues,
    },
    /// Proving control of an existing account's address to link `identity` to it.
    #[serde(rename_all = "camelCase")]
    Link { user_id: String, identity: Identity },
    /// A forgotten password: the code goes to the address only if it has a local
    /// account (the page looks the same either way).
    PasswordReset,
    /// A signed-in person deleting their account proves the address again.
    #[serde(rename_all = "camelCase")]
    DeleteAccount { user_id: String },
}

/// A code sent to `email`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailCode {
    pub email: String,
    /// HMAC of the code; `None` when no code was sent on purpose (a local sign-up for
    /// an address that already has an account), so none can match and the page does
    /// not reveal why.
    pub code_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub attempts: u32,
    /// Set once the right code was entered.
    pub verified: bool,
}

/// A federated or one-time-passcode identity whose email belongs to an existing
/// account: the user signs in to that account to link the identity to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingLink {
    pub user_id: String,
    pub identity: Identity,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum FlowStep {
    /// Email + password sign-in, the identity providers, and a way to sign up.
    SignIn,
    /// Asks for the email address to verify.
    #[serde(rename_all = "camelCase")]
    EnterEmail { purpose: CodePurpose },
    /// A code was (or deliberately was not) sent.
    #[serde(rename_all = "camelCase")]
    EnterCode {
        purpose: CodePurpose,
        code: EmailCode,
    },
    #[serde(rename_all = "camelCase")]
    SignUpPassword { email: String },
    /// The browser is at an upstream identity provider.
    #[serde(rename_all = "camelCase")]
    FederationRedirect {
        provider_id: String,
        /// The `state` sent upstream; the callback must bring it back.
        state: String,
        nonce: String,
        pkce_verifier: String,
        /// Signing in to an existing account to link another identity to it.
        link: Option<PendingLink>,
    },
    /// The identity's email belongs to an existing account: sign in to link.
    #[serde(rename_all = "camelCase")]
    LinkAccount { link: PendingLink },
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
        /// When the run began: a run younger than the connectors' budget is still in
        /// progress, not to be started again.
        #[serde(default)]
        started_at: Option<DateTime<Utc>>,
    },
    /// The sign-up waits for approval (`request_id` in the queue).
    #[serde(rename_all = "camelCase")]
    PendingApproval { request_id: String },
    /// The user is known; the browser goes back to the application.
    #[serde(rename_all = "camelCase")]
    Completed { user_id: String, signed_up: bool },
    /// A connector blocked the sign-up; `title` heads the page when it gave one.
    #[serde(rename_all = "camelCase")]
    Blocked {
        user_message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// A connector call failed; `reference` is in the call record and the log.
    #[serde(rename_all = "camelCase")]
    Failed { reference: String },
    /// A new password for `user_id`: after a reset's code (and the
    /// `preAccountRecovery` connectors), or signed in, with the current one.
    #[serde(rename_all = "camelCase")]
    NewPassword {
        user_id: String,
        email: String,
        current_required: bool,
    },
    /// The user flow's attribute page for an existing account; `draft.user_id` is
    /// the account, `draft.prefill` what the page starts with.
    #[serde(rename_all = "camelCase")]
    EditProfile {
        draft: SignUpDraft,
        message: Option<PageMessage>,
    },
    /// "Delete your account?", before the code that confirms it.
    #[serde(rename_all = "camelCase")]
    ConfirmDeletion { user_id: String, email: String },
    /// The account was deleted by its owner.
    AccountDeleted,
    /// A reset from an administrator's link changed the password: nobody is signed
    /// in, and the person signs in to the application with it.
    #[serde(rename_all = "camelCase")]
    LinkResetDone { user_id: String },
}

/// A flow opened from a password reset link an administrator had emailed: the link
/// stands in for the code, and works once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetLink {
    /// A fingerprint of the password hash as the link was sent: a password set
    /// since then (by this link or otherwise) has another salt, so another
    /// fingerprint, and makes the link stale.
    pub password_fingerprint: String,
}

impl FlowStep {
    pub fn name(&self) -> &'static str {
        match self {
            FlowStep::SignIn => "signIn",
            FlowStep::EnterEmail { .. } => "enterEmail",
            FlowStep::EnterCode { .. } => "enterCode",
            FlowStep::SignUpPassword { .. } => "signUpPassword",
            FlowStep::FederationRedirect { .. } => "federationRedirect",
            FlowStep::LinkAccount { .. } => "linkAccount",
            FlowStep::SignUpAttributes { .. } => "signUpAttributes",
            FlowStep::RunningConnectors { .. } => "runningConnectors",
            FlowStep::PendingApproval { .. } => "pendingApproval",
            FlowStep::Completed { .. } => "completed",
            FlowStep::Blocked { .. } => "blocked",
            FlowStep::Failed { .. } => "failed",
            FlowStep::NewPassword { .. } => "newPassword",
            FlowStep::EditProfile { .. } => "editProfile",
            FlowStep::ConfirmDeletion { .. } => "confirmDeletion",
            FlowStep::AccountDeleted => "accountDeleted",
            FlowStep::LinkResetDone { .. } => "linkResetDone",
        }
    }

    /// Whether the flow has ended (successfully or not).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            FlowStep::Completed { .. }
                | FlowStep::Blocked { .. }
                | FlowStep::Failed { .. }
                | FlowStep::PendingApproval { .. }
                | FlowStep::AccountDeleted
                | FlowStep::LinkResetDone { .. }
        )
    }

    /// Whether the step has a verified email code for a purpose other than a local
    /// sign-up (whose next step is the password).
    fn verified_code(&self) -> Option<(&CodePurpose, &EmailCode)> {
        match self {
            FlowStep::EnterCode { purpose, code } if code.verified => Some((purpose, code)),
            _ => None,
        }
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
    #[error("the account has no password")]
    NoPassword,
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
    /// Codes sent in this flow so far (never reset; see [`MAX_CODES_SENT`]).
    #[serde(default)]
    pub codes_sent: u32,
    /// Wrong passwords entered in this flow (see [`MAX_PASSWORD_FAILURES`]).
    #[serde(default)]
    pub password_failures: u32,
    /// The browser session (its id hash) an account action runs in: the one it
    /// began with, or the one its sign-in made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Set when the flow was opened from an administrator's reset link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_link: Option<ResetLink>,
}

impl Flow {
    pub fn start(
        id: String,
        user_flow_id: String,
        authorization: AuthorizationRequest,
        locale: String,
        browser_binding: String,
        csrf_token: String,
        now: DateTime<Utc>,
    ) -> Self {
        let step = if authorization.account_action == Some(AccountAction::ResetPassword) {
            FlowStep::EnterEmail {
                purpose: CodePurpose::PasswordReset,
            }
        } else if authorization.prompt == Some(Prompt::Create)
            && authorization.account_action.is_none()
        {
            FlowStep::EnterEmail {
                purpose: CodePurpose::SignUp,
            }
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
            codes_sent: 0,
            password_failures: 0,
            session_id: None,
            reset_link: None,
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

    /// Whether the user is still choosing how to sign in or up (nothing verified yet).
    fn choosing(&self) -> bool {
        match &self.step {
            FlowStep::SignIn | FlowStep::EnterEmail { .. } => true,
            FlowStep::EnterCode { purpose, code } => {
                !code.verified
                    && matches!(
                        purpose,
                        CodePurpose::SignUp
                            | CodePurpose::OneTimePasscode
                            | CodePurpose::PasswordReset
                    )
            }
            _ => false,
        }
    }

    /// To the sign-up email page ("sign up now", "use a different address").
    pub fn go_to_sign_up(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.go_to_email(CodePurpose::SignUp, now)
    }

    /// "Forgot your password?": to the email page of a password reset.
    pub fn go_to_password_reset(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        if !self.choosing() {
            return Err(self.wrong());
        }
        self.step = FlowStep::EnterEmail {
            purpose: CodePurpose::PasswordReset,
        };
        Ok(())
    }

    /// To the email page of email one-time passcode.
    pub fn go_to_one_time_passcode(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.go_to_email(CodePurpose::OneTimePasscode, now)
    }

    fn go_to_email(&mut self, purpose: CodePurpose, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        // "Use a different address" keeps a federated email entry's purpose.
        let purpose = match &self.step {
            FlowStep::EnterCode {
                purpose: p @ CodePurpose::FederatedEmail { .. },
                code,
            } if !code.verified => p.clone(),
            _ if self.choosing() => purpose,
            _ => return Err(self.wrong()),
        };
        self.step = FlowStep::EnterEmail { purpose };
        Ok(())
    }

    /// "Use a different address" on the code page: back to the email page, for the
    /// same purpose (a link code only goes to the linked account's address).
    pub fn change_email(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        match &self.step {
            FlowStep::EnterCode { purpose, code }
                if !code.verified
                    && !matches!(
                        purpose,
                        CodePurpose::Link { .. } | CodePurpose::DeleteAccount { .. }
                    ) =>
            {
                self.step = FlowStep::EnterEmail {
                    purpose: purpose.clone(),
                };
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    /// Back to sign-in from any page before an account exists.
    pub fn go_to_sign_in(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        // A deletion in progress is no way back to a sign-in: that sign-in would
        // return to the application as if the account were deleted.
        if matches!(
            self.step,
            FlowStep::EnterCode {
                purpose: CodePurpose::DeleteAccount { .. },
                ..
            }
        ) {
            return Err(self.wrong());
        }
        match self.step {
            FlowStep::SignIn
            | FlowStep::EnterEmail { .. }
            | FlowStep::EnterCode { .. }
            | FlowStep::SignUpPassword { .. }
            | FlowStep::FederationRedirect { .. }
            | FlowStep::LinkAccount { .. }
            | FlowStep::SignUpAttributes { .. } => {
                self.step = FlowStep::SignIn;
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    /// A new flow starts at the sign-in page even for `prompt=create`: the user flow
    /// has no local accounts (the page lists the providers to sign up with), or the
    /// application offers no sign-up.
    pub fn start_at_sign_in(&mut self) {
        if self.version == 0
            && matches!(
                self.step,
                FlowStep::EnterEmail {
                    purpose: CodePurpose::SignUp
                }
            )
        {
            self.step = FlowStep::SignIn;
        }
    }

    /// A wrong password (or an unknown address) at the sign-in page; counted in the
    /// flow so that it stops taking guesses after [`MAX_PASSWORD_FAILURES`].
    pub fn password_failed(&mut self) {
        self.password_failures = self.password_failures.saturating_add(1);
    }

    /// Whether the sign-in page still takes passwords.
    pub fn may_try_password(&self) -> bool {
        self.password_failures < MAX_PASSWORD_FAILURES
    }

    /// The address got an account while this sign-up was under way (another flow
    /// finished first): the only way on is to sign in to it.
    pub fn account_taken(&mut self) -> Result<(), FlowError> {
        match self.step {
            FlowStep::RunningConnectors { .. } => {
                self.step = FlowStep::SignIn;
                Ok(())
            }
            _ => Err(self.wrong()),
        }
    }

    /// The address a code would go to now, for a resend or the link page.
    pub fn code_email(&self) -> Option<&str> {
        match &self.step {
            FlowStep::EnterCode { code, .. } => Some(&code.email),
            FlowStep::LinkAccount { link } => Some(&link.email),
            FlowStep::ConfirmDeletion { email, .. } => Some(email),
            _ => None,
        }
    }

    /// A code was sent to `email` (or deliberately not, `code_hash: None`). From the
    /// email page, as a resend from the code page, or from the link page (to the
    /// existing account's address).
    pub fn code_sent(
        &mut self,
        email: String,
        code_hash: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let purpose = match &self.step {
            FlowStep::EnterEmail { purpose } => purpose.clone(),
            // A link code only ever goes to the linked account's address.
            FlowStep::EnterCode {
                purpose: CodePurpose::Link { .. },
                code,
            } if code.email != email => return Err(self.wrong()),
            // A deletion code only ever goes to the account's own address.
            FlowStep::EnterCode {
                purpose: CodePurpose::DeleteAccount { .. },
                code,
            } if code.email != email => return Err(self.wrong()),
            FlowStep::EnterCode { purpose, code } if !code.verified => purpose.clone(),
            FlowStep::LinkAccount { link } if link.email == email => CodePurpose::Link {
                user_id: link.user_id.clone(),
                identity: link.identity.clone(),
            },
            FlowStep::ConfirmDeletion {
                user_id,
                email: own,
            } if *own == email => CodePurpose::DeleteAccount {
                user_id: user_id.clone(),
            },
            _ => return Err(self.wrong()),
        };
        if self.codes_sent >= MAX_CODES_SENT {
            return Err(FlowError::TooManyCodes);
        }
        self.codes_sent += 1;
        self.step = FlowStep::EnterCode {
            purpose,
            code: EmailCode {
                email,
                code_hash,
                expires_at: now + CODE_LIFETIME,
                attempts: 0,
                verified: false,
            },
        };
        Ok(())
    }

    /// Whether another code may be sent in this flow.
    pub fn may_send_code(&self) -> bool {
        match &self.step {
            FlowStep::EnterEmail { .. }
            | FlowStep::LinkAccount { .. }
            | FlowStep::ConfirmDeletion { .. } => true,
            FlowStep::EnterCode { code, .. } => !code.verified && self.codes_sent < MAX_CODES_SENT,
            _ => false,
        }
    }

    /// Checks a code. `candidate_hash` is the HMAC of what the user typed, computed the
    /// same way as the stored one. A wrong code counts against the attempts (the
    /// caller must save the flow on error too). A right code for a local sign-up moves
    /// on to the password; for the other purposes it marks the code verified and
    /// returns the purpose, whose transition the caller applies next.
    pub fn verify_code(
        &mut self,
        candidate_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<CodePurpose, FlowError> {
        self.check_live(now)?;
        let wrong = self.wrong();
        let FlowStep::EnterCode { purpose, code } = &mut self.step else {
            return Err(wrong);
        };
        if code.verified {
            return Err(wrong);
        }
        if code.attempts >= MAX_CODE_ATTEMPTS {
            return Err(FlowError::TooManyAttempts);
        }
        if now >= code.expires_at {
            return Err(FlowError::CodeExpired);
        }
        code.attempts += 1;
        let matches = code
            .code_hash
            .as_deref()
            .is_some_and(|h| constant_time_eq(h.as_bytes(), candidate_hash.as_bytes()));
        if !matches {
            let left = MAX_CODE_ATTEMPTS - code.attempts;
            return Err(if left == 0 {
                FlowError::TooManyAttempts
            } else {
                FlowError::WrongCode {
                    attempts_left: left,
                }
            });
        }
        code.verified = true;
        let purpose = purpose.clone();
        if purpose == CodePurpose::SignUp {
            let email = code.email.clone();
            self.step = FlowStep::SignUpPassword { email };
        }
        Ok(purpose)
    }

    /// The password (already checked against the policy and hashed) is set.
    pub fn password_set(
        &mut self,
        password_hash: String,
        prefill: AttributeValues,
        start_connectors: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::SignUpPassword { email } = &self.step else {
            return Err(self.wrong());
        };
        let draft = SignUpDraft {
            email: email.clone(),
            password_hash: Some(password_hash),
            identities: Vec::new(),
            attributes: AttributeValues::new(),
            prefill,
            user_id: None,
        };
        self.collect_attributes(draft, start_connectors, now);
        Ok(())
    }

    /// On to the attribute page — through the `attributeCollectionStart` connectors
    /// first when the user flow has some.
    fn collect_attributes(
        &mut self,
        draft: SignUpDraft,
        start_connectors: bool,
        now: DateTime<Utc>,
    ) {
        self.step = if start_connectors {
            FlowStep::RunningConnectors {
                connector_step: ConnectorStep::AttributeCollectionStart,
                draft,
                started_at: Some(now),
            }
        } else {
            FlowStep::SignUpAttributes {
                draft,
                message: None,
            }
        };
    }

    /// The `attributeCollectionStart` connectors continued: the attribute page, with
    /// the values they prefilled on top of what was known.
    pub fn attribute_collection_started(
        &mut self,
        prefill: AttributeValues,
    ) -> Result<(), FlowError> {
        let FlowStep::RunningConnectors {
            connector_step: ConnectorStep::AttributeCollectionStart,
            draft,
            ..
        } = &mut self.step
        else {
            return Err(self.wrong());
        };
        let mut draft = std::mem::take(draft);
        draft.prefill = prefill;
        self.step = FlowStep::SignUpAttributes {
            draft,
            message: None,
        };
        Ok(())
    }

    /// The browser goes to an upstream provider (to sign in or up, or to sign in to an
    /// existing account being linked).
    pub fn federation_started(
        &mut self,
        provider_id: String,
        state: String,
        nonce: String,
        pkce_verifier: String,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let link = match &self.step {
            FlowStep::LinkAccount { link } => Some(link.clone()),
            // Back from the provider without finishing, and trying again.
            FlowStep::FederationRedirect { link, .. } => link.clone(),
            _ if self.choosing() => None,
            _ => return Err(self.wrong()),
        };
        self.step = FlowStep::FederationRedirect {
            provider_id,
            state,
            nonce,
            pkce_verifier,
            link,
        };
        Ok(())
    }

    /// Whether an upstream or passcode identity has just been verified in this step.
    fn identity_verified_here(&self) -> bool {
        matches!(self.step, FlowStep::FederationRedirect { .. })
            || matches!(
                self.step.verified_code(),
                Some((
                    CodePurpose::OneTimePasscode | CodePurpose::FederatedEmail { .. },
                    _
                ))
            )
    }

    /// A new federated (or passcode) identity without an account: the
    /// `postFederationSignup` connectors run next.
    pub fn federated_sign_up(
        &mut self,
        identity: Identity,
        email: String,
        attributes: AttributeValues,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        if !self.identity_verified_here() {
            return Err(self.wrong());
        }
        self.step = FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PostFederationSignup,
            draft: SignUpDraft {
                email,
                password_hash: None,
                identities: vec![identity],
                attributes: attributes.clone(),
                prefill: attributes,
                user_id: None,
            },
            started_at: Some(now),
        };
        Ok(())
    }

    /// The provider vouched for no email address: ask the user for one.
    pub fn federated_email_needed(
        &mut self,
        identity: Identity,
        attributes: AttributeValues,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        if !matches!(self.step, FlowStep::FederationRedirect { .. }) {
            return Err(self.wrong());
        }
        self.step = FlowStep::EnterEmail {
            purpose: CodePurpose::FederatedEmail {
                identity,
                attributes,
            },
        };
        Ok(())
    }

    /// The identity's email belongs to an existing account with other identities:
    /// never link silently; ask the user to sign in to that account first.
    pub fn offer_link(&mut self, link: PendingLink, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        if !self.identity_verified_here() {
            return Err(self.wrong());
        }
        self.step = FlowStep::LinkAccount { link };
        Ok(())
    }

    /// The link waiting for a sign-in to `user_id`, if any.
    pub fn pending_link(&self) -> Option<&PendingLink> {
        match &self.step {
            FlowStep::LinkAccount { link } => Some(link),
            FlowStep::FederationRedirect { link, .. } => link.as_ref(),
            _ => None,
        }
    }

    /// The `postFederationSignup` connectors continued: the attribute page, prefilled
    /// (after the `attributeCollectionStart` connectors, if any).
    pub fn post_federation_continued(
        &mut self,
        prefill: AttributeValues,
        start_connectors: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        let FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PostFederationSignup,
            draft,
            ..
        } = &mut self.step
        else {
            return Err(self.wrong());
        };
        let mut draft = std::mem::take(draft);
        draft.prefill = prefill;
        draft.attributes = AttributeValues::new();
        self.collect_attributes(draft, start_connectors, now);
        Ok(())
    }

    /// The attribute page was submitted with valid values: the
    /// `PostAttributeCollection` connectors run next.
    pub fn attributes_submitted(
        &mut self,
        attributes: AttributeValues,
        new_user_id: String,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::SignUpAttributes { draft, .. } = &mut self.step else {
            return Err(self.wrong());
        };
        let mut draft = std::mem::take(draft);
        draft.attributes = attributes;
        draft.user_id.get_or_insert(new_user_id);
        self.step = FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PostAttributeCollection,
            draft,
            started_at: Some(now),
        };
        Ok(())
    }

    /// A connector answered `ValidationError`: back to the attribute page with the
    /// user's input and the message.
    pub fn connector_validation_error(&mut self, message: PageMessage) -> Result<(), FlowError> {
        let FlowStep::RunningConnectors {
            connector_step:
                step @ (ConnectorStep::PostAttributeCollection | ConnectorStep::OnProfileUpdate),
            draft,
            ..
        } = &mut self.step
        else {
            return Err(self.wrong());
        };
        let profile = *step == ConnectorStep::OnProfileUpdate;
        let mut draft = std::mem::take(draft);
        draft.prefill = draft.attributes.clone();
        self.step = if profile {
            FlowStep::EditProfile {
                draft,
                message: Some(message),
            }
        } else {
            FlowStep::SignUpAttributes {
                draft,
                message: Some(message),
            }
        };
        Ok(())
    }

    /// The draft the running connectors work on.
    pub fn running_draft(&self) -> Option<(ConnectorStep, &SignUpDraft)> {
        match &self.step {
            FlowStep::RunningConnectors {
                connector_step,
                draft,
                ..
            } => Some((*connector_step, draft)),
            _ => None,
        }
    }

    /// The user exists (created by this sign-up, or signed in, or an identity linked).
    pub fn complete(
        &mut self,
        user_id: String,
        signed_up: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let allowed = match &self.step {
            FlowStep::SignIn
            | FlowStep::FederationRedirect { .. }
            | FlowStep::LinkAccount { .. } => true,
            // Only a sign-up's last connectors make a user; a recovery's or a
            // profile's act on an account that is not being signed in to.
            FlowStep::RunningConnectors { connector_step, .. } => {
                *connector_step == ConnectorStep::PostAttributeCollection
            }
            FlowStep::EnterCode { purpose, code } => {
                code.verified
                    && matches!(
                        purpose,
                        CodePurpose::OneTimePasscode
                            | CodePurpose::FederatedEmail { .. }
                            | CodePurpose::Link { .. }
                    )
            }
            _ => false,
        };
        if !allowed {
            return Err(self.wrong());
        }
        self.step = FlowStep::Completed { user_id, signed_up };
        Ok(())
    }

    /// The sign-up was stored for approval (after the `postAttributeCollection`
    /// connectors continued), or a returning user's request is still waiting.
    pub fn awaiting_approval(
        &mut self,
        request_id: String,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let allowed = match &self.step {
            FlowStep::RunningConnectors {
                connector_step: ConnectorStep::PostAttributeCollection,
                ..
            }
            | FlowStep::SignIn
            | FlowStep::SignUpPassword { .. }
            | FlowStep::FederationRedirect { .. } => true,
            FlowStep::EnterCode { code, purpose } => {
                code.verified
                    && !matches!(
                        purpose,
                        CodePurpose::PasswordReset | CodePurpose::DeleteAccount { .. }
                    )
            }
            _ => false,
        };
        if !allowed {
            return Err(self.wrong());
        }
        self.step = FlowStep::PendingApproval { request_id };
        Ok(())
    }

    pub fn block(&mut self, user_message: String, title: Option<String>) {
        self.step = FlowStep::Blocked {
            user_message,
            title,
        };
    }

    pub fn fail(&mut self, reference: String) {
        self.step = FlowStep::Failed { reference };
    }

    /// A reset's code was right for the local account `account` (its id, address and
    /// attributes): the `preAccountRecovery` connectors run next when the user flow
    /// has some, else the new password is asked for.
    pub fn recovery_proven(
        &mut self,
        account: SignUpDraft,
        start_connectors: bool,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        // The code was right, or the flow was just opened from a reset link.
        let proven = matches!(
            self.step.verified_code(),
            Some((CodePurpose::PasswordReset, _))
        ) || (self.reset_link.is_some()
            && self.version == 0
            && self.step
                == FlowStep::EnterEmail {
                    purpose: CodePurpose::PasswordReset,
                });
        if !proven || account.user_id.is_none() {
            return Err(self.wrong());
        }
        self.step = if start_connectors {
            FlowStep::RunningConnectors {
                connector_step: ConnectorStep::PreAccountRecovery,
                draft: account,
                started_at: Some(now),
            }
        } else {
            FlowStep::NewPassword {
                user_id: account.user_id.unwrap_or_default(),
                email: account.email,
                current_required: false,
            }
        };
        Ok(())
    }

    /// The `preAccountRecovery` connectors let the recovery continue.
    pub fn account_recovery_continued(&mut self) -> Result<(), FlowError> {
        let FlowStep::RunningConnectors {
            connector_step: ConnectorStep::PreAccountRecovery,
            draft,
            ..
        } = &mut self.step
        else {
            return Err(self.wrong());
        };
        self.step = FlowStep::NewPassword {
            user_id: draft.user_id.clone().unwrap_or_default(),
            email: std::mem::take(&mut draft.email),
            current_required: false,
        };
        Ok(())
    }

    /// The person is signed in to `account` (in browser session `session_id`) and
    /// came for an account action: its first page. From a sign-in this flow just
    /// completed, or at the start of a flow whose browser has a session.
    pub fn begin_account_action(
        &mut self,
        account: SignUpDraft,
        has_password: bool,
        session_id: String,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let Some(action) = self
            .authorization
            .account_action
            .filter(|a| a.needs_sign_in())
        else {
            return Err(self.wrong());
        };
        let user_id = account.user_id.clone().unwrap_or_default();
        let allowed = match &self.step {
            FlowStep::Completed {
                user_id: signed_in,
                signed_up: false,
            } => *signed_in == user_id,
            FlowStep::SignIn => self.version == 0,
            _ => false,
        };
        if !allowed || user_id.is_empty() {
            return Err(self.wrong());
        }
        self.session_id = Some(session_id);
        self.step = match action {
            AccountAction::ChangePassword if has_password => FlowStep::NewPassword {
                user_id,
                email: account.email,
                current_required: true,
            },
            // An account without a password (a provider's, a passcode's) has none to
            // change.
            AccountAction::ChangePassword => return Err(FlowError::NoPassword),
            AccountAction::EditProfile => FlowStep::EditProfile {
                draft: account,
                message: None,
            },
            AccountAction::DeleteAccount => FlowStep::ConfirmDeletion {
                user_id,
                email: account.email,
            },
            AccountAction::ResetPassword => return Err(self.wrong()),
        };
        Ok(())
    }

    /// The new password is stored: the person is signed in to the account — except
    /// after a reset link, which signs nobody in.
    pub fn password_changed(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::NewPassword { user_id, .. } = &self.step else {
            return Err(self.wrong());
        };
        let user_id = user_id.clone();
        self.step = if self.reset_link.is_some() {
            FlowStep::LinkResetDone { user_id }
        } else {
            FlowStep::Completed {
                user_id,
                signed_up: false,
            }
        };
        Ok(())
    }

    /// The profile page was submitted with valid values: the `onProfileUpdate`
    /// connectors run next (or, with none, the values are saved at once).
    pub fn profile_submitted(
        &mut self,
        attributes: AttributeValues,
        now: DateTime<Utc>,
    ) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::EditProfile { draft, .. } = &mut self.step else {
            return Err(self.wrong());
        };
        let mut draft = std::mem::take(draft);
        draft.attributes = attributes;
        self.step = FlowStep::RunningConnectors {
            connector_step: ConnectorStep::OnProfileUpdate,
            draft,
            started_at: Some(now),
        };
        Ok(())
    }

    /// The profile's new values are saved.
    pub fn profile_updated(&mut self, now: DateTime<Utc>) -> Result<(), FlowError> {
        self.check_live(now)?;
        let FlowStep::RunningConnectors {
            connector_step: ConnectorStep::OnProfileUpdate,
            draft,
            ..
        } = &self.step
        else {
            return Err(self.wrong());
        };
        self.step = FlowStep::Completed {
            user_id: draft.user_id.clone().unwrap_or_default(),
            signed_up: false,
        };
        Ok(())
    }

    /// The deletion's code was right and the account is gone.
    pub fn account_deleted(&mut self) -> Result<(), FlowError> {
        if !matches!(
            self.step.verified_code(),
            Some((CodePurpose::DeleteAccount { .. }, _))
        ) {
            return Err(self.wrong());
        }
        self.step = FlowStep::AccountDeleted;
        Ok(())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FlowStep {
    /// When the connectors of a `RunningConnectors` step began, if it is one.
    pub fn connectors_started_at(&self) -> Option<DateTime<Utc>> {
        match self {
            FlowStep::RunningConnectors { started_at, .. } => *started_at,
            _ => None,
        }
    }

    /// What identifies this run of a step's connectors to the company's API (as an
    /// idempotency key): the same for a run resumed after its instance stopped, and
    /// another for the next run of the step (after a validation error, say), since
    /// it is made of the flow, the step and when the run began.
    pub fn run_key(&self, flow_id: &str) -> Option<String> {
        match self {
            FlowStep::RunningConnectors {
                connector_step,
                started_at,
                ..
            } => Some(match started_at {
                Some(t) => format!(
                    "{flow_id}.{}.{}",
                    connector_step.wire_name(),
                    t.timestamp_millis()
                ),
                None => format!("{flow_id}.{}", connector_step.wire_name()),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{attribute::AttributeValue, user::SignInType};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn connectors_hear_ui_locales_then_the_browser_then_the_page() {
        let mut r = request(None);
        assert_eq!(r.end_user_locales("en"), "en");
        r.browser_language = Some("de-DE".into());
        assert_eq!(r.end_user_locales("en"), "de-DE");
        r.ui_locales = Some("en-GB".into());
        assert_eq!(r.end_user_locales("en"), "en-GB");
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
            browser_language: None,
            account_action: None,
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

    fn google() -> Identity {
        Identity {
            sign_in_type: SignInType::Federated,
            issuer: "google.com".into(),
            issuer_assigned_id: "123".into(),
            exact_issuer: None,
        }
    }

    fn action_flow(action: AccountAction) -> Flow {
        let mut r = request(None);
        r.account_action = Some(action);
        Flow::start(
            "f".into(),
            "B2X_1_x".into(),
            r,
            "en".into(),
            "b".into(),
            "c".into(),
            now(),
        )
    }

    fn account(user_id: &str) -> SignUpDraft {
        SignUpDraft {
            email: "ada@example.com".into(),
            user_id: Some(user_id.into()),
            ..SignUpDraft::default()
        }
    }

    #[test]
    fn a_proven_reset_code_is_no_sign_in_and_leads_only_to_a_new_password() {
        let mut f = action_flow(AccountAction::ResetPassword);
        assert_eq!(
            f.step,
            FlowStep::EnterEmail {
                purpose: CodePurpose::PasswordReset
            }
        );
        f.code_sent("ada@example.com".into(), Some("h".into()), now())
            .unwrap();
        assert_eq!(f.verify_code("h", now()), Ok(CodePurpose::PasswordReset));
        // A proven address is not a sign-in: nothing completes, nothing is held.
        assert!(f.complete("u".into(), false, now()).is_err());
        assert!(f.awaiting_approval("r".into(), now()).is_err());
        assert!(f.account_deleted().is_err());
        // Only an account (with its id) goes on, to the connectors or the password.
        assert!(f
            .recovery_proven(SignUpDraft::default(), false, now())
            .is_err());
        let mut with_connectors = f.clone();
        with_connectors
            .recovery_proven(account("u"), true, now())
            .unwrap();
        assert!(matches!(
            with_connectors.step,
            FlowStep::RunningConnectors {
                connector_step: ConnectorStep::PreAccountRecovery,
                ..
            }
        ));
        // The recovery's connectors are no sign-in either.
        assert!(with_connectors
            .clone()
            .complete("u".into(), false, now())
            .is_err());
        with_connectors.account_recovery_continued().unwrap();
        f.recovery_proven(account("u"), false, now()).unwrap();
        assert_eq!(f.step, with_connectors.step);
        assert_eq!(
            f.step,
            FlowStep::NewPassword {
                user_id: "u".into(),
                email: "ada@example.com".into(),
                current_required: false
            }
        );
        f.password_changed(now()).unwrap();
        assert_eq!(
            f.step,
            FlowStep::Completed {
                user_id: "u".into(),
                signed_up: false
            }
        );
    }

    #[test]
    fn a_reset_link_stands_in_for_the_code_once_and_signs_nobody_in() {
        let mut f = action_flow(AccountAction::ResetPassword);
        // Without the link, nothing is proven yet.
        assert!(f
            .clone()
            .recovery_proven(account("u"), false, now())
            .is_err());
        f.reset_link = Some(ResetLink {
            password_fingerprint: "fp".into(),
        });
        let mut later = f.clone();
        later.version = 1;
        assert!(later.recovery_proven(account("u"), false, now()).is_err());
        f.recovery_proven(account("u"), false, now()).unwrap();
        f.password_changed(now()).unwrap();
        assert_eq!(
            f.step,
            FlowStep::LinkResetDone {
                user_id: "u".into()
            }
        );
        assert!(f.step.is_final());
        assert!(f.complete("u".into(), false, now()).is_err());
    }

    #[test]
    fn forgot_password_is_offered_only_before_anything_is_proven() {
        let mut f = flow(None);
        f.go_to_password_reset(now()).unwrap();
        f.go_to_sign_up(now()).unwrap();
        f.go_to_password_reset(now()).unwrap();
        f.complete("u".into(), false, now()).unwrap_err();
        let mut done = flow(None);
        done.complete("u".into(), false, now()).unwrap();
        assert!(done.go_to_password_reset(now()).is_err());
        // Expired flows take nothing.
        let mut late = flow(None);
        assert_eq!(
            late.go_to_password_reset(now() + FLOW_LIFETIME),
            Err(FlowError::Expired)
        );
    }

    #[test]
    fn an_account_action_begins_only_for_the_account_that_signed_in() {
        for action in [
            AccountAction::ChangePassword,
            AccountAction::EditProfile,
            AccountAction::DeleteAccount,
        ] {
            let mut f = action_flow(action);
            assert_eq!(f.step, FlowStep::SignIn);
            f.complete("u".into(), false, now()).unwrap();
            // Another account than the one signed in: refused.
            assert!(f
                .begin_account_action(account("other"), true, "s".into(), now())
                .is_err());
            f.begin_account_action(account("u"), true, "s".into(), now())
                .unwrap();
            assert_eq!(f.session_id.as_deref(), Some("s"));
            match action {
                AccountAction::ChangePassword => assert!(matches!(
                    f.step,
                    FlowStep::NewPassword {
                        current_required: true,
                        ..
                    }
                )),
                AccountAction::EditProfile => {
                    assert!(matches!(f.step, FlowStep::EditProfile { .. }));
                }
                _ => assert!(matches!(f.step, FlowStep::ConfirmDeletion { .. })),
            }
            // Not twice.
            assert!(f
                .begin_account_action(account("u"), true, "s".into(), now())
                .is_err());
        }
        // A sign-in flow, and a reset, have no action to begin.
        let mut plain = flow(None);
        plain.complete("u".into(), false, now()).unwrap();
        assert!(plain
            .begin_account_action(account("u"), true, "s".into(), now())
            .is_err());
        // Nor does a sign-up's end: the new account is no sign-in to act on.
        let mut signed_up = action_flow(AccountAction::EditProfile);
        signed_up.complete("u".into(), true, now()).unwrap();
        assert!(signed_up
            .begin_account_action(account("u"), true, "s".into(), now())
            .is_err());
        let mut no_password = action_flow(AccountAction::ChangePassword);
        assert_eq!(
            no_password.begin_account_action(account("u"), false, "s".into(), now()),
            Err(FlowError::NoPassword)
        );
    }

    #[test]
    fn a_deletion_code_goes_only_to_the_account_and_then_the_account_is_gone() {
        let mut f = action_flow(AccountAction::DeleteAccount);
        f.begin_account_action(account("u"), true, "s".into(), now())
            .unwrap();
        assert!(f
            .code_sent("mallory@example.com".into(), Some("h".into()), now())
            .is_err());
        f.code_sent("ada@example.com".into(), Some("h".into()), now())
            .unwrap();
        // No other address, no way back to an email page.
        assert!(f
            .code_sent("mallory@example.com".into(), Some("h".into()), now())
            .is_err());
        assert!(f.change_email(now()).is_err());
        assert!(f.go_to_sign_in(now()).is_err());
        assert_eq!(
            f.verify_code("h", now()),
            Ok(CodePurpose::DeleteAccount {
                user_id: "u".into()
            })
        );
        assert!(f.complete("u".into(), false, now()).is_err());
        f.account_deleted().unwrap();
        assert!(f.step.is_final());
    }

    #[test]
    fn a_profile_edit_goes_through_its_connectors() {
        let mut f = action_flow(AccountAction::EditProfile);
        f.begin_account_action(account("u"), true, "s".into(), now())
            .unwrap();
        let values: AttributeValues =
            [("displayName".to_owned(), AttributeValue::String("A".into()))].into();
        f.profile_submitted(values.clone(), now()).unwrap();
        f.connector_validation_error(PageMessage::default())
            .unwrap();
        let FlowStep::EditProfile { draft, message } = &f.step else {
            panic!("back to the profile page");
        };
        assert_eq!(draft.prefill, values);
        assert!(message.is_some());
        f.profile_submitted(values, now()).unwrap();
        f.profile_updated(now()).unwrap();
        assert_eq!(
            f.step,
            FlowStep::Completed {
                user_id: "u".into(),
                signed_up: false
            }
        );
    }

    #[test]
    fn prompt_create_starts_at_sign_up() {
        assert_eq!(flow(None).step, FlowStep::SignIn);
        assert_eq!(
            flow(Some(Prompt::Create)).step,
            FlowStep::EnterEmail {
                purpose: CodePurpose::SignUp
            }
        );
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
        assert_eq!(f.verify_code("h", now()), Ok(CodePurpose::SignUp));
        assert_eq!(
            f.step,
            FlowStep::SignUpPassword {
                email: "a@example.com".into()
            }
        );
        f.password_set("$argon2id$…".into(), AttributeValues::new(), false, now())
            .unwrap();
        let attrs: AttributeValues =
            [("displayName".to_owned(), AttributeValue::String("A".into()))].into();
        f.attributes_submitted(attrs.clone(), "u".into(), now())
            .unwrap();
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
        f.attributes_submitted(attrs, "u2".into(), now()).unwrap();
        f.complete("u".into(), true, now()).unwrap();
        assert!(f.step.is_final());
    }

    #[test]
    fn attribute_collection_start_runs_before_the_page() {
        let mut f = flow(None);
        f.go_to_sign_up(now()).unwrap();
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        f.verify_code("h", now()).unwrap();
        let known: AttributeValues =
            [("city".to_owned(), AttributeValue::String("Oslo".into()))].into();
        f.password_set("h".into(), known.clone(), true, now())
            .unwrap();
        let (step, draft) = f.running_draft().unwrap();
        assert_eq!(step, ConnectorStep::AttributeCollectionStart);
        assert_eq!(draft.prefill, known);
        // Only the start step's run may end with the page.
        assert!(f
            .post_federation_continued(known.clone(), false, now())
            .is_err());
        assert!(f
            .connector_validation_error(PageMessage::default())
            .is_err());
        let prefilled: AttributeValues =
            [("city".to_owned(), AttributeValue::String("Bergen".into()))].into();
        f.attribute_collection_started(prefilled.clone()).unwrap();
        match &f.step {
            FlowStep::SignUpAttributes { draft, message } => {
                assert_eq!(draft.prefill, prefilled);
                assert!(message.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(f.attribute_collection_started(prefilled).is_err());
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
        assert_eq!(
            f.verify_code("h", now() + CODE_LIFETIME),
            Err(FlowError::CodeExpired)
        );
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
        // Neither another address nor starting over resets the count.
        f.go_to_sign_up(now()).unwrap();
        assert_eq!(
            f.code_sent("b@example.com".into(), Some("h".into()), now()),
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
            f.password_set("h".into(), AttributeValues::new(), false, now()),
            Err(FlowError::WrongStep(_))
        ));
        assert!(matches!(
            f.attributes_submitted(AttributeValues::new(), "u".into(), now()),
            Err(FlowError::WrongStep(_))
        ));
        // Nothing federated was verified, so no federated sign-up or link.
        assert!(f
            .federated_sign_up(
                google(),
                "a@example.com".into(),
                AttributeValues::new(),
                now()
            )
            .is_err());
        // An unverified passcode cannot complete a sign-in.
        f.go_to_one_time_passcode(now()).unwrap();
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        assert!(f.complete("u".into(), false, now()).is_err());
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
    fn federated_sign_up_prefills_the_page() {
        let mut f = flow(None);
        f.federation_started(
            "Google-OAUTH".into(),
            "s".into(),
            "n".into(),
            "v".into(),
            now(),
        )
        .unwrap();
        let attrs: AttributeValues =
            [("givenName".to_owned(), AttributeValue::String("G".into()))].into();
        f.federated_sign_up(google(), "g@example.com".into(), attrs.clone(), now())
            .unwrap();
        let (step, draft) = f.running_draft().unwrap();
        assert_eq!(step, ConnectorStep::PostFederationSignup);
        assert_eq!(draft.identities, vec![google()]);
        assert_eq!(draft.password_hash, None);
        let mut from_connector = attrs.clone();
        from_connector.insert("surname".into(), AttributeValue::String("S".into()));
        f.post_federation_continued(from_connector.clone(), false, now())
            .unwrap();
        match &f.step {
            FlowStep::SignUpAttributes { draft, .. } => assert_eq!(draft.prefill, from_connector),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_time_passcode_signs_in_or_up() {
        let mut f = flow(None);
        f.go_to_one_time_passcode(now()).unwrap();
        f.code_sent("o@example.com".into(), Some("h".into()), now())
            .unwrap();
        assert_eq!(f.verify_code("h", now()), Ok(CodePurpose::OneTimePasscode));
        // Verified once: no second verification, no password step.
        assert!(f.verify_code("h", now()).is_err());
        let mut sign_up = f.clone();
        sign_up
            .federated_sign_up(
                Identity {
                    sign_in_type: SignInType::Federated,
                    issuer: "mail".into(),
                    issuer_assigned_id: "o@example.com".into(),
                    exact_issuer: None,
                },
                "o@example.com".into(),
                AttributeValues::new(),
                now(),
            )
            .unwrap();
        f.complete("u".into(), false, now()).unwrap();
    }

    #[test]
    fn linking_needs_a_sign_in_to_the_existing_account() {
        let mut f = flow(None);
        f.federation_started(
            "Google-OAUTH".into(),
            "s".into(),
            "n".into(),
            "v".into(),
            now(),
        )
        .unwrap();
        let link = PendingLink {
            user_id: "u1".into(),
            identity: google(),
            email: "a@example.com".into(),
        };
        f.offer_link(link.clone(), now()).unwrap();
        assert_eq!(f.pending_link(), Some(&link));
        // By email code to the account's address...
        let mut by_code = f.clone();
        by_code
            .code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        assert_eq!(
            by_code.verify_code("h", now()),
            Ok(CodePurpose::Link {
                user_id: "u1".into(),
                identity: google()
            })
        );
        by_code.complete("u1".into(), false, now()).unwrap();
        // ...not to another address.
        let mut other = f.clone();
        assert!(other
            .code_sent("b@example.com".into(), Some("h".into()), now())
            .is_err());
        // ...or through the account's own provider, keeping the pending link.
        f.federation_started(
            "Facebook-OAUTH".into(),
            "s2".into(),
            "n2".into(),
            "v2".into(),
            now(),
        )
        .unwrap();
        assert_eq!(f.pending_link(), Some(&link));
    }

    #[test]
    fn changing_the_address_keeps_the_purpose() {
        let mut f = flow(None);
        f.go_to_one_time_passcode(now()).unwrap();
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        f.change_email(now()).unwrap();
        assert_eq!(
            f.step,
            FlowStep::EnterEmail {
                purpose: CodePurpose::OneTimePasscode
            }
        );
    }

    #[test]
    fn approval_waits_after_the_connectors() {
        let mut f = flow(Some(Prompt::Create));
        assert!(
            f.awaiting_approval("r".into(), now()).is_err(),
            "nothing verified yet"
        );
        f.code_sent("a@example.com".into(), Some("h".into()), now())
            .unwrap();
        f.verify_code("h", now()).unwrap();
        f.password_set("p".into(), AttributeValues::new(), false, now())
            .unwrap();
        f.attributes_submitted(AttributeValues::new(), "u".into(), now())
            .unwrap();
        f.awaiting_approval("r".into(), now()).unwrap();
        assert!(f.step.is_final());
        assert!(f.complete("u".into(), true, now()).is_err());
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
