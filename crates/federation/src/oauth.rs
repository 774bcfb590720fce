//! The OAuth 2.0 pieces (RFC 6749) that do not depend on HTTP: client
//! authentication, reading token endpoint answers in the shapes providers really
//! send, and reading userinfo answers. Everything here takes untrusted bytes and
//! returns an error rather than panicking.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::FederationError;

/// What Usher keeps from a token response.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TokenResponse {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "******"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "******"))
            .finish()
    }
}

/// `Authorization: Basic` for `client_secret_basic`. RFC 6749 §2.3.1 has both parts
/// form-urlencoded before joining, so a secret with `:` or `%` survives.
pub(crate) fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(client_secret)))
    )
}

/// An OAuth error code fit for an error message: RFC 6749's character set (printable
/// ASCII but `"` and `\`) and short, since it came from outside.
fn error_code(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        // Facebook sends `"error": {"message", "type", "code", …}`.
        Value::Object(o) => match (o.get("type"), o.get("code")) {
            (Some(Value::String(t)), _) => t.clone(),
            (_, Some(Value::Number(n))) => n.to_string(),
            _ => String::new(),
        },
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let clean = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\');
    if clean {
        text
    } else {
        "unrecognized_error".to_owned()
    }
}

fn non_empty(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Reads a token endpoint answer. JSON is what RFC 6749 prescribes; a form-encoded
/// body is what GitHub and old Facebook versions send without `Accept: application/json`.
/// An `error` member counts even with status 200, as GitHub reports errors that way.
pub(crate) fn parse_token_response(
    status: u16,
    body: &[u8],
) -> Result<TokenResponse, FederationError> {
    let fields: Option<Map<String, Value>> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Some(map),
        Ok(_) => None,
        Err(_) => std::str::from_utf8(body)
            .ok()
            .filter(|text| text.contains('='))
            .map(|text| {
                url::form_urlencoded::parse(text.trim().as_bytes())
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect()
            }),
    };
    let failed = |error: Option<String>| FederationError::TokenEndpoint {
        status: Some(status),
        error,
    };
    let Some(fields) = fields else {
        return Err(failed(None));
    };
    if let Some(error) = fields.get("error").filter(|e| !e.is_null()) {
        return Err(failed(Some(error_code(error))));
    }
    if !(200..300).contains(&status) {
        return Err(failed(None));
    }
    let response = TokenResponse {
        access_token: non_empty(fields.get("access_token")),
        id_token: non_empty(fields.get("id_token")),
    };
    if response.access_token.is_none() && response.id_token.is_none() {
        return Err(failed(None));
    }
    Ok(response)
}

/// A userinfo-style answer: status 2xx and a JSON object.
pub(crate) fn parse_json_object(
    status: u16,
    body: &[u8],
) -> Result<Map<String, Value>, FederationError> {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    if !(200..300).contains(&status) {
        let detail = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .map(|e| format!(" ({})", error_code(e)))
            .unwrap_or_default();
        return Err(FederationError::userinfo(
            Some(status),
            format!("HTTP {status}{detail}"),
        ));
    }
    match parsed {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(FederationError::userinfo(
            Some(status),
            "the answer is not a JSON object",
        )),
    }
}

/// Facebook's `appsecret_proof`: HMAC-SHA256 of the access token under the app
/// secret, hex. Required when the app has "Require App Secret" on; harmless otherwise.
pub(crate) fn facebook_appsecret_proof(app_secret: &str, access_token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, app_secret.as_bytes());
    usher_domain::id::hex(ring::hmac::sign(&key, access_token.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_error(status: u16, body: &str) -> (Option<u16>, Option<String>) {
        match parse_token_response(status, body.as_bytes()) {
            Err(FederationError::TokenEndpoint { status, error }) => (status, error),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_answers_in_every_shape() {
        let ok = parse_token_response(
            200,
            br#"{"access_token":"a","id_token":"i","token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token.as_deref(), Some("a"));
        assert_eq!(ok.id_token.as_deref(), Some("i"));
        let form =
            parse_token_response(200, b"access_token=gho_x&scope=user&token_type=bearer").unwrap();
        assert_eq!(form.access_token.as_deref(), Some("gho_x"));
        assert_eq!(
            token_error(
                400,
                r#"{"error":"invalid_grant","error_description":"secret stuff"}"#
            ),
            (Some(400), Some("invalid_grant".into()))
        );
        assert_eq!(
            token_error(200, r#"{"error":"bad_verification_code"}"#),
            (Some(200), Some("bad_verification_code".into()))
        );
        assert_eq!(
            token_error(
                400,
                r#"{"error":{"message":"m","type":"OAuthException","code":100}}"#
            ),
            (Some(400), Some("OAuthException".into()))
        );
        assert_eq!(
            token_error(200, "error=bad_verification_code&error_description=x"),
            (Some(200), Some("bad_verification_code".into()))
        );
        assert_eq!(
            token_error(400, r#"{"error":"bad\"quote"}"#),
            (Some(400), Some("unrecognized_error".into()))
        );
        assert_eq!(token_error(500, "<html>oops</html>"), (Some(500), None));
        assert_eq!(
            token_error(200, r#"{"token_type":"Bearer"}"#),
            (Some(200), None)
        );
        assert_eq!(token_error(200, "[]"), (Some(200), None));
    }

    #[test]
    fn token_response_debug_hides_tokens() {
        let t = TokenResponse {
            access_token: Some("secret-at".into()),
            id_token: None,
        };
        assert!(!format!("{t:?}").contains("secret-at"));
    }

    #[test]
    fn basic_authorization_encodes_both_parts() {
        let header = basic_authorization("id:1", "p%s w");
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"id%3A1:p%25s+w");
    }

    #[test]
    fn userinfo_answers() {
        assert!(parse_json_object(200, br#"{"sub":"x"}"#).is_ok());
        assert!(matches!(
            parse_json_object(401, br#"{"error":"invalid_token"}"#),
            Err(FederationError::UserInfo { status: Some(401), reason }) if reason.contains("invalid_token")
        ));
        assert!(parse_json_object(200, b"[1]").is_err());
    }

    #[test]
    fn appsecret_proof_is_hex_hmac() {
        let proof = facebook_appsecret_proof("secret", "token");
        assert_eq!(proof.len(), 64);
        assert!(proof.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
