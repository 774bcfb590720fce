//! The rules each setting must follow, as plain functions over the value alone. They
//! return the message for an error; the loader adds where the value was written.
//! The admin API can apply the same rules to what it is sent.

use std::net::{IpAddr, SocketAddr};

use usher_domain::{
    attribute::check_text,
    user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER},
    DataType, FailurePolicy, UserInputType,
};

use crate::settings::{DatabaseKind, SigningAlgorithm, SmtpTls};

/// The prefix every user flow id has.
pub const USER_FLOW_PREFIX: &str = "B2X_1_";

/// Application permissions a client may be granted for the client-credentials grant.
pub const GRAPH_ROLES: [&str; 6] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "APIConnectors.Read.All",
    "APIConnectors.ReadWrite.All",
    "IdentityUserFlow.Read.All",
    "IdentityUserFlow.ReadWrite.All",
];

/// The built-in identity providers; the upstream ones declared under
/// `[[identity_providers]]` come on top.
pub const IDENTITY_PROVIDERS: [&str; 2] = [EMAIL_PASSWORD_PROVIDER, EMAIL_OTP_PROVIDER];

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

/// Whether plain http to this host stays on the machine.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Like [`is_loopback_host`], for a bare host name such as an SMTP server's.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_plain(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
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

pub fn check_attribute_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter || !s.chars().all(|c| c.is_ascii_alphanumeric()) || s.len() > 64 {
        return Err(
            "must be 1 to 64 ASCII letters and digits, starting with a letter (such as ShoeSize)"
                .into(),
        );
    }
    Ok(())
}

pub fn parse_data_type(s: &str) -> Result<DataType, String> {
    match s.to_ascii_lowercase().as_str() {
        "string" => Ok(DataType::String),
        "boolean" => Ok(DataType::Boolean),
        "int" | "int64" => Ok(DataType::Int),
        _ => Err("must be one of string, boolean, int".into()),
    }
}

/// `partner` and `B2X_1_partner` both give `B2X_1_partner`.
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

/// A choice's stored value. Multi-select values are stored comma-joined, hence no
/// commas.
pub fn check_option_value(value: &str, data_type: DataType, max_len: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.contains(',') {
        return Err(
            "must not contain commas (multi-select values are stored comma-separated)".into(),
        );
    }
    check_text(value, max_len).map_err(|e| e.to_string())?;
    if data_type == DataType::Int && value.parse::<i64>().is_err() {
        return Err("must be a whole number, as the attribute is an int".into());
    }
    Ok(())
}

/// A language tag as used for per-locale labels (`en`, `nb`, `pt-BR`).
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

/// Text shown to people: labels, names, descriptions.
pub fn check_display_text(s: &str, max: usize) -> Result<(), String> {
    check_text(s, max).map_err(|e| e.to_string())
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

/// Schemes that would run code or read local data in the browser if redirected to.
const FORBIDDEN_SCHEMES: [&str; 6] = ["javascript", "data", "file", "vbscript", "about", "blob"];

/// A redirect URI (RFC 6749 §3.1.2, RFC 8252 for native apps). Matching is exact, so
/// the URI is checked, not normalised.
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

/// An API connector's id: what user flows list in their connector slots.
pub fn check_connector_id(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err("must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` and `-`".into())
    }
}

/// Whether an address is one a connector may call without the operator allowing
/// non-public targets: not loopback, private, link-local, shared, documentation,
/// multicast or otherwise reserved. (The connector client checks the address it
/// actually connects to as well; this catches what the configuration names outright.)
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(a == 0
                || a == 10
                || a == 127
                || a >= 224
                || (a == 100 && b & 0xc0 == 64)
                || (a == 169 && b == 254)
                || (a == 172 && b & 0xf0 == 16)
                || (a == 192 && b == 168)
                || (a == 192 && b == 0 && (c == 0 || c == 2))
                || (a == 192 && b == 88 && c == 99)
                || (a == 198 && b & 0xfe == 18)
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_ip(IpAddr::V4([a, b, c, d].into()));
            }
            !(s[..6] == [0; 6] // ::, ::1 and the deprecated IPv4-compatible addresses
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
                || (s[0] == 0x100 && s[1..4] == [0; 3]) // discard-only
                || s[0] & 0xfe00 == 0xfc00 // unique local
                || s[0] & 0xffc0 == 0xfe80 // link-local
                || s[0] & 0xffc0 == 0xfec0 // site-local (deprecated)
                || s[0] & 0xff00 == 0xff00 // multicast
                || (s[0] == 0x2001 && s[1] == 0xdb8)) // documentation
        }
    }
}

/// `localhost` and names under it, which always mean this machine.
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// A URL Usher calls: a connector's target, or an OAuth token endpoint. `https` with
/// a public host, unless the operator allows insecure targets (development, tests).
pub fn check_connector_url(s: &str, allow_insecure_targets: bool) -> Result<(), String> {
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
        "http" if allow_insecure_targets => {}
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
        url::Host::Ipv4(ip) => is_public_ip(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => is_public_ip(IpAddr::V6(ip)),
    };
    if !public && !allow_insecure_targets {
        return Err(format!(
            "names a loopback, private or otherwise non-public address; such targets are refused ({ALLOW})"
        ));
    }
    Ok(())
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

pub fn parse_failure_policy(s: &str) -> Result<FailurePolicy, String> {
    match s.to_ascii_lowercase().as_str() {
        "block" => Ok(FailurePolicy::Block),
        "continue" => Ok(FailurePolicy::Continue),
        _ => Err("must be block or continue".into()),
    }
}

/// Each way a connector can authenticate, as the file spells it, with the settings
/// that belong to it (besides `type`).
pub const AUTHENTICATION_TYPES: [(&str, &[&str]); 5] = [
    ("none", &[]),
    ("basic", &["username", "password"]),
    ("clientCertificate", &["certificates"]),
    ("apiKey", &["header", "value"]),
    (
        "oauthClientCredentials",
        &["token_url", "client_id", "client_secret", "scope"],
    ),
];

/// The authentication type as the file spells it (`basic`, `apiKey`, …), in any case.
pub fn parse_authentication_type(s: &str) -> Result<&'static str, String> {
    AUTHENTICATION_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(name, _)| *name)
        .ok_or_else(|| {
            let names: Vec<_> = AUTHENTICATION_TYPES.iter().map(|(n, _)| *n).collect();
            format!("must be one of {}", names.join(", "))
        })
}

/// The settings of an authentication type (as returned by
/// [`parse_authentication_type`]).
pub fn authentication_fields(kind: &str) -> &'static [&'static str] {
    AUTHENTICATION_TYPES
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(&[], |(_, fields)| fields)
}

/// The authentication type a setting belongs to.
pub fn authentication_type_of(field: &str) -> Option<&'static str> {
    AUTHENTICATION_TYPES
        .iter()
        .find(|(_, fields)| fields.contains(&field))
        .map(|(name, _)| *name)
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

/// Headers Usher sets itself, or that control the connection, cannot carry an API key.
fn is_reserved_header(lower: &str) -> bool {
    matches!(
        lower,
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
        .any(|p| lower.starts_with(p))
}

/// The header an API key is sent in: a valid HTTP field name that Usher does not set
/// itself.
pub fn check_api_key_header(s: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if s.is_empty() || !s.chars().all(token) {
        return Err("must be an HTTP header name such as x-api-key".into());
    }
    if is_reserved_header(&s.to_ascii_lowercase()) {
        return Err(format!(
            "`{s}` is set by Usher or controls the connection (Authorization, Host, Accept, Content-*, usher-*, webhook-*, hop-by-hop headers); use another, such as x-api-key"
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

/// The length a string of standard, padded base64 decodes to, if it is one.
fn base64_len(s: &str) -> Option<usize> {
    let body = s.trim_end_matches('=');
    let padding = s.len() - body.len();
    // Whole groups of four characters (`is_multiple_of` is newer than the MSRV).
    let whole_groups = s.as_bytes().chunks(4).all(|group| group.len() == 4);
    let ok = whole_groups
        && padding <= 2
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    ok.then(|| s.len() / 4 * 3 - padding)
}

/// The fewest random bytes a signing secret may have: the Standard Webhooks
/// specification recommends 24 to 64.
pub const MIN_SIGNING_SECRET_BYTES: usize = 24;

/// A Standard Webhooks signing secret: `whsec_` and the base64 of the key. The
/// message never repeats the secret.
pub fn check_signing_secret(s: &str) -> Result<(), String> {
    const SHAPE: &str = "must be a Standard Webhooks secret: whsec_ followed by the base64 of the key, such as whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let len = s
        .strip_prefix("whsec_")
        .and_then(base64_len)
        .ok_or_else(|| SHAPE.to_owned())?;
    if len < MIN_SIGNING_SECRET_BYTES {
        return Err(format!(
            "the signing secret's key is {len} bytes; it must be at least {MIN_SIGNING_SECRET_BYTES} random bytes"
        ));
    }
    Ok(())
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

/// The identity issuers of the presets (`identities[].issuer` of their users). A
/// generic OAuth 2.0 provider may not claim one: its subjects would be taken for
/// those of Google, Facebook, GitHub or Microsoft, and sign people in as someone
/// else.
pub const PRESET_IDENTITY_ISSUERS: [&str; 4] = [
    "google.com",
    "facebook.com",
    "github.com",
    "login.microsoftonline.com",
];

/// A provider's `type`, in any case, as [`PROVIDER_TYPES`] spells it.
pub fn parse_provider_type(s: &str) -> Result<&'static str, String> {
    PROVIDER_TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(name, _)| *name)
        .ok_or_else(|| {
            let names: Vec<_> = PROVIDER_TYPES.iter().map(|(n, _)| *n).collect();
            format!("must be one of {}", names.join(", "))
        })
}

/// The settings of a provider type (as returned by [`parse_provider_type`]) besides
/// the common ones.
pub fn provider_fields(kind: &str) -> &'static [&'static str] {
    PROVIDER_TYPES
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(&[], |(_, fields)| fields)
}

/// The provider type a type-specific setting belongs to.
pub fn provider_type_of(field: &str) -> Option<&'static str> {
    PROVIDER_TYPES
        .iter()
        .find(|(_, fields)| fields.contains(&field))
        .map(|(name, _)| *name)
}

/// The types that use an endpoint override.
pub fn endpoint_types(endpoint: &str) -> &'static [&'static str] {
    PROVIDER_ENDPOINTS
        .iter()
        .find(|(name, _)| *name == endpoint)
        .map_or(&[], |(_, kinds)| kinds)
}

/// An upstream provider's id: what user flows list in `identity_providers`. It may
/// not be a built-in provider's.
pub fn check_provider_id(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(
            "must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` and `-`, such as Google-OAUTH"
                .into(),
        );
    }
    if let Some(builtin) = IDENTITY_PROVIDERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(s))
    {
        return Err(format!(
            "{builtin} is a built-in identity provider; choose another id"
        ));
    }
    Ok(())
}

/// Whether a federation endpoint's host is one `allow_insecure_endpoints` must
/// allow: loopback (`localhost` included), unspecified, link-local (the cloud
/// metadata address among them) or broadcast, as the federation client refuses.
fn is_insecure_endpoint_host(host: &url::Host<&str>) -> bool {
    fn insecure(addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_unspecified() || v4.is_link_local() || v4.is_broadcast()
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => insecure(IpAddr::V4(v4)),
                None => {
                    v6.is_loopback() || v6.is_unspecified() || v6.segments()[0] & 0xffc0 == 0xfe80
                }
            },
        }
    }
    match host {
        url::Host::Domain(d) => is_localhost_name(d),
        url::Host::Ipv4(v4) => insecure(IpAddr::V4(*v4)),
        url::Host::Ipv6(v6) => insecure(IpAddr::V6(*v6)),
    }
}

/// A URL Usher calls or sends browsers to at an upstream identity provider: an
/// absolute `https` URL without credentials or fragment, not on a loopback,
/// link-local or unspecified address, unless the operator allows insecure endpoints
/// (development, tests).
pub fn check_federation_url(s: &str, allow_insecure_endpoints: bool) -> Result<(), String> {
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
        "http" if allow_insecure_endpoints => {}
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
    if is_insecure_endpoint_host(&host) && !allow_insecure_endpoints {
        return Err(format!(
            "names a loopback, link-local or unspecified address; such endpoints are refused ({ALLOW})"
        ));
    }
    Ok(())
}

/// An OpenID Connect issuer (Discovery §4.3: no query or fragment). It is compared
/// with the discovery document's `issuer` exactly, so it is checked, not normalised:
/// a trailing slash stays if the provider's issuer has one.
pub fn check_oidc_issuer(s: &str, allow_insecure_endpoints: bool) -> Result<(), String> {
    check_federation_url(s, allow_insecure_endpoints)?;
    if s.contains('?') {
        return Err("must not have a query".into());
    }
    Ok(())
}

/// A Microsoft tenant: `common`, `organizations`, `consumers`, a tenant id or a
/// domain.
pub fn check_microsoft_tenant(s: &str) -> Result<(), String> {
    let ok = (1..=256).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err("must be common, organizations, consumers, a tenant id (a GUID) or a domain such as contoso.onmicrosoft.com".into())
    }
}

pub fn parse_client_auth(s: &str) -> Result<usher_federation::ClientAuthMethod, String> {
    match s.to_ascii_lowercase().as_str() {
        "client_secret_basic" => Ok(usher_federation::ClientAuthMethod::ClientSecretBasic),
        "client_secret_post" => Ok(usher_federation::ClientAuthMethod::ClientSecretPost),
        _ => Err("must be client_secret_basic or client_secret_post".into()),
    }
}

/// One scope of a provider's `scopes` list (RFC 6749 §3.3: a scope token).
pub fn check_scope_token(s: &str) -> Result<(), String> {
    if s.contains(' ') {
        return Err("must be one scope; list each scope as its own item".into());
    }
    check_scope(s).map_err(|_| {
        "must be a scope: visible ASCII characters other than `\"` and `\\`, such as openid"
            .to_owned()
    })
}

/// The scopes of an OpenID Connect provider: without `openid` there is no ID token.
pub fn check_oidc_scopes(scopes: &[&str]) -> Result<(), String> {
    if scopes.contains(&"openid") {
        Ok(())
    } else {
        Err("must include openid: an OpenID Connect provider returns no ID token without it".into())
    }
}

/// An upstream claim name, or a dotted JSON path into the provider's answer
/// (`data.id`, `address.locality`). Claim names may be URLs.
pub fn check_claim_path(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 256 {
        return Err("must be a claim name or dotted path of 1 to 256 characters".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    if s.starts_with('.') || s.ends_with('.') || s.contains("..") {
        return Err("must not have an empty segment (a leading, trailing or double `.`)".into());
    }
    Ok(())
}

/// A generic OAuth 2.0 provider's identity issuer: the `issuer` of the identities it
/// creates, conventionally its domain (`login.contoso.com`). It should never change,
/// as users are found by it.
pub fn check_identity_issuer(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 255 {
        return Err("must be 1 to 255 characters, conventionally the provider's domain".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    if let Some(preset) = PRESET_IDENTITY_ISSUERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(s))
    {
        return Err(format!(
            "{preset} is the identity issuer of a preset provider; a generic provider claiming it would sign its users in as that provider's: use the provider's own domain"
        ));
    }
    Ok(())
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
    fn attribute_names() {
        assert!(check_attribute_name("ShoeSize").is_ok());
        assert!(check_attribute_name("a1").is_ok());
        assert!(check_attribute_name(&"a".repeat(64)).is_ok());
        assert!(check_attribute_name(&"a".repeat(65)).is_err());
        assert!(check_attribute_name("1a").is_err());
        assert!(check_attribute_name("shoe_size").is_err());
        assert!(check_attribute_name("").is_err());
        assert!(check_attribute_name("Schuhgröße").is_err());
    }

    #[test]
    fn data_types() {
        assert_eq!(parse_data_type("int"), Ok(DataType::Int));
        assert_eq!(parse_data_type("Boolean"), Ok(DataType::Boolean));
        assert!(parse_data_type("float").is_err());
    }

    #[test]
    fn user_flow_ids() {
        assert_eq!(normalize_user_flow_id("partner").unwrap(), "B2X_1_partner");
        assert_eq!(
            normalize_user_flow_id("B2X_1_partner").unwrap(),
            "B2X_1_partner"
        );
        assert_eq!(
            normalize_user_flow_id("b2x_1_partner").unwrap(),
            "B2X_1_partner"
        );
        assert!(normalize_user_flow_id("B2X_1_").is_err());
        assert!(normalize_user_flow_id("with space").is_err());
        assert!(normalize_user_flow_id("").is_err());
        assert!(normalize_user_flow_id("é").is_err());
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
    fn option_values() {
        assert!(check_option_value("S", DataType::String, 100).is_ok());
        assert!(check_option_value("", DataType::String, 100).is_err());
        assert!(check_option_value("a,b", DataType::String, 100).is_err());
        assert!(check_option_value("42", DataType::Int, 100).is_ok());
        assert!(check_option_value("4.5", DataType::Int, 100).is_err());
        assert!(check_option_value("abc", DataType::String, 2).is_err());
        assert!(check_option_value("a\nb", DataType::String, 100).is_err());
    }

    #[test]
    fn locales() {
        assert!(check_locale("en").is_ok());
        assert!(check_locale("pt-BR").is_ok());
        assert!(check_locale("zh-Hant-TW").is_ok());
        assert!(check_locale("e").is_err());
        assert!(check_locale("en_US").is_err());
        assert!(check_locale("").is_err());
    }

    #[test]
    fn client_ids() {
        assert!(check_client_id("contoso-web").is_ok());
        assert!(check_client_id("a.b_c~d-E9").is_ok());
        assert!(check_client_id(&"a".repeat(128)).is_ok());
        assert!(check_client_id(&"a".repeat(129)).is_err());
        assert!(check_client_id("").is_err());
        assert!(check_client_id("a b").is_err());
        assert!(check_client_id("a/b").is_err());
    }

    #[test]
    fn redirect_uris() {
        assert!(check_redirect_uri("https://contoso.com/callback", false).is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb", false).is_ok());
        assert!(check_redirect_uri("http://127.0.0.1/cb", true).is_ok());
        assert!(check_redirect_uri("http://[::1]:8080/cb", true).is_ok());
        assert!(check_redirect_uri("http://contoso.com/cb", true)
            .unwrap_err()
            .contains("https"));
        assert!(check_redirect_uri("https://contoso.com/cb#x", false)
            .unwrap_err()
            .contains("fragment"));
        assert!(check_redirect_uri("/callback", true).is_err());
        assert!(check_redirect_uri("com.contoso.app:/cb", true).is_ok());
        assert!(check_redirect_uri("com.contoso.app:/cb", false).is_err());
        assert!(check_redirect_uri("javascript:alert(1)", true).is_err());
        assert!(check_redirect_uri("data:text/html,x", true).is_err());
        assert!(check_redirect_uri("https://u:p@contoso.com/cb", false).is_err());
        assert!(check_redirect_uri("https://contoso.com/a b", false).is_err());
    }

    #[test]
    fn roles() {
        assert_eq!(parse_role("user.read.all"), Ok("User.Read.All"));
        assert!(parse_role("Directory.ReadWrite.All").is_err());
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
    fn connector_ids() {
        assert!(check_connector_id("approval-check").is_ok());
        assert!(check_connector_id("A.b_c-9").is_ok());
        assert!(check_connector_id(&"a".repeat(64)).is_ok());
        assert!(check_connector_id(&"a".repeat(65)).is_err());
        assert!(check_connector_id("").is_err());
        assert!(check_connector_id("a b").is_err());
        assert!(check_connector_id("a/b").is_err());
        assert!(check_connector_id("a~b").is_err());
        assert!(check_connector_id("é").is_err());
    }

    #[test]
    fn public_addresses() {
        let public = |s: &str| is_public_ip(s.parse().unwrap());
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(ip), "{ip} is public");
        }
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!public(ip), "{ip} is not public");
        }
    }

    #[test]
    fn connector_urls() {
        assert!(check_connector_url("https://api.contoso.com/approval/check", false).is_ok());
        assert!(check_connector_url("https://f.azurewebsites.net/api/x?code=abc", false).is_ok());
        assert!(check_connector_url("https://93.184.216.34:8443/x", false).is_ok());
        assert!(check_connector_url("http://api.contoso.com/x", false)
            .unwrap_err()
            .contains("allow_insecure_targets"));
        assert!(check_connector_url("http://api.contoso.com/x", true).is_ok());
        for private in [
            "https://localhost/x",
            "https://api.localhost./x",
            "https://127.0.0.1/x",
            "https://2130706433/x",
            "https://10.0.0.5/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://169.254.169.254/latest/meta-data",
        ] {
            assert!(
                check_connector_url(private, false)
                    .unwrap_err()
                    .contains("non-public"),
                "{private}"
            );
            assert!(check_connector_url(private, true).is_ok(), "{private}");
        }
        assert!(check_connector_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_connector_url("https://u:p@api.contoso.com/x", true)
            .unwrap_err()
            .contains("user name"));
        assert!(check_connector_url("https://api.contoso.com/x#y", true)
            .unwrap_err()
            .contains("fragment"));
        assert!(check_connector_url("/approval/check", true)
            .unwrap_err()
            .contains("absolute"));
        assert!(check_connector_url("ftp://api.contoso.com/x", true).is_err());
        assert!(check_connector_url("https://api.contoso.com/a b", true).is_err());
        assert!(check_connector_url(&format!("https://a.com/{}", "x".repeat(2048)), true).is_err());
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
    fn basic_usernames() {
        assert!(check_basic_username("usher").is_ok());
        assert!(check_basic_username("user@contoso.com").is_ok());
        assert!(check_basic_username("").is_err());
        assert!(check_basic_username("a:b").unwrap_err().contains(':'));
        assert!(check_basic_username("a\nb").is_err());
    }

    #[test]
    fn api_key_headers() {
        assert!(check_api_key_header("x-api-key").is_ok());
        assert!(check_api_key_header("Ocp-Apim-Subscription-Key").is_ok());
        assert!(check_api_key_header("x_key!").is_ok());
        for reserved in [
            "Authorization",
            "host",
            "Accept",
            "Content-Type",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "Proxy-Authorization",
            "usher-call-id",
            "Webhook-Signature",
        ] {
            assert!(
                check_api_key_header(reserved)
                    .unwrap_err()
                    .contains("set by Usher"),
                "{reserved}"
            );
        }
        assert!(check_api_key_header("").is_err());
        assert!(check_api_key_header("x api key").is_err());
        assert!(check_api_key_header("x-key:").is_err());
        assert!(check_api_key_header("x-ключ").is_err());
    }

    #[test]
    fn oauth_client_ids_and_scopes() {
        assert!(check_oauth_client_id("6f1c2e0a-1b2c-4d5e-8f90-0123456789ab").is_ok());
        assert!(check_oauth_client_id("usher client").is_ok());
        assert!(check_oauth_client_id("").is_err());
        assert!(check_oauth_client_id("a\tb").is_err());
        assert!(check_oauth_client_id(&"a".repeat(257)).is_err());
        assert!(check_scope("api://contoso/.default").is_ok());
        assert!(check_scope("read write").is_ok());
        assert!(check_scope("").is_err());
        assert!(check_scope("read  write").is_err());
        assert!(check_scope("a\"b").is_err());
        assert!(check_scope("a\\b").is_err());
    }

    #[test]
    fn signing_secrets() {
        assert!(check_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        // 64 bytes, padded.
        assert!(check_signing_secret(&format!("whsec_{}==", "A".repeat(86))).is_ok());
        let short = check_signing_secret("whsec_c2hvcnQ=").unwrap_err();
        assert!(short.contains("5 bytes"), "{short}");
        assert!(check_signing_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_err()
            .contains("whsec_"));
        assert!(check_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").is_err());
        assert!(check_signing_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w").is_err());
        assert!(check_signing_secret("whsec_").is_err());
        // The message never quotes the secret.
        let e = check_signing_secret("whsec_not*base64*at*all*secret").unwrap_err();
        assert!(!e.contains("not*base64"));
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
    fn provider_ids() {
        for ok in ["Google-OAUTH", "AADSignup-OAUTH", "contoso.oidc_1", "a"] {
            assert!(check_provider_id(ok).is_ok(), "{ok}");
        }
        assert!(check_provider_id(&"a".repeat(64)).is_ok());
        assert!(check_provider_id(&"a".repeat(65)).is_err());
        assert!(check_provider_id("").is_err());
        assert!(check_provider_id("a b").is_err());
        assert!(check_provider_id("a/b").is_err());
        assert!(check_provider_id("é").is_err());
        assert!(check_provider_id("EmailPassword-OAUTH")
            .unwrap_err()
            .contains("EmailPassword-OAUTH is a built-in identity provider"));
        assert!(check_provider_id("emailotpsignup-oauth")
            .unwrap_err()
            .contains("EmailOtpSignup-OAUTH is a built-in"));
    }

    #[test]
    fn federation_urls() {
        assert!(check_federation_url("https://login.contoso.com/oauth2/authorize", false).is_ok());
        assert!(
            check_federation_url("https://graph.facebook.com/v23.0/me?fields=id", false).is_ok()
        );
        // Private addresses are the operator's business (an in-house provider); the
        // federation client refuses only these, unless allowed.
        assert!(check_federation_url("https://10.0.0.5/token", false).is_ok());
        assert!(
            check_federation_url("http://login.contoso.com/token", false)
                .unwrap_err()
                .contains("federation.allow_insecure_endpoints")
        );
        assert!(check_federation_url("http://login.contoso.com/token", true).is_ok());
        for insecure in [
            "https://localhost/x",
            "https://idp.localhost./x",
            "https://127.0.0.1:8443/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://[::]/x",
            "https://169.254.169.254/latest",
            "https://[fe80::1]/x",
            "https://255.255.255.255/x",
        ] {
            assert!(
                check_federation_url(insecure, false)
                    .unwrap_err()
                    .contains("loopback"),
                "{insecure}"
            );
            assert!(check_federation_url(insecure, true).is_ok(), "{insecure}");
        }
        assert!(check_federation_url("http://127.0.0.1:9000/token", true).is_ok());
        assert!(
            check_federation_url("https://u:p@login.contoso.com/x", true)
                .unwrap_err()
                .contains("user name")
        );
        assert!(check_federation_url("https://login.contoso.com/x#y", true)
            .unwrap_err()
            .contains("fragment"));
        assert!(check_federation_url("/oauth2/token", true)
            .unwrap_err()
            .contains("absolute"));
        assert!(check_federation_url("ftp://login.contoso.com/x", true).is_err());
        assert!(check_federation_url("https://login.contoso.com/a b", true).is_err());
        assert!(
            check_federation_url(&format!("https://a.com/{}", "x".repeat(2048)), true).is_err()
        );
    }

    #[test]
    fn oidc_issuers() {
        assert!(check_oidc_issuer("https://login.contoso.com", false).is_ok());
        // Some providers' issuers end with a slash; it is kept as written.
        assert!(check_oidc_issuer("https://contoso.eu.auth0.com/", false).is_ok());
        assert!(check_oidc_issuer("https://login.contoso.com/tenant/v2.0", false).is_ok());
        assert!(check_oidc_issuer("https://login.contoso.com?x=1", false)
            .unwrap_err()
            .contains("query"));
        assert!(check_oidc_issuer("http://127.0.0.1:9000", false).is_err());
        assert!(check_oidc_issuer("http://127.0.0.1:9000", true).is_ok());
        assert!(check_oidc_issuer("login.contoso.com", true).is_err());
    }

    #[test]
    fn microsoft_tenants() {
        for ok in [
            "common",
            "organizations",
            "consumers",
            "9188040d-6c67-4c5b-b112-36a304b66dad",
            "contoso.onmicrosoft.com",
        ] {
            assert!(check_microsoft_tenant(ok).is_ok(), "{ok}");
        }
        for bad in ["", "con toso", "contoso/v2.0", "é", &"a".repeat(257)] {
            assert!(
                check_microsoft_tenant(bad).unwrap_err().contains("common"),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_auth_methods() {
        use usher_federation::ClientAuthMethod;
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
    fn provider_scopes() {
        assert!(check_scope_token("openid").is_ok());
        assert!(check_scope_token("read:user").is_ok());
        assert!(check_scope_token("https://graph.microsoft.com/User.Read").is_ok());
        assert!(check_scope_token("openid email")
            .unwrap_err()
            .contains("its own item"));
        assert!(check_scope_token("").is_err());
        assert!(check_scope_token("a\"b").is_err());
        assert!(check_scope_token("a\\b").is_err());
        assert!(check_scope_token("é").is_err());
        assert!(check_oidc_scopes(&["email", "openid"]).is_ok());
        assert!(check_oidc_scopes(&["email", "profile"])
            .unwrap_err()
            .contains("must include openid"));
        assert!(check_oidc_scopes(&["OpenID"]).is_err());
    }

    #[test]
    fn claim_paths() {
        for ok in [
            "given_name",
            "data.id",
            "address.locality",
            "emails.0.value",
            "https://contoso.com/claims/tier",
        ] {
            assert!(check_claim_path(ok).is_ok(), "{ok}");
        }
        assert!(check_claim_path(&"a".repeat(256)).is_ok());
        assert!(check_claim_path(&"a".repeat(257)).is_err());
        assert!(check_claim_path("").is_err());
        assert!(check_claim_path("given name")
            .unwrap_err()
            .contains("spaces"));
        assert!(check_claim_path("a\u{0}").is_err());
        for empty_segment in [".a", "a.", "a..b"] {
            assert!(
                check_claim_path(empty_segment)
                    .unwrap_err()
                    .contains("empty segment"),
                "{empty_segment}"
            );
        }
    }

    #[test]
    fn identity_issuers() {
        assert!(check_identity_issuer("login.contoso.com").is_ok());
        assert!(check_identity_issuer("https://login.contoso.com").is_ok());
        assert!(check_identity_issuer("").is_err());
        assert!(check_identity_issuer(&"a".repeat(256)).is_err());
        assert!(check_identity_issuer("contoso com").is_err());
        for preset in PRESET_IDENTITY_ISSUERS {
            assert!(
                check_identity_issuer(&preset.to_ascii_uppercase())
                    .unwrap_err()
                    .contains("preset"),
                "{preset}"
            );
        }
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
