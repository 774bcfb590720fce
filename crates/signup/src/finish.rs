//! The end of a successful flow, and of a single sign-on at `/authorize`: a new
//! browser session, the `preTokenIssuance` connectors, the grant and a single-use
//! authorization code, and the way back to the application. Also the start of a flow.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use usher_connectors::{StepOutcome, StepRequest};
use usher_domain::{
    user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER},
    Application, AuthorizationRequest, ConnectorStep, Flow, Identity, Prompt, SignInType, User,
    UserFlow,
};
use usher_oidc::crypto::sha256_hex;
use usher_storage::{AuthorizationCode, BrowserSession, Grant, StorageError};

use crate::{
    redirect::{error_redirect_url, success_redirect_url},
    Engine, Failure, Loaded, Next,
};

/// What issuing a code for a signed-in user needs.
pub struct Issue<'a> {
    pub request: &'a AuthorizationRequest,
    pub user_flow: &'a UserFlow,
    pub app: &'a Application,
    pub user: &'a User,
    pub auth_time: DateTime<Utc>,
    /// The browser session the code's tokens belong to (for logout).
    pub session_id: Option<&'a str>,
    /// The flow (or, for a single sign-on, a fresh id) the connectors are told of.
    pub flow_id: &'a str,
    pub locale: &'a str,
    /// Where the request comes from, as connectors are told.
    pub client: crate::throttle::ClientAddress,
}

impl Engine {
    /// A new flow for `request`, bound to the browser whose binding cookie is
    /// `browser_token`; its id.
    pub async fn start(
        &self,
        request: AuthorizationRequest,
        app: &Application,
        user_flow: &UserFlow,
        locale: &str,
        browser_token: &str,
    ) -> Result<String, Failure> {
        let mut flow = Flow::start(
            self.random.new_id(),
            user_flow.id.clone(),
            request,
            locale.to_owned(),
            sha256_hex(browser_token.as_bytes()),
            self.random.new_token(),
            self.clock.now(),
        );
        // prompt=create starts at the sign-up page, when the flow has one and the
        // application offers it; otherwise at the sign-in page (which lists the
        // providers to sign up with).
        if !user_flow.allows_local_accounts() || !app.offers_sign_up() {
            flow.start_at_sign_in();
        }
        self.store
            .insert_flow(&flow)
            .await
            .map_err(|e| self.internal(e))?;
        Ok(flow.id)
    }

    /// The identity provider an identity signs in with: the local account's
    /// `EmailPassword-OAUTH`, email one-time passcode's `EmailOtpSignup-OAUTH`, or the
    /// configured provider whose identities have the identity's issuer (one at most:
    /// providers sharing an issuer are refused).
    pub fn provider_of(&self, identity: &Identity) -> Option<String> {
        match identity.sign_in_type {
            SignInType::EmailAddress => return Some(EMAIL_PASSWORD_PROVIDER.to_owned()),
            SignInType::Federated
                if identity.issuer == usher_domain::rules::PASSCODE_IDENTITY_ISSUER =>
            {
                return Some(EMAIL_OTP_PROVIDER.to_owned())
            }
            SignInType::Federated => {}
        }
        self.live.upstream().provider_for(identity)
    }

    /// A flow has completed for `user`, who signed in with `provider` (see
    /// [`Engine::provider_of`]): a new browser session, then back to the application.
    pub(crate) async fn finish(
        &self,
        loaded: &Loaded,
        user: &User,
        provider: Option<String>,
    ) -> Next {
        self.sign_in_and_return(loaded, user, provider, true).await
    }

    /// As [`Engine::finish`]; with `then_action`, a sign-in for an account action
    /// goes on to the action instead of back to the application (not after a
    /// sign-up, nor at the end of the action itself).
    pub(crate) async fn sign_in_and_return(
        &self,
        loaded: &Loaded,
        user: &User,
        provider: Option<String>,
        then_action: bool,
    ) -> Next {
        let now = self.clock.now();
        let token = self.random.new_token();
        let session = BrowserSession {
            id_hash: sha256_hex(token.as_bytes()),
            user_id: user.id.clone(),
            auth_time: now,
            created_at: now,
            expires_at: now + self.settings.session,
            ended_at: None,
            identity_provider: provider,
        };
        if let Err(e) = self.store.insert_session(&session).await {
            return self.fail_with(&loaded.flow.locale, e);
        }
        // A sign-in for an account action goes on to the action, signed in.
        let signed_in = matches!(
            loaded.flow.step,
            usher_domain::FlowStep::Completed {
                signed_up: false,
                ..
            }
        );
        if then_action
            && signed_in
            && loaded
                .flow
                .authorization
                .account_action
                .is_some_and(usher_domain::AccountAction::needs_sign_in)
            && loaded.flow.session_id.is_none()
        {
            return self
                .begin_after_sign_in(loaded.clone(), user, &session, token)
                .await;
        }
        let then = self
            .single_sign_on(Issue {
                request: &loaded.flow.authorization,
                user_flow: &loaded.user_flow,
                app: &loaded.app,
                user,
                auth_time: now,
                session_id: Some(&session.id_hash),
                flow_id: &loaded.flow.id,
                locale: &loaded.flow.locale,
                client: loaded.client,
            })
            .await;
        Next::SignedIn {
            token,
            seconds: self.settings.session.num_seconds(),
            then: Box::new(then),
        }
    }

    /// The connectors of a token's issuance: the user flow's own, then the
    /// extensions listening for the application, in their order.
    fn token_connectors(&self, user_flow: &UserFlow, app: &Application) -> Vec<String> {
        let snapshot = self.live.snapshot();
        let mut ids = user_flow.connectors.pre_token_issuance.clone();
        ids.extend(
            usher_domain::event_listener::listening(
                &snapshot.event_listeners,
                ConnectorStep::PreTokenIssuance,
                &app.client_id,
            )
            .into_iter()
            .map(|l| l.extension_id.clone()),
        );
        // An extension both in the slot and listening runs once, where it is first.
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.to_ascii_lowercase()));
        ids
    }

    /// Issues the authorization code for a signed-in user (after the
    /// `preTokenIssuance` connectors) and answers the redirect to the application.
    pub async fn single_sign_on(&self, issue: Issue<'_>) -> Next {
        let request = issue.request;
        let silent = request.prompt == Some(Prompt::None);
        let back = |error: &str, description: &str| {
            error_redirect_url(
                &request.redirect_uri,
                error,
                description,
                request.state.as_deref(),
                &self.settings.issuer,
            )
        };
        let mut token_claims = Map::new();
        let connector_ids = self.token_connectors(issue.user_flow, issue.app);
        if !connector_ids.is_empty() {
            let ui_locales = request.end_user_locales(issue.locale);
            let outcome = self
                .live
                .connectors()
                .run(StepRequest {
                    step: ConnectorStep::PreTokenIssuance,
                    flow_id: issue.flow_id,
                    user_flow_id: &issue.user_flow.id,
                    connector_ids: &connector_ids,
                    client_id: &issue.app.client_id,
                    ui_locales: &ui_locales,
                    email: issue.user.email.as_deref(),
                    identities: &issue.user.identities,
                    attributes: &issue.user.attributes,
                    // A flow issues its tokens once.
                    run_key: Some(&format!("{}.PreTokenIssuance", issue.flow_id)),
                    client_ip: issue.client.0,
                    user: Some(issue.user),
                    otp: None,
                })
                .await;
            match outcome {
                StepOutcome::Continue {
                    token_claims: c, ..
                } => token_claims = c,
                StepOutcome::Failed { reference } if silent => {
                    tracing::warn!(%reference, "preTokenIssuance failed during a silent sign-in");
                    return Next::Redirect {
                        location: back("server_error", "The token could not be issued."),
                    };
                }
                StepOutcome::Failed { reference } => {
                    return Next::failure(
                        issue.locale,
                        Failure::ConnectorFailed {
                            reference,
                            back_url: Some(back("server_error", "The token could not be issued.")),
                        },
                    );
                }
                // The contract allows only Continue here; the connector client reports
                // anything else as a failure, so these arms are unreachable in practice.
                StepOutcome::Block { .. }
                | StepOutcome::ValidationError(_)
                | StepOutcome::FellBack { .. } => {
                    return self.fail_with(
                        issue.locale,
                        "preTokenIssuance answered other than Continue",
                    );
                }
            }
        }
        match self
            .issue_code(
                request,
                &issue.user.id,
                issue.auth_time,
                issue.session_id,
                token_claims,
            )
            .await
        {
            Ok(code) => Next::Redirect {
                location: success_redirect_url(
                    &request.redirect_uri,
                    &code,
                    request.state.as_deref(),
                    &self.settings.issuer,
                ),
            },
            // prompt=none never shows a page: a silent renewal gets an error it can read.
            Err(e) if silent => {
                let _ = self.internal(e);
                Next::Redirect {
                    location: back("server_error", "The authorization could not be completed."),
                }
            }
            Err(e) => self.fail_with(issue.locale, e),
        }
    }

    /// Creates the grant and a single-use authorization code for it; returns the code.
    async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        user_id: &str,
        auth_time: DateTime<Utc>,
        session_id: Option<&str>,
        extra_claims: Map<String, Value>,
    ) -> Result<String, StorageError> {
        let now = self.clock.now();
        let grant = Grant {
            id: self.random.new_id(),
            client_id: request.client_id.clone(),
            user_id: user_id.to_owned(),
            scope: request.scope.clone(),
            auth_time,
            session_id: session_id.map(str::to_owned),
            created_at: now,
            revoked_at: None,
            token_claims: extra_claims.clone(),
        };
        self.store.insert_grant(&grant).await?;
        let code = self.random.new_token();
        self.store
            .insert_authorization_code(&AuthorizationCode {
                code_hash: sha256_hex(code.as_bytes()),
                client_id: request.client_id.clone(),
                user_id: user_id.to_owned(),
                redirect_uri: request.redirect_uri.clone(),
                scope: request.scope.clone(),
                nonce: request.nonce.clone(),
                code_challenge: request.code_challenge.clone(),
                auth_time,
                session_id: session_id.map(str::to_owned),
                grant_id: grant.id,
                extra_claims,
                created_at: now,
                expires_at: now + self.settings.authorization_code,
                used_at: None,
            })
            .await?;
        Ok(code)
    }
}
