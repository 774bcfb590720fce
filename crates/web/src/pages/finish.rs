//! The end of a successful flow (and of a single sign-on at `/authorize`): sign the
//! browser in, run the `preTokenIssuance` connectors, and send the browser back to
//! the application with an authorization code.

use axum::{
    http::{header, HeaderMap},
    response::Response,
};
use chrono::{DateTime, Utc};
use usher_domain::{
    user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER},
    Application, AuthorizationRequest, ConnectorStep, Identity, SignInType, User, UserFlow,
};
use usher_oidc::crypto::sha256_hex;
use usher_storage::BrowserSession;

use super::{error_page, see_other, Loaded, PageError};
use crate::{
    connectors::{StepOutcome, StepRequest},
    cookies,
    oauth::{issue_code, success_redirect_url},
    state::AppState,
};

/// The identity provider an identity signs in with: the local account's
/// `EmailPassword-OAUTH`, email one-time passcode's `EmailOtpSignup-OAUTH`, or the
/// configured provider whose identities have the identity's issuer (one at most:
/// providers sharing an issuer are refused).
pub fn provider_of(state: &AppState, identity: &Identity) -> Option<String> {
    match identity.sign_in_type {
        SignInType::EmailAddress => return Some(EMAIL_PASSWORD_PROVIDER.to_owned()),
        SignInType::Federated if identity.issuer == "mail" => {
            return Some(EMAIL_OTP_PROVIDER.to_owned())
        }
        SignInType::Federated => {}
    }
    state
        .federation()
        .provider_for(identity)
        .map(|p| p.id.clone())
}

/// A flow has completed for `user`, who signed in with `provider` (see
/// [`provider_of`]): a new browser session, then back to the app.
pub async fn finish(
    state: &AppState,
    _headers: &HeaderMap,
    loaded: &Loaded,
    user: &User,
    provider: Option<String>,
) -> Response {
    let now = state.clock.now();
    let token = state.new_token();
    let session = BrowserSession {
        id_hash: sha256_hex(token.as_bytes()),
        user_id: user.id.clone(),
        auth_time: now,
        created_at: now,
        expires_at: now + state.settings.lifetimes.session,
        ended_at: None,
        identity_provider: provider,
    };
    if let Err(e) = state.store.insert_session(&session).await {
        return error_page(state, &loaded.flow.locale, PageError::internal(state, e));
    }
    let mut response = complete(
        state,
        &loaded.flow.authorization,
        &loaded.user_flow,
        &loaded.app,
        user,
        now,
        Some(&session.id_hash),
        &loaded.flow.id,
        &loaded.flow.locale,
    )
    .await;
    let cookie = cookies::set(
        cookies::SESSION,
        &token,
        Some(state.settings.lifetimes.session.num_seconds()),
        state.settings.secure_cookies(),
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// Issues the authorization code for `user` and redirects to the application.
#[allow(clippy::too_many_arguments)]
pub async fn complete(
    state: &AppState,
    request: &AuthorizationRequest,
    user_flow: &UserFlow,
    app: &Application,
    user: &User,
    auth_time: DateTime<Utc>,
    session_id: Option<&str>,
    flow_id: &str,
    locale: &str,
) -> Response {
    let mut token_claims = serde_json::Map::new();
    if !user_flow.connectors.pre_token_issuance.is_empty() {
        let ui_locales = request.end_user_locales(locale);
        let outcome = state
            .connectors()
            .run(StepRequest {
                step: ConnectorStep::PreTokenIssuance,
                flow_id,
                user_flow_id: &user_flow.id,
                connector_ids: &user_flow.connectors.pre_token_issuance,
                client_id: &app.client_id,
                ui_locales: &ui_locales,
                email: user.email.as_deref(),
                identities: &user.identities,
                attributes: &user.attributes,
                // A flow issues its tokens once.
                run_key: Some(&format!("{flow_id}.PreTokenIssuance")),
            })
            .await;
        match outcome {
            StepOutcome::Continue {
                token_claims: c, ..
            } => token_claims = c,
            StepOutcome::Failed { reference }
                if request.prompt == Some(usher_domain::Prompt::None) =>
            {
                tracing::warn!(%reference, "preTokenIssuance failed during a silent sign-in");
                return see_other(&super::super::oauth::error_redirect_url(
                    &request.redirect_uri,
                    "server_error",
                    "The token could not be issued.",
                    request.state.as_deref(),
                    &state.settings.issuer,
                ));
            }
            StepOutcome::Failed { reference } => {
                let back_url = Some(super::super::oauth::error_redirect_url(
                    &request.redirect_uri,
                    "server_error",
                    "The token could not be issued.",
                    request.state.as_deref(),
                    &state.settings.issuer,
                ));
                return error_page(
                    state,
                    locale,
                    PageError::ConnectorFailed {
                        reference,
                        back_url,
                    },
                );
            }
            // The contract allows only Continue here; the connector client reports
            // anything else as a failure, so these arms are unreachable in practice.
            StepOutcome::Block { .. } | StepOutcome::ValidationError(_) => {
                return error_page(
                    state,
                    locale,
                    PageError::internal(state, "preTokenIssuance answered other than Continue"),
                );
            }
        }
    }
    let silent = request.prompt == Some(usher_domain::Prompt::None);
    match issue_code(
        state,
        request,
        &user.id,
        auth_time,
        session_id,
        token_claims,
    )
    .await
    {
        Ok(code) => see_other(&success_redirect_url(
            &request.redirect_uri,
            &code,
            request.state.as_deref(),
            &state.settings.issuer,
        )),
        // prompt=none never shows a page: a silent renewal gets an error it can read.
        Err(e) if silent => {
            let _ = PageError::internal(state, e);
            see_other(&super::super::oauth::error_redirect_url(
                &request.redirect_uri,
                "server_error",
                "The authorization could not be completed.",
                request.state.as_deref(),
                &state.settings.issuer,
            ))
        }
        Err(e) => error_page(state, locale, PageError::internal(state, e)),
    }
}
