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

use serde_json::Value;
use usher_domain::{attribute::BuiltInAttribute, Tenant, User, UserFlow};

pub use usher_signup::redirect::{append_query, error_redirect_url, success_redirect_url};

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
