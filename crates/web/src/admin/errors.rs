//! Errors in Microsoft Graph's shape: `{"error": {"code", "message", "innerError":
//! {"request-id", "date"}}}` with the matching HTTP status, so scripts written against
//! Graph read Usher's errors the same way. The request id is also sent as the
//! `request-id` header and, for a 500, written to the log next to the cause, which
//! the caller never sees.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;
use usher_storage::StorageError;
use usher_tenant::TenantError;

/// One error answer of the admin API.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Set when the request id was already logged (a 500), so the answer repeats it.
    request_id: Option<String>,
    www_authenticate: Option<&'static str>,
    allow: Option<String>,
    retry_after: Option<u32>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            request_id: None,
            www_authenticate: None,
            allow: None,
            retry_after: None,
        }
    }

    /// 503 with `Retry-After`: every core is hashing and the queue is full.
    pub fn busy() -> Self {
        Self {
            retry_after: Some(crate::hasher::RETRY_AFTER_SECONDS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is busy; try again shortly.",
            )
        }
    }

    /// 400: the body or a parameter is not acceptable. The message names what.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// 400: a query option Usher does not support (`$orderby`, `or` in `$filter`, …).
    pub fn unsupported_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
    }

    /// 400 naming the property: Graph's wording for a value it refuses.
    pub fn invalid_property(property: &str, resource: &str, why: impl std::fmt::Display) -> Self {
        Self::bad_request(format!(
            "Invalid value specified for property '{property}' of resource '{resource}': {why}."
        ))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Request_ResourceNotFound", message)
    }

    /// 404 for an object of `kind` that does not exist.
    pub fn no_such(kind: &str, id: &str) -> Self {
        Self::not_found(format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present ({kind})."))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "ObjectConflict", message)
    }

    /// 412: `If-Match` names a version the object no longer has.
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "Request_PreconditionFailed",
            "The object was changed since the version named in If-Match was read; read it again and retry.",
        )
    }

    /// 401: no token, or one that is not an admin access token of this issuer.
    pub fn unauthenticated(message: impl Into<String>, token_given: bool) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        );
        e.www_authenticate = Some(if token_given {
            "Bearer realm=\"usher\", error=\"invalid_token\""
        } else {
            "Bearer realm=\"usher\""
        });
        e
    }

    /// 403: a valid token without the permission the operation needs.
    pub fn forbidden(needed: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            format!("Insufficient privileges to complete the operation: it needs {needed}."),
        )
    }

    pub fn method_not_allowed(allow: Option<String>) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "The HTTP method is not allowed on this resource.",
        );
        e.allow = allow;
        e
    }

    /// 500: logged with a reference the answer repeats; the cause is not shown.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        let request_id = new_request_id();
        tracing::error!(%request_id, error = %error, "admin API request failed");
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Service_InternalServerError",
            format!("An internal error occurred (reference {request_id})."),
        );
        e.request_id = Some(request_id);
        e
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "a reference for an error answer needs to be unique, not reproducible"
)]
fn new_request_id() -> String {
    usher_domain::id::new_uuid(&mut rand::thread_rng())
}

impl IntoResponse for ApiError {
    #[allow(
        clippy::disallowed_methods,
        reason = "the informational date of a Graph error body; the response has no state"
    )]
    fn into_response(self) -> Response {
        let request_id = self.request_id.unwrap_or_else(new_request_id);
        // The time of the answer, as Graph gives it; informational only.
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let body = json!({"error": {
            "code": self.code,
            "message": self.message,
            "innerError": {"request-id": request_id, "date": date},
        }});
        let mut r = (self.status, Json(body)).into_response();
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("request-id", v);
        }
        if let Some(w) = self.www_authenticate {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(w));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            h.insert(header::ALLOW, allow);
        }
        if let Some(seconds) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::DuplicateIdentity => ApiError::conflict(
                "Another object with the same value for property identities already exists.",
            ),
            StorageError::AlreadyExists => {
                ApiError::conflict("An object with the same id already exists.")
            }
            StorageError::Conflict => ApiError::conflict(
                "The object was changed by someone else meanwhile; read it again and retry.",
            ),
            e => ApiError::internal(e),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::InUse { kind, id, by } => ApiError::conflict(format!(
                "The {kind} {id} cannot be deleted: it is in use by {by}."
            )),
            TenantError::Conflict => ApiError::conflict(
                "The configuration was changed meanwhile (by another instance or administrator); try again.",
            ),
            TenantError::PreconditionFailed => ApiError::precondition_failed(),
            TenantError::Duplicate { kind, id } => {
                ApiError::conflict(format!("The {kind} {id} exists already (ids ignore case)."))
            }
            TenantError::Invalid { kind, id, reason } => {
                ApiError::bad_request(format!("The {kind} {id} is not valid: {reason}."))
            }
            e => ApiError::internal(e),
        }
    }
}
