//! The admin API: a Microsoft Graph–compatible subset (`/v1.0/...`) through which
//! administrators and their scripts manage API connectors, user flows, attributes,
//! identity providers, applications, users and sign-up requests
//! (described in `docs/ADMIN-API.md`).
//!
//! Every route is one [`Route`] in the table [`routes`]: its path, method, the
//! permission it needs and its documentation. The router and the OpenAPI document
//! (`GET /v1.0/$metadata/openapi.json`) are both built from that table, so what is
//! served and what is documented cannot drift apart, and no handler can forget its
//! permission check: [`auth::guard`] runs before each one.
//!
//! Changes to the tenant go through `state.tenants`, which bumps the stored version,
//! so they take effect on the next request on every instance.

pub mod applications;
pub mod assignments;
pub mod attributes;
pub mod auth;
pub mod calls;
pub mod connectors;
pub mod errors;
pub mod etag;
pub mod events_flows;
pub mod extensions;
pub mod identity_providers;
pub mod json;
pub mod listeners;
pub mod odata;
pub mod openapi;
pub mod rules;
pub mod sign_up_requests;
pub mod user_flows;
pub mod users;

use axum::{
    handler::Handler,
    http::{header, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, MethodRouter},
    Json, Router,
};
use serde_json::Value;

use self::auth::{Access, Guard};
use self::errors::ApiError;
use crate::state::AppState;

/// One route of the admin API, with what the OpenAPI document says about it.
pub struct Route {
    pub method: Method,
    /// axum's and OpenAPI's path syntax agree: `/v1.0/users/{id}`.
    pub path: &'static str,
    pub access: Access,
    pub tag: &'static str,
    pub summary: &'static str,
    /// The request body's schema (a name under `components/schemas`).
    pub request: Option<&'static str>,
    /// The success status and the answer's schema, if it has a body.
    pub status: u16,
    pub response: Option<&'static str>,
    /// Whether the answer is a collection of `response`.
    pub collection: bool,
    /// The query options honoured (`$filter`, `$top`, …).
    pub query: &'static [&'static str],
    handler: MethodRouter<AppState>,
}

impl Route {
    fn new(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        Self {
            method,
            path,
            access: Access::Public,
            tag: "",
            summary: "",
            request: None,
            status: 200,
            response: None,
            collection: false,
            query: &[],
            handler,
        }
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, h: H) -> Self {
        Self::new(Method::GET, path, axum::routing::get(h))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, h: H) -> Self {
        Self::new(Method::POST, path, axum::routing::post(h))
    }

    pub fn put<H: Handler<T, AppState>, T: 'static>(path: &'static str, h: H) -> Self {
        Self::new(Method::PUT, path, axum::routing::put(h))
    }

    pub fn patch<H: Handler<T, AppState>, T: 'static>(path: &'static str, h: H) -> Self {
        Self::new(Method::PATCH, path, axum::routing::patch(h))
    }

    pub fn delete<H: Handler<T, AppState>, T: 'static>(path: &'static str, h: H) -> Self {
        Self::new(Method::DELETE, path, axum::routing::delete(h)).no_content()
    }

    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn doc(mut self, tag: &'static str, summary: &'static str) -> Self {
        self.tag = tag;
        self.summary = summary;
        self
    }

    pub fn body(mut self, schema: &'static str) -> Self {
        self.request = Some(schema);
        self
    }

    pub fn answers(mut self, status: u16, schema: &'static str) -> Self {
        self.status = status;
        self.response = Some(schema);
        self
    }

    pub fn lists(mut self, schema: &'static str, query: &'static [&'static str]) -> Self {
        self.response = Some(schema);
        self.collection = true;
        self.query = query;
        self
    }

    pub fn query(mut self, query: &'static [&'static str]) -> Self {
        self.query = query;
        self
    }

    pub fn no_content(mut self) -> Self {
        self.status = 204;
        self.response = None;
        self
    }
}

/// Every route of the admin API.
pub fn routes() -> Vec<Route> {
    let mut all = Vec::new();
    all.extend(connectors::routes());
    all.extend(extensions::routes());
    all.extend(events_flows::routes());
    all.extend(listeners::routes());
    all.extend(calls::routes());
    all.extend(user_flows::routes());
    all.extend(assignments::routes());
    all.extend(attributes::routes());
    all.extend(identity_providers::routes());
    all.extend(applications::routes());
    all.extend(users::routes());
    all.extend(sign_up_requests::routes());
    all.extend(openapi::routes());
    all
}

/// The admin API's routes, to merge into the application's router.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for route in routes() {
        let guard = Guard {
            state: state.clone(),
            access: route.access,
        };
        let handler = route
            .handler
            .route_layer(axum::middleware::from_fn_with_state(guard, auth::guard));
        // Routes of one path with different methods merge into one method router.
        router = router.route(route.path, handler);
    }
    router
        // Anything else under /v1.0 answers in Graph's shape, not with the HTML page.
        .route("/v1.0", any(unknown_resource))
        .route("/v1.0/", any(unknown_resource))
        .route("/v1.0/{*rest}", any(unknown_resource))
        .layer(axum::middleware::map_response(graph_shaped))
}

async fn unknown_resource(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!("Resource not found for the segment '{}'.", uri.path()),
    )
}

/// Turns the answers axum gives by itself (405 for another method, rejections of a
/// path or body) into errors in Graph's shape.
async fn graph_shaped(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = response
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return ApiError::method_not_allowed(allow).into_response();
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .to_owned()
    } else {
        text
    };
    let code = match parts.status {
        StatusCode::NOT_FOUND => "Request_ResourceNotFound",
        StatusCode::PAYLOAD_TOO_LARGE => "Request_EntityTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Request_UnsupportedMediaType",
        s if s.is_server_error() => "Service_InternalServerError",
        _ => "Request_BadRequest",
    };
    ApiError::new(parts.status, code, message).into_response()
}

/// 200 with a JSON body.
pub fn ok(value: Value) -> Response {
    json_response(StatusCode::OK, value)
}

/// 201 with the created object and its `Location`.
pub fn created(state: &AppState, location: &str, value: Value) -> Response {
    let mut r = json_response(StatusCode::CREATED, value);
    if let Ok(v) = HeaderValue::from_str(&format!("{}{location}", state.settings.issuer)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn json_response(status: StatusCode, value: Value) -> Response {
    let mut r = (status, Json(value)).into_response();
    // Answers hold configuration and personal data: never cached.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// What secrets read back as.
pub const MASKED: &str = "******";

/// `/v1.0/<path>` percent-encoded for a `Location` or a link.
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
