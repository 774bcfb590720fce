//! Optimistic concurrency on the admin API, as Graph does it: `GET` of one object
//! answers an `ETag` header and `@odata.etag` in the body; a `PATCH` or `DELETE`
//! with `If-Match` is refused with 412 when the object changed since that read, so
//! two administrators editing one object find out instead of the last one silently
//! winning. Without `If-Match` a write goes through as before.
//!
//! Users carry a stored version; tenant objects (connectors and extensions, user
//! flows and their events flows, event listeners, attributes,
//! identity providers, applications) are tagged by a keyed hash of their stored
//! form (`usher_tenant::TenantService::etag`), which changes with any change of the
//! object and with no change of another.

use axum::{
    http::{header, HeaderMap, HeaderValue},
    response::Response,
};
use serde_json::{json, Value};

use usher_tenant::TenantSnapshot;

use super::errors::{ApiError, ApiResult};
use super::ok;
use crate::state::AppState;

/// `If-Match` as given: `None` when absent or `*` (any current version will do).
pub struct IfMatch(Option<Vec<String>>);

impl IfMatch {
    pub fn from_headers(headers: &HeaderMap) -> ApiResult<Self> {
        let mut tags = Vec::new();
        for value in headers.get_all(header::IF_MATCH) {
            let value = value
                .to_str()
                .map_err(|_| ApiError::bad_request("The If-Match header is not readable."))?;
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    return Ok(Self(None));
                }
                tags.push(opaque(tag).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The If-Match header holds {tag:?}, which is not an entity tag (W/\"…\" or \"…\")."
                    ))
                })?);
            }
        }
        Ok(Self((!tags.is_empty()).then_some(tags)))
    }

    /// The opaque tags asked for, `None` when any version will do.
    pub fn tags(&self) -> Option<&[String]> {
        self.0.as_deref()
    }

    /// Whether a precondition was given.
    pub fn is_given(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `current` (an opaque tag, as [`weak`] wraps it) satisfies the header.
    pub fn matches(&self, current: &str) -> bool {
        match &self.0 {
            None => true,
            Some(tags) => tags.iter().any(|t| t == current),
        }
    }

    /// 412 unless `current` satisfies the header.
    pub fn check(&self, current: &str) -> ApiResult<()> {
        if self.matches(current) {
            Ok(())
        } else {
            Err(ApiError::precondition_failed())
        }
    }

    /// The version asked for when it is a user's, a number; anything else can match
    /// no user (`Some(-1)`: no stored version is negative).
    pub fn user_version(&self) -> Option<i64> {
        self.0.as_ref().map(|tags| {
            tags.iter()
                .find_map(|t| t.parse::<i64>().ok())
                .unwrap_or(-1)
        })
    }
}

/// The opaque part of `W/"…"` or `"…"`. Compared weakly (RFC 9110 §8.8.3.2), which
/// is what Graph's weak tags need.
fn opaque(tag: &str) -> Option<String> {
    let quoted = tag.strip_prefix("W/").unwrap_or(tag);
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then(|| inner.to_owned())
}

/// The header form of an opaque tag.
pub fn weak(opaque: &str) -> String {
    format!("W/\"{opaque}\"")
}

/// Adds `@odata.etag` to an object's JSON.
pub fn annotate(value: &mut Value, opaque: &str) {
    if let Value::Object(m) = value {
        m.insert("@odata.etag".into(), json!(weak(opaque)));
    }
}

/// A tenant object's JSON as `GET` answers it: with `@odata.etag` and the `ETag`
/// header when the object is stored (built-in ones have no tag).
pub fn tenant_object(
    state: &AppState,
    snapshot: &TenantSnapshot,
    kind: &str,
    id: &str,
    mut value: Value,
) -> ApiResult<Response> {
    match state.tenants.etag(snapshot, kind, id)? {
        Some(tag) => {
            annotate(&mut value, &tag);
            Ok(header(ok(value), &tag))
        }
        None => Ok(ok(value)),
    }
}

/// Adds the `ETag` header to an answer.
pub fn header(mut response: Response, opaque: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&weak(opaque)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_match(v: &str) -> IfMatch {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        IfMatch::from_headers(&h).unwrap()
    }

    #[test]
    fn weak_and_strong_tags_compare_by_their_opaque_part() {
        assert!(if_match("W/\"3\"").matches("3"));
        assert!(if_match("\"3\"").matches("3"));
        assert!(if_match("\"2\", W/\"3\"").matches("3"));
        assert!(!if_match("W/\"2\"").matches("3"));
        assert!(if_match("*").matches("anything"));
        assert!(!if_match("*").is_given());
        assert_eq!(if_match("W/\"7\"").user_version(), Some(7));
        assert_eq!(if_match("W/\"x\"").user_version(), Some(-1));
    }

    #[test]
    fn a_tag_without_quotes_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_static("3"));
        assert!(IfMatch::from_headers(&h).is_err());
    }
}
