//! The OpenID Provider configuration served at `/.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0 §3), advertising exactly what Usher implements.

use serde_json::{json, Value};

use crate::jose::Algorithm;

/// The provider metadata for `issuer` (given without a trailing slash).
pub fn document(
    issuer: &str,
    signing_alg: Algorithm,
    claims: &[String],
    ui_locales: &[&str],
) -> Value {
    let base = issuer.trim_end_matches('/');
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/jwks"),
        "end_session_endpoint": format!("{base}/logout"),
        "revocation_endpoint": format!("{base}/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": format!("{base}/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // RFC 9207: every authorization response, success or error, carries `iss`.
        "authorization_response_iss_parameter_supported": true,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [signing_alg.as_str()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": claims,
        "prompt_values_supported": ["none", "login", "create"],
        "ui_locales_supported": ui_locales,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        // Discovery defaults this one to true, so it must be denied explicitly.
        "request_uri_parameter_supported": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_endpoints_and_capabilities() {
        let claims = vec!["sub".to_owned(), "email".to_owned()];
        let doc = document(
            "https://id.example/t1",
            Algorithm::ES256,
            &claims,
            &["en", "fr"],
        );
        assert_eq!(doc["issuer"], "https://id.example/t1");
        assert_eq!(
            doc["authorization_endpoint"],
            "https://id.example/t1/authorize"
        );
        assert_eq!(doc["token_endpoint"], "https://id.example/t1/token");
        assert_eq!(doc["revocation_endpoint"], "https://id.example/t1/revoke");
        assert_eq!(
            doc["introspection_endpoint"],
            "https://id.example/t1/introspect"
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["userinfo_endpoint"], "https://id.example/t1/userinfo");
        assert_eq!(doc["jwks_uri"], "https://id.example/t1/jwks");
        assert_eq!(doc["end_session_endpoint"], "https://id.example/t1/logout");
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            json!(["ES256"])
        );
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["response_modes_supported"], json!(["query"]));
        assert_eq!(
            doc["grant_types_supported"],
            json!(["authorization_code", "refresh_token", "client_credentials"])
        );
        assert_eq!(doc["subject_types_supported"], json!(["public"]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(
            doc["scopes_supported"],
            json!(["openid", "profile", "email", "offline_access"])
        );
        assert_eq!(
            doc["prompt_values_supported"],
            json!(["none", "login", "create"])
        );
        assert_eq!(doc["claims_supported"], json!(["sub", "email"]));
        assert_eq!(doc["ui_locales_supported"], json!(["en", "fr"]));
        assert_eq!(doc["claims_parameter_supported"], false);
        assert_eq!(doc["request_parameter_supported"], false);
        assert_eq!(doc["request_uri_parameter_supported"], false);
        let rs = document("https://id.example", Algorithm::RS256, &[], &[]);
        assert_eq!(
            rs["id_token_signing_alg_values_supported"],
            json!(["RS256"])
        );
        assert_eq!(rs["claims_supported"], json!([]));
    }
}
