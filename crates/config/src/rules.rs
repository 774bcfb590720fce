//! The rules each setting must follow, as plain functions over the value alone. They
//! return the message for an error; the loader adds where the value was written.
//! The rules the admin API applies as well live in `usher_domain::rules`, so that both
//! accept the same values; they are re-exported here.

use std::net::{IpAddr, SocketAddr};

use usher_domain::{rules::check_plain, DataType, FailurePolicy, UserInputType};

use crate::settings::{DatabaseKind, SigningAlgorithm, SmtpTls};

pub use usher_domain::rules::{
    check_api_key_header, check_attribute_name, check_basic_username, check_claim_path,
    check_client_id, check_connector_id, check_connector_url, check_federation_url,
    check_identity_issuer, check_locale, check_microsoft_tenant, check_oauth_client_id,
    check_oidc_issuer, check_option_value, check_provider_id, check_redirect_uri, check_scope,
    check_scope_token, check_signing_secret, is_loopback_host, is_public_ip,
    normalize_user_flow_id, parse_role, parse_root_certificates, GRAPH_ROLES,
    MIN_SIGNING_SECRET_BYTES, PRESET_IDENTITY_ISSUERS, USER_FLOW_PREFIX,
};

/// The built-in identity providers; the upstream ones declared under
/// `[[identity_providers]]` come on top.
pub use usher_domain::rules::BUILT_IN_PROVIDERS as IDENTITY_PROVIDERS;

/// Text shown to people: labels, names, descriptions. It may be empty: where a value
/// is required, the loader refuses a blank one first.
pub use usher_domain::rules::check_optional_text as check_display_text;

/// A client secret has to resist guessing on its own: there is no lockout for clients.
pub const MIN_CLIENT_SECRET_LENGTH: usize = 16;

pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        "expected an IP address and port, such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080"
            .to_owned()
    })
}

/// The issuer used when none is set: the listen address, or 127.0.0.1 on its port
/// when the address is not a loopback one (0.0.0.0 is not an address a browser can be
/// sent to, and plain http is only acceptable on loopback).
pub fn default_issuer(listen: SocketAddr) -> String {
    if listen.ip().is_loopback() {
        format!("http://{listen}")
    } else {
        format!("http://127.0.0.1:{}", listen.port())
    }
}

/// Like [`is_loopback_host`], for a bare host name such as an SMTP server's.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The issuer is compared byte for byte by relying parties, so it is checked rather
/// than normalised: what is written is what goes into tokens.
pub fn check_issuer(s: &str) -> Result<(), String> {
    check_plain(s)?;
    let url = url::Url::parse(s)
        .map_err(|_| "must be an absolute URL such as https://login.example.com".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    let Some(host) = url.host() else {
        return Err("must name a host".into());
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    if s.contains('?') || s.contains('#') {
        return Err("must not have a query or fragment".into());
    }
    if s.ends_with('/') {
        return Err(
            "must not end with a slash (tokens carry it exactly as written; remove the `/`)".into(),
        );
    }
    if url.scheme() == "http" && !is_loopback_host(&host) {
        return Err(
            "must use https: plain http is only allowed for localhost, 127.0.0.0/8 and ::1".into(),
        );
    }
    Ok(())
}

pub fn database_kind(url: &str) -> Result<DatabaseKind, String> {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("sqlite:") {
        if url.len() <= "sqlite:".len() {
            return Err("names no database file".into());
        }
        Ok(DatabaseKind::Sqlite)
    } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        // The URL itself is not quoted back: it may hold a password.
        let parsed = url::Url::parse(url).map_err(|_| "is not a valid PostgreSQL URL")?;
        if parsed.host().is_none() {
            return Err("names no PostgreSQL host".into());
        }
        Ok(DatabaseKind::Postgres)
    } else {
        Err("must start with sqlite:// or postgres://".into())
    }
}

/// The URL with any password replaced, for logs.
pub fn redact_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("******")).is_ok() {
                parsed.to_string()
            } else {
                "******".into()
            }
        }
        Ok(_) => url.to_owned(),
        // Unparseable: it might still contain a secret, so show none of it.
        Err(_) if url.contains('@') => "******".into(),
        Err(_) => url.to_owned(),
    }
}

/// 32 hex digits; hyphens (GUID form) are removed and the result lower-cased.
pub fn normalize_extensions_app_id(s: &str) -> Result<String, String> {
    let id: String = s.chars().filter(|&c| c != '-').collect();
    if id.len() != 32 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            "must be 32 hexadecimal digits (a GUID, hyphens allowed), such as d09380e2b4c642b9a203fb816a04a7ad"
                .into(),
        );
    }
    Ok(id.to_ascii_lowercase())
}

/// Derived from the issuer so that it stays the same across restarts without being
/// configured, yet differs between deployments.
pub fn default_extensions_app_id(issuer: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("usher-extensions:{issuer}").as_bytes(),
    );
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn parse_data_type(s: &str) -> Result<DataType, String> {
    match s.to_ascii_lowercase().as_str() {
        "string" => Ok(DataType::String),
        "boolean" => Ok(DataType::Boolean),
        "int" | "int64" => Ok(DataType::Int),
        _ => Err("must be one of string, boolean, int".into()),
    }
}

/// A user flow's identity provider: a built-in one, or one of the upstream providers
/// `declared` under `[[identity_providers]]`, matched without regard to case and
/// returned as the built-in or the declaration spells it.
pub fn parse_identity_provider(s: &str, declared: &[&str]) -> Result<String, String> {
    IDENTITY_PROVIDERS
        .iter()
        .chain(declared)
        .find(|p| p.eq_ignore_ascii_case(s))
        .map(|p| (*p).to_owned())
        .ok_or_else(|| {
            let available: Vec<&str> = IDENTITY_PROVIDERS.iter().chain(declared).copied().collect();
            format!(
                "identity provider `{s}` is not configured (available: {}); upstream providers are declared under [[identity_providers]]",
                available.join(", ")
            )
        })
}

const INPUT_TYPES: [(&str, UserInputType); 7] = [
    ("textBox", UserInputType::TextBox),
    ("emailBox", UserInputType::EmailBox),
    ("numericTextBox", UserInputType::NumericTextBox),
    ("checkboxSingleSelect", UserInputType::CheckboxSingleSelect),
    ("radioSingleSelect", UserInputType::RadioSingleSelect),
    ("dropdownSingleSelect", UserInputType::DropdownSingleSelect),
    ("checkboxMultiSelect", UserInputType::CheckboxMultiSelect),
];

pub fn parse_input_type(s: &str) -> Result<UserInputType, String> {
    INPUT_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<_> = INPUT_TYPES.iter().map(|(n, _)| *n).collect();
            format!("must be one of {}", names.join(", "))
        })
}

/// The name of an input type as the file spells it.
pub fn input_type_name(t: UserInputType) -> &'static str {
    INPUT_TYPES
        .iter()
        .find(|(_, x)| *x == t)
        .map_or("?", |(n, _)| *n)
}

pub fn data_type_name(t: DataType) -> &'static str {
    match t {
        DataType::String => "string",
        DataType::Boolean => "boolean",
        DataType::Int => "int",
    }
}

/// A client secret given already hashed: an Argon2id PHC string.
pub fn check_secret_hash(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('$').collect();
    let b64 = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/'))
    };
    let ok = parts.len() == 6
        && parts[0].is_empty()
        && parts[1] == "argon2id"
        && parts[2].starts_with("v=")
        && parts[3].contains("m=")
        && b64(parts[4])
        && b64(parts[5]);
    if ok {
        Ok(())
    } else {
        Err("must be an Argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)".into())
    }
}

pub fn check_client_secret(s: &str) -> Result<(), String> {
    if s.chars().count() < MIN_CLIENT_SECRET_LENGTH {
        return Err(format!(
            "the client secret is shorter than {MIN_CLIENT_SECRET_LENGTH} characters"
        ));
    }
    Ok(())
}

/// `address` or `Display Name <address>`. Strict enough that the value cannot inject
/// headers or turn into several recipients.
pub fn check_mailbox(s: &str) -> Result<(), String> {
    const SHAPE: &str =
        "must be an address or `Name <address>`, such as Contoso <no-reply@contoso.com>";
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let address = match s.find('<') {
        Some(open) => {
            let name = s[..open].trim();
            if name
                .chars()
                .any(|c| matches!(c, '"' | ',' | ';' | '<' | '>' | '@'))
            {
                return Err(format!("{SHAPE}; the name must not contain \" , ; < > @"));
            }
            s[open + 1..]
                .strip_suffix('>')
                .ok_or_else(|| SHAPE.to_owned())?
        }
        None => s.trim(),
    };
    let Some((local, domain)) = address.split_once('@') else {
        return Err(SHAPE.into());
    };
    let bad = |p: &str| {
        p.is_empty()
            || p.chars()
                .any(|c| c.is_whitespace() || matches!(c, '@' | '<' | '>' | ',' | ';' | '"'))
    };
    if bad(local) || bad(domain) {
        return Err(SHAPE.into());
    }
    Ok(())
}

pub fn check_smtp_host(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains("://") || s.contains(':') && !s.starts_with('[') && s.parse::<IpAddr>().is_err() {
        return Err(
            "must be a host name only, such as smtp.example.com (set the port with `port`)".into(),
        );
    }
    check_plain(s)
}

/// true/false, also 1/0, yes/no, on/off, as environment variables are often written.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

pub fn parse_signing_algorithm(s: &str) -> Result<SigningAlgorithm, String> {
    match s.to_ascii_uppercase().as_str() {
        "ES256" => Ok(SigningAlgorithm::ES256),
        "RS256" => Ok(SigningAlgorithm::RS256),
        _ => Err("must be ES256 or RS256".into()),
    }
}

/// Whether email goes out by SMTP (`true`) or into files (`false`).
pub fn parse_delivery_is_smtp(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "file" => Ok(false),
        "smtp" => Ok(true),
        _ => Err("must be file or smtp".into()),
    }
}

pub fn parse_smtp_tls(s: &str) -> Result<SmtpTls, String> {
    match s.to_ascii_lowercase().as_str() {
        "starttls" => Ok(SmtpTls::StartTls),
        "tls" => Ok(SmtpTls::Tls),
        "none" => Ok(SmtpTls::None),
        _ => Err("must be starttls, tls or none".into()),
    }
}

/// The usual port for each TLS mode: implicit TLS listens on 465, not 587.
pub fn default_smtp_port(tls: SmtpTls) -> u16 {
    match tls {
        SmtpTls::Tls => 465,
        SmtpTls::StartTls | SmtpTls::None => 587,
    }
}

/// The body of a secret file, without the trailing newline editors add.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(value.to_owned())
}

/// The bytes of a file that must exist and not be empty (a PKCS#12 certificate).
pub fn read_nonempty_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(bytes)
}

/// The text of a file that must exist and not be empty (a PEM certificate or key),
/// as it is: PEM is not parsed here.
pub fn read_nonempty_text_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = read_nonempty_file(path)?;
    String::from_utf8(bytes).map_err(|_| format!("{} is not a text (PEM) file", path.display()))
}

/// The URL with every query value replaced, for logs: an Azure Functions target
/// carries its key as `?code=…`.
pub fn redact_url_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.query().is_some() => {
            let names: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
            {
                let mut pairs = parsed.query_pairs_mut();
                pairs.clear();
                for name in &names {
                    pairs.append_pair(name, "******");
                }
            }
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) if url.contains('?') => "******".into(),
        Err(_) => url.to_owned(),
    }
}

/// The total time for a call, retries included, must leave room for one attempt.
pub fn check_connector_budget(timeout_ms: u64, budget_ms: u64) -> Result<(), String> {
    if budget_ms < timeout_ms {
        return Err(format!(
            "budget_ms ({budget_ms}) must be at least timeout_ms ({timeout_ms}): the budget covers every attempt"
        ));
    }
    Ok(())
}

/// `contract`: which of Entra's two wire contracts a connector speaks.
pub fn parse_contract(s: &str) -> Result<bool, String> {
    match s {
        usher_domain::ConnectorContract::API_CONNECTOR => Ok(false),
        usher_domain::ConnectorContract::EXTENSION => Ok(true),
        _ => Err(format!(
            "must be {} (Entra's API connectors) or {} (Entra External ID)",
            usher_domain::ConnectorContract::API_CONNECTOR,
            usher_domain::ConnectorContract::EXTENSION
        )),
    }
}

/// Why connector `id` cannot be listed at `step`.
pub fn slot_refusal(
    id: &str,
    contract: &usher_domain::ConnectorContract,
    step: usher_domain::ConnectorStep,
) -> String {
    if let usher_domain::ConnectorContract::CustomAuthenticationExtension {
        event: Some(event),
        ..
    } = contract
    {
        format!(
            "{id} is an extension for {}, not for {}",
            event.extension_event().unwrap_or_default(),
            step.config_name()
        )
    } else if contract.is_extension() {
        format!(
            "{id} is a custom authentication extension, which has no event at {}: extensions run at attribute_collection_start, post_attribute_collection, pre_token_issuance and email_otp_send",
            step.config_name()
        )
    } else {
        format!(
            "{id} speaks the 1.0.0 API connector contract, which cannot deliver codes: email_otp_send takes a custom authentication extension"
        )
    }
}

/// An issued token's `resource_id`: `api://<host>/<app id>`.
pub fn check_resource_id(s: &str) -> Result<(), String> {
    usher_domain::connector::parse_resource_id(s)
        .map(drop)
        .ok_or_else(|| "must be api://<the target URL's host>/<app id>".to_owned())
}

pub fn parse_failure_policy(s: &str) -> Result<FailurePolicy, String> {
    match s.to_ascii_lowercase().as_str() {
        "block" => Ok(FailurePolicy::Block),
        "continue" => Ok(FailurePolicy::Continue),
        _ => Err("must be block or continue".into()),
    }
}

/// Each way a connector can authenticate, as the file spells it, with the settings
/// that belong to it (besides `type`).
pub const AUTHENTICATION_TYPES: [(&str, &[&str]); 6] = [
    ("none", &[]),
    ("basic", &["username", "password"]),
    ("clientCertificate", &["certificates"]),
    ("apiKey", &["header", "value"]),
    (
        "oauthClientCredentials",
        &["token_url", "client_id", "client_secret", "scope"],
    ),
    ("issuedToken", &["resource_id", "caller_id"]),
];

/// A table of types (as the file spells them) and the settings each one has: the
/// authentication types of connectors and the types of identity providers.
type TypeTable = [(&'static str, &'static [&'static str])];

/// The type named `s`, in any case, as the table spells it.
fn parse_type(table: &TypeTable, s: &str) -> Result<&'static str, String> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(name, _)| *name)
        .ok_or_else(|| {
            let names: Vec<_> = table.iter().map(|(n, _)| *n).collect();
            format!("must be one of {}", names.join(", "))
        })
}

/// The settings of a type (as [`parse_type`] returns it).
fn type_fields(table: &TypeTable, kind: &str) -> &'static [&'static str] {
    table
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(&[], |(_, fields)| fields)
}

/// The type a type-specific setting belongs to.
fn type_of(table: &TypeTable, field: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(_, fields)| fields.contains(&field))
        .map(|(name, _)| *name)
}

/// The authentication type as the file spells it (`basic`, `apiKey`, …), in any case.
pub fn parse_authentication_type(s: &str) -> Result<&'static str, String> {
    parse_type(&AUTHENTICATION_TYPES, s)
}

/// The settings of an authentication type (as returned by
/// [`parse_authentication_type`]).
pub fn authentication_fields(kind: &str) -> &'static [&'static str] {
    type_fields(&AUTHENTICATION_TYPES, kind)
}

/// The authentication type a setting belongs to.
pub fn authentication_type_of(field: &str) -> Option<&'static str> {
    type_of(&AUTHENTICATION_TYPES, field)
}

/// When a client certificate was uploaded: an RFC 3339 date and time with an offset.
pub fn parse_uploaded_at(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            "must be an RFC 3339 date and time with its offset, such as 2026-01-15T00:00:00Z"
                .to_owned()
        })
}

/// Each kind of upstream identity provider, as the file spells its `type`, with the
/// settings of a provider entry that belong to that kind alone.
pub const PROVIDER_TYPES: [(&str, &[&str]); 6] = [
    ("oidc", &["issuer"]),
    ("google", &[]),
    ("microsoft", &["tenant"]),
    ("facebook", &[]),
    ("github", &[]),
    (
        "oauth2",
        &[
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "subject_claim",
            "identity_issuer",
        ],
    ),
];

/// The settings every provider entry may have, whatever its type.
pub const PROVIDER_COMMON_KEYS: [&str; 9] = [
    "id",
    "type",
    "display_name",
    "client_id",
    "client_secret",
    "scopes",
    "client_auth",
    "claims",
    "endpoints",
];

/// What `[identity_providers.endpoints]` may override, and for which types: each
/// type uses only some of them (the rest it would silently ignore).
pub const PROVIDER_ENDPOINTS: [(&str, &[&str]); 6] = [
    ("issuer", &["google", "microsoft"]),
    (
        "authorization_endpoint",
        &["oidc", "google", "microsoft", "facebook", "github"],
    ),
    (
        "token_endpoint",
        &["oidc", "google", "microsoft", "facebook", "github"],
    ),
    (
        "userinfo_endpoint",
        &["oidc", "google", "microsoft", "facebook", "github"],
    ),
    ("emails_endpoint", &["github"]),
    ("jwks_uri", &["oidc", "google", "microsoft"]),
];

/// A provider's `type`, in any case, as [`PROVIDER_TYPES`] spells it.
pub fn parse_provider_type(s: &str) -> Result<&'static str, String> {
    parse_type(&PROVIDER_TYPES, s)
}

/// The settings of a provider type (as returned by [`parse_provider_type`]) besides
/// the common ones.
pub fn provider_fields(kind: &str) -> &'static [&'static str] {
    type_fields(&PROVIDER_TYPES, kind)
}

/// The provider type a type-specific setting belongs to.
pub fn provider_type_of(field: &str) -> Option<&'static str> {
    type_of(&PROVIDER_TYPES, field)
}

/// The types that use an endpoint override.
pub fn endpoint_types(endpoint: &str) -> &'static [&'static str] {
    PROVIDER_ENDPOINTS
        .iter()
        .find(|(name, _)| *name == endpoint)
        .map_or(&[], |(_, kinds)| kinds)
}

pub fn parse_client_auth(
    s: &str,
) -> Result<usher_domain::identity_provider::ClientAuthMethod, String> {
    match s.to_ascii_lowercase().as_str() {
        "client_secret_basic" => {
            Ok(usher_domain::identity_provider::ClientAuthMethod::ClientSecretBasic)
        }
        "client_secret_post" => {
            Ok(usher_domain::identity_provider::ClientAuthMethod::ClientSecretPost)
        }
        _ => Err("must be client_secret_basic or client_secret_post".into()),
    }
}

/// The scopes of an OpenID Connect provider: without `openid` there is no ID token.
pub fn check_oidc_scopes(scopes: &[&str]) -> Result<(), String> {
    if scopes.contains(&"openid") {
        Ok(())
    } else {
        Err("must include openid: an OpenID Connect provider returns no ID token without it".into())
    }
}

/// Edit distance, to suggest the key that was probably meant.
pub(crate) fn closest<'a>(key: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = if ca == *cb {
                    prev
                } else {
                    1 + prev.min(cur).min(row[j])
                };
                prev = cur;
            }
        }
        row[b.len()]
    }
    let key = key.to_ascii_lowercase();
    // A shortened key (`pre_token` for `pre_token_issuance`) is far in edits but
    // plainly meant.
    if key.len() >= 3 {
        if let Some(c) = candidates
            .iter()
            .find(|c| c.to_ascii_lowercase().starts_with(&key))
        {
            return Some(c);
        }
    }
    candidates
        .iter()
        .map(|c| (distance(&key, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use usher_domain::user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER};

    use super::*;

    #[test]
    fn listen() {
        assert_eq!(parse_listen("0.0.0.0:8080").unwrap().port(), 8080);
        assert!(parse_listen("[::]:80").is_ok());
        assert!(parse_listen("localhost:8080").is_err());
        assert!(parse_listen("8080").is_err());
    }

    #[test]
    fn default_issuer_uses_a_reachable_loopback_address() {
        assert_eq!(
            default_issuer("127.0.0.1:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            default_issuer("0.0.0.0:9000".parse().unwrap()),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            default_issuer("[::1]:80".parse().unwrap()),
            "http://[::1]:80"
        );
    }

    #[test]
    fn issuer() {
        assert!(check_issuer("https://login.example.com").is_ok());
        assert!(check_issuer("https://example.com/usher").is_ok());
        assert!(check_issuer("http://localhost:8080").is_ok());
        assert!(check_issuer("http://127.1.2.3").is_ok());
        assert!(check_issuer("http://[::1]:8080").is_ok());
        assert!(check_issuer("http://login.example.com")
            .unwrap_err()
            .contains("https"));
        assert!(check_issuer("http://10.0.0.1").is_err());
        assert!(check_issuer("https://login.example.com/")
            .unwrap_err()
            .contains("slash"));
        assert!(check_issuer("login.example.com").is_err());
        assert!(check_issuer("ftp://example.com").is_err());
        assert!(check_issuer("https://example.com?x=1").is_err());
        assert!(check_issuer("https://example.com#x").is_err());
        assert!(check_issuer("https://u:p@example.com").is_err());
        assert!(check_issuer(" https://example.com").is_err());
    }

    #[test]
    fn database_urls() {
        assert_eq!(
            database_kind("sqlite://./usher-data/usher.db"),
            Ok(DatabaseKind::Sqlite)
        );
        assert_eq!(database_kind("sqlite::memory:"), Ok(DatabaseKind::Sqlite));
        assert_eq!(
            database_kind("postgres://usher@db/usher"),
            Ok(DatabaseKind::Postgres)
        );
        assert_eq!(
            database_kind("postgresql://u:p@db:5432/usher"),
            Ok(DatabaseKind::Postgres)
        );
        assert!(database_kind("mysql://db/usher").is_err());
        assert!(database_kind("sqlite:").is_err());
        let e = database_kind("postgres://u:secretpw@").unwrap_err();
        assert!(!e.contains("secretpw"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url_password("postgres://u:secretpw@db/usher"),
            "postgres://u:******@db/usher"
        );
        assert_eq!(
            redact_url_password("postgres://u@db/usher"),
            "postgres://u@db/usher"
        );
        assert_eq!(redact_url_password("nonsense u:secret@x"), "******");
    }

    #[test]
    fn extensions_app_id() {
        assert_eq!(
            normalize_extensions_app_id("D09380E2-B4C6-42B9-A203-FB816A04A7AD").unwrap(),
            "d09380e2b4c642b9a203fb816a04a7ad"
        );
        assert!(normalize_extensions_app_id("d09380e2b4c642b9a203fb816a04a7a").is_err());
        assert!(normalize_extensions_app_id("g09380e2b4c642b9a203fb816a04a7ad").is_err());
        let d = default_extensions_app_id("https://login.example.com");
        assert_eq!(d.len(), 32);
        assert_eq!(normalize_extensions_app_id(&d).unwrap(), d);
        assert_ne!(d, default_extensions_app_id("https://other.example.com"));
        // SHA-256("usher-extensions:http://127.0.0.1:8080"), first 16 bytes.
        let full = ring::digest::digest(
            &ring::digest::SHA256,
            b"usher-extensions:http://127.0.0.1:8080",
        );
        let hex: String = full.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            default_extensions_app_id("http://127.0.0.1:8080"),
            hex[..32]
        );
    }

    #[test]
    fn data_types() {
        assert_eq!(parse_data_type("int"), Ok(DataType::Int));
        assert_eq!(parse_data_type("Boolean"), Ok(DataType::Boolean));
        assert!(parse_data_type("float").is_err());
    }

    #[test]
    fn identity_providers() {
        assert_eq!(
            parse_identity_provider("emailpassword-oauth", &[]).unwrap(),
            EMAIL_PASSWORD_PROVIDER
        );
        assert_eq!(
            parse_identity_provider("EmailOtpSignup-oauth", &[]).unwrap(),
            EMAIL_OTP_PROVIDER
        );
        let e = parse_identity_provider("Google-OAUTH", &[]).unwrap_err();
        assert!(e.contains("not configured"), "{e}");
        assert!(e.contains("[[identity_providers]]"), "{e}");
        // Declared providers count too, as declared.
        let declared = ["Google-OAUTH", "contoso.oidc"];
        assert_eq!(
            parse_identity_provider("google-oauth", &declared).unwrap(),
            "Google-OAUTH"
        );
        assert_eq!(
            parse_identity_provider("CONTOSO.OIDC", &declared).unwrap(),
            "contoso.oidc"
        );
        assert_eq!(
            parse_identity_provider("EmailPassword-OAUTH", &declared).unwrap(),
            EMAIL_PASSWORD_PROVIDER
        );
        let e = parse_identity_provider("Facebook-OAUTH", &declared).unwrap_err();
        assert!(
            e.contains(
                "available: EmailPassword-OAUTH, EmailOtpSignup-OAUTH, Google-OAUTH, contoso.oidc"
            ),
            "{e}"
        );
    }

    #[test]
    fn input_types() {
        assert_eq!(parse_input_type("textBox"), Ok(UserInputType::TextBox));
        assert_eq!(
            parse_input_type("RadioSingleSelect"),
            Ok(UserInputType::RadioSingleSelect)
        );
        assert!(parse_input_type("slider").is_err());
        for (name, t) in INPUT_TYPES {
            assert_eq!(input_type_name(t), name);
        }
    }

    #[test]
    fn secret_hashes() {
        assert!(check_secret_hash(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
        )
        .is_ok());
        assert!(check_secret_hash("$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").is_err());
        assert!(check_secret_hash("plaintext").is_err());
        assert!(check_client_secret("short").is_err());
        assert!(check_client_secret("a-long-enough-secret").is_ok());
    }

    #[test]
    fn mailboxes() {
        assert!(check_mailbox("Usher <no-reply@localhost>").is_ok());
        assert!(check_mailbox("no-reply@contoso.com").is_ok());
        assert!(check_mailbox("<no-reply@contoso.com>").is_ok());
        assert!(check_mailbox("Contoso").is_err());
        assert!(check_mailbox("Contoso <no-reply@contoso.com").is_err());
        assert!(check_mailbox("a@b.com, c@d.com").is_err());
        assert!(check_mailbox("Contoso, Inc <a@b.com>").is_err());
        assert!(check_mailbox("Contoso <a@b.com>\r\nBcc: x@y.com").is_err());
    }

    #[test]
    fn smtp_hosts() {
        assert!(check_smtp_host("smtp.contoso.com").is_ok());
        assert!(check_smtp_host("::1").is_ok());
        assert!(check_smtp_host("smtp.contoso.com:587").is_err());
        assert!(check_smtp_host("smtp://smtp.contoso.com").is_err());
        assert!(check_smtp_host("").is_err());
        assert!(is_loopback_name("localhost"));
        assert!(is_loopback_name("127.0.0.1"));
        assert!(is_loopback_name("[::1]"));
        assert!(!is_loopback_name("smtp.contoso.com"));
    }

    #[test]
    fn enums() {
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(
            parse_signing_algorithm("rs256"),
            Ok(SigningAlgorithm::RS256)
        );
        assert!(parse_signing_algorithm("HS256").is_err());
        assert_eq!(parse_delivery_is_smtp("SMTP"), Ok(true));
        assert!(parse_delivery_is_smtp("sendmail").is_err());
        assert_eq!(parse_smtp_tls("StartTLS"), Ok(SmtpTls::StartTls));
        assert!(parse_smtp_tls("ssl").is_err());
        assert_eq!(default_smtp_port(SmtpTls::Tls), 465);
        assert_eq!(default_smtp_port(SmtpTls::StartTls), 587);
    }

    #[test]
    fn query_redaction() {
        assert_eq!(
            redact_url_query("https://f.azurewebsites.net/api/check?code=s3cret&clientId=x"),
            "https://f.azurewebsites.net/api/check?code=******&clientId=******"
        );
        assert_eq!(
            redact_url_query("https://api.contoso.com/check"),
            "https://api.contoso.com/check"
        );
        assert_eq!(redact_url_query("not a url?key=s3cret"), "******");
    }

    #[test]
    fn connector_budgets() {
        assert!(check_connector_budget(10_000, 20_000).is_ok());
        assert!(check_connector_budget(10_000, 10_000).is_ok());
        assert!(check_connector_budget(30_000, 20_000)
            .unwrap_err()
            .contains("at least timeout_ms (30000)"));
    }

    #[test]
    fn failure_policies() {
        assert_eq!(parse_failure_policy("block"), Ok(FailurePolicy::Block));
        assert_eq!(
            parse_failure_policy("Continue"),
            Ok(FailurePolicy::Continue)
        );
        assert!(parse_failure_policy("retry").is_err());
    }

    #[test]
    fn authentication_types() {
        assert_eq!(parse_authentication_type("apikey"), Ok("apiKey"));
        assert_eq!(
            parse_authentication_type("ClientCertificate"),
            Ok("clientCertificate")
        );
        assert!(parse_authentication_type("digest")
            .unwrap_err()
            .contains("oauthClientCredentials"));
        assert_eq!(authentication_fields("basic"), ["username", "password"]);
        assert!(authentication_fields("none").is_empty());
        assert_eq!(
            authentication_type_of("token_url"),
            Some("oauthClientCredentials")
        );
        assert_eq!(
            authentication_type_of("certificates"),
            Some("clientCertificate")
        );
        assert_eq!(authentication_type_of("type"), None);
        // Every setting belongs to one type only, so an error can name its type.
        let mut all: Vec<&str> = AUTHENTICATION_TYPES
            .iter()
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn upload_times() {
        assert_eq!(
            parse_uploaded_at("2026-01-15T00:00:00Z")
                .unwrap()
                .timestamp(),
            1_768_435_200
        );
        assert_eq!(
            parse_uploaded_at("2026-01-15T01:00:00+01:00")
                .unwrap()
                .timestamp(),
            1_768_435_200
        );
        assert!(parse_uploaded_at("2026-01-15T00:00:00").is_err());
        assert!(parse_uploaded_at("2026-01-15").is_err());
        assert!(parse_uploaded_at("yesterday").is_err());
    }

    #[test]
    fn nonempty_files() {
        let dir = std::env::temp_dir().join(format!("usher-config-rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let full = dir.join("full.pem");
        let empty = dir.join("empty.pem");
        let binary = dir.join("binary.pfx");
        std::fs::write(&full, "-----BEGIN CERTIFICATE-----\n").unwrap();
        std::fs::write(&empty, "").unwrap();
        std::fs::write(&binary, [0x30, 0x82, 0xff, 0xfe]).unwrap();
        assert_eq!(
            read_nonempty_file(&binary).unwrap(),
            [0x30, 0x82, 0xff, 0xfe]
        );
        assert!(read_nonempty_text_file(&full)
            .unwrap()
            .starts_with("-----BEGIN"));
        assert!(read_nonempty_file(&empty).unwrap_err().contains("is empty"));
        assert!(read_nonempty_text_file(&binary)
            .unwrap_err()
            .contains("not a text"));
        assert!(read_nonempty_file(&dir.join("missing"))
            .unwrap_err()
            .contains("cannot read"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn provider_types() {
        assert_eq!(parse_provider_type("OIDC"), Ok("oidc"));
        assert_eq!(parse_provider_type("GitHub"), Ok("github"));
        assert_eq!(parse_provider_type("oauth2"), Ok("oauth2"));
        assert!(parse_provider_type("saml")
            .unwrap_err()
            .contains("oidc, google, microsoft, facebook, github, oauth2"));
        assert_eq!(provider_fields("microsoft"), ["tenant"]);
        assert!(provider_fields("google").is_empty());
        assert_eq!(provider_fields("oauth2").len(), 5);
        assert_eq!(provider_type_of("issuer"), Some("oidc"));
        assert_eq!(provider_type_of("tenant"), Some("microsoft"));
        assert_eq!(provider_type_of("identity_issuer"), Some("oauth2"));
        assert_eq!(provider_type_of("client_id"), None);
        assert_eq!(endpoint_types("emails_endpoint"), ["github"]);
        assert_eq!(endpoint_types("issuer"), ["google", "microsoft"]);
        assert!(endpoint_types("token_endpoint").contains(&"facebook"));
        assert!(!endpoint_types("token_endpoint").contains(&"oauth2"));
        assert!(endpoint_types("nonsense").is_empty());
        // Every type-specific setting belongs to one type only, and none is common, so
        // an error can name its type.
        let mut all: Vec<&str> = PROVIDER_TYPES
            .iter()
            .flat_map(|(_, f)| f.iter().copied())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(all.iter().all(|f| !PROVIDER_COMMON_KEYS.contains(f)));
        // Every endpoint names only real types.
        for (_, kinds) in PROVIDER_ENDPOINTS {
            assert!(kinds.iter().all(|k| parse_provider_type(k) == Ok(*k)));
        }
    }

    #[test]
    fn client_auth_methods() {
        use usher_domain::identity_provider::ClientAuthMethod;
        assert_eq!(
            parse_client_auth("client_secret_basic"),
            Ok(ClientAuthMethod::ClientSecretBasic)
        );
        assert_eq!(
            parse_client_auth("Client_Secret_Post"),
            Ok(ClientAuthMethod::ClientSecretPost)
        );
        assert!(parse_client_auth("private_key_jwt")
            .unwrap_err()
            .contains("client_secret_basic or client_secret_post"));
    }

    #[test]
    fn oidc_scopes() {
        assert!(check_oidc_scopes(&["email", "openid"]).is_ok());
        assert!(check_oidc_scopes(&["email", "profile"])
            .unwrap_err()
            .contains("must include openid"));
        assert!(check_oidc_scopes(&["OpenID"]).is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("log_code", &["log_codes", "from"]),
            Some("log_codes")
        );
        assert_eq!(closest("isuer", &["issuer", "listen"]), Some("issuer"));
        assert_eq!(closest("zzzzzz", &["issuer", "listen"]), None);
        assert_eq!(
            closest(
                "pre_token",
                &["post_federation_signup", "pre_token_issuance"]
            ),
            Some("pre_token_issuance")
        );
    }
}
