//! Usher as a relying party towards upstream identity providers, so people can sign
//! up with an account they already have: any OpenID Connect provider (with presets
//! for Google and Microsoft), Facebook, GitHub, and generic OAuth 2.0 providers with
//! a userinfo endpoint.
//!
//! [`Federation::authorization_url`] says where to send the browser (always with
//! PKCE S256, `state`, and for OpenID Connect a `nonce`); [`Federation::complete`]
//! exchanges the code from the callback and returns an [`ExternalIdentity`]: the
//! `identities` entry of the API connector contract (issuer `google.com`,
//! `facebook.com`, `github.com`, `login.microsoftonline.com`, or the OIDC issuer's
//! host), the verified email if any, and the mapped attribute values.
//!
//! Upstream answers are untrusted: bodies are capped at 1 MiB, redirects are not
//! followed, nothing upstream can make this crate panic, and client secrets, codes
//! and tokens never appear in logs or error messages.

mod claims;
mod discovery;
mod error;
mod federation;
mod http;
mod id_token;
mod oauth;

pub use claims::ExternalIdentity;
pub use error::{ErrorKind, FederationError};
pub use federation::{AuthorizationRequest, Completion, Federation};
/// The provider configuration is the tenant model's (`usher_domain::identity_provider`);
/// re-exported for the callers of this crate.
pub use usher_domain::identity_provider::{
    exact_issuer, identity_issuer, normalize_exact_issuer, shared_identity_issuer, ClaimMapping,
    ClientAuthMethod, EndpointOverrides, FederationSettings, ProviderConfig, ProviderKind,
    SharedIssuer, FACEBOOK_GRAPH_VERSION, GOOGLE_ISSUER, MICROSOFT_CONSUMERS_TENANT_ID,
};

#[cfg(test)]
mod fuzz {
    //! Arbitrary upstream input never panics the parsers.

    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use crate::claims::{self, ProfileContext};
    use crate::{discovery, id_token, oauth};
    use usher_domain::identity_provider::{ClaimMapping, ProviderKind};

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z_.@ ]{0,12}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("id".to_owned()),
                        Just("sub".to_owned()),
                        Just("email".to_owned()),
                        Just("email_verified".to_owned()),
                        Just("primary".to_owned()),
                        Just("verified".to_owned()),
                        Just("error".to_owned()),
                        Just("access_token".to_owned()),
                        Just("keys".to_owned()),
                        Just("data".to_owned()),
                        Just("name".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
            any::<Vec<u8>>(),
            "[a-z_=&%]{0,40}".prop_map(String::into_bytes),
        ]
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("data".into(), other);
                m
            }
        }
    }

    proptest! {
        #[test]
        fn endpoint_answers_never_panic(status in 0u16..600, body in arb_body()) {
            let _ = oauth::parse_token_response(status, &body);
            let _ = oauth::parse_json_object(status, &body);
            let _ = discovery::parse_metadata(&body);
            let _ = discovery::parse_jwks(&body);
            let text = String::from_utf8_lossy(&body);
            let _ = id_token::verify_signature(&text, &[]);
        }

        #[test]
        fn profiles_never_panic(value in arb_json(), path in "[a-z_.0-9]{0,12}") {
            let kinds = [
                ProviderKind::Oidc { issuer: "https://id.example".into() },
                ProviderKind::Microsoft { tenant: "common".into() },
                ProviderKind::Facebook,
                ProviderKind::GitHub,
            ];
            for kind in &kinds {
                let mut mapping = ClaimMapping::defaults_for(kind);
                mapping.insert("city", path.clone());
                let ctx = ProfileContext {
                    provider_id: "p",
                    kind,
                    identity_issuer: "x",
                    exact_issuer: "https://x",
                    mapping: &mapping,
                };
                let map = object(value.clone());
                let _ = claims::oidc_identity(&ctx, map.clone());
                let _ = claims::facebook_identity(&ctx, map.clone());
                let _ = claims::github_identity(&ctx, map.clone(), Some(value.clone()));
                let _ = claims::oauth2_identity(&ctx, &path, map.clone());
                let _ = claims::needs_more_claims(&mapping, &map);
                let _ = id_token::validate_claims(&map, &id_token::Expected {
                    issuer: "https://login.microsoftonline.com/{tenantid}/v2.0",
                    quirk: id_token::IssuerQuirk::MicrosoftTemplate,
                    client_id: "c",
                    nonce: "n",
                    now: 1_790_000_000,
                    access_token: Some("t"),
                });
            }
        }
    }
}
