//! `/console/users/{id}`: one user: attributes, identities, roles, whether the
//! account is enabled; disable or enable it, or delete it after a confirmation page.
//! An administrator cannot disable or delete their own account here: that would
//! lock them out of the console halfway through the click.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;
use usher_domain::User;

use super::{
    attribute_pairs, display_name, done_notice, identity_rows, internal, msg, not_found, query_map,
    render, segment, time, Admin, IdentityRow, Pair, Section, Time, View,
};
use crate::{
    pages::{first, request_locale, see_other, SummaryError},
    state::AppState,
};

#[derive(Serialize)]
struct UserPage {
    id: String,
    email: Option<String>,
    name: String,
    enabled: bool,
    created: Time,
    roles: Vec<String>,
    attributes: Vec<Pair>,
    identities: Vec<IdentityRow>,
    /// Where the enable/disable form posts, and what it sets.
    enabled_url: String,
    delete_url: String,
    /// The administrator's own account: no disabling or deleting it here.
    is_self: bool,
    /// What the user did to their account lately, newest first.
    events: Vec<EventRow>,
    /// Where the reset-link form posts; `None` when the user has no password.
    reset_link_url: Option<String>,
    /// The applications a reset link can be for (their user flow has passwords).
    reset_applications: Vec<Pair>,
}

#[derive(Serialize)]
struct EventRow {
    what: String,
    at: Time,
    application: String,
}

/// How many account events the user page shows.
const EVENTS_SHOWN: u32 = 20;

fn base(id: &str) -> String {
    format!("/console/users/{}", segment(id))
}

async fn load(state: &AppState, locale: &str, admin: &Admin, id: &str) -> Result<User, Response> {
    match state.store.user_by_id(id).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(not_found(state, locale, admin, "console.user.not_found")),
        Err(e) => Err(internal(state, locale, Some(admin), e)),
    }
}

async fn show(state: &AppState, locale: &str, admin: &Admin, user: User, view: View) -> Response {
    let roles = match state.store.user_roles(&user.id).await {
        Ok(r) => r,
        Err(e) => return internal(state, locale, Some(admin), e),
    };
    let events = match state.store.account_events(&user.id, EVENTS_SHOWN).await {
        Ok(e) => e,
        Err(e) => return internal(state, locale, Some(admin), e),
    };
    let tenant = state.tenant();
    let events = events
        .into_iter()
        .map(|e| EventRow {
            what: msg(state, locale, &format!("console.event.{}", e.kind.as_str())),
            at: time(e.at),
            application: e
                .client_id
                .as_deref()
                .and_then(|c| tenant.application(c))
                .map_or_else(
                    || e.client_id.clone().unwrap_or_default(),
                    |a| a.name.clone(),
                ),
        })
        .collect();
    let has_password = match state.store.password_hash(&user.id).await {
        Ok(h) => h.is_some(),
        Err(e) => return internal(state, locale, Some(admin), e),
    };
    let reset_applications: Vec<Pair> = tenant
        .applications
        .iter()
        // Any application but the console itself: a sign-in-only one too.
        .filter(|a| a.client_id != usher_domain::application::CONSOLE_CLIENT_ID)
        .filter(|a| {
            tenant
                .user_flow(&a.user_flow_id)
                .is_some_and(usher_domain::UserFlow::allows_local_accounts)
        })
        .map(|a| Pair {
            label: a.name.clone(),
            value: a.client_id.clone(),
        })
        .collect();
    let page = UserPage {
        events,
        reset_link_url: (has_password && !reset_applications.is_empty())
            .then(|| format!("{}/reset-link", base(&user.id))),
        reset_applications,
        enabled_url: format!("{}/enabled", base(&user.id)),
        delete_url: format!("{}/delete", base(&user.id)),
        is_self: user.id == admin.user.id,
        name: display_name(&user),
        email: user.email.clone(),
        enabled: user.account_enabled,
        created: time(user.created_at),
        roles,
        attributes: attribute_pairs(state, locale, &user.attributes),
        identities: identity_rows(&user.identities),
        id: user.id,
    };
    render(state, locale, Some(admin), view, &page)
}

fn view() -> View {
    View::new("console_user.html", "console.user.title", Section::Users)
}

/// `GET /console/users/{id}`.
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let admin = match super::require(&state, &headers, &base(&id)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let user = match load(&state, locale, &admin, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let notice = done_notice(&state, locale, &query_map(query.as_deref()));
    show(&state, locale, &admin, user, view().notice(notice)).await
}

/// The user page again with why the administrator's own account was not changed.
async fn not_yourself(state: &AppState, locale: &str, admin: &Admin, user: User) -> Response {
    let errors = vec![SummaryError {
        field: None,
        message: msg(state, locale, "console.user.not_yourself"),
    }];
    show(
        state,
        locale,
        admin,
        user,
        view().status(StatusCode::CONFLICT).errors(errors),
    )
    .await
}

/// `POST /console/users/{id}/enabled` with `enabled=true|false`.
pub async fn set_enabled(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, form) = match super::require_form(&state, &headers, &body, &base(&id)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let enabled = match first(&form, "enabled") {
        "true" => true,
        "false" => false,
        _ => return see_other(&base(&id)),
    };
    let mut user = match load(&state, locale, &admin, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.id == admin.user.id {
        return not_yourself(&state, locale, &admin, user).await;
    }
    if user.account_enabled != enabled {
        user.account_enabled = enabled;
        match state.store.update_user(&user).await {
            Ok(true) => {}
            Ok(false) => return not_found(&state, locale, &admin, "console.user.not_found"),
            Err(e) => return internal(&state, locale, Some(&admin), e),
        }
        // A disabled account's sessions end now, so enabling it again later does not
        // bring back whoever was signed in.
        if !enabled {
            if let Err(e) = state
                .store
                .end_user_sessions(&user.id, state.clock.now())
                .await
            {
                return internal(&state, locale, Some(&admin), e);
            }
        }
        tracing::info!(user_id = %user.id, enabled, admin = %admin.user.id, "console: user account changed");
    }
    let done = if enabled { "enabled" } else { "disabled" };
    see_other(&format!("{}?done={done}", base(&id)))
}

#[derive(Serialize)]
struct ConfirmPage {
    id: String,
    email: Option<String>,
    name: String,
    identity_count: usize,
    delete_url: String,
    cancel_url: String,
}

/// `GET /console/users/{id}/delete`: are you sure?
pub async fn confirm_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let admin = match super::require(&state, &headers, &base(&id)).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let user = match load(&state, locale, &admin, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.id == admin.user.id {
        return not_yourself(&state, locale, &admin, user).await;
    }
    let page = ConfirmPage {
        delete_url: format!("{}/delete", base(&user.id)),
        cancel_url: base(&user.id),
        name: display_name(&user),
        email: user.email.clone(),
        identity_count: user.identities.len(),
        id: user.id,
    };
    render(
        &state,
        locale,
        Some(&admin),
        View::new(
            "console_user_delete.html",
            "console.user_delete.title",
            Section::Users,
        ),
        &page,
    )
}

/// `POST /console/users/{id}/delete`: the user, their identities, roles and
/// sessions go, and their grants are revoked.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, _) = match super::require_form(&state, &headers, &body, &base(&id)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let user = match load(&state, locale, &admin, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.id == admin.user.id {
        return not_yourself(&state, locale, &admin, user).await;
    }
    match state.store.delete_user(&user.id, state.clock.now()).await {
        Ok(true) => {
            tracing::info!(user_id = %user.id, admin = %admin.user.id, "console: user deleted");
            see_other("/console/users?done=deleted")
        }
        Ok(false) => not_found(&state, locale, &admin, "console.user.not_found"),
        Err(e) => internal(&state, locale, Some(&admin), e),
    }
}

/// `POST /console/users/{id}/reset-link` with `client_id`: emails the user a link
/// that resets their password in that application's user flow.
pub async fn send_reset_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (admin, form) = match super::require_form(&state, &headers, &body, &base(&id)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let user = match load(&state, locale, &admin, &id).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(app) = state
        .tenant()
        .application(first(&form, "client_id"))
        .cloned()
    else {
        return see_other(&base(&id));
    };
    // The person reads it in the language their sign-up pages used last; the
    // console's is the best guess there is.
    match state
        .engine
        .send_reset_link(&user, &app, locale, &admin.user.id)
        .await
    {
        Ok(()) => see_other(&format!("{}?done=reset_link_sent", base(&id))),
        Err(usher_signup::reset_link::ResetLinkError::Storage(e)) => {
            internal(&state, locale, Some(&admin), e)
        }
        Err(e) => {
            let errors = vec![SummaryError {
                field: None,
                message: state.templates.catalogue().message(
                    locale,
                    "console.user.reset_link_failed",
                    &[("reason", e.to_string())],
                ),
            }];
            show(
                &state,
                locale,
                &admin,
                user,
                view().status(StatusCode::CONFLICT).errors(errors),
            )
            .await
        }
    }
}
