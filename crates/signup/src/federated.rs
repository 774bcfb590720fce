//! What happens once an upstream identity provider, or an emailed one-time passcode,
//! has vouched for an identity: a known identity signs in (no connectors); an email
//! that belongs to another account is offered for linking, never linked silently; a
//! new identity signs up through the `postFederationSignup` connectors and the
//! attribute page. Also the link page's actions and the provider buttons.

use usher_domain::{attribute::normalize_email, AttributeValues, Identity, PendingLink};
use usher_storage::StorageError;

use crate::{throttle::ClientAddress, Engine, Failure, Feedback, Loaded, Next, Status};

impl Engine {
    /// The provider (or passcode) vouched for `identity`; `email` only if it is
    /// verified. `provider_id`: the upstream provider the browser came back from, when
    /// the flow knows it (otherwise it is worked out from the identity).
    pub(crate) async fn identity_verified(
        &self,
        mut loaded: Loaded,
        provider_id: Option<&str>,
        identity: Identity,
        email: Option<String>,
        attributes: AttributeValues,
    ) -> Next {
        let now = self.clock.now();
        // An identity stored without an exact issuer belongs to the provider that owns
        // its short issuer, and to no other provider on the same host.
        let provider = match provider_id {
            Some(id) => Some(id.to_owned()),
            None => self.provider_of(&identity),
        };
        let takes_on = identity.exact_issuer.is_some()
            && provider
                .as_deref()
                .is_some_and(|p| self.live.upstream().takes_on_unresolved(p));
        let known = match self
            .store
            .user_by_provider_identity(&identity, takes_on)
            .await
        {
            Ok(u) => u,
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        // Signing in to an existing account to link another identity to it.
        if let Some(link) = loaded.flow.pending_link().cloned() {
            return match known {
                Some(user) if user.id == link.user_id => {
                    self.link_and_finish(loaded, &link.user_id, &link.identity)
                        .await
                }
                _ => {
                    let feedback = self.say(
                        &loaded,
                        "error.link_other_account",
                        &[("email", link.email.clone())],
                    );
                    Next::step(loaded, feedback, Status::Conflict)
                }
            };
        }
        if let Some(user) = known {
            if !user.account_enabled {
                let _ = loaded.flow.go_to_sign_in(now);
                if let Err(next) = self.save(&mut loaded).await {
                    return *next;
                }
                let feedback = self.say(&loaded, "sign_in.failed", &[]);
                return Next::step(loaded, feedback, Status::Forbidden);
            }
            if loaded.flow.complete(user.id.clone(), false, now).is_err() {
                return self.as_is(loaded);
            }
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
            return self.finish(&loaded, &user, provider).await;
        }
        // A held or denied sign-up for this identity or address comes first.
        let email = email.map(|e| normalize_email(&e));
        loaded = match self
            .returning(loaded, email.as_deref(), std::slice::from_ref(&identity))
            .await
        {
            Ok(loaded) => loaded,
            Err(next) => return *next,
        };
        // Boxed: the sign-up path is deep, and every caller's future would carry it.
        Box::pin(self.new_identity(loaded, identity, email, attributes)).await
    }

    /// An identity no user has: ask for an email to verify when the provider vouched
    /// for none, offer the link page when the email belongs to an account, and
    /// otherwise sign up (the `postFederationSignup` connectors, then the attribute
    /// page).
    async fn new_identity(
        &self,
        mut loaded: Loaded,
        identity: Identity,
        email: Option<String>,
        attributes: AttributeValues,
    ) -> Next {
        let now = self.clock.now();
        let Some(email) = email else {
            if loaded
                .flow
                .federated_email_needed(identity, attributes, now)
                .is_err()
            {
                return self.as_is(loaded);
            }
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
            return Next::show(&loaded);
        };
        let owners = match self.store.users_by_email(&email).await {
            Ok(u) => u,
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        if let Some(owner) = owners.into_iter().next() {
            let link = PendingLink {
                user_id: owner.id,
                identity,
                email,
            };
            if loaded.flow.offer_link(link, now).is_err() {
                return self.as_is(loaded);
            }
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
            return Next::show(&loaded);
        }
        if loaded
            .flow
            .federated_sign_up(identity, email, attributes, now)
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        self.run_connectors(loaded).await
    }

    /// Links `identity` to `user_id` (the user has just signed in to it) and finishes.
    pub(crate) async fn link_and_finish(
        &self,
        mut loaded: Loaded,
        user_id: &str,
        identity: &Identity,
    ) -> Next {
        let locale = loaded.flow.locale.clone();
        // A disabled account gets nothing linked and no sign-in, and the page says no
        // more than a wrong password would.
        match self.store.user_by_id(user_id).await {
            Ok(Some(u)) if u.account_enabled => {}
            Ok(_) => {
                let feedback = self.say(&loaded, "sign_in.failed", &[]);
                return Next::step(loaded, feedback, Status::Unauthorized);
            }
            Err(e) => return self.fail_with(&locale, e),
        }
        match self.store.add_identity(user_id, identity).await {
            Ok(true) => {}
            Ok(false) => return Next::failure(&locale, Failure::FlowNotFound),
            // Linked by a parallel attempt, or taken by another account meanwhile:
            // either way nothing more to link; the sign-in itself stands only for the
            // first.
            Err(StorageError::DuplicateIdentity) => {}
            Err(e) => return self.fail_with(&locale, e),
        }
        let user = match self.store.user_by_id(user_id).await {
            Ok(Some(u)) => u,
            Ok(None) => return Next::failure(&locale, Failure::FlowNotFound),
            Err(e) => return self.fail_with(&locale, e),
        };
        tracing::info!(user_id = %user.id, issuer = %identity.issuer, "linked an identity after sign-in");
        if loaded
            .flow
            .complete(user.id.clone(), false, self.clock.now())
            .is_err()
        {
            return self.as_is(loaded);
        }
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        // The session is the one of the identity that came in, not of the sign-in that
        // proved the account.
        let provider = self.provider_of(identity);
        self.finish(&loaded, &user, provider).await
    }

    /// On the link page: the existing account's password, then the link.
    pub async fn link_with_password(
        &self,
        loaded: Loaded,
        password: &str,
        client: ClientAddress,
    ) -> Next {
        let Some(link) = loaded.flow.pending_link().cloned() else {
            return self.as_is(loaded);
        };
        if password.is_empty() {
            let feedback =
                Feedback::default().field("password", self.text(&loaded, "error.required", &[]));
            return Next::step(loaded, feedback, Status::BadRequest);
        }
        let reservation = match self.reserve_password_attempt(&link.email, client).await {
            Ok(r) => r,
            Err(t) => return self.throttled(loaded, t),
        };
        let hash = match self.store.password_hash(&link.user_id).await {
            Ok(h) => h,
            Err(e) => return self.fail_with(&loaded.flow.locale, e),
        };
        let Ok(verified) = self.hasher.verify(password.to_owned(), hash).await else {
            // Nothing was checked: the attempt does not count.
            self.release(reservation).await;
            return self.busy(loaded);
        };
        if !verified {
            let feedback = self.say(&loaded, "sign_in.failed", &[]);
            return Next::step(loaded, feedback, Status::Unauthorized);
        }
        self.release(reservation).await;
        self.link_and_finish(loaded, &link.user_id, &link.identity)
            .await
    }

    /// A provider button. Email one-time passcode is built in; upstream providers
    /// are a redirect there.
    pub async fn choose_provider(&self, mut loaded: Loaded, provider: &str) -> Next {
        let offered = loaded
            .user_flow
            .identity_providers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(provider));
        if !offered {
            let feedback = self.say(&loaded, "error.bad_request", &[]);
            return Next::step(loaded, feedback, Status::BadRequest);
        }
        if provider.eq_ignore_ascii_case(usher_domain::user_flow::EMAIL_OTP_PROVIDER) {
            if loaded
                .flow
                .go_to_one_time_passcode(self.clock.now())
                .is_ok()
            {
                if let Err(next) = self.save(&mut loaded).await {
                    return *next;
                }
            }
            return Next::show(&loaded);
        }
        self.to_upstream(loaded, provider).await
    }
}
