//! The web side of the rate limits: who is asking (the source address, behind
//! trusted proxies), worked out once per request, and `Retry-After` on a refusal.
//! The limits themselves are the engine's ([`usher_signup::throttle`]).

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, State},
    http::{header, HeaderValue},
    response::Response,
};

pub use usher_signup::throttle::{ClientAddress, Reservation, Throttle, Throttled};

use crate::state::AppState;

/// Middleware: works out the [`ClientAddress`] of every request once.
pub async fn client_address(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    // Every line, in order: a proxy may add its own line after the client's.
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("not an address"))
        .collect();
    let address = peer.map(|p| {
        state
            .engine
            .throttle
            .policy
            .client_address(p, forwarded.iter().copied())
    });
    request.extensions_mut().insert(ClientAddress(address));
    next.run(request).await
}

/// Adds `Retry-After` to a response refused by a limit.
pub fn mark(throttled: Throttled, mut response: Response) -> Response {
    if let Ok(v) = HeaderValue::from_str(&throttled.retry_after_seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}
