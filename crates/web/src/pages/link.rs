//! The page for an identity whose email belongs to an existing account: Usher never
//! links silently. The user signs in to the existing account (its password, or a
//! code sent to its address) and the new identity is linked after that sign-in.

use super::{message, render_page, Feedback, Field, Loaded, PageParts};
use crate::state::AppState;
use axum::{http::StatusCode, response::Response};

pub fn render(
    state: &AppState,
    loaded: &Loaded,
    feedback: Feedback,
    status: StatusCode,
) -> Response {
    let Some(link) = loaded.flow.pending_link() else {
        return super::render_step(state, loaded, feedback, status);
    };
    let locale = &loaded.flow.locale;
    let provider = provider_name(state, loaded, &link.identity.issuer);
    let intro = message(
        state,
        locale,
        "link.intro",
        &[("email", link.email.clone()), ("provider", provider)],
    );
    let fields = vec![Field {
        id: "password".into(),
        label: message(state, locale, "sign_in.password", &[]),
        kind: "password",
        required: true,
        error: feedback.field_errors.get("password").cloned(),
        autocomplete: Some("current-password"),
        ..Field::default()
    }];
    let page = PageParts {
        template: "link.html",
        title_key: "link.title",
        fields,
        email: Some(&link.email),
        intro: Some(intro),
    };
    render_page(state, loaded, page, feedback, status)
}

/// How the page names the new identity's provider.
fn provider_name(state: &AppState, loaded: &Loaded, issuer: &str) -> String {
    if issuer == "mail" {
        return message(state, &loaded.flow.locale, "link.mail_provider", &[]);
    }
    issuer.to_owned()
}
