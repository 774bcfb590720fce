//! `POST /flow/{id}/email` (the address to verify) and `POST /flow/{id}/resend`.
//! An address that already has an account gets an email saying so instead of a code;
//! the page looks the same either way, so it does not reveal who has an account.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use usher_domain::{
    attribute::{is_plausible_email, normalize_email, BuiltInAttribute},
    flow::CODE_LIFETIME,
    CodePurpose, FlowError, FlowStep, SignInType,
};

use super::{
    begin, error_page, first, flow_message, render_step, save, see_other, show, Feedback, Loaded,
    PageError,
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
    if !matches!(loaded.flow.step, FlowStep::EnterEmail { .. }) {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    let email = normalize_email(first(&form, "email"));
    let error_key = if email.is_empty() {
        Some("error.required")
    } else if email.chars().count() > BuiltInAttribute::Email.max_length()
        || !is_plausible_email(&email)
        || crate::mail::deliverable(&email).is_err()
    {
        Some("error.invalid_email")
    } else {
        None
    };
    if let Some(key) = error_key {
        let fb = Feedback::default()
            .entered(form.clone())
            .field("email", flow_message(&state, &loaded, key, &[]));
        return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
    }
    send_code(&state, &mut loaded, client, email, None).await
}

pub async fn resend(
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
    // The address comes from the flow, never from the form.
    let Some(email) = loaded.flow.code_email().map(str::to_owned) else {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    };
    let notice = flow_message(&state, &loaded, "sign_up_code.resent", &[]);
    send_code(&state, &mut loaded, client, email, Some(notice)).await
}

/// "Use a different email address" on the code page.
pub async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut loaded, _) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if loaded.flow.change_email(state.clock.now()).is_ok() {
        if let Err(r) = save(&state, &mut loaded).await {
            return r;
        }
    }
    see_other(&format!("/flow/{}", loaded.flow.id))
}

/// Sends a code to `email` for the flow's current purpose and moves to the code page.
pub async fn send_code(
    state: &AppState,
    loaded: &mut Loaded,
    client: crate::throttle::ClientAddress,
    email: String,
    notice: Option<String>,
) -> Response {
    if !loaded.flow.may_send_code() {
        let fb = Feedback::general(flow_message(state, loaded, "error.too_many_codes", &[]));
        return render_step(state, loaded, fb, StatusCode::TOO_MANY_REQUESTS);
    }
    // Across flows: one address gets only so many mails, whoever asks, and one
    // source only so many sends. Counted before sending, so parallel requests cannot
    // slip past; the "you already have an account" mail counts the same, so the limit
    // tells nothing about which addresses have accounts.
    let address = client.subject();
    // A send is never given back.
    if let Err(t) = state
        .rate_reserve(&[
            (usher_domain::Limit::CodesSentPerEmail, Some(email.as_str())),
            (usher_domain::Limit::CodesSentPerAddress, address.as_deref()),
        ])
        .await
    {
        return super::throttled_page(state, loaded, t);
    }
    // Only a local sign-up must hide whether the address has an account; one-time
    // passcodes sign in or up either way, and a link code goes to the account's own
    // address.
    let local_sign_up = matches!(
        loaded.flow.step,
        FlowStep::EnterEmail {
            purpose: CodePurpose::SignUp
        } | FlowStep::EnterCode {
            purpose: CodePurpose::SignUp,
            ..
        }
    );
    let existing = if local_sign_up {
        match state
            .store
            .user_by_identity(
                SignInType::EmailAddress,
                &state.settings.local_issuer(),
                &email,
            )
            .await
        {
            Ok(u) => u,
            Err(e) => return error_page(state, &loaded.flow.locale, PageError::internal(state, e)),
        }
    } else {
        None
    };
    let locale = loaded.flow.locale.clone();
    let catalogue = state.templates.catalogue();
    let minutes = CODE_LIFETIME.num_minutes().to_string();
    let (code_hash, subject, body) = if existing.is_some() {
        let body =
            state
                .templates
                .render("email_account_exists.txt", &locale, &serde_json::json!({}));
        (
            None,
            catalogue.message(&locale, "email.exists.subject", &[]),
            body,
        )
    } else {
        let code = state.with_rng(|r| usher_domain::id::new_numeric_code(r, 6));
        let hash = code_hash(state, &loaded.flow.id, &code);
        if state.mailer.log_codes {
            tracing::info!(flow_id = %loaded.flow.id, email = %email, code = %code, "sign-up code (log_codes is on)");
        }
        let body = state.templates.render(
            "email_code.txt",
            &locale,
            &serde_json::json!({ "code": code, "minutes": minutes }),
        );
        (
            Some(hash),
            catalogue.message(&locale, "email.code.subject", &[("code", code.clone())]),
            body,
        )
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return error_page(state, &locale, PageError::internal(state, e)),
    };
    // The send is recorded (and saved) before the mail goes out, so parallel
    // requests cannot send more than the flow's allowance.
    match loaded
        .flow
        .code_sent(email.clone(), code_hash, state.clock.now())
    {
        Ok(()) => {}
        Err(FlowError::TooManyCodes) => {
            let fb = Feedback::general(flow_message(state, loaded, "error.too_many_codes", &[]));
            return render_step(state, loaded, fb, StatusCode::TOO_MANY_REQUESTS);
        }
        Err(_) => {
            return show::render_current(state, loaded, Feedback::default(), StatusCode::OK).await
        }
    }
    if let Err(r) = save(state, loaded).await {
        return r;
    }
    if let Err(e) = state.mailer.send(&email, &subject, body).await {
        tracing::warn!(error = %e, flow_id = %loaded.flow.id, "could not send the sign-up email");
        let fb = Feedback::general(flow_message(state, loaded, "error.email_delivery", &[]));
        return render_step(state, loaded, fb, StatusCode::SERVICE_UNAVAILABLE);
    }
    match notice {
        Some(n) => render_step(
            state,
            loaded,
            Feedback {
                notice: Some(n),
                ..Feedback::default()
            },
            StatusCode::OK,
        ),
        None => see_other(&format!("/flow/{}", loaded.flow.id)),
    }
}

/// The stored form of a code: an HMAC bound to the flow, so a database reader cannot
/// brute-force six digits offline and a code from one flow is useless in another.
pub fn code_hash(state: &AppState, flow_id: &str, code: &str) -> String {
    state
        .code_key
        .sign_hex(format!("{flow_id}:{code}").as_bytes())
}
