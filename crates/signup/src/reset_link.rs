//! Password reset links an administrator sends: a signed, time-limited link to
//! `/reset?token=…` that opens a reset flow at the account-recovery step, as a proven
//! code would. The token names the user, the application whose user flow the reset
//! runs in, when it expires and a fingerprint of the password hash; a password set
//! since then (with a new salt) makes it stale, so a link works once. Nothing is
//! stored until it is opened.

use chrono::{DateTime, Duration};
use serde_json::json;
use usher_domain::{
    AccountAction, AccountEventKind, Application, CodePurpose, Flow, FlowStep, ResetLink,
    SignInType, User,
};
use usher_oidc::crypto::sha256_hex;

use crate::{Engine, Failure, Letter};

/// How long a reset link works.
pub const RESET_LINK_LIFETIME: Duration = Duration::minutes(60);

/// What a valid token says.
struct Ticket {
    user_id: String,
    client_id: String,
    /// The local account's address the link was mailed to.
    email: String,
    password_fingerprint: String,
}

/// A reset link that works, with what it is for.
struct ValidLink {
    user: User,
    app: Application,
    user_flow: usher_domain::UserFlow,
    email: String,
    link: ResetLink,
}

/// Why an administrator's reset link was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ResetLinkError {
    #[error("the user has no email and password account to reset")]
    NoPassword,
    #[error("the application's user flow has no email and password accounts")]
    NoLocalAccounts,
    #[error("the account is disabled")]
    Disabled,
    #[error("the mail could not be sent: {0}")]
    Mail(String),
    #[error(transparent)]
    Storage(#[from] usher_storage::StorageError),
}

impl Engine {
    /// Emails `user` a link that resets their password in `app`'s user flow;
    /// `admin_id` is who asked, for the log.
    pub async fn send_reset_link(
        &self,
        user: &User,
        app: &Application,
        locale: &str,
        admin_id: &str,
    ) -> Result<(), ResetLinkError> {
        let tenant = self.live.tenant();
        if !tenant
            .user_flow(&app.user_flow_id)
            .is_some_and(usher_domain::UserFlow::allows_local_accounts)
        {
            return Err(ResetLinkError::NoLocalAccounts);
        }
        let Some(email) = self.local_email(user) else {
            return Err(ResetLinkError::NoPassword);
        };
        let Some(hash) = self.store.password_hash(&user.id).await? else {
            return Err(ResetLinkError::NoPassword);
        };
        if !user.account_enabled {
            return Err(ResetLinkError::Disabled);
        }
        let url = format!(
            "{}/reset?token={}",
            self.settings.issuer,
            self.reset_token(user, &app.client_id, &email, &self.fingerprint(&hash))
        );
        let letter = Letter::ResetLink {
            url,
            application: app.name.clone(),
            minutes: RESET_LINK_LIFETIME.num_minutes(),
        };
        let written = self
            .postman
            .write(&email, locale, &letter, None)
            .map_err(|e| ResetLinkError::Mail(e.to_string()))?;
        self.postman
            .deliver(&email, written)
            .await
            .map_err(|e| ResetLinkError::Mail(e.to_string()))?;
        tracing::info!(user_id = %user.id, client_id = %app.client_id, admin = %admin_id, "password reset link sent");
        self.record_account_event(
            &user.id,
            AccountEventKind::ResetLinkSent,
            Some(&app.client_id),
            None,
        )
        .await;
        Ok(())
    }

    /// The address of the user's local account, if they have one.
    pub(crate) fn local_email(&self, user: &User) -> Option<String> {
        let issuer = self.settings.local_issuer();
        user.identities
            .iter()
            .find(|i| i.sign_in_type == SignInType::EmailAddress && i.issuer == issuer)
            .map(|i| i.issuer_assigned_id.clone())
    }

    /// A fingerprint of a password hash (its PHC string, salt included), keyed so
    /// that the link, which travels by mail, says nothing about the hash.
    fn fingerprint(&self, password_hash: &str) -> String {
        self.code_key
            .sign_hex(format!("reset-link-password\0{password_hash}").as_bytes())
    }

    fn reset_token(&self, user: &User, client_id: &str, email: &str, fingerprint: &str) -> String {
        let expires = self.clock.now() + RESET_LINK_LIFETIME;
        let payload = json!({
            "u": user.id,
            "c": client_id,
            "m": email,
            "e": expires.timestamp(),
            "p": fingerprint,
        })
        .to_string();
        let body = usher_domain::id::base64url(payload.as_bytes());
        let tag = self.code_key.sign(format!("reset-link\0{body}").as_bytes());
        format!("{body}.{}", usher_domain::id::base64url(&tag))
    }

    /// The ticket in `token`, if its signature holds and it has not expired.
    fn read_reset_token(&self, token: &str) -> Option<Ticket> {
        use base64::Engine as _;
        let decode = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        };
        let (body, tag) = token.split_once('.')?;
        if token.len() > 2048
            || !self
                .code_key
                .verify(format!("reset-link\0{body}").as_bytes(), &decode(tag)?)
        {
            return None;
        }
        let payload: serde_json::Value = serde_json::from_slice(&decode(body)?).ok()?;
        let expires = DateTime::from_timestamp(payload["e"].as_i64()?, 0)?;
        if self.clock.now() >= expires {
            return None;
        }
        Some(Ticket {
            user_id: payload["u"].as_str()?.to_owned(),
            client_id: payload["c"].as_str()?.to_owned(),
            email: payload["m"].as_str()?.to_owned(),
            password_fingerprint: payload["p"].as_str()?.to_owned(),
        })
    }

    /// Whether `token` is a reset link that works now: signed, not expired, for an
    /// enabled account whose address and password are still the ones it was sent
    /// for, in an application whose user flow has passwords. The application's
    /// name, for the page that asks the person to go on.
    pub async fn check_reset_link(&self, token: &str) -> Result<String, Failure> {
        self.valid_link(token).await.map(|v| v.app.name)
    }

    async fn valid_link(&self, token: &str) -> Result<ValidLink, Failure> {
        let invalid = Failure::BadRequest {
            message_key: "error.reset_link_invalid",
            args: Vec::new(),
        };
        let Some(ticket) = self.read_reset_token(token) else {
            return Err(invalid);
        };
        let user = match self.store.user_by_id(&ticket.user_id).await {
            Ok(Some(u)) if u.account_enabled => u,
            Ok(_) => return Err(invalid),
            Err(e) => return Err(self.internal(e)),
        };
        let tenant = self.live.tenant();
        let (Some(app), Some(email)) = (
            tenant.application(&ticket.client_id).cloned(),
            self.local_email(&user),
        ) else {
            return Err(invalid);
        };
        let Some(user_flow) = tenant
            .user_flow(&app.user_flow_id)
            .filter(|f| f.allows_local_accounts())
            .cloned()
        else {
            return Err(invalid);
        };
        let link = ResetLink {
            password_fingerprint: ticket.password_fingerprint,
        };
        let current = self
            .password_hash_of_link(&user.id, &link)
            .await
            .map_err(|e| self.internal(e))?;
        if email != ticket.email || current.is_none() {
            return Err(invalid);
        }
        Ok(ValidLink {
            user,
            app,
            user_flow,
            email,
            link,
        })
    }

    /// The person chose to go on from a reset link's page: a reset flow for the
    /// browser whose binding cookie is `browser_token`, at the account-recovery step;
    /// its id. A link that does not work (see [`Engine::check_reset_link`]) is a page
    /// saying so.
    pub async fn open_reset_link(
        &self,
        token: &str,
        locale: &str,
        browser_token: &str,
    ) -> Result<String, Failure> {
        let ValidLink {
            user,
            app,
            user_flow,
            email,
            link,
        } = self.valid_link(token).await?;
        let request = usher_domain::AuthorizationRequest {
            client_id: app.client_id.clone(),
            // Only the cancel button's way back: the reset ends on Usher's page.
            redirect_uri: app.redirect_uris.first().cloned().unwrap_or_default(),
            scope: vec!["openid".to_owned()],
            state: None,
            nonce: None,
            code_challenge: None,
            ui_locales: None,
            login_hint: Some(email.clone()),
            prompt: None,
            browser_language: None,
            account_action: Some(AccountAction::ResetPassword),
        };
        let mut flow = Flow::start(
            self.random.new_id(),
            user_flow.id.clone(),
            request,
            locale.to_owned(),
            sha256_hex(browser_token.as_bytes()),
            self.random.new_token(),
            self.clock.now(),
        );
        debug_assert_eq!(
            flow.step,
            FlowStep::EnterEmail {
                purpose: CodePurpose::PasswordReset
            }
        );
        flow.reset_link = Some(link);
        let start = !user_flow.connectors.pre_account_recovery.is_empty();
        flow.recovery_proven(
            crate::account::account_draft(&user, &email),
            start,
            self.clock.now(),
        )
        .map_err(|e| self.internal(e))?;
        self.store
            .insert_flow(&flow)
            .await
            .map_err(|e| self.internal(e))?;
        Ok(flow.id)
    }

    /// The user's password hash, if it is still the one `link` was sent for.
    pub(crate) async fn password_hash_of_link(
        &self,
        user_id: &str,
        link: &ResetLink,
    ) -> Result<Option<String>, usher_storage::StorageError> {
        Ok(self.store.password_hash(user_id).await?.filter(|hash| {
            usher_domain::flow::constant_time_eq(
                self.fingerprint(hash).as_bytes(),
                link.password_fingerprint.as_bytes(),
            )
        }))
    }
}
