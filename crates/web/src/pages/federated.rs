//! What happens once an upstream identity provider, or an emailed one-time passcode,
//! has vouched for an identity: a known identity signs in (no connectors); an email
//! that belongs to another account is offered for linking, never linked silently; a
//! new identity signs up through the `postFederationSignup` connectors and the
//! attribute page. Also the link page's actions.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use usher_domain::{attribute::normalize_email, AttributeValues, FlowStep, Identity, PendingLink};
use usher_storage::StorageError;

use super::{
    begin, error_page, first, flow_message, render_step, save, see_other, show, Feedback, Loaded,
    PageError,
};
use crate::state::AppState;

/// The provider (or passcode) vouched for `identity`; `email` only if it is verified.
/// `provider_id`: the upstream provider the browser came back from, when the flow
/// knows it (otherwise it is worked out from the identity).
pub async fn identity_verified(
    state: &AppState,
    headers: &HeaderMap,
    loaded: &mut Loaded,
    provider_id: Option<&str>,
    identity: Identity,
    email: Option<String>,
    attributes: AttributeValues,
) -> Response {
    let now = state.clock.now();
    let locale = loaded.flow.locale.clone();
    // An identity stored without an exact issuer belongs to the provider that owns
    // its short issuer, and to no other provider on the same host.
    let provider = match provider_id {
        Some(id) => Some(id.to_owned()),
        None => super::finish::provider_of(state, &identity),
    };
    let takes_on = identity.exact_issuer.is_some()
        && provider
            .as_deref()
            .is_some_and(|p| state.federation().takes_on_unresolved(p));
    let known = match state
        .store
        .user_by_provider_identity(&identity, takes_on)
        .await
    {
        Ok(u) => u,
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    };
    // Signing in to an existing account to link another identity to it.
    if let Some(link) = loaded.flow.pending_link().cloned() {
        return match known {
            Some(user) if user.id == link.user_id => {
                link_and_finish(state, headers, loaded, &link.user_id, &link.identity).await
            }
            _ => {
                let fb = Feedback::general(flow_message(
                    state,
                    loaded,
                    "error.link_other_account",
                    &[("email", link.email.clone())],
                ));
                render_step(state, loaded, fb, StatusCode::CONFLICT)
            }
        };
    }
    if let Some(user) = known {
        if !user.account_enabled {
            let _ = loaded.flow.go_to_sign_in(now);
            if let Err(r) = save(state, loaded).await {
                return r;
            }
            let fb = Feedback::general(flow_message(state, loaded, "sign_in.failed", &[]));
            return render_step(state, loaded, fb, StatusCode::FORBIDDEN);
        }
        if loaded.flow.complete(user.id.clone(), false, now).is_err() {
            return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
        }
        if let Err(r) = save(state, loaded).await {
            return r;
        }
        return super::finish::finish(state, headers, loaded, &user, provider).await;
    }
    // A held or denied sign-up for this identity or address comes first.
    let email = email.map(|e| normalize_email(&e));
    if let Some(page) = super::approval::returning(
        state,
        loaded,
        email.as_deref(),
        std::slice::from_ref(&identity),
    )
    .await
    {
        return page;
    }
    let Some(email) = email else {
        if loaded
            .flow
            .federated_email_needed(identity, attributes, now)
            .is_err()
        {
            return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
        }
        if let Err(r) = save(state, loaded).await {
            return r;
        }
        return see_other(&format!("/flow/{}", loaded.flow.id));
    };
    let owners = match state.store.users_by_email(&email).await {
        Ok(u) => u,
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    };
    if let Some(owner) = owners.into_iter().next() {
        let link = PendingLink {
            user_id: owner.id,
            identity,
            email,
        };
        if loaded.flow.offer_link(link, now).is_err() {
            return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
        }
        if let Err(r) = save(state, loaded).await {
            return r;
        }
        return see_other(&format!("/flow/{}", loaded.flow.id));
    }
    if loaded
        .flow
        .federated_sign_up(identity, email, attributes, now)
        .is_err()
    {
        return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(state, loaded).await {
        return r;
    }
    super::attributes::run_connectors(state, headers, loaded).await
}

/// Links `identity` to `user_id` (the user has just signed in to it) and finishes.
pub async fn link_and_finish(
    state: &AppState,
    headers: &HeaderMap,
    loaded: &mut Loaded,
    user_id: &str,
    identity: &Identity,
) -> Response {
    let locale = loaded.flow.locale.clone();
    // A disabled account gets nothing linked and no sign-in, and the page says no
    // more than a wrong password would.
    match state.store.user_by_id(user_id).await {
        Ok(Some(u)) if u.account_enabled => {}
        Ok(_) => {
            let fb = Feedback::general(flow_message(state, loaded, "sign_in.failed", &[]));
            return render_step(state, loaded, fb, StatusCode::UNAUTHORIZED);
        }
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    }
    match state.store.add_identity(user_id, identity).await {
        Ok(true) => {}
        Ok(false) => return error_page(state, &locale, PageError::FlowNotFound),
        // Linked by a parallel attempt, or taken by another account meanwhile: either
        // way nothing more to link; the sign-in itself stands only for the first.
        Err(StorageError::DuplicateIdentity) => {}
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    }
    let user = match state.store.user_by_id(user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return error_page(state, &locale, PageError::FlowNotFound),
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    };
    tracing::info!(user_id = %user.id, issuer = %identity.issuer, "linked an identity after sign-in");
    if loaded
        .flow
        .complete(user.id.clone(), false, state.clock.now())
        .is_err()
    {
        return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(state, loaded).await {
        return r;
    }
    // The session is the one of the identity that came in, not of the sign-in that
    // proved the account.
    let provider = super::finish::provider_of(state, identity);
    super::finish::finish(state, headers, loaded, &user, provider).await
}

/// `POST /flow/{id}/link`: the existing account's password, then the link.
pub async fn link_with_password(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Extension(client): axum::Extension<crate::throttle::ClientAddress>,
    body: Bytes,
) -> Response {
    let (mut loaded, form) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(link) = loaded.flow.pending_link().cloned() else {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    };
    let password = first(&form, "password").to_owned();
    if password.is_empty() {
        let fb = Feedback::default().field(
            "password",
            flow_message(&state, &loaded, "error.required", &[]),
        );
        return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
    }
    let reservation = match state.reserve_password_attempt(&link.email, client).await {
        Ok(r) => r,
        Err(t) => return super::throttled_page(&state, &loaded, t),
    };
    let hash = match state.store.password_hash(&link.user_id).await {
        Ok(h) => h,
        Err(e) => return error_page(&state, &loaded.flow.locale, PageError::internal(&state, e)),
    };
    let Ok(verified) = state.hasher.verify(password, hash).await else {
        // Nothing was checked: the attempt does not count.
        state.rate_release(reservation).await;
        return super::busy_page(&state, &loaded);
    };
    if !verified {
        let fb = Feedback::general(flow_message(&state, &loaded, "sign_in.failed", &[]));
        return render_step(&state, &loaded, fb, StatusCode::UNAUTHORIZED);
    }
    state.rate_release(reservation).await;
    link_and_finish(&state, &headers, &mut loaded, &link.user_id, &link.identity).await
}

/// `POST /flow/{id}/link-code`: prove the existing account's address with a code.
pub async fn link_with_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    axum::Extension(client): axum::Extension<crate::throttle::ClientAddress>,
    body: Bytes,
) -> Response {
    let (mut loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let FlowStep::LinkAccount { link } = &loaded.flow.step else {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    };
    let email = link.email.clone();
    super::email::send_code(&state, &mut loaded, client, email, None).await
}

/// `POST /flow/{id}/provider`: a provider button. Email one-time passcode is built
/// in; upstream providers redirect there.
pub async fn choose_provider(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut loaded, form) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let provider = first(&form, "provider").to_owned();
    let offered = loaded
        .user_flow
        .identity_providers
        .iter()
        .any(|p| p.eq_ignore_ascii_case(&provider));
    if !offered {
        let fb = Feedback::general(flow_message(&state, &loaded, "error.bad_request", &[]));
        return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
    }
    if provider.eq_ignore_ascii_case(usher_domain::user_flow::EMAIL_OTP_PROVIDER) {
        if loaded
            .flow
            .go_to_one_time_passcode(state.clock.now())
            .is_ok()
        {
            if let Err(r) = save(&state, &mut loaded).await {
                return r;
            }
        }
        return see_other(&format!("/flow/{}", loaded.flow.id));
    }
    super::upstream::start(&state, &mut loaded, &provider).await
}
