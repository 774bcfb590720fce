//! Upstream identity providers: the redirect there (`POST /flow/{id}/provider`) and
//! the callback from there (`GET /federation/callback`). The `state` sent upstream is
//! `<flow id>.<random>`, so the callback finds its flow, and the random part must
//! match the one stored in the flow, in the browser the flow is bound to.

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use usher_domain::FlowStep;
use usher_federation::{AuthorizationRequest, Completion, ErrorKind};

use super::{
    error_page, flow_message, load_flow, render_step, request_locale, save, see_other, show,
    Feedback, Loaded, PageError,
};
use crate::state::AppState;

/// Usher's callback, registered with every provider.
pub fn callback_url(state: &AppState) -> String {
    format!("{}/federation/callback", state.settings.issuer)
}

/// Sends the browser to `provider_id`.
pub async fn start(state: &AppState, loaded: &mut Loaded, provider_id: &str) -> Response {
    let federation = state.federation();
    let Some(provider) = federation.provider(provider_id) else {
        let fb = Feedback::general(flow_message(state, loaded, "error.bad_request", &[]));
        return render_step(state, loaded, fb, StatusCode::BAD_REQUEST);
    };
    let provider_id = provider.id.clone();
    let label = provider.display_name.clone();
    let token = format!("{}.{}", loaded.flow.id, state.new_token());
    let nonce = state.new_token();
    let verifier = state.new_token();
    if loaded
        .flow
        .federation_started(
            provider_id.clone(),
            token.clone(),
            nonce.clone(),
            verifier.clone(),
            state.clock.now(),
        )
        .is_err()
    {
        return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
    }
    let callback = callback_url(state);
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
    let url = match state
        .federation()
        .authorization_url(&provider_id, &request)
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(provider = %provider_id, error = %e, "could not start federation");
            let fb = Feedback::general(flow_message(
                state,
                loaded,
                provider_message(e.kind()),
                &[("provider", label)],
            ));
            return render_step(state, loaded, fb, StatusCode::BAD_GATEWAY);
        }
    };
    if let Err(r) = save(state, loaded).await {
        return r;
    }
    see_other(&url)
}

fn provider_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ProviderUnavailable | ErrorKind::Misconfigured => "error.provider_unavailable",
        ErrorKind::ProviderError => "error.provider_error",
        ErrorKind::InvalidIdToken => "error.provider_invalid",
    }
}

pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params: std::collections::BTreeMap<String, String> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let locale = request_locale(&headers, None);
    let state_error = || {
        error_page(
            &state,
            locale,
            PageError::BadRequest {
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
    let mut loaded = match load_flow(&state, &headers, flow_id).await {
        Ok(l) => l,
        Err(PageError::FlowNotFound) => return state_error(),
        Err(e) => return error_page(&state, locale, e),
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
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    };
    if !usher_domain::flow::constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        return state_error();
    }
    let label = state
        .federation_provider_label(&provider_id)
        .unwrap_or_else(|| provider_id.clone());
    // The provider's answer: an error (the user cancelled, or the provider failed),
    // or a code.
    let failure = |loaded: &Loaded, key: &str, status: StatusCode| {
        let fb = Feedback::general(flow_message(
            &state,
            loaded,
            key,
            &[("provider", label.clone())],
        ));
        render_step(&state, loaded, fb, status)
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
        return failure(&loaded, key, StatusCode::BAD_REQUEST);
    }
    let Some(code) = params
        .get("code")
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return failure(&loaded, "error.provider_error", StatusCode::BAD_REQUEST);
    };
    let callback = callback_url(&state);
    let completion = Completion {
        redirect_uri: &callback,
        code,
        pkce_verifier: &pkce_verifier,
        nonce: &nonce,
    };
    let external = match state.federation().complete(&provider_id, &completion).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(provider = %provider_id, error = %e, "federated sign-in failed");
            let status = if e.kind() == ErrorKind::ProviderUnavailable {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::BAD_REQUEST
            };
            return failure(&loaded, provider_message(e.kind()), status);
        }
    };
    super::federated::identity_verified(
        &state,
        &headers,
        &mut loaded,
        Some(external.provider_id.as_str()),
        external.identity,
        external.email,
        external.attributes,
    )
    .await
}
