//! Usher's web layer: the sign-up and sign-in pages, the OpenID Connect provider
//! endpoints and the `/try` demo, as one axum router over an [`AppState`]. It knows
//! the storage only through the repository traits and never names SQL.

pub mod admin;
pub mod console;
pub mod cookies;
pub mod cors;
pub mod i18n;
pub mod mail;
pub mod oauth;
pub mod pages;
pub mod state;
pub mod templates;
pub mod throttle;

pub use usher_signup::{approvals, hasher};

use axum::{
    extract::{DefaultBodyLimit, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde::Serialize;

pub use state::{AppState, Inner, Lifetimes, Settings};

/// The connector steps, as the flow engine calls them.
pub mod connectors {
    pub use usher_connectors::{NoConnectors, StepConnectors, StepOutcome, StepRequest};
}

/// Forms and token requests are small; anything bigger is refused before parsing.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        // The first health endpoint, kept for the probes that use it.
        .route("/healthz", get(ready))
        .route("/metrics", get(metrics))
        .route("/assets/usher.css", get(stylesheet))
        .route(
            "/.well-known/openid-configuration",
            get(oauth::discovery::configuration),
        )
        // Where Microsoft's AuthenticationEvents SDK (and other Entra-minded code)
        // looks for a version 2.0 token's issuer: the same document.
        .route(
            "/v2.0/.well-known/openid-configuration",
            get(oauth::discovery::configuration),
        )
        .route("/jwks", get(oauth::discovery::jwks))
        .route(
            "/authorize",
            get(oauth::authorize::get).post(oauth::authorize::post),
        )
        .route("/token", post(oauth::token::post))
        .route("/revoke", post(oauth::revocation::post))
        .route("/introspect", post(oauth::introspection::post))
        .route(
            "/userinfo",
            get(oauth::userinfo::handle).post(oauth::userinfo::handle),
        )
        .route("/logout", get(oauth::logout::get).post(oauth::logout::post))
        .route("/flow/{id}", get(pages::show::get))
        .route("/flow/{id}/sign-in", post(pages::sign_in::post))
        .route("/flow/{id}/sign-up", post(pages::sign_in::to_sign_up))
        .route(
            "/flow/{id}/sign-in-instead",
            post(pages::sign_in::to_sign_in),
        )
        .route("/flow/{id}/email", post(pages::email::post))
        .route("/flow/{id}/resend", post(pages::email::resend))
        .route("/flow/{id}/change-email", post(pages::email::change))
        .route("/flow/{id}/code", post(pages::code::post))
        .route("/flow/{id}/password", post(pages::password::post))
        .route("/flow/{id}/attributes", post(pages::attributes::post))
        .route("/flow/{id}/cancel", post(pages::cancel::post))
        .route(
            "/flow/{id}/forgot-password",
            post(pages::account::forgot_password),
        )
        .route(
            "/flow/{id}/new-password",
            post(pages::account::new_password),
        )
        .route("/flow/{id}/profile", post(pages::account::profile))
        .route(
            "/reset",
            get(pages::account::reset_link_page).post(pages::account::start_reset_link),
        )
        .route(
            "/flow/{id}/delete-account",
            post(pages::account::delete_account),
        )
        .route(
            "/flow/{id}/provider",
            post(pages::federated::choose_provider),
        )
        .route(
            "/flow/{id}/link",
            post(pages::federated::link_with_password),
        )
        .route(
            "/flow/{id}/link-code",
            post(pages::federated::link_with_code),
        )
        .route("/federation/callback", get(pages::upstream::callback))
        .route("/try", get(pages::try_demo::page))
        .route("/try/start", get(pages::try_demo::start))
        .route("/try/callback", get(pages::try_demo::callback))
        .merge(admin::router(&state))
        .merge(console::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::cors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            refresh_tenant,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            throttle::client_address,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Outermost: every request, refused ones included, gets its id and log line.
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state)
}

/// The request id a caller (a proxy, a load balancer) may send: kept when it looks
/// like an id, so one id follows the request through every hop.
const REQUEST_ID: &str = "x-request-id";

/// Gives each request an id (the caller's `X-Request-Id` when it is a plausible one,
/// else a new one), returns it in `X-Request-Id`, puts every log line of the request
/// in a span that carries it, and writes one access line when the answer is ready.
/// The line has the method, the path without its query (a query can carry codes and
/// state), the status and the time taken.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument as _;
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        // Not from the instance's random source: a seeded one (tests) must give the
        // same flows and codes however many requests came before.
        .map_or_else(
            || usher_domain::id::new_uuid(&mut rand::rngs::OsRng),
            str::to_owned,
        );
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %request_id);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            target: "usher::access",
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

#[derive(Serialize)]
struct Plain {
    title_key: &'static str,
    errors: Vec<pages::SummaryError>,
    notice: Option<String>,
    demo: bool,
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ctx = Plain {
        title_key: "index.title",
        errors: Vec::new(),
        notice: None,
        demo: state.settings.demo_client_id.is_some(),
    };
    pages::render(
        &state,
        StatusCode::OK,
        "index.html",
        pages::request_locale(&headers, None),
        &ctx,
    )
}

async fn not_found(State(state): State<AppState>, headers: HeaderMap) -> Response {
    pages::error_page(
        &state,
        pages::request_locale(&headers, None),
        pages::PageError::FlowNotFound,
    )
}

/// Every request sees the tenant as stored now: an admin's change takes effect on the
/// next step of every flow, on every instance.
async fn refresh_tenant(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    if !(path.starts_with("/assets/") || path.starts_with("/health") || path == "/metrics") {
        state.refresh_tenant().await;
    }
    next.run(request).await
}

/// Liveness: the process answers. Nothing else is checked, so an orchestrator never
/// restarts an instance for a database outage it cannot fix.
async fn live() -> Response {
    (StatusCode::OK, "ok").into_response()
}

/// Readiness: the database answers and no shutdown has begun.
async fn ready(State(state): State<AppState>) -> Response {
    if state.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricsAccess {
    Allowed,
    /// A token is configured and the request did not carry it.
    NeedsToken,
    /// No token is configured outside the demo: the metrics stay private.
    Closed,
}

/// `/metrics` is never open on the public listener of a real deployment: with
/// `USHER_METRICS_TOKEN` set it asks for that bearer token (compared in constant
/// time); without one it is open only in the demo.
fn metrics_access(token: Option<&str>, demo: bool, authorization: Option<&str>) -> MetricsAccess {
    match token {
        Some(token) => {
            let given = authorization
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default();
            if usher_domain::flow::constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
                MetricsAccess::Allowed
            } else {
                MetricsAccess::NeedsToken
            }
        }
        None if demo => MetricsAccess::Allowed,
        None => MetricsAccess::Closed,
    }
}

/// Prometheus text format: connector calls and latencies of this instance, and the
/// state of each connector's breaker here.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let access = metrics_access(
        state
            .settings
            .metrics_token
            .as_ref()
            .map(usher_domain::Secret::expose),
        state.settings.demo_client_id.is_some(),
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    match access {
        MetricsAccess::Allowed => {}
        MetricsAccess::NeedsToken => {
            let mut r = (StatusCode::UNAUTHORIZED, "a bearer token is required").into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"usher-metrics\""),
            );
            return r;
        }
        MetricsAccess::Closed => {
            return (
                StatusCode::FORBIDDEN,
                "metrics are served only with a bearer token: set USHER_METRICS_TOKEN",
            )
                .into_response();
        }
    }
    let mut text = state.metrics.render_prometheus()
        + &usher_connectors::render_breakers(&state.breaker_states());
    text.push_str(&state.engine.throttle.render_prometheus());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn stylesheet() -> Response {
    let mut r = include_str!("../assets/usher.css").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_private_outside_the_demo() {
        use MetricsAccess::*;
        assert_eq!(metrics_access(None, true, None), Allowed);
        assert_eq!(metrics_access(None, false, None), Closed);
        assert_eq!(metrics_access(None, false, Some("Bearer x")), Closed);
        let token = Some("a-long-metrics-token-0123");
        for demo in [true, false] {
            assert_eq!(metrics_access(token, demo, None), NeedsToken);
            assert_eq!(
                metrics_access(token, demo, Some("Bearer wrong")),
                NeedsToken
            );
            assert_eq!(
                metrics_access(token, demo, Some("Basic a-long-metrics-token-0123")),
                NeedsToken
            );
            assert_eq!(
                metrics_access(token, demo, Some("Bearer a-long-metrics-token-0123")),
                Allowed
            );
        }
    }
}
