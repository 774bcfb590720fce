//! Email and password: signing in to a local account, and choosing the new account's
//! password. Sign-in runs no connectors but `preTokenIssuance`.

use usher_domain::{
    attribute::normalize_email, password::check_new_password, user_flow::EMAIL_PASSWORD_PROVIDER,
    AttributeValues, FlowStep, Identity, SignInType, SignUpRequest, User,
};
use usher_storage::StorageError;

use crate::{throttle::ClientAddress, Engine, Feedback, Loaded, Next, Status};

impl Engine {
    /// The sign-in page's email and password.
    pub async fn sign_in(
        &self,
        mut loaded: Loaded,
        typed_email: &str,
        password: &str,
        client: ClientAddress,
    ) -> Next {
        // Back from a provider without finishing counts as the sign-in page.
        let at_sign_in = matches!(
            loaded.flow.step,
            FlowStep::SignIn | FlowStep::FederationRedirect { link: None, .. }
        );
        if !at_sign_in || !loaded.user_flow.allows_local_accounts() {
            return self.as_is(loaded);
        }
        if !loaded.flow.may_try_password() {
            let feedback = self.say(&loaded, "error.too_many_attempts", &[]);
            return Next::step(
                loaded,
                feedback,
                Status::TooManyRequests {
                    retry_after_seconds: None,
                },
            );
        }
        let email = normalize_email(typed_email);
        let entered: std::collections::BTreeMap<String, Vec<String>> =
            [("email".to_owned(), vec![typed_email.to_owned()])].into();
        let mut feedback = Feedback::default().entered(entered.clone());
        if email.is_empty() {
            feedback = feedback.field("email", self.text(&loaded, "error.required", &[]));
        }
        if password.is_empty() {
            feedback = feedback.field("password", self.text(&loaded, "error.required", &[]));
        }
        if !feedback.field_errors.is_empty() {
            return Next::step(loaded, feedback, Status::BadRequest);
        }
        // Across flows and instances: the typed address counts whether or not it has
        // an account, so the refusal says nothing about which addresses do. The
        // attempt is counted before the password is checked, so a burst of parallel
        // guesses cannot all pass; a right password gives its count back.
        let reservation = match self.reserve_password_attempt(&email, client).await {
            Ok(r) => r,
            Err(t) => return self.throttled(loaded, t),
        };
        let (user, held, hash) = match self.password_account(&email).await {
            Ok(found) => found,
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        let local = self.local_identity(&email);
        // Unknown email, disabled account and wrong password take the same time (one
        // hash each) and get the same answer.
        let Ok(ok) = self.hasher.verify(password.to_owned(), hash).await else {
            // Nothing was checked: the attempt does not count.
            self.release(reservation).await;
            return self.busy(loaded);
        };
        // A right password gives its count back, also when it only shows a held
        // sign-up's pending (or block) page.
        if ok {
            self.release(reservation).await;
        }
        if ok && user.is_none() && held.is_some() {
            loaded = match self
                .returning(loaded, Some(&email), std::slice::from_ref(&local))
                .await
            {
                Ok(loaded) => loaded,
                Err(next) => return *next,
            };
        }
        let Some(user) = user.filter(|_| ok) else {
            loaded.flow.password_failed();
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
            let feedback = self.say(&loaded, "sign_in.failed", &[]).entered(entered);
            return Next::step(loaded, feedback, Status::Unauthorized);
        };
        if let Err(e) = loaded
            .flow
            .complete(user.id.clone(), false, self.clock.now())
        {
            tracing::debug!(error = %e, "sign-in on a flow that moved on");
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        self.finish(&loaded, &user, Some(EMAIL_PASSWORD_PROVIDER.to_owned()))
            .await
    }

    /// The local account (enabled) that `email` signs in to, or else a held sign-up
    /// with a password for it, and the password hash to check.
    async fn password_account(
        &self,
        email: &str,
    ) -> Result<(Option<User>, Option<SignUpRequest>, Option<String>), StorageError> {
        // Only a plausible address can have an account; anything else (a NUL byte,
        // say) never reaches the database and fails like an unknown address. (Looser
        // than the sign-up check on purpose: an account made when the rules were
        // looser must still sign in.)
        let user = if email.chars().count() <= 254
            && email.contains('@')
            && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            self.store
                .user_by_identity(
                    SignInType::EmailAddress,
                    &self.settings.local_issuer(),
                    email,
                )
                .await?
                .filter(|u| u.account_enabled)
        } else {
            None
        };
        // No account, but perhaps a sign-up held for approval (or denied) with this
        // address and a password: that password shows the pending (or block) page.
        let held = if user.is_none() && usher_domain::attribute::is_plausible_email(email) {
            let local = self.local_identity(email);
            self.store
                .open_sign_up_requests_for(None, std::slice::from_ref(&local))
                .await?
                .into_iter()
                .find(|r| r.password_hash.is_some())
        } else {
            None
        };
        let hash = match (&user, &held) {
            (Some(u), _) => self.store.password_hash(&u.id).await?,
            (None, Some(request)) => request.password_hash.clone(),
            (None, None) => None,
        };
        Ok((user, held, hash))
    }

    /// The identity of the local account with `email`.
    pub(crate) fn local_identity(&self, email: &str) -> Identity {
        Identity {
            sign_in_type: SignInType::EmailAddress,
            issuer: self.settings.local_issuer(),
            issuer_assigned_id: email.to_owned(),
            exact_issuer: None,
        }
    }

    /// The new account's password, twice.
    pub async fn submit_password(&self, mut loaded: Loaded, password: &str, confirm: &str) -> Next {
        let FlowStep::SignUpPassword { email } = &loaded.flow.step else {
            return self.as_is(loaded);
        };
        let mut feedback = Feedback::default();
        if let Err(e) = check_new_password(password, email) {
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
        let Ok(hash) = self.hasher.hash(password.to_owned()).await else {
            return self.busy(loaded);
        };
        if loaded
            .flow
            .password_set(
                hash,
                AttributeValues::new(),
                !loaded
                    .user_flow
                    .connectors
                    .attribute_collection_start
                    .is_empty(),
                self.clock.now(),
            )
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        Next::show(&loaded)
    }
}
