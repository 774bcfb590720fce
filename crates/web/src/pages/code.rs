//! `POST /flow/{id}/code`: the code from the email.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use usher_domain::{
    AttributeValues, CodePurpose, FlowError, FlowStep, Identity, Limit, SignInType,
};

use super::{begin, federated, first, flow_message, render_step, save, see_other, show, Feedback};
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
    if !matches!(loaded.flow.step, FlowStep::EnterCode { .. }) {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    let code: String = first(&form, "code")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        // A typo in the format does not cost an attempt.
        let fb = Feedback::default().field(
            "code",
            flow_message(&state, &loaded, "error.code_format", &[]),
        );
        return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
    }
    // Across flows: a new flow's fresh codes do not buy more guesses at an address.
    let email = loaded.flow.code_email().unwrap_or_default().to_owned();
    let address = client.subject();
    let reservation = match state
        .rate_reserve(&[
            (Limit::CodeFailuresPerEmail, Some(email.as_str())),
            (Limit::CodeFailuresPerAddress, address.as_deref()),
        ])
        .await
    {
        Ok(r) => r,
        Err(t) => return super::throttled_page(&state, &loaded, t),
    };
    let candidate = super::email::code_hash(&state, &loaded.flow.id, &code);
    let result = loaded.flow.verify_code(&candidate, state.clock.now());
    // Wrong codes are saved too: the attempt counter lives in the flow.
    if let Err(r) = save(&state, &mut loaded).await {
        return r;
    }
    // Only a wrong guess keeps its count.
    if !matches!(result, Err(FlowError::WrongCode { .. })) {
        state.rate_release(reservation).await;
    }
    let key = match result {
        Ok(CodePurpose::SignUp) => {
            // The address is proven now: a held or denied sign-up for it decides.
            let email = match &loaded.flow.step {
                FlowStep::SignUpPassword { email } => email.clone(),
                _ => String::new(),
            };
            if let Some(page) =
                super::approval::returning(&state, &mut loaded, Some(&email), &[]).await
            {
                return page;
            }
            return see_other(&format!("/flow/{}", loaded.flow.id));
        }
        Ok(CodePurpose::OneTimePasscode) => {
            let email = loaded.flow.code_email().unwrap_or_default().to_owned();
            let identity = Identity {
                sign_in_type: SignInType::Federated,
                issuer: "mail".into(),
                issuer_assigned_id: email.clone(),
                exact_issuer: None,
            };
            return federated::identity_verified(
                &state,
                &headers,
                &mut loaded,
                None,
                identity,
                Some(email),
                AttributeValues::new(),
            )
            .await;
        }
        Ok(CodePurpose::FederatedEmail {
            identity,
            attributes,
        }) => {
            let email = loaded.flow.code_email().map(str::to_owned);
            return federated::identity_verified(
                &state,
                &headers,
                &mut loaded,
                None,
                identity,
                email,
                attributes,
            )
            .await;
        }
        Ok(CodePurpose::Link { user_id, identity }) => {
            return federated::link_and_finish(&state, &headers, &mut loaded, &user_id, &identity)
                .await;
        }
        Err(FlowError::WrongCode { attempts_left }) => {
            let fb = Feedback::default().field(
                "code",
                flow_message(
                    &state,
                    &loaded,
                    "error.code_wrong",
                    &[("left", attempts_left.to_string())],
                ),
            );
            return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
        }
        Err(FlowError::CodeExpired) => "error.code_expired",
        Err(FlowError::TooManyAttempts) => "error.code_too_many",
        Err(_) => {
            return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await
        }
    };
    let fb = Feedback::default().field("code", flow_message(&state, &loaded, key, &[]));
    render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST)
}
