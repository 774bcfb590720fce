//! Finding a flow for a browser, and saving it: the flow must exist, belong to the
//! browser that started it and not have expired; a form must carry the flow's CSRF
//! token; a save that lost a race shows the latest state instead of failing.

use usher_domain::{Application, Flow, UserFlow};
use usher_oidc::crypto::sha256_hex;
use usher_storage::StorageError;

use crate::{
    redirect::error_redirect_url, throttle::ClientAddress, Engine, Failure, Feedback, Next, Status,
};

/// A flow with the user flow and application it runs for.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub flow: Flow,
    pub user_flow: UserFlow,
    pub app: Application,
    /// Where this request comes from (not stored: the next request may come from
    /// elsewhere); connectors are told it.
    pub client: ClientAddress,
}

impl Loaded {
    /// Whether the sign-in page offers a local sign-up: the user flow has local
    /// accounts and the application lets people sign themselves up.
    pub fn offers_sign_up(&self) -> bool {
        self.user_flow.allows_local_accounts() && self.app.offers_sign_up()
    }

    /// Back to the application with an OAuth error.
    pub fn error_url(&self, issuer: &str, error: &str, description: &str) -> String {
        error_redirect_url(
            &self.flow.authorization.redirect_uri,
            error,
            description,
            self.flow.authorization.state.as_deref(),
            issuer,
        )
    }
}

impl Engine {
    /// Loads flow `id` for the browser whose binding cookie is `browser`.
    pub async fn open(
        &self,
        id: &str,
        browser: Option<&str>,
        client: ClientAddress,
    ) -> Result<Loaded, Failure> {
        // Ids are UUIDs; anything else cannot exist and is not worth a query.
        if id.len() != 36 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(Failure::FlowNotFound);
        }
        let flow = self
            .store
            .flow(id)
            .await
            .map_err(|e| self.internal(e))?
            .ok_or(Failure::FlowNotFound)?;
        let binding = browser.map(|c| sha256_hex(c.as_bytes()));
        if binding.as_deref() != Some(flow.browser_binding.as_str()) {
            return Err(Failure::WrongBrowser);
        }
        let tenant = self.live.tenant();
        let (Some(app), Some(user_flow)) = (
            tenant.application(&flow.authorization.client_id).cloned(),
            tenant.user_flow(&flow.user_flow_id).cloned(),
        ) else {
            // The application or flow was removed from the configuration mid-flow.
            return Err(Failure::FlowNotFound);
        };
        let loaded = Loaded {
            flow,
            user_flow,
            app,
            client,
        };
        if loaded.flow.is_expired(self.clock.now()) {
            return Err(Failure::FlowExpired {
                back_url: Some(loaded.error_url(
                    &self.settings.issuer,
                    "access_denied",
                    "The sign-in expired.",
                )),
            });
        }
        Ok(loaded)
    }

    /// The start of every form post: the flow for this browser, and the form's CSRF
    /// token checked against it. A stale token shows the current page with a notice.
    pub async fn open_form(
        &self,
        id: &str,
        browser: Option<&str>,
        client: ClientAddress,
        csrf: &str,
        locale: &str,
    ) -> Result<Loaded, Next> {
        let loaded = self
            .open(id, browser, client)
            .await
            .map_err(|f| Next::failure(locale, f))?;
        if !usher_domain::flow::constant_time_eq(csrf.as_bytes(), loaded.flow.csrf_token.as_bytes())
        {
            let feedback = self.say(&loaded, "error.csrf", &[]);
            return Err(self.current(loaded, feedback, Status::BadRequest));
        }
        Ok(loaded)
    }

    /// `GET` of a flow: its current page. A flow running its connectors waits for the
    /// run in progress, or resumes a run whose instance stopped.
    pub async fn show(&self, loaded: Loaded) -> Next {
        if matches!(
            loaded.flow.step,
            usher_domain::FlowStep::RunningConnectors { .. }
        ) {
            return self.run_connectors(loaded).await;
        }
        self.current(loaded, Feedback::default(), Status::Ok)
    }

    /// The page of the flow's current step.
    pub(crate) fn current(&self, loaded: Loaded, feedback: Feedback, status: Status) -> Next {
        Next::current(&self.settings.issuer, loaded, feedback, status)
    }

    /// The current page, unchanged: the answer to a form for a step the flow has left.
    pub(crate) fn as_is(&self, loaded: Loaded) -> Next {
        self.current(loaded, Feedback::default(), Status::Ok)
    }

    /// Saves the flow; a concurrent change (another tab, a double submit) shows the
    /// latest state instead of failing. `Err` is the answer to give instead.
    pub(crate) async fn save(&self, loaded: &mut Loaded) -> Result<(), Box<Next>> {
        match self.store.update_flow(&mut loaded.flow).await {
            Ok(()) => Ok(()),
            Err(StorageError::Conflict) => {
                let locale = loaded.flow.locale.clone();
                match self.store.flow(&loaded.flow.id).await {
                    Ok(Some(latest)) => {
                        let mut latest_loaded = loaded.clone();
                        latest_loaded.flow = latest;
                        let feedback = self.say(&latest_loaded, "error.conflict", &[]);
                        Err(Box::new(self.current(
                            latest_loaded,
                            feedback,
                            Status::Conflict,
                        )))
                    }
                    Ok(None) => Err(Box::new(Next::failure(&locale, Failure::FlowNotFound))),
                    Err(e) => Err(Box::new(self.fail_with(&locale, e))),
                }
            }
            Err(e) => Err(Box::new(self.fail_with(&loaded.flow.locale, e))),
        }
    }

    /// "Sign up now" (and "use a different email address" at sign-in).
    pub async fn go_to_sign_up(&self, mut loaded: Loaded) -> Next {
        if loaded.offers_sign_up() && loaded.flow.go_to_sign_up(self.clock.now()).is_ok() {
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
        }
        Next::show(&loaded)
    }

    /// "Back to sign in".
    pub async fn go_to_sign_in(&self, mut loaded: Loaded) -> Next {
        if loaded.flow.go_to_sign_in(self.clock.now()).is_ok() {
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
        }
        Next::show(&loaded)
    }

    /// "Use a different email address" on the code page.
    pub async fn change_email(&self, mut loaded: Loaded) -> Next {
        if loaded.flow.change_email(self.clock.now()).is_ok() {
            if let Err(next) = self.save(&mut loaded).await {
                return *next;
            }
        }
        Next::show(&loaded)
    }

    /// The person gives up; the application hears `access_denied`.
    pub fn cancel(&self, loaded: &Loaded) -> Next {
        Next::Redirect {
            location: loaded.error_url(
                &self.settings.issuer,
                "access_denied",
                "The user cancelled the sign-in.",
            ),
        }
    }
}
