//! The rules a value sent to the admin API must follow: the same as the configuration
//! file's, from `usher_domain::rules`, so that both accept the same values. Each
//! returns the reason a value is refused, which the caller puts next to the property's
//! name.

pub use usher_domain::rules::{
    check_api_key_header, check_attribute_name, check_basic_username, check_claim_path,
    check_client_id, check_connector_id, check_connector_url, check_federation_url,
    check_identity_issuer, check_locale, check_microsoft_tenant, check_oauth_client_id,
    check_oidc_issuer, check_option_value, check_optional_text, check_provider_id,
    check_redirect_uri, check_scope, check_scope_token, check_signing_secret,
    normalize_user_flow_id, parse_role, parse_root_certificates, BUILT_IN_PROVIDERS, GRAPH_ROLES,
    MAX_DESCRIPTION, MAX_LABEL, MAX_ROOT_CERTIFICATES, USER_FLOW_PREFIX,
};

/// Text shown to people: no control characters, at most `max` characters, not blank.
pub fn check_display_text(s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    check_optional_text(s, max)
}
