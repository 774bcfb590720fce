//! `POST /flow/{id}/password`: the new account's password.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use usher_domain::{password::check_new_password, AttributeValues, FlowStep};

use super::{begin, first, flow_message, render_step, save, see_other, show, Feedback};
use crate::state::AppState;

pub async fn post(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut loaded, form) = match begin(&state, &headers, &id, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let FlowStep::SignUpPassword { email } = &loaded.flow.step else {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    };
    let password = first(&form, "password");
    let confirm = first(&form, "confirmPassword");
    let mut fb = Feedback::default();
    if let Err(e) = check_new_password(password, email) {
        fb = fb.field(
            "password",
            flow_message(&state, &loaded, e.message_key(), &[]),
        );
    } else if password != confirm {
        fb = fb.field(
            "confirmPassword",
            flow_message(&state, &loaded, "error.password_mismatch", &[]),
        );
    }
    if !fb.field_errors.is_empty() {
        return render_step(&state, &loaded, fb, StatusCode::BAD_REQUEST);
    }
    let Ok(hash) = state.hasher.hash(password.to_owned()).await else {
        return super::busy_page(&state, &loaded);
    };
    if loaded
        .flow
        .password_set(hash, AttributeValues::new(), state.clock.now())
        .is_err()
    {
        return show::render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await;
    }
    if let Err(r) = save(&state, &mut loaded).await {
        return r;
    }
    see_other(&format!("/flow/{}", loaded.flow.id))
}
