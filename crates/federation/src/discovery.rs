//! OpenID Connect discovery (OpenID Connect Discovery 1.0 §3–4) and JWK sets: what
//! Usher reads from a provider's `/.well-known/openid-configuration` and `jwks_uri`,
//! and the issuer rules that decide whether a document belongs to the provider that
//! was configured.

use serde_json::{Map, Value};
use url::Url;

/// The part of a provider's metadata Usher uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    /// `None` when the document does not say (the default is `client_secret_basic`).
    pub token_endpoint_auth_methods: Option<Vec<String>>,
}

/// How the discovery document's `issuer` must relate to what was configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IssuerRule {
    /// Equal to this (a trailing slash aside: operators type issuers by hand).
    Exact(String),
    /// Any issuer on this origin: Microsoft's tenant-independent endpoints name a
    /// `{tenantid}` template, and a tenant given by domain name has an issuer with
    /// its GUID instead.
    SameOrigin(String),
}

impl IssuerRule {
    pub fn check(&self, issuer: &str) -> Result<(), String> {
        let ok = match self {
            IssuerRule::Exact(expected) => {
                issuer.trim_end_matches('/') == expected.trim_end_matches('/')
            }
            IssuerRule::SameOrigin(origin) => {
                Url::parse(issuer).is_ok_and(|u| &u.origin().ascii_serialization() == origin)
            }
        };
        if ok {
            Ok(())
        } else {
            // The issuer came from outside: keep the message short.
            let shown: String = issuer.chars().take(120).collect();
            Err(format!(
                "the document's issuer {shown:?} does not belong to the configured provider"
            ))
        }
    }
}

fn string_member(doc: &Map<String, Value>, name: &str) -> Result<String, String> {
    match doc.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("the document has no {name:?}")),
    }
}

pub(crate) fn parse_metadata(body: &[u8]) -> Result<Metadata, String> {
    let Ok(Value::Object(doc)) = serde_json::from_slice(body) else {
        return Err("the document is not a JSON object".into());
    };
    let token_endpoint_auth_methods = match doc.get("token_endpoint_auth_methods_supported") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    };
    Ok(Metadata {
        issuer: string_member(&doc, "issuer")?,
        authorization_endpoint: string_member(&doc, "authorization_endpoint")?,
        token_endpoint: string_member(&doc, "token_endpoint")?,
        userinfo_endpoint: string_member(&doc, "userinfo_endpoint").ok(),
        jwks_uri: string_member(&doc, "jwks_uri")?,
        token_endpoint_auth_methods,
    })
}

/// At most this many keys are kept; real sets have a handful.
const MAX_KEYS: usize = 100;

/// The keys of a JWK set (`{"keys": [...]}`); members that are not objects are
/// dropped, and keys Usher cannot use are left for verification to ignore.
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<Value>, String> {
    let Ok(Value::Object(set)) = serde_json::from_slice(body) else {
        return Err("the JWK set is not a JSON object".into());
    };
    match set.get("keys") {
        Some(Value::Array(keys)) => Ok(keys
            .iter()
            .filter(|k| k.is_object())
            .take(MAX_KEYS)
            .cloned()
            .collect()),
        _ => Err("the JWK set has no \"keys\" array".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_needs_the_core_members() {
        let doc =
            br#"{"issuer":"https://id.example","authorization_endpoint":"https://id.example/a",
            "token_endpoint":"https://id.example/t","jwks_uri":"https://id.example/k",
            "token_endpoint_auth_methods_supported":["client_secret_post", 3]}"#;
        let m = parse_metadata(doc).unwrap();
        assert_eq!(m.issuer, "https://id.example");
        assert_eq!(m.userinfo_endpoint, None);
        assert_eq!(
            m.token_endpoint_auth_methods,
            Some(vec!["client_secret_post".to_owned()])
        );
        assert!(parse_metadata(br#"{"issuer":"x"}"#).is_err());
        assert!(parse_metadata(b"[]").is_err());
        assert!(parse_metadata(b"<html>").is_err());
    }

    #[test]
    fn issuer_rules() {
        let exact = IssuerRule::Exact("https://id.example/".into());
        assert!(exact.check("https://id.example").is_ok());
        assert!(exact.check("https://id.example/").is_ok());
        assert!(exact.check("https://evil.example").is_err());
        let origin = IssuerRule::SameOrigin("https://login.microsoftonline.com".into());
        assert!(origin
            .check("https://login.microsoftonline.com/{tenantid}/v2.0")
            .is_ok());
        assert!(origin
            .check("https://login.evil.com/{tenantid}/v2.0")
            .is_err());
        assert!(origin.check("garbage").is_err());
    }

    #[test]
    fn jwks_keeps_objects() {
        let keys = parse_jwks(br#"{"keys":[{"kid":"a"}, 1, "x"]}"#).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(parse_jwks(br#"{"keys":{}}"#).is_err());
        assert!(parse_jwks(b"null").is_err());
    }
}
