//! Upstream identity providers: the redirect there and the callback from there. The
//! `state` sent upstream is `<flow id>.<random>`, so the callback finds its flow, and
//! the random part must match the one stored in the flow, in the browser the flow is
//! bound to.

use std::collections::BTreeMap;

use usher_domain::FlowStep;
use usher_federation::{AuthorizationRequest, Completion, ErrorKind};

use crate::{Engine, Failure, Loaded, Next, Status};

fn provider_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ProviderUnavailable | ErrorKind::Misconfigured => "error.provider_unavailable",
        ErrorKind::ProviderError => "error.provider_error",
        ErrorKind::InvalidIdToken => "error.provider_invalid",
    }
}

impl Engine {
    /// Sends the browser to `provider_id`.
    pub(crate) async fn to_upstream(&self, mut loaded: Loaded, provider_id: &str) -> Next {
        let upstream = self.live.upstream();
        let Some(provider) = upstream.provider(provider_id) else {
            let feedback = self.say(&loaded, "error.bad_request", &[]);
            return Next::step(loaded, feedback, Status::BadRequest);
        };
        let (provider_id, label) = (provider.id, provider.display_name);
        let token = format!("{}.{}", loaded.flow.id, self.random.new_token());
        let nonce = self.random.new_token();
        let verifier = self.random.new_token();
        if loaded
            .flow
            .federation_started(
                provider_id.clone(),
                token.clone(),
                nonce.clone(),
                verifier.clone(),
                self.clock.now(),
            )
            .is_err()
        {
            return self.as_is(loaded);
        }
        let callback = self.settings.federation_callback();
        let ui_locales = loaded
            .flow
            .authorization
            .end_user_locales(&loaded.flow.locale);
        let login_hint = loaded
            .flow
            .pending_link()
            .map(|l| l.email.clone())
            .or_else(|| loaded.flow.authorization.login_hint.clone());
        let request = AuthorizationRequest {
            redirect_uri: &callback,
            state: &token,
            nonce: &nonce,
            pkce_verifier: &verifier,
            ui_locales: Some(&ui_locales),
            login_hint: login_hint.as_deref(),
        };
        let url = match upstream.authorization_url(&provider_id, &request).await {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!(provider = %provider_id, error = %e, "could not start federation");
                let feedback =
                    self.say(&loaded, provider_message(e.kind()), &[("provider", label)]);
                return Next::step(loaded, feedback, Status::BadGateway);
            }
        };
        if let Err(next) = self.save(&mut loaded).await {
            return *next;
        }
        Next::Redirect { location: url }
    }

    /// The browser is back from a provider with `params` (the callback's query), in
    /// the browser whose binding cookie is `browser`; `locale` is the request's, for a
    /// page outside any flow.
    pub async fn federation_callback(
        &self,
        params: &BTreeMap<String, String>,
        browser: Option<&str>,
        client: crate::throttle::ClientAddress,
        locale: &str,
    ) -> Next {
        let state_error = || {
            Next::failure(
                locale,
                Failure::BadRequest {
                    message_key: "error.provider_state",
                    args: vec![],
                },
            )
        };
        let Some(token) = params.get("state") else {
            return state_error();
        };
        let Some((flow_id, _)) = token.split_once('.') else {
            return state_error();
        };
        let loaded = match self.open(flow_id, browser, client).await {
            Ok(l) => l,
            Err(Failure::FlowNotFound) => return state_error(),
            Err(e) => return Next::failure(locale, e),
        };
        let FlowStep::FederationRedirect {
            provider_id,
            state: expected,
            nonce,
            pkce_verifier,
            ..
        } = loaded.flow.step.clone()
        else {
            // A second callback for a flow that moved on (a reload): show where it is.
            return self.as_is(loaded);
        };
        if !usher_domain::flow::constant_time_eq(expected.as_bytes(), token.as_bytes()) {
            return state_error();
        }
        let upstream = self.live.upstream();
        let label = upstream
            .provider(&provider_id)
            .map_or_else(|| provider_id.clone(), |p| p.display_name);
        // The provider's answer: an error (the user cancelled, or the provider
        // failed), or a code.
        let failure = |loaded: Loaded, key: &str, status: Status| {
            let feedback = self.say(&loaded, key, &[("provider", label.clone())]);
            Next::step(loaded, feedback, status)
        };
        if let Some(error) = params.get("error") {
            // The value is the caller's: logged escaped and cut short.
            let shown: String = error.chars().take(64).collect();
            tracing::info!(provider = %provider_id, error = ?shown, "the provider returned an error");
            let key = if error == "access_denied" {
                "error.provider_cancelled"
            } else {
                "error.provider_error"
            };
            return failure(loaded, key, Status::BadRequest);
        }
        let Some(code) = params
            .get("code")
            .filter(|c| !c.is_empty() && c.len() <= 4096)
        else {
            return failure(loaded, "error.provider_error", Status::BadRequest);
        };
        let callback = self.settings.federation_callback();
        let completion = Completion {
            redirect_uri: &callback,
            code,
            pkce_verifier: &pkce_verifier,
            nonce: &nonce,
        };
        let external = match upstream.complete(&provider_id, &completion).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(provider = %provider_id, error = %e, "federated sign-in failed");
                let status = if e.kind() == ErrorKind::ProviderUnavailable {
                    Status::BadGateway
                } else {
                    Status::BadRequest
                };
                return failure(loaded, provider_message(e.kind()), status);
            }
        };
        self.identity_verified(
            loaded,
            Some(external.provider_id.as_str()),
            external.identity,
            external.email,
            external.attributes,
        )
        .await
    }
}
