//! The OpenID Connect provider: one module per endpoint, and what they share (codes,
//! redirects, claims).

pub mod authorize;
pub mod discovery;
pub mod introspection;
pub mod logout;
pub mod revocation;
pub mod token;
mod tokens;
pub mod userinfo;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use usher_domain::{attribute::BuiltInAttribute, AuthorizationRequest, Tenant, User, UserFlow};
use usher_oidc::crypto::sha256_hex;
use usher_storage::{AuthorizationCode, Grant, StorageError};

use crate::state::AppState;

/// Appends query parameters to a redirect URI that may already have a query.
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        out.push_str(k);
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
    }
    out
}

/// `redirect_uri?error=…&error_description=…&state=…&iss=…` (RFC 6749 §4.1.2.1, RFC 9207).
pub fn error_redirect_url(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    append_query(redirect_uri, &params)
}

pub fn success_redirect_url(
    redirect_uri: &str,
    code: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = vec![("code", code)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    append_query(redirect_uri, &params)
}

/// Creates the grant and a single-use authorization code for it; returns the code.
pub async fn issue_code(
    state: &AppState,
    request: &AuthorizationRequest,
    user_id: &str,
    auth_time: DateTime<Utc>,
    session_id: Option<&str>,
    extra_claims: Map<String, Value>,
) -> Result<String, StorageError> {
    let now = state.clock.now();
    let grant = Grant {
        id: state.new_id(),
        client_id: request.client_id.clone(),
        user_id: user_id.to_owned(),
        scope: request.scope.clone(),
        auth_time,
        session_id: session_id.map(str::to_owned),
        created_at: now,
        revoked_at: None,
        token_claims: extra_claims.clone(),
    };
    state.store.insert_grant(&grant).await?;
    let code = state.new_token();
    state
        .store
        .insert_authorization_code(&AuthorizationCode {
            code_hash: sha256_hex(code.as_bytes()),
            client_id: request.client_id.clone(),
            user_id: user_id.to_owned(),
            redirect_uri: request.redirect_uri.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            session_id: session_id.map(str::to_owned),
            grant_id: grant.id,
            extra_claims,
            created_at: now,
            expires_at: now + state.settings.lifetimes.authorization_code,
            used_at: None,
        })
        .await?;
    Ok(code)
}

/// The claim an attribute becomes in tokens: the OpenID Connect standard names where
/// there is one (so relying-party libraries understand them), B2C's names otherwise,
/// and `extension_<Name>` for custom attributes.
pub fn claim_name(tenant: &Tenant, attribute_id: &str) -> String {
    match BuiltInAttribute::from_id(attribute_id) {
        Some(BuiltInAttribute::DisplayName) => "name".into(),
        Some(BuiltInAttribute::GivenName) => "given_name".into(),
        Some(BuiltInAttribute::Surname) => "family_name".into(),
        Some(BuiltInAttribute::Email) => "email".into(),
        Some(other) => other.id().into(),
        None => {
            let prefix = format!("extension_{}_", tenant.extensions_app_id);
            match attribute_id.strip_prefix(&prefix) {
                Some(name) => format!("extension_{name}"),
                None => attribute_id.to_owned(),
            }
        }
    }
}

/// The user's claims that the user flow returns to applications.
pub fn user_claims(tenant: &Tenant, user_flow: &UserFlow, user: &User) -> BTreeMap<String, Value> {
    let mut claims = BTreeMap::new();
    for attribute in user_flow.claim_attributes() {
        let value = if BuiltInAttribute::from_id(attribute) == Some(BuiltInAttribute::Email) {
            user.email.clone().map(Value::String)
        } else {
            user.attributes
                .get(attribute)
                .map(usher_domain::AttributeValue::to_json)
        };
        if let Some(v) = value {
            if attribute.eq_ignore_ascii_case("email") {
                claims.insert(
                    "email_verified".to_owned(),
                    Value::Bool(user.email_verified),
                );
            }
            claims.insert(claim_name(tenant, attribute), v);
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_urls() {
        assert_eq!(
            success_redirect_url("https://a.example/cb?x=1", "c d", Some("s&t"), "https://i"),
            "https://a.example/cb?x=1&code=c+d&state=s%26t&iss=https%3A%2F%2Fi"
        );
        assert_eq!(
            error_redirect_url(
                "https://a.example/cb",
                "access_denied",
                "no",
                None,
                "https://i"
            ),
            "https://a.example/cb?error=access_denied&error_description=no&iss=https%3A%2F%2Fi"
        );
    }
}
