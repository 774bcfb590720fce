//! CORS for the endpoints browser applications call directly: the key set and
//! discovery are public; `/token` and `/userinfo` answer only origins that an
//! application registered a redirect URI on (single-page apps using PKCE).

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::state::AppState;

pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let public = matches!(
        path,
        "/jwks" | "/.well-known/openid-configuration" | "/v2.0/.well-known/openid-configuration"
    );
    let for_apps = matches!(path, "/token" | "/revoke" | "/userinfo");
    if !public && !for_apps {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = if public {
        Some("*".to_owned())
    } else {
        origin.filter(|o| registered(&state, o))
    };
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(value) = allowed.and_then(|a| HeaderValue::from_str(&a).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    response
}

/// Whether `origin` is the origin of a registered redirect URI.
fn registered(state: &AppState, origin: &str) -> bool {
    state.tenant().applications.iter().any(|app| {
        app.redirect_uris.iter().any(|uri| {
            url::Url::parse(uri)
                .ok()
                .is_some_and(|u| u.origin().ascii_serialization() == origin)
        })
    })
}
