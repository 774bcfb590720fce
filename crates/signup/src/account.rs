//! Self-service on an existing account: resetting a forgotten password (an emailed
//! code, the `preAccountRecovery` connectors, a new password), and — signed in —
//! changing the password, editing the profile (the user flow's attribute page and the
//! `onProfileUpdate` connectors) and deleting the account. Each is a flow like a
//! sign-in, started from the application's authorization request (`usher_action`) or,
//! for a reset, from "Forgot your password?" on the sign-in page, and each ends like
//! one: back to the application with a code (deleting ends with the account gone).
//!
//! A reset never tells the page who has an account: every address gets the same code
//! page, and the mail says what applies (a code, "no account", "sign in with your
//! provider").

use usher_domain::{
    password::check_new_password, user_flow::EMAIL_PASSWORD_PROVIDER, AccountEventKind,
    AttributeValues, ConnectorStep, FlowError, FlowStep, SignInType, SignUpDraft, User,
};
use usher_oidc::crypto::sha256_hex;
use usher_storage::{BrowserSession, StorageError};

use crate::{
    finish::Issue, throttle::ClientAddress, Engine, Failure, Feedback, Letter, Loaded, Next, Status,
};

/// What a reset mails an address, by what the address has.
pub(crate) enum ResetMail {
    /// A local account: the code.
    Code,
    /// No account at all.
    NoAccount,
    /// Accounts that sign in only with these providers (by name).
    Providers(Vec<String>),
}

impl ResetMail {
    /// The letter: with `code` for a local account, else the one saying why there
    /// is none.
    pub(crate) fn letter(self, code: Option<String>) -> Letter {
        match (self, code) {
            (ResetMail::Code, Some(code)) => Letter::ResetCode {
                code,
                minutes: usher_domain::flow::CODE_LIFETIME.num_minutes(),
            },
            (ResetMail::Providers(providers), _) => Letter::ResetWithProvider { providers },
            (ResetMail::NoAccount | ResetMail::Code, _) => Letter::ResetNoAccount,
        }
    }
}

impl Engine {
    /// "Forgot your password?" on the sign-in page (or "reset it" elsewhere before an
    /// account is chosen).
    pub async fn forgot_password(&self, mut loaded: Loaded) -> Next {
        if loaded.user_flow.allows_local_accounts()
            && loaded.flow.go_to_password_reset(self.clock.now()).is_ok()
        {
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
        }
        Next::show(&loaded)
    }

    /// What a reset's mail to `email` says: a code only for an enabled local account
    /// of the user flow's kind; else why there is none.
    pub(crate) async fn reset_mail(
        &self,
        email: &str,
        locale: &str,
    ) -> Result<ResetMail, StorageError> {
        // Both lookups whatever the address has, so that every answer costs the
        // same queries: the time the page takes says nothing either.
        let local = self
            .store
            .user_by_identity(
                SignInType::EmailAddress,
                &self.settings.local_issuer(),
                email,
            )
            .await?;
        let by_email = self.store.users_by_email(email).await?;
        if let Some(user) = local {
            if user.account_enabled {
                return Ok(ResetMail::Code);
            }
            // A disabled account is not reset; its owner hears nothing they could
            // use, as for an unknown address.
            return Ok(ResetMail::NoAccount);
        }
        let mut providers = Vec::new();
        for user in by_email {
            if !user.account_enabled {
                continue;
            }
            for identity in &user.identities {
                let name = match self.provider_of(identity) {
                    Some(p) if p == usher_domain::user_flow::EMAIL_OTP_PROVIDER => {
                        self.messages.text(locale, "email.reset.by_code", &[])
                    }
                    Some(p) => self
                        .live
                        .upstream()
                        .provider(&p)
                        .map_or(p, |n| n.display_name),
                    None => continue,
                };
                if !providers.contains(&name) {
                    providers.push(name);
                }
            }
        }
        Ok(if providers.is_empty() {
            ResetMail::NoAccount
        } else {
            ResetMail::Providers(providers)
        })
    }

    /// A reset's code was right: the account's `preAccountRecovery` connectors, then
    /// the new password.
    pub(crate) async fn recovery_code_proven(&self, mut loaded: Loaded) -> Next {
        let email = loaded.flow.code_email().unwrap_or_default().to_owned();
        let user = match self
            .store
            .user_by_identity(
                SignInType::EmailAddress,
                &self.settings.local_issuer(),
                &email,
            )
            .await
        {
            Ok(Some(u)) if u.account_enabled => u,
            // Deleted or disabled since the code went out.
            Ok(_) => return account_changed(&loaded),
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        let start = !loaded.user_flow.connectors.pre_account_recovery.is_empty();
        if loaded
            .flow
            .recovery_proven(account_draft(&user, &email), start, self.clock.now())
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        if start {
            return self.run_connectors(loaded).await;
        }
        Next::show(&loaded)
    }

    /// The new-password page: the current password when signed in, the new one twice.
    pub async fn submit_new_password(
        &self,
        mut loaded: Loaded,
        current: &str,
        password: &str,
        confirm: &str,
        client: ClientAddress,
    ) -> Next {
        let FlowStep::NewPassword {
            user_id,
            email,
            current_required,
        } = loaded.flow.step.clone()
        else {
            return self.as_is(loaded);
        };
        let mut feedback = Feedback::default();
        if current_required && current.is_empty() {
            feedback = feedback.field("currentPassword", self.text(&loaded, "error.required", &[]));
        }
        if let Err(e) = check_new_password(password, &email) {
            feedback = feedback.field("password", self.text(&loaded, e.message_key(), &[]));
        } else if password != confirm {
            feedback = feedback.field(
                "confirmPassword",
                self.text(&loaded, "error.password_mismatch", &[]),
            );
        }
        if !feedback.field_errors.is_empty() {
            return Next::step(loaded, feedback, Status::BadRequest);
        }
        let user = match self.acting_account(&loaded, &user_id).await {
            Ok(u) => u,
            Err(next) => return *next,
        };
        if current_required {
            loaded = match self
                .check_current_password(loaded, &user_id, &email, current, client)
                .await
            {
                Ok(l) => l,
                Err(next) => return *next,
            };
        }
        // The step is claimed before anything changes: the same page sent twice (a
        // double click, another tab) finds the flow saved by the first.
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        let Ok(hash) = self.hasher.hash(password.to_owned()).await else {
            return self.busy(loaded);
        };
        match self.store_new_password(&loaded, &user_id, &hash).await {
            Ok(true) => {}
            Ok(false) => return reset_link_invalid(&loaded),
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        }
        tracing::info!(%user_id, flow_id = %loaded.flow.id, reset = !current_required, "password changed by its owner");
        let kind = if current_required {
            AccountEventKind::PasswordChanged
        } else {
            AccountEventKind::PasswordReset
        };
        self.record_account_event(
            &user_id,
            kind,
            Some(&loaded.app.client_id),
            Some(&loaded.flow.id),
        )
        .await;
        if loaded.flow.password_changed(self.clock.now()).is_err() {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        // A reset link signs nobody in: its page says to sign in with the password.
        if matches!(loaded.flow.step, FlowStep::LinkResetDone { .. }) {
            return Next::step(loaded, Feedback::default(), Status::Ok);
        }
        // Signed in with the new password, and back to the application: the action
        // (or the sign-in a reset stood in for) is done.
        self.sign_in_and_return(
            &loaded,
            &user,
            Some(EMAIL_PASSWORD_PROVIDER.to_owned()),
            false,
        )
        .await
    }

    /// Stores the new password's `hash`: every session and grant of the account
    /// ends with the old one, this browser's included. A reset link's flow changes it
    /// only from the password the link was sent for, so the link works once however
    /// many requests race; `Ok(false)` when that password is gone.
    async fn store_new_password(
        &self,
        loaded: &Loaded,
        user_id: &str,
        hash: &str,
    ) -> Result<bool, usher_storage::StorageError> {
        let now = self.clock.now();
        match &loaded.flow.reset_link {
            Some(link) => match self.password_hash_of_link(user_id, link).await? {
                Some(current) => {
                    self.store
                        .replace_password_hash(user_id, &current, hash, now)
                        .await
                }
                None => Ok(false),
            },
            None => self.store.set_password_hash(user_id, Some(hash), now).await,
        }
    }

    /// The account an account action acts on, as it is now: it must still exist and
    /// be enabled, and when the action runs in a session (a change, a profile, a
    /// deletion), that session must still be live and the account's — a browser left
    /// on the page after a sign-out acts for nobody. `Err` is the page instead.
    async fn acting_account(&self, loaded: &Loaded, user_id: &str) -> Result<User, Box<Next>> {
        let user = match self.store.user_by_id(user_id).await {
            Ok(Some(u)) if u.account_enabled => u,
            Ok(_) => return Err(Box::new(account_changed(loaded))),
            Err(e) => return Err(Box::new(self.fail_with(&loaded.flow.locale, e))),
        };
        if let Some(session_id) = &loaded.flow.session_id {
            let live = match self.store.session(session_id).await {
                Ok(s) => s.is_some_and(|s| {
                    s.ended_at.is_none() && s.expires_at > self.clock.now() && s.user_id == user.id
                }),
                Err(e) => return Err(Box::new(self.fail_with(&loaded.flow.locale, e))),
            };
            if !live {
                return Err(Box::new(account_changed(loaded)));
            }
        }
        Ok(user)
    }

    /// A signed-in password change's current password, counted like a sign-in's.
    /// `Err` is the page to show instead.
    async fn check_current_password(
        &self,
        mut loaded: Loaded,
        user_id: &str,
        email: &str,
        current: &str,
        client: ClientAddress,
    ) -> Result<Loaded, Box<Next>> {
        if !loaded.flow.may_try_password() {
            let feedback = self.say(&loaded, "error.too_many_attempts", &[]);
            return Err(Box::new(Next::step(
                loaded,
                feedback,
                Status::TooManyRequests {
                    retry_after_seconds: None,
                },
            )));
        }
        // The same allowance as the sign-in page: a signed-in browser is no licence
        // to guess the password.
        let reservation = match self.reserve_password_attempt(email, client).await {
            Ok(r) => r,
            Err(t) => return Err(Box::new(self.throttled(loaded, t))),
        };
        let hash = match self.store.password_hash(user_id).await {
            Ok(h) => h,
            Err(e) => return Err(Box::new(self.fail_with(&loaded.flow.locale, e))),
        };
        let Ok(ok) = self.hasher.verify(current.to_owned(), hash).await else {
            self.release(reservation).await;
            return Err(Box::new(self.busy(loaded)));
        };
        if !ok {
            loaded.flow.password_failed();
            self.save(&mut loaded).await?;
            let feedback = Feedback::default().field(
                "currentPassword",
                self.text(&loaded, "error.current_password_wrong", &[]),
            );
            return Err(Box::new(Next::step(loaded, feedback, Status::Unauthorized)));
        }
        self.release(reservation).await;
        Ok(loaded)
    }

    /// The profile page's form: the user flow's attributes for the account, then the
    /// `onProfileUpdate` connectors.
    pub async fn submit_profile(
        &self,
        mut loaded: Loaded,
        form: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Next {
        if matches!(
            loaded.flow.step,
            FlowStep::RunningConnectors {
                connector_step: ConnectorStep::OnProfileUpdate,
                ..
            }
        ) {
            return self.run_connectors(loaded).await;
        }
        let FlowStep::EditProfile { draft, .. } = &loaded.flow.step else {
            return self.as_is(loaded);
        };
        let user_id = draft.user_id.clone().unwrap_or_default();
        if let Err(next) = self.acting_account(&loaded, &user_id).await {
            return *next;
        }
        let values = match self.parse_attributes(&loaded, form) {
            Ok(v) => v,
            Err(feedback) => return Next::step(loaded, feedback, Status::BadRequest),
        };
        if loaded
            .flow
            .profile_submitted(values, self.clock.now())
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        self.run_connectors(loaded).await
    }

    /// The `onProfileUpdate` connectors continued with `attributes`: they are the
    /// account's new values of the page's attributes (the others stay as they are).
    pub(crate) async fn save_profile(
        &self,
        mut loaded: Loaded,
        draft: SignUpDraft,
        mut attributes: AttributeValues,
    ) -> Next {
        let user_id = draft.user_id.clone().unwrap_or_default();
        // The address is proven; no page or connector changes it here.
        attributes.remove("email");
        // Written at the version read, so an administrator's change made meanwhile
        // (disabling the account, say) is never undone; read again once if one was.
        let mut user = None;
        for _ in 0..2 {
            let mut current = match self.acting_account(&loaded, &user_id).await {
                Ok(u) => u,
                Err(next) => return *next,
            };
            Self::apply_profile(&loaded.user_flow, &mut current, &attributes);
            let edit = usher_storage::UserEdit {
                user: &current,
                replace_identities: false,
                password_hash: None,
                expected_version: Some(current.version),
                now: self.clock.now(),
            };
            match self.store.edit_user(&edit).await {
                Ok(Some(version)) => {
                    current.version = version;
                    user = Some(current);
                    break;
                }
                Ok(None) => return account_changed(&loaded),
                Err(usher_storage::StorageError::Conflict) => {}
                Err(e) => return self.fail_with(&loaded.flow.locale, e),
            }
        }
        let Some(user) = user else {
            return account_changed(&loaded);
        };
        tracing::info!(%user_id, flow_id = %loaded.flow.id, "profile edited by its owner");
        self.record_account_event(
            &user_id,
            AccountEventKind::ProfileUpdated,
            Some(&loaded.app.client_id),
            Some(&loaded.flow.id),
        )
        .await;
        if loaded.flow.profile_updated(self.clock.now()).is_err() {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        self.back_in_session(&loaded, &user).await
    }

    /// The page's values of the user flow's attributes onto `user`: a value left
    /// empty removes the attribute; attributes not on the page stay as they are.
    fn apply_profile(
        user_flow: &usher_domain::UserFlow,
        user: &mut User,
        values: &AttributeValues,
    ) {
        for assignment in &user_flow.attributes {
            let id = &assignment.attribute_id;
            if id == "email" {
                continue;
            }
            match values.get(id) {
                Some(v) => {
                    user.attributes.insert(id.clone(), v.clone());
                }
                None => {
                    user.attributes.remove(id);
                }
            }
        }
    }

    /// "Send me a code" on the deletion page.
    pub async fn send_deletion_code(&self, loaded: Loaded, client: ClientAddress) -> Next {
        let FlowStep::ConfirmDeletion { user_id, email } = &loaded.flow.step else {
            return self.as_is(loaded);
        };
        let email = email.clone();
        if let Err(next) = self.acting_account(&loaded, user_id).await {
            return *next;
        }
        self.send_code(loaded, client, email, None).await
    }

    /// The deletion's code was right: the account goes, with its identities,
    /// sessions and grants, as when an administrator deletes it.
    pub(crate) async fn delete_account(&self, mut loaded: Loaded, user_id: &str) -> Next {
        if let Err(next) = self.acting_account(&loaded, user_id).await {
            return *next;
        }
        match self.store.delete_user(user_id, self.clock.now()).await {
            Ok(_) => {}
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        }
        tracing::info!(%user_id, flow_id = %loaded.flow.id, "account deleted by its owner");
        if loaded.flow.account_deleted().is_err() {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        Next::step(loaded, Feedback::default(), Status::Ok)
    }

    /// A sign-in in a flow that came for an account action: the browser is signed
    /// in (`session`, whose cookie is `token`) and the action's first page comes
    /// next instead of the application.
    pub(crate) async fn begin_after_sign_in(
        &self,
        mut loaded: Loaded,
        user: &User,
        session: &BrowserSession,
        token: String,
    ) -> Next {
        let then = self.begin_action(&mut loaded, user, &session.id_hash).await;
        Next::SignedIn {
            token,
            seconds: self.settings.session.num_seconds(),
            then: Box::new(then),
        }
    }

    /// Moves the flow to the action's first page for `user`, signed in with session
    /// `session_id`, and saves it.
    async fn begin_action(&self, loaded: &mut Loaded, user: &User, session_id: &str) -> Next {
        let has_password = match self.store.password_hash(&user.id).await {
            Ok(h) => h.is_some(),
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        // The address the account proves itself with: its local account's (which
        // sign-in counts password attempts under), else a verified one — never an
        // address an administrator typed in unproven.
        let email = self
            .local_email(user)
            .or_else(|| user.email.clone().filter(|_| user.email_verified))
            .unwrap_or_default();
        let draft = account_draft(user, &email);
        // A deletion is confirmed by a code to the account's address: without one
        // there is nothing to confirm it with. An administrator's account is deleted
        // by another administrator, so the last one cannot lock everyone out.
        let deleting = loaded.flow.authorization.account_action
            == Some(usher_domain::AccountAction::DeleteAccount);
        let refusal = if deleting && draft.email.is_empty() {
            Some("account.no_email")
        } else if deleting {
            match self.store.user_roles(&user.id).await {
                Ok(roles) if !roles.is_empty() => Some("account.administrator"),
                Ok(_) => None,
                Err(e) => return self.fail_with(&loaded.flow.locale, e),
            }
        } else {
            None
        };
        if let Some(key) = refusal {
            let message = self.text(loaded, key, &[]);
            loaded.flow.block(message, None);
            if let Err(next) = self.save(loaded).await {
                return *next;
            }
            return Next::show(loaded);
        }
        match loaded.flow.begin_account_action(
            draft,
            has_password,
            session_id.to_owned(),
            self.clock.now(),
        ) {
            Ok(()) => {}
            Err(FlowError::NoPassword) => {
                let message = self.text(loaded, "account.no_password", &[]);
                loaded.flow.block(message, None);
            }
            Err(_) => return self.as_is(loaded.clone()),
        }
        if let Err(next) = self.save(loaded).await {
            return *next;
        }
        Next::show(loaded)
    }

    /// A flow for an account action in a browser already signed in to `user` with
    /// `session`: it starts at the action's first page. Its id.
    pub async fn start_signed_in(
        &self,
        request: usher_domain::AuthorizationRequest,
        (app, user_flow): (&usher_domain::Application, &usher_domain::UserFlow),
        locale: &str,
        browser_token: &str,
        (user, session): (&User, &BrowserSession),
    ) -> Result<String, Failure> {
        let flow = usher_domain::Flow::start(
            self.random.new_id(),
            user_flow.id.clone(),
            request,
            locale.to_owned(),
            sha256_hex(browser_token.as_bytes()),
            self.random.new_token(),
            self.clock.now(),
        );
        self.store
            .insert_flow(&flow)
            .await
            .map_err(|e| self.internal(e))?;
        let mut loaded = Loaded {
            flow,
            user_flow: user_flow.clone(),
            app: app.clone(),
            client: ClientAddress(None),
        };
        match self.begin_action(&mut loaded, user, &session.id_hash).await {
            Next::ShowFlow { flow_id } => Ok(flow_id),
            Next::Failure { failure, .. } => Err(failure),
            _ => Ok(loaded.flow.id),
        }
    }

    /// The end of an action that did not sign the person in again (a profile edit):
    /// back to the application in the session the flow ran in.
    async fn back_in_session(&self, loaded: &Loaded, user: &User) -> Next {
        let session = match loaded.flow.session_id.as_deref() {
            Some(id) => match self.store.session(id).await {
                Ok(s) => s.filter(|s| s.ended_at.is_none() && s.expires_at > self.clock.now()),
                Err(e) => return self.fail_with(&loaded.flow.locale, e),
            },
            None => None,
        };
        let Some(session) = session else {
            // Signed out elsewhere meanwhile: the change is saved, but no code is
            // issued without a session.
            return Next::failure(
                &loaded.flow.locale,
                Failure::FlowExpired {
                    back_url: Some(loaded.error_url(
                        &self.settings.issuer,
                        "login_required",
                        "The session ended.",
                    )),
                },
            );
        };
        self.single_sign_on(Issue {
            request: &loaded.flow.authorization,
            user_flow: &loaded.user_flow,
            app: &loaded.app,
            user,
            auth_time: session.auth_time,
            session_id: Some(&session.id_hash),
            flow_id: &loaded.flow.id,
            locale: &loaded.flow.locale,
            client: loaded.client,
        })
        .await
    }
}

/// An account as the account pages and connectors see it: its id, address,
/// identities and attribute values (the page starts with them).
pub(crate) fn account_draft(user: &User, email: &str) -> SignUpDraft {
    SignUpDraft {
        email: email.to_owned(),
        password_hash: None,
        identities: user.identities.clone(),
        attributes: user.attributes.clone(),
        prefill: user.attributes.clone(),
        user_id: Some(user.id.clone()),
    }
}

/// The page for an account that changed under the flow (deleted, disabled, signed out
/// of): start again.
fn account_changed(loaded: &Loaded) -> Next {
    Next::failure(
        &loaded.flow.locale,
        Failure::BadRequest {
            message_key: "error.account_changed",
            args: Vec::new(),
        },
    )
}

/// The page for a reset link that no longer works.
pub(crate) fn reset_link_invalid(loaded: &Loaded) -> Next {
    Next::failure(
        &loaded.flow.locale,
        Failure::BadRequest {
            message_key: "error.reset_link_invalid",
            args: Vec::new(),
        },
    )
}
