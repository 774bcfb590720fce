//! The rules a value sent to the admin API must follow: the same as the configuration
//! file's (`usher_config::rules`), copied here in their minimal form because the web
//! layer does not depend on the configuration crate. Each returns the reason a value
//! is refused, which the caller puts next to the property's name.

use std::net::IpAddr;

use usher_domain::user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER};

/// The prefix every user flow id has.
pub const USER_FLOW_PREFIX: &str = "B2X_1_";

/// The built-in identity providers.
pub const BUILT_IN_PROVIDERS: [&str; 2] = [EMAIL_PASSWORD_PROVIDER, EMAIL_OTP_PROVIDER];

/// Application permissions, named as in Graph.
pub const GRAPH_ROLES: [&str; 6] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "APIConnectors.Read.All",
    "APIConnectors.ReadWrite.All",
    "IdentityUserFlow.Read.All",
    "IdentityUserFlow.ReadWrite.All",
];

/// Labels, names and display names.
pub const MAX_LABEL: usize = 256;
pub const MAX_DESCRIPTION: usize = 1024;

/// Identity providers that share an identity issuer with a preset: a generic
/// provider claiming one would sign its users in as that provider's.
const PRESET_IDENTITY_ISSUERS: [&str; 4] = [
    "google.com",
    "facebook.com",
    "github.com",
    "login.microsoftonline.com",
];

fn check_plain(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

/// Text shown to people: no control characters, at most `max` characters, not blank.
pub fn check_display_text(s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    usher_domain::attribute::check_text(s, max).map_err(|e| e.to_string())
}

/// Free text that may be empty (descriptions).
pub fn check_optional_text(s: &str, max: usize) -> Result<(), String> {
    usher_domain::attribute::check_text(s, max).map_err(|e| e.to_string())
}

/// An id of the kind user flows refer to (connectors, identity providers).
fn check_reference_id(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` and `-`".into())
    }
}

pub fn check_connector_id(s: &str) -> Result<(), String> {
    check_reference_id(s)
}

/// An upstream provider's id, which may not be a built-in provider's.
pub fn check_provider_id(s: &str) -> Result<(), String> {
    check_reference_id(s)?;
    if let Some(b) = BUILT_IN_PROVIDERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(s))
    {
        return Err(format!(
            "{b} is a built-in identity provider; choose another id"
        ));
    }
    Ok(())
}

pub fn check_client_id(s: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 128 characters of A-Z, a-z, 0-9, `.`, `_`, `~` and `-`".into())
    }
}

/// A custom attribute's name: its id is `extension_<appId>_<name>`.
pub fn check_attribute_name(s: &str) -> Result<(), String> {
    let starts_with_letter = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !s.chars().all(|c| c.is_ascii_alphanumeric()) || s.len() > 64 {
        return Err(
            "must be 1 to 64 ASCII letters and digits, starting with a letter (such as ShoeSize)"
                .into(),
        );
    }
    Ok(())
}

/// `Partner` and `B2X_1_Partner` both give `B2X_1_Partner`.
pub fn normalize_user_flow_id(s: &str) -> Result<String, String> {
    let name = match s.get(..USER_FLOW_PREFIX.len()) {
        Some(p) if p.eq_ignore_ascii_case(USER_FLOW_PREFIX) => &s[USER_FLOW_PREFIX.len()..],
        _ => s,
    };
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "must be a name of 1 to 64 ASCII letters, digits, `_` and `-`, optionally prefixed with {USER_FLOW_PREFIX}"
        ));
    }
    Ok(format!("{USER_FLOW_PREFIX}{name}"))
}

fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// A URL a connector calls (its target, an OAuth token endpoint): `https` with a
/// public host, unless the operator allows insecure targets. The connector client
/// checks the address it connects to as well; this refuses what is wrong outright.
pub fn check_connector_url(s: &str, allow_insecure: bool) -> Result<(), String> {
    const ALLOW: &str =
        "connector_settings.allow_insecure_targets = true allows them, for development and tests";
    check_plain(s)?;
    if s.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = url::Url::parse(s)
        .map_err(|_| "must be an absolute URL such as https://api.contoso.com/check".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(format!(
                "must use https; plain http targets are refused ({ALLOW})"
            ))
        }
        _ => return Err("must be an https URL".into()),
    }
    let Some(host) = url.host() else {
        return Err("must name a host".into());
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain a user name or password; use the connector's authentication instead"
                .into(),
        );
    }
    if s.contains('#') {
        return Err("must not have a fragment".into());
    }
    let public = match host {
        url::Host::Domain(d) => !is_localhost_name(d),
        url::Host::Ipv4(ip) => usher_connectors::is_public(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => usher_connectors::is_public(IpAddr::V6(ip)),
    };
    if !public && !allow_insecure {
        return Err(format!(
            "names a loopback, private or otherwise non-public address; such targets are refused ({ALLOW})"
        ));
    }
    Ok(())
}

/// A URL at an upstream identity provider: `https`, not on a loopback, link-local or
/// unspecified address, unless the operator allows insecure endpoints.
pub fn check_federation_url(s: &str, allow_insecure: bool) -> Result<(), String> {
    const ALLOW: &str =
        "federation.allow_insecure_endpoints = true allows them, for development and tests";
    check_plain(s)?;
    if s.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = url::Url::parse(s)
        .map_err(|_| "must be an absolute URL such as https://login.contoso.com".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(format!(
                "must use https; plain http endpoints are refused ({ALLOW})"
            ))
        }
        _ => return Err("must be an https URL".into()),
    }
    let Some(host) = url.host() else {
        return Err("must name a host".into());
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if s.contains('#') {
        return Err("must not have a fragment".into());
    }
    let insecure_host = match host {
        url::Host::Domain(d) => is_localhost_name(d),
        url::Host::Ipv4(v4) => {
            v4.is_loopback() || v4.is_unspecified() || v4.is_link_local() || v4.is_broadcast()
        }
        url::Host::Ipv6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
            None => v6.is_loopback() || v6.is_unspecified() || v6.segments()[0] & 0xffc0 == 0xfe80,
        },
    };
    if insecure_host && !allow_insecure {
        return Err(format!(
            "names a loopback, link-local or unspecified address; such endpoints are refused ({ALLOW})"
        ));
    }
    Ok(())
}

/// An OpenID Connect issuer: a federation URL without a query.
pub fn check_oidc_issuer(s: &str, allow_insecure: bool) -> Result<(), String> {
    check_federation_url(s, allow_insecure)?;
    if s.contains('?') {
        return Err("must not have a query".into());
    }
    Ok(())
}

/// Schemes that would run code or read local data in the browser.
const FORBIDDEN_SCHEMES: [&str; 6] = ["javascript", "data", "file", "vbscript", "about", "blob"];

/// A redirect URI: matched exactly, so checked rather than normalised.
pub fn check_redirect_uri(s: &str, public_client: bool) -> Result<(), String> {
    check_plain(s)?;
    if s.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = url::Url::parse(s).map_err(|_| "must be an absolute URI".to_owned())?;
    if s.contains('#') {
        return Err("must not have a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    match url.scheme() {
        "https" if url.host().is_none() => return Err("must name a host".into()),
        "https" => {}
        "http" => match url.host() {
            Some(host) if is_loopback_host(&host) => {}
            _ => {
                return Err(
                    "must use https: plain http is only allowed for localhost, 127.0.0.0/8 and ::1"
                        .into(),
                )
            }
        },
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => {
            return Err(format!("must not use the `{scheme}` scheme"));
        }
        _ if !public_client => {
            return Err(
                "must use https (custom schemes such as com.example.app:/callback are only for public clients)"
                    .into(),
            )
        }
        _ => {}
    }
    Ok(())
}

/// A permission as Graph spells it, found without regard to case.
pub fn parse_role(s: &str) -> Result<&'static str, String> {
    GRAPH_ROLES
        .into_iter()
        .find(|r| r.eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a known permission (known: {})",
                GRAPH_ROLES.join(", ")
            )
        })
}

/// A user name for HTTP Basic authentication (RFC 7617: no colon).
pub fn check_basic_username(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains(':') {
        return Err("must not contain `:` (HTTP Basic separates the password with it)".into());
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// The header an API key is sent in: a field name Usher does not set itself.
pub fn check_api_key_header(s: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if s.is_empty() || !s.chars().all(token) {
        return Err("must be an HTTP header name such as x-api-key".into());
    }
    let lower = s.to_ascii_lowercase();
    let reserved = matches!(
        lower.as_str(),
        "authorization"
            | "host"
            | "accept"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    ) || ["content-", "proxy-", "usher-", "webhook-"]
        .iter()
        .any(|p| lower.starts_with(p));
    if reserved {
        return Err(format!(
            "`{s}` is set by Usher or controls the connection; use another, such as x-api-key"
        ));
    }
    Ok(())
}

/// An OAuth client id (RFC 6749 appendix A.1: visible ASCII and spaces).
pub fn check_oauth_client_id(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 256 || !s.chars().all(|c| (' '..='~').contains(&c)) {
        return Err("must be 1 to 256 visible ASCII characters".into());
    }
    Ok(())
}

/// An OAuth scope (RFC 6749 §3.3): tokens separated by single spaces.
pub fn check_scope(s: &str) -> Result<(), String> {
    let token_char = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
    if s.split(' ')
        .all(|t| !t.is_empty() && t.chars().all(token_char))
    {
        Ok(())
    } else {
        Err(
            "must be one or more scopes separated by single spaces, such as api://contoso/.default"
                .into(),
        )
    }
}

/// The fewest random bytes a signing secret may have (Standard Webhooks: 24 to 64).
const MIN_SIGNING_SECRET_BYTES: usize = 24;

/// A Standard Webhooks signing secret: `whsec_` and the base64 of the key.
pub fn check_signing_secret(s: &str) -> Result<(), String> {
    const SHAPE: &str = "must be a Standard Webhooks secret: whsec_ followed by the base64 of at least 24 random bytes";
    let Some(b64) = s.strip_prefix("whsec_") else {
        return Err(SHAPE.into());
    };
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| SHAPE.to_owned())?;
    if key.len() < MIN_SIGNING_SECRET_BYTES {
        return Err(format!(
            "the signing secret's key is {} bytes; it must be at least {MIN_SIGNING_SECRET_BYTES} random bytes",
            key.len()
        ));
    }
    Ok(())
}

pub fn check_microsoft_tenant(s: &str) -> Result<(), String> {
    let ok = (1..=256).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err("must be common, organizations, consumers, a tenant id or a domain".into())
    }
}

/// One scope of an identity provider's list.
pub fn check_scope_token(s: &str) -> Result<(), String> {
    if s.contains(' ') {
        return Err("must list each scope as its own item".into());
    }
    check_scope(s)
}

/// An upstream claim name or dotted JSON path.
pub fn check_claim_path(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 256 {
        return Err("must be a claim name or dotted path of 1 to 256 characters".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    if s.starts_with('.') || s.ends_with('.') || s.contains("..") {
        return Err("must not have an empty segment".into());
    }
    Ok(())
}

/// A generic OAuth 2.0 provider's identity issuer, which may not be a preset's.
pub fn check_identity_issuer(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err("must be 1 to 255 characters, conventionally the provider's domain".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    if let Some(p) = PRESET_IDENTITY_ISSUERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(s))
    {
        return Err(format!(
            "{p} is the identity issuer of a preset provider; use the provider's own domain"
        ));
    }
    Ok(())
}

/// A choice's stored value: multi-select values are stored comma-joined.
pub fn check_option_value(
    value: &str,
    data_type: usher_domain::DataType,
    max_len: usize,
) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains(',') {
        return Err(
            "must not contain commas (multi-select values are stored comma-separated)".into(),
        );
    }
    usher_domain::attribute::check_text(value, max_len).map_err(|e| e.to_string())?;
    if data_type == usher_domain::DataType::Int && value.parse::<i64>().is_err() {
        return Err("must be a whole number, as the attribute is an int64".into());
    }
    Ok(())
}

/// A language tag (`en`, `nb`, `pt-BR`).
pub fn check_locale(tag: &str) -> Result<(), String> {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    let ok = (2..=8).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a language tag such as en, nb or pt-BR"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_connector_url("https://api.contoso.com/x", false).is_ok());
        assert!(check_connector_url("http://api.contoso.com/x", false).is_err());
        assert!(check_connector_url("https://127.0.0.1/x", false).is_err());
        assert!(check_connector_url("https://10.1.2.3/x", false).is_err());
        assert!(check_connector_url("https://localhost/x", false).is_err());
        assert!(check_connector_url("http://127.0.0.1:8080/x", true).is_ok());
        assert!(check_connector_url("https://u:p@api.contoso.com/", false).is_err());
        assert!(check_connector_url("ftp://api.contoso.com/", true).is_err());
        assert!(check_redirect_uri("https://app.example/cb", false).is_ok());
        assert!(check_redirect_uri("http://app.example/cb", false).is_err());
        assert!(check_redirect_uri("http://127.0.0.1:9/cb", false).is_ok());
        assert!(check_redirect_uri("com.example.app:/cb", true).is_ok());
        assert!(check_redirect_uri("com.example.app:/cb", false).is_err());
        assert!(check_redirect_uri("javascript:alert(1)", true).is_err());
        assert!(check_federation_url("https://127.0.0.1/", false).is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(normalize_user_flow_id("Partner").unwrap(), "B2X_1_Partner");
        assert_eq!(
            normalize_user_flow_id("b2x_1_Partner").unwrap(),
            "B2X_1_Partner"
        );
        assert!(normalize_user_flow_id("B2X_1_").is_err());
        assert!(normalize_user_flow_id("a b").is_err());
        assert!(check_provider_id("emailpassword-oauth").is_err());
        assert!(check_provider_id("Google-OAUTH").is_ok());
        assert!(check_attribute_name("ShoeSize").is_ok());
        assert!(check_attribute_name("Shoe_Size").is_err());
        assert!(check_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(check_signing_secret("whsec_c2hvcnQ=").is_err());
        assert!(check_api_key_header("x-api-key").is_ok());
        assert!(check_api_key_header("Authorization").is_err());
    }
}
