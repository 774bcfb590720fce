//! Reading request bodies property by property, so that every refusal names the
//! property at fault (as Graph's do) and properties Usher does not know are refused
//! rather than silently dropped: a script that sends `acountEnabled` learns of its typo.
//!
//! Annotations (`@odata.type`, `@odata.context`, …) are read where they mean something
//! and ignored elsewhere, as Graph does.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, StatusCode},
};
use serde_json::{Map, Value};

use super::errors::{ApiError, ApiResult};

/// The raw body of a request, checked to be JSON when it is not empty. Over the size
/// limit, or not JSON: an error in Graph's shape rather than axum's plain text.
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let bytes = Bytes::from_request(request, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request_EntityTooLarge",
                    "The request body is too large.",
                )
            } else {
                ApiError::bad_request(format!(
                    "The request body cannot be read: {}",
                    r.body_text()
                ))
            }
        })?;
        let json = content_type.as_deref().is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or("").trim();
            essence == "application/json" || essence.ends_with("+json")
        });
        if !bytes.iter().all(u8::is_ascii_whitespace) && !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request_UnsupportedMediaType",
                "The request body must be JSON, sent with Content-Type: application/json.",
            ));
        }
        Ok(JsonBody(bytes))
    }
}

impl JsonBody {
    /// The body as a JSON object; an empty body is an error.
    pub fn object(&self, resource: &'static str) -> ApiResult<Body> {
        self.optional_object(resource)?
            .ok_or_else(|| ApiError::bad_request("A request body (a JSON object) is required."))
    }

    /// The body as a JSON object, or `None` when there is none (actions such as
    /// `approve` take no body, but clients may send `{}`).
    pub fn optional_object(&self, resource: &'static str) -> ApiResult<Option<Body>> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let value: Value = serde_json::from_slice(&self.0).map_err(|e| {
            ApiError::bad_request(format!("The request body is not valid JSON: {e}."))
        })?;
        Body::new(value, resource).map(Some)
    }
}

/// A JSON object being read: each accessor removes the property it reads, and
/// [`Body::finish`] refuses whatever is left.
#[derive(Debug)]
pub struct Body {
    map: Map<String, Value>,
    resource: &'static str,
    /// Where this object sits in the request (`authenticationConfiguration.`), for
    /// messages.
    prefix: String,
}

impl Body {
    pub fn new(value: Value, resource: &'static str) -> ApiResult<Self> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                resource,
                prefix: String::new(),
            }),
            _ => Err(ApiError::bad_request(format!(
                "The request body must be a JSON object (a {resource})."
            ))),
        }
    }

    pub fn resource(&self) -> &'static str {
        self.resource
    }

    /// The full name of a property, for messages.
    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A 400 naming `key`.
    pub fn error(&self, key: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::invalid_property(&self.name(key), self.resource, why)
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.map.keys().all(|k| k.starts_with('@'))
    }

    /// The property's value, removed; `None` when absent.
    pub fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key)
    }

    /// The names of the properties not read yet, for bodies with open-ended keys
    /// (extension attributes).
    pub fn remaining_keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// A string; absent and `null` are `None`.
    pub fn string(&mut self, key: &str) -> ApiResult<Option<String>> {
        Ok(self.nullable_string(key)?.flatten())
    }

    /// Absent → `None`; `null` → `Some(None)` (PATCH: clear it).
    pub fn nullable_string(&mut self, key: &str) -> ApiResult<Option<Option<String>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s))),
            Some(_) => Err(self.error(key, "must be a string")),
        }
    }

    pub fn required_string(&mut self, key: &str) -> ApiResult<String> {
        self.string(key)?
            .ok_or_else(|| self.error(key, "is required"))
    }

    pub fn bool(&mut self, key: &str) -> ApiResult<Option<bool>> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.error(key, "must be true or false")),
        }
    }

    /// A whole number within `min..=max`.
    pub fn integer(&mut self, key: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.error(key, format!("must be a whole number from {min} to {max}"))),
            },
        }
    }

    /// An array of strings; absent and `null` are `None`.
    pub fn strings(&mut self, key: &str) -> ApiResult<Option<Vec<String>>> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(self.error(key, "must be an array of strings")),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.error(key, "must be an array of strings")),
        }
    }

    /// A nested object; absent and `null` are `None`.
    pub fn object(&mut self, key: &str) -> ApiResult<Option<Body>> {
        Ok(self.nullable_object(key)?.flatten())
    }

    /// Absent → `None`; `null` → `Some(None)`.
    pub fn nullable_object(&mut self, key: &str) -> ApiResult<Option<Option<Body>>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Object(map)) => Ok(Some(Some(self.nested(key, map)))),
            Some(_) => Err(self.error(key, "must be an object")),
        }
    }

    /// An array of objects; absent and `null` are `None`.
    pub fn objects(&mut self, key: &str) -> ApiResult<Option<Vec<Body>>> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(map) => Ok(self.nested(&format!("{key}[{i}]"), map)),
                    _ => Err(self.error(key, "must be an array of objects")),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.error(key, "must be an array of objects")),
        }
    }

    fn nested(&self, key: &str, map: Map<String, Value>) -> Body {
        Body {
            map,
            resource: self.resource,
            prefix: format!("{}{key}.", self.prefix),
        }
    }

    /// Properties Graph defines that Usher accepts and does not keep.
    pub fn ignore(&mut self, keys: &[&str]) {
        for k in keys {
            self.map.remove(*k);
        }
    }

    /// Refuses the first property nobody read; annotations are ignored.
    pub fn finish(self) -> ApiResult<()> {
        match self.map.keys().find(|k| !k.starts_with('@')) {
            None => Ok(()),
            Some(k) => Err(ApiError::bad_request(format!(
                "Property '{}{k}' does not exist on resource '{}' or cannot be set.",
                self.prefix, self.resource
            ))),
        }
    }

    /// Refuses a property that cannot be changed unless it repeats the current value
    /// (clients often send back what they read).
    pub fn read_only(&mut self, key: &str, current: &Value) -> ApiResult<()> {
        match self.take(key) {
            None => Ok(()),
            Some(v) if &v == current => Ok(()),
            Some(_) => Err(self.error(key, "is read-only")),
        }
    }
}

/// The id at the end of an `@odata.id` reference such as
/// `https://graph.microsoft.com/v1.0/identity/apiConnectors/{id}` (or `…/apiConnectors('{id}')`),
/// when it names the collection `collection`.
pub fn reference_id(reference: &str, collection: &str) -> Option<String> {
    let marker = format!("{collection}/");
    let rest = match reference.rfind(&marker) {
        Some(i) => &reference[i + marker.len()..],
        None => {
            let marker = format!("{collection}(");
            let i = reference.rfind(&marker)?;
            reference[i + marker.len()..].strip_suffix(')')?
        }
    };
    let id = rest.trim_matches('\'').trim_end_matches('/');
    let id = url::form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Reads `{"@odata.id": "…/<collection>/{id}"}`; `Ok(None)` for `{}` (clear).
pub fn read_reference(body: Option<Body>, collection: &str) -> ApiResult<Option<String>> {
    let Some(mut body) = body else {
        return Ok(None);
    };
    let reference = match body.take("@odata.id") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(body.error("@odata.id", "must be a string")),
    };
    body.finish()?;
    match reference {
        None => Ok(None),
        Some(r) => reference_id(&r, collection).map(Some).ok_or_else(|| {
            ApiError::invalid_property(
                "@odata.id",
                "reference",
                format!("must be a URL ending in /{collection}/{{id}}"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            reference_id(
                "https://graph.microsoft.com/v1.0/identity/apiConnectors/abc-1",
                "apiConnectors"
            )
            .as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            reference_id("/identity/apiConnectors('x y')", "apiConnectors").as_deref(),
            Some("x y")
        );
        assert_eq!(
            reference_id(
                "identityProviders/EmailOtpSignup-OAUTH",
                "identityProviders"
            )
            .as_deref(),
            Some("EmailOtpSignup-OAUTH")
        );
        assert_eq!(reference_id("https://x/users/1", "apiConnectors"), None);
        assert_eq!(
            reference_id("https://x/apiConnectors/", "apiConnectors"),
            None
        );
    }

    #[test]
    fn properties_are_named_in_errors() {
        let mut b = Body::new(
            serde_json::json!({"a": 1, "n": {"x": "y"}, "extra": true}),
            "thing",
        )
        .unwrap();
        let e = b.string("a").unwrap_err();
        assert!(e.message.contains("'a'"), "{}", e.message);
        let mut n = b.object("n").unwrap().unwrap();
        let e = n.bool("x").unwrap_err();
        assert!(e.message.contains("'n.x'"), "{}", e.message);
        let e = b.finish().unwrap_err();
        assert!(e.message.contains("'extra'"), "{}", e.message);
    }
}
