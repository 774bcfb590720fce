//! Usher's sign-up engine. Every operation of a sign-up or sign-in flow — start from an
//! authorization request, submit an email, a code, a password or the attributes,
//! choose a provider and come back from it, link an account, decide an approval,
//! cancel — is a method of [`Engine`] that returns a typed [`Next`]: show this step
//! with this feedback, redirect, show a block, pending or working page, or an error
//! with a reference. The engine is the only caller that saves a flow or runs a
//! connector, and every change of a flow goes through the domain's state machine
//! ([`usher_domain::Flow`]).
//!
//! What it works with is injected: the store, the live tenant with its step
//! connectors and upstream providers ([`live`]), the mail ([`Postman`]), the message
//! catalogue ([`Messages`]), the password hasher, the clock and the random source. It
//! knows no HTTP: the web layer parses requests, calls the engine and renders its
//! answer.

mod account;
pub mod approvals;
mod attributes;
mod code;
mod email;
mod federated;
mod finish;
pub mod hasher;
mod lease;
pub mod live;
mod load;
mod next;
mod random;
pub mod redirect;
pub mod reset_link;
mod sign_in;
pub mod throttle;
mod upstream;

use std::sync::Arc;

use chrono::Duration;
use usher_domain::Clock;
use usher_oidc::crypto::HmacKey;
use usher_storage::Store;

pub use finish::Issue;
pub use live::{CompileTenant, Compiled, Live, ProviderName, TenantRef, Upstream};
pub use load::Loaded;
pub use next::{Failure, Feedback, Next, Status};
pub use random::Random;

/// The language of pages and mails when nothing says otherwise.
pub const DEFAULT_LOCALE: &str = "en";

/// The messages pages and mails are written in, by key, with `{name}` arguments.
pub trait Messages: Send + Sync {
    fn text(&self, locale: &str, key: &str, args: &[(&str, String)]) -> String;
}

/// A mail the engine sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Letter {
    /// The one-time code of a sign-up, a passcode sign-in or a link.
    Code { code: String, minutes: i64 },
    /// Instead of a sign-up code: the address has an account (the page does not say
    /// so, the mail does).
    AccountExists,
    /// A held sign-up was approved.
    Approved,
    /// A held sign-up was denied, with the administrator's reason if they gave one.
    Denied { reason: Option<String> },
    /// The code of a password reset.
    ResetCode { code: String, minutes: i64 },
    /// A reset was asked for an address without an account (the page does not say
    /// so, the mail does).
    ResetNoAccount,
    /// A reset was asked for an address whose account signs in only with these
    /// providers (by name): it has no password to reset.
    ResetWithProvider { providers: Vec<String> },
    /// The code that confirms deleting an account.
    DeletionCode { code: String, minutes: i64 },
    /// An administrator's password reset link, for `application`, valid `minutes`.
    ResetLink {
        url: String,
        application: String,
        minutes: i64,
    },
}

/// A letter written out, ready to deliver.
#[derive(Debug, Clone)]
pub struct Written {
    pub subject: String,
    pub body: String,
}

/// Why a mail could not be written or delivered; only logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MailFailure(pub String);

/// Mail: writing a [`Letter`] in a language, and delivering it.
#[async_trait::async_trait]
pub trait Postman: Send + Sync {
    /// Whether the mail can go to `to` as typed (a bare address it will deliver to):
    /// checked before anything is promised to the person.
    fn deliverable(&self, to: &str) -> bool;
    /// Writes `letter` for `to` in `locale`; `flow_id` names the flow it belongs to in
    /// logs. A failure is Usher's (a broken template), shown with a reference.
    fn write(
        &self,
        to: &str,
        locale: &str,
        letter: &Letter,
        flow_id: Option<&str>,
    ) -> Result<Written, MailFailure>;
    async fn deliver(&self, to: &str, written: Written) -> Result<(), MailFailure>;
}

/// What the engine needs to know of the deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer URL, without a trailing slash.
    pub issuer: String,
    /// How long a browser session lasts.
    pub session: Duration,
    /// How long an authorization code may be redeemed.
    pub authorization_code: Duration,
}

impl Settings {
    /// The issuer of local accounts' identities: the issuer URL's host.
    pub fn local_issuer(&self) -> String {
        url::Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| self.issuer.clone())
    }

    /// Usher's callback, registered with every upstream provider.
    pub fn federation_callback(&self) -> String {
        format!("{}/federation/callback", self.issuer)
    }
}

/// What an [`Engine`] is made of.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub live: Arc<Live>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<Random>,
    pub hasher: hasher::PasswordHasher,
    pub throttle: Arc<throttle::Throttle>,
    pub postman: Arc<dyn Postman>,
    pub messages: Arc<dyn Messages>,
    /// Keys the stored form of email codes.
    pub code_key: HmacKey,
    pub settings: Settings,
}

/// The sign-up engine; cheap to share behind an `Arc`.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub live: Arc<Live>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<Random>,
    pub hasher: hasher::PasswordHasher,
    pub throttle: Arc<throttle::Throttle>,
    postman: Arc<dyn Postman>,
    messages: Arc<dyn Messages>,
    code_key: HmacKey,
    pub settings: Settings,
}

impl Engine {
    pub fn new(parts: Parts) -> Self {
        Self {
            store: parts.store,
            live: parts.live,
            clock: parts.clock,
            random: parts.random,
            hasher: parts.hasher,
            throttle: parts.throttle,
            postman: parts.postman,
            messages: parts.messages,
            code_key: parts.code_key,
            settings: parts.settings,
        }
    }

    /// The message `key` in the flow's language.
    fn text(&self, loaded: &Loaded, key: &str, args: &[(&str, String)]) -> String {
        self.messages.text(&loaded.flow.locale, key, args)
    }

    /// Feedback of one general message in the flow's language.
    fn say(&self, loaded: &Loaded, key: &str, args: &[(&str, String)]) -> Feedback {
        Feedback::general(self.text(loaded, key, args))
    }

    /// Records what `user_id` did to their account; a failure is only logged, since
    /// the change itself is made.
    pub(crate) async fn record_account_event(
        &self,
        user_id: &str,
        kind: usher_domain::AccountEventKind,
        client_id: Option<&str>,
        flow_id: Option<&str>,
    ) {
        let event = usher_domain::AccountEvent {
            id: self.random.new_id(),
            user_id: user_id.to_owned(),
            kind,
            at: self.clock.now(),
            client_id: client_id.map(str::to_owned),
            flow_id: flow_id.map(str::to_owned),
        };
        if let Err(e) = self.store.insert_account_event(&event).await {
            tracing::warn!(error = %e, %user_id, kind = kind.as_str(), "could not record an account event");
        }
    }

    /// Logs `error` with a fresh reference and returns the failure naming it.
    pub fn internal(&self, error: impl std::fmt::Display) -> Failure {
        let reference = self.random.new_id();
        tracing::error!(%reference, %error, "internal error");
        Failure::Internal { reference }
    }

    /// The failure page for `error`, in `locale`.
    fn fail_with(&self, locale: &str, error: impl std::fmt::Display) -> Next {
        Next::failure(locale, self.internal(error))
    }

    /// Counts one attempt against each of `limits` (see [`throttle::Throttle::reserve`]).
    pub async fn reserve(
        &self,
        limits: &[(usher_domain::Limit, Option<&str>)],
    ) -> Result<throttle::Reservation, throttle::Throttled> {
        self.throttle
            .reserve(&*self.store, self.clock.now(), limits)
            .await
    }

    /// Gives back the attempts of `reservation`: the password or code was right.
    pub async fn release(&self, reservation: throttle::Reservation) {
        self.throttle
            .release(&*self.store, self.clock.now(), reservation)
            .await;
    }

    /// Reserves one password attempt for the account `email` from `client`: per
    /// account and address, per account, and per address (sign-in and the link page
    /// count alike).
    async fn reserve_password_attempt(
        &self,
        email: &str,
        client: throttle::ClientAddress,
    ) -> Result<throttle::Reservation, throttle::Throttled> {
        use usher_domain::Limit;
        let address = client.subject();
        let account_and_address = address.as_ref().map(|a| format!("{email} {a}"));
        self.reserve(&[
            (
                Limit::PasswordFailuresPerAccountAndAddress,
                account_and_address.as_deref(),
            ),
            (Limit::PasswordFailuresPerAccount, Some(email)),
            (Limit::PasswordFailuresPerAddress, address.as_deref()),
        ])
        .await
    }

    /// The flow's step again, saying a rate limit refused the attempt and when to try
    /// again.
    fn throttled(&self, loaded: Loaded, throttled: throttle::Throttled) -> Next {
        let feedback = self.say(
            &loaded,
            "error.rate_limited",
            &[("minutes", throttled.minutes().to_string())],
        );
        Next::step(
            loaded,
            feedback,
            Status::TooManyRequests {
                retry_after_seconds: Some(throttled.retry_after_seconds),
            },
        )
    }

    /// The step again with "busy, try again shortly", when every core is hashing and
    /// the queue is full.
    fn busy(&self, loaded: Loaded) -> Next {
        let feedback = self.say(&loaded, "error.busy", &[]);
        Next::step(
            loaded,
            feedback,
            Status::Unavailable {
                retry_after_seconds: Some(hasher::RETRY_AFTER_SECONDS),
            },
        )
    }
}
