//! Reading and setting cookies. Every cookie Usher sets is HttpOnly and SameSite=Lax;
//! Secure when the issuer is https.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{de::DeserializeOwned, Serialize};
use usher_oidc::crypto::HmacKey;

/// Identifies the browser; flows are bound to it.
pub const BROWSER: &str = "usher_browser";
/// The single sign-on session.
pub const SESSION: &str = "usher_session";
/// The demo relying party's state.
pub const TRY: &str = "usher_try";

/// The value of cookie `name` in the request, if any.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value. `max_age` of `None` makes a browser-session cookie.
pub fn set(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `base64url(json).hmac`: state a browser keeps for Usher, tamper-evident. The tag
/// covers `purpose` too, so a value sealed for one cookie is no good in another.
pub fn seal<T: Serialize>(key: &HmacKey, purpose: &str, value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let tag = key.sign_hex(format!("{purpose}:{payload}").as_bytes());
    format!("{payload}.{tag}")
}

/// What [`seal`] sealed for `purpose`, if the value is untouched.
pub fn unseal<T: DeserializeOwned>(key: &HmacKey, purpose: &str, sealed: &str) -> Option<T> {
    let (payload, tag) = sealed.split_once('.')?;
    let expected = key.sign_hex(format!("{purpose}:{payload}").as_bytes());
    if !usher_domain::flow::constant_time_eq(expected.as_bytes(), tag.as_bytes()) {
        return None;
    }
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&json).ok()
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(name: &str, secure: bool) -> HeaderValue {
    set(name, "", Some(0), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; usher_browser=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(get(&h, BROWSER), Some("xyz"));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "c"), None);
    }

    #[test]
    fn sealed_values_are_bound_to_their_key_and_purpose() {
        let master = usher_oidc::crypto::MasterKey::generate();
        let key = master.hmac_key("cookies");
        let sealed = seal(&key, "try", &("state", 42));
        assert_eq!(unseal(&key, "try", &sealed), Some(("state".to_owned(), 42)));
        assert_eq!(
            unseal::<(String, i32)>(&key, "console-login", &sealed),
            None
        );
        let other = master.hmac_key("another purpose");
        assert_eq!(unseal::<(String, i32)>(&other, "try", &sealed), None);
        // One character of the value changed (the first: every bit of it counts).
        let mut tampered = sealed.clone().into_bytes();
        tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_ne!(tampered, sealed);
        assert_eq!(unseal::<(String, i32)>(&key, "try", &tampered), None);
        assert_eq!(unseal::<(String, i32)>(&key, "try", "no-dot"), None);
    }
}
