//! `GET /flow/{id}`: the page of the flow's current step. Every form posts elsewhere
//! and redirects here (post/redirect/get), so reloading never resubmits.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;

use super::{browser, error_page, render, request_locale, respond, Loaded, SummaryError};
use crate::state::AppState;

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::Extension(client): axum::Extension<crate::throttle::ClientAddress>,
    headers: HeaderMap,
) -> Response {
    match state.engine.open(&id, browser(&headers), client).await {
        Ok(loaded) => {
            let next = state.engine.show(loaded).await;
            respond(&state, next)
        }
        Err(e) => error_page(&state, request_locale(&headers, None), e),
    }
}

/// "Finishing your sign-up", reloading itself until the run in progress has saved.
pub fn working_page(state: &AppState, loaded: &Loaded) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        flow_id: &'a str,
        refresh: u32,
        application: &'a str,
    }
    let ctx = Ctx {
        title_key: "working.title",
        errors: Vec::new(),
        notice: None,
        flow_id: &loaded.flow.id,
        refresh: 2,
        application: &loaded.app.name,
    };
    render(
        state,
        StatusCode::OK,
        "working.html",
        &loaded.flow.locale,
        &ctx,
    )
}

/// The page a sign-up waiting for approval shows (again, when the user comes back).
pub fn pending_page(state: &AppState, loaded: &Loaded) -> Response {
    end_page(
        state,
        loaded,
        ("pending.html", "pending.title"),
        Some("The sign-up is waiting for approval."),
    )
}

/// A page that ends a flow without a form: `template` under `title_key`, with the
/// way back to the application (an `access_denied` saying `back`) when there is one.
fn end_page(
    state: &AppState,
    loaded: &Loaded,
    (template, title_key): (&'static str, &'static str),
    back: Option<&str>,
) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        back_url: Option<String>,
        application: &'a str,
    }
    let ctx = Ctx {
        title_key,
        errors: Vec::new(),
        notice: None,
        back_url: back.map(|description| {
            loaded.error_url(&state.settings.issuer, "access_denied", description)
        }),
        application: &loaded.app.name,
    };
    render(state, StatusCode::OK, template, &loaded.flow.locale, &ctx)
}

/// The page shown when a connector blocks the sign-up. `user_message` is the API's
/// text, escaped by the template like all text.
/// The block page: the connector's message (a generic one when it gave none)
/// under its title, if it gave one.
pub fn blocked_page(
    state: &AppState,
    loaded: &Loaded,
    user_message: &str,
    title: Option<&str>,
) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        heading: Option<&'a str>,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        user_message: &'a str,
        back_url: String,
        application: &'a str,
    }
    let ctx = Ctx {
        title_key: "blocked.title",
        heading: title,
        errors: Vec::new(),
        notice: None,
        user_message,
        back_url: loaded.error_url(
            &state.settings.issuer,
            "access_denied",
            "The sign-up was blocked.",
        ),
        application: &loaded.app.name,
    };
    render(
        state,
        StatusCode::FORBIDDEN,
        "blocked.html",
        &loaded.flow.locale,
        &ctx,
    )
}

/// "Your account is deleted", with the way back to the application (which hears
/// `access_denied`: nobody is signed in).
pub fn account_deleted_page(state: &AppState, loaded: &Loaded) -> Response {
    end_page(
        state,
        loaded,
        ("account_deleted.html", "account_deleted.title"),
        Some("The account was deleted."),
    )
}

/// "Your password is changed": the end of a reset from an administrator's link,
/// which signs nobody in, and has no way back (the application did not send the
/// person).
pub fn password_changed_page(state: &AppState, loaded: &Loaded) -> Response {
    end_page(
        state,
        loaded,
        ("password_changed.html", "password_changed.title"),
        None,
    )
}
