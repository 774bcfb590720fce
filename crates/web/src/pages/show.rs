//! `GET /flow/{id}`: the page of the flow's current step. Every form posts elsewhere
//! and redirects here (post/redirect/get), so reloading never resubmits.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;
use usher_domain::FlowStep;

use super::{
    error_page, load_flow, render, render_step, request_locale, Feedback, Loaded, PageError,
    SummaryError,
};
use crate::state::AppState;

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match load_flow(&state, &headers, &id).await {
        Ok(mut loaded) => {
            if matches!(loaded.flow.step, FlowStep::RunningConnectors { .. }) {
                // A run in progress elsewhere (a reload, a double submit) holds the
                // flow's lease: wait for it. A run whose instance stopped before
                // saving the outcome lets its lease run out: run the connectors again
                // (with the same idempotency key; the user id is fixed).
                return super::attributes::run_connectors(&state, &headers, &mut loaded).await;
            }
            render_current(&state, &loaded, Feedback::default(), StatusCode::OK).await
        }
        Err(e) => error_page(&state, request_locale(&headers, None), e),
    }
}

/// The page for the flow's current step, final steps included.
#[allow(
    clippy::unused_async,
    reason = "awaited by every handler; it becomes the rendering of the engine's typed answer (#10)"
)]
pub async fn render_current(
    state: &AppState,
    loaded: &Loaded,
    feedback: Feedback,
    status: StatusCode,
) -> Response {
    let locale = loaded.flow.locale.as_str();
    match &loaded.flow.step {
        FlowStep::Blocked { user_message } => blocked_page(state, loaded, user_message),
        FlowStep::PendingApproval { .. } => pending_page(state, loaded),
        FlowStep::Failed { reference } => error_page(
            state,
            locale,
            PageError::ConnectorFailed {
                reference: reference.clone(),
                back_url: Some(loaded.error_url(
                    state,
                    "server_error",
                    "The sign-up could not be completed.",
                )),
            },
        ),
        // Someone's run of the connectors will save the outcome: this page reloads
        // the flow, which resumes the run if its instance stopped.
        FlowStep::RunningConnectors { .. } => working_page(state, loaded),
        FlowStep::Completed { .. } => error_page(
            state,
            locale,
            PageError::FlowFinished {
                back_url: Some(loaded.error_url(
                    state,
                    "access_denied",
                    "The sign-in has already finished.",
                )),
            },
        ),
        _ => render_step(state, loaded, feedback, status),
    }
}

/// "Finishing your sign-up", reloading itself until the run in progress has saved.
pub(super) fn working_page(state: &AppState, loaded: &Loaded) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        flow_id: &'a str,
        refresh: u32,
    }
    let ctx = Ctx {
        title_key: "working.title",
        errors: Vec::new(),
        notice: None,
        flow_id: &loaded.flow.id,
        refresh: 2,
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
    #[derive(Serialize)]
    struct Ctx {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        back_url: String,
    }
    let ctx = Ctx {
        title_key: "pending.title",
        errors: Vec::new(),
        notice: None,
        back_url: loaded.error_url(
            state,
            "access_denied",
            "The sign-up is waiting for approval.",
        ),
    };
    render(
        state,
        StatusCode::OK,
        "pending.html",
        &loaded.flow.locale,
        &ctx,
    )
}

/// The page shown when a connector blocks the sign-up. `user_message` is the API's
/// text, escaped by the template like all text.
pub fn blocked_page(state: &AppState, loaded: &Loaded, user_message: &str) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title_key: &'static str,
        errors: Vec<SummaryError>,
        notice: Option<String>,
        user_message: &'a str,
        back_url: String,
    }
    let ctx = Ctx {
        title_key: "blocked.title",
        errors: Vec::new(),
        notice: None,
        user_message,
        back_url: loaded.error_url(state, "access_denied", "The sign-up was blocked."),
    };
    render(
        state,
        StatusCode::FORBIDDEN,
        "blocked.html",
        &loaded.flow.locale,
        &ctx,
    )
}
