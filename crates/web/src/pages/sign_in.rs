//! `POST /flow/{id}/sign-in` (email and password) and `POST /flow/{id}/sign-up` (go to
//! the sign-up pages). Sign-in runs no connectors but `preTokenIssuance`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use usher_domain::{attribute::normalize_email, SignInType};

use super::{
    begin, error_page, first, flow_message, render_step, save, see_other, show, throttled_page,
    Feedback, PageError,
};
use crate::state::AppState;

pub async fn post(
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
    // Back from a provider without finishing counts as the sign-in page.
    let at_sign_in = matches!(
        loaded.flow.step,
        usher_domain::FlowStep::SignIn
            | usher_domain::FlowStep::FederationRedirect { link: None, .. }
    );
    if !at_sign_in || !loaded.user_flow.allows_local_accounts() {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    if loaded.flow.password_failures >= usher_domain::flow::MAX_PASSWORD_FAILURES {
        let fb = Feedback::general(flow_message(
            &state,
            &loaded,
            "error.too_many_attempts",
            &[],
        ));
        return render_step(&state, &loaded, fb, StatusCode::TOO_MANY_REQUESTS);
    }
    let email = normalize_email(first(&form, "email"));
    let password = first(&form, "password").to_owned();
    let mut fb = Feedback::default().entered(form.clone());
    fb.entered.remove("password");
    if email.is_empty() {
        fb = fb.field(
            "email",
            flow_message(&state, &loaded, "error.required", &[]),
        );
    }
    if password.is_empty() {
        fb = fb.field(
            "password",
            flow_message(&state, &loaded, "error.required", &[]),
        );
    }
    if !fb.field_errors.is_empty() {
        return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
    }
    // Across flows and instances: the typed address counts whether or not it has an
    // account, so the refusal says nothing about which addresses do.
    // The attempt is counted before the password is checked, so a burst of parallel
    // guesses cannot all pass; a right password gives its count back.
    let reservation = match state.reserve_password_attempt(&email, client).await {
        Ok(r) => r,
        Err(t) => return throttled_page(&state, &loaded, t),
    };
    // Only a plausible address can have an account; anything else (a NUL byte, say)
    // never reaches the database and fails like an unknown address.
    // (Looser than the sign-up check on purpose: an account made when the rules were
    // looser must still sign in.)
    let lookup = if email.chars().count() <= 254
        && email.contains('@')
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        state
            .store
            .user_by_identity(
                SignInType::EmailAddress,
                &state.settings.local_issuer(),
                &email,
            )
            .await
    } else {
        Ok(None)
    };
    let user = match lookup {
        Ok(u) => u.filter(|u| u.account_enabled),
        Err(e) => return error_page(&state, &loaded.flow.locale, PageError::internal(&state, e)),
    };
    // No account, but perhaps a sign-up held for approval (or denied) with this
    // address and a password: that password shows the pending (or block) page.
    let local = usher_domain::Identity {
        sign_in_type: SignInType::EmailAddress,
        issuer: state.settings.local_issuer(),
        issuer_assigned_id: email.clone(),
        exact_issuer: None,
    };
    let held = if user.is_none() && usher_domain::attribute::is_plausible_email(&email) {
        match state
            .store
            .open_sign_up_requests_for(None, std::slice::from_ref(&local))
            .await
        {
            Ok(open) => open.into_iter().find(|r| r.password_hash.is_some()),
            Err(e) => {
                return error_page(&state, &loaded.flow.locale, PageError::internal(&state, e))
            }
        }
    } else {
        None
    };
    let hash = match (&user, &held) {
        (Some(u), _) => match state.store.password_hash(&u.id).await {
            Ok(h) => h,
            Err(e) => {
                return error_page(&state, &loaded.flow.locale, PageError::internal(&state, e))
            }
        },
        (None, Some(request)) => request.password_hash.clone(),
        (None, None) => None,
    };
    // Unknown email, disabled account and wrong password take the same time (one
    // hash each) and get the same answer.
    let Ok(ok) = state.hasher.verify(password, hash).await else {
        // Nothing was checked: the attempt does not count.
        state.rate_release(reservation).await;
        return super::busy_page(&state, &loaded);
    };
    if ok && user.is_none() && held.is_some() {
        if let Some(page) = super::approval::returning(
            &state,
            &mut loaded,
            Some(&email),
            std::slice::from_ref(&local),
        )
        .await
        {
            return page;
        }
    }
    if ok {
        state.rate_release(reservation).await;
    }
    let Some(user) = user.filter(|_| ok) else {
        loaded.flow.password_failures += 1;
        if let Err(r) = save(&state, &mut loaded).await {
            return r;
        }
        let fb = Feedback::general(flow_message(&state, &loaded, "sign_in.failed", &[]))
            .entered(fb.entered);
        return render_step(&state, &loaded, fb, StatusCode::UNAUTHORIZED);
    };
    if let Err(e) = loaded
        .flow
        .complete(user.id.clone(), false, state.clock.now())
    {
        tracing::debug!(error = %e, "sign-in on a flow that moved on");
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(&state, &mut loaded).await {
        return r;
    }
    let provider = Some(usher_domain::user_flow::EMAIL_PASSWORD_PROVIDER.to_owned());
    super::finish::finish(&state, &headers, &loaded, &user, provider).await
}

/// "Sign up now" (and "use a different email address").
pub async fn to_sign_up(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if loaded.user_flow.allows_local_accounts()
        && loaded.flow.go_to_sign_up(state.clock.now()).is_ok()
    {
        if let Err(r) = save(&state, &mut loaded).await {
            return r;
        }
    }
    see_other(&format!("/flow/{}", loaded.flow.id))
}

/// "Back to sign in".
pub async fn to_sign_in(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if loaded.flow.go_to_sign_in(state.clock.now()).is_ok() {
        if let Err(r) = save(&state, &mut loaded).await {
            return r;
        }
    }
    see_other(&format!("/flow/{}", loaded.flow.id))
}
