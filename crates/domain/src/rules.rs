//! The rules a value of the tenant must follow, wherever it comes from: the
//! configuration file (`usher_config::rules`) and the admin API
//! (`usher_web::admin::rules`) both apply these, so that they accept and refuse the
//! same values. Plain functions over the value alone: each returns the reason a value
//! is refused, and the caller says where the value was written.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{
    attribute::check_text,
    user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER},
    DataType,
};

/// The prefix every user flow id has.
pub const USER_FLOW_PREFIX: &str = "B2X_1_";

/// The built-in identity providers; upstream ones come on top.
pub const BUILT_IN_PROVIDERS: [&str; 2] = [EMAIL_PASSWORD_PROVIDER, EMAIL_OTP_PROVIDER];

/// Application permissions a client may be granted for the client-credentials grant,
/// named as in Graph.
pub const GRAPH_ROLES: [&str; 10] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "APIConnectors.Read.All",
    "APIConnectors.ReadWrite.All",
    "IdentityUserFlow.Read.All",
    "IdentityUserFlow.ReadWrite.All",
    "CustomAuthenticationExtension.Read.All",
    "CustomAuthenticationExtension.ReadWrite.All",
    "EventListener.Read.All",
    "EventListener.ReadWrite.All",
];

/// The longest label, name or display name, in characters.
pub const MAX_LABEL: usize = 256;
/// The longest description, in characters.
pub const MAX_DESCRIPTION: usize = 1024;

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

/// The issuer of email one-time passcode identities, which no provider may take on.
pub const PASSCODE_IDENTITY_ISSUER: &str = "mail";

/// No white space or control characters.
pub fn check_plain(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(())
}

/// Text shown to people (labels, names, descriptions): no control characters, at
/// most `max` characters. It may be empty; where a value is required, the caller
/// refuses a blank one first.
pub fn check_optional_text(s: &str, max: usize) -> Result<(), String> {
    check_text(s, max).map_err(|e| e.to_string())
}

/// An id of the kind user flows refer to (connectors, identity providers).
fn is_reference_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

const REFERENCE_ID: &str = "must be 1 to 64 characters of A-Z, a-z, 0-9, `.`, `_` and `-`";

/// An API connector's id: what user flows list in their connector slots.
pub fn check_connector_id(s: &str) -> Result<(), String> {
    if is_reference_id(s) {
        Ok(())
    } else {
        Err(REFERENCE_ID.into())
    }
}

/// An upstream provider's id: what user flows list as identity providers. It may not
/// be a built-in provider's.
pub fn check_provider_id(s: &str) -> Result<(), String> {
    if !is_reference_id(s) {
        return Err(format!("{REFERENCE_ID}, such as Google-OAUTH"));
    }
    if let Some(builtin) = BUILT_IN_PROVIDERS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(s))
    {
        return Err(format!(
            "{builtin} is a built-in identity provider; choose another id"
        ));
    }
    Ok(())
}

/// An application's client id.
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
        return Err("must be a whole number, as the attribute is an int64".into());
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

/// Whether plain http to this host stays on the machine.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// `localhost` and names under it, which always mean this machine.
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether `ip` is an address on the public internet, one a connector may call
/// without the operator allowing non-public targets. Loopback, private, link-local,
/// unique-local, unspecified, multicast, broadcast, shared (CGNAT), documentation,
/// benchmarking and reserved ranges are not, nor are IPv6 forms that embed such an
/// IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let private_or_special = a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..=127).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !private_or_special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // ::/96 holds the unspecified and loopback addresses and deprecated IPv4-compatible
    // ones: none is a public IPv6 destination.
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return false;
    }
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // Local-use NAT64 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return false;
    }
    // 6to4 2002::/16 embeds the IPv4 address in the next 32 bits.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let special = (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] <= 0x0fff) // documentation (RFC 9637)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x2001 && (0x0010..=0x002f).contains(&s[1])) // ORCHID
        || (s[0] == 0x2001 && s[1] < 0x0200 && s[1] != 0x0db8); // IETF protocol assignments
    !special
}

/// Which targets outside the safe default (`https://` to a public address) the
/// operator allows connectors to call: three separate doors, so that a test setup
/// that needs loopback does not open the private network too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Plain `http://` (to any address the other two settings allow).
    pub allow_http: bool,
    /// Loopback: `127.0.0.0/8`, `::1`, the unspecified address, `localhost`.
    pub allow_loopback: bool,
    /// Every other non-public address: private (RFC 1918), shared (CGNAT), unique
    /// local, link-local (cloud metadata services among them), reserved ranges.
    pub allow_private_network: bool,
}

impl TargetPolicy {
    /// Everything allowed: what the deprecated `allow_insecure_targets` meant.
    pub const ALL: TargetPolicy = TargetPolicy {
        allow_http: true,
        allow_loopback: true,
        allow_private_network: true,
    };

    /// Whether a connection to `ip` is allowed.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        match target_class(ip) {
            TargetClass::Public => true,
            TargetClass::Loopback => self.allow_loopback,
            TargetClass::PrivateNetwork => self.allow_private_network,
        }
    }

    /// Why `ip` is refused, naming the setting that would allow it; `None` if allowed.
    pub fn refusal(&self, ip: IpAddr) -> Option<String> {
        match target_class(ip) {
            _ if self.allows_ip(ip) => None,
            TargetClass::Loopback => Some(format!(
                "{ip} is a loopback address; connector_settings.allow_loopback_targets = true allows such targets, for development and tests"
            )),
            _ => Some(format!(
                "{ip} is a private or otherwise non-public address; connector_settings.allow_private_network_targets = true allows such targets"
            )),
        }
    }
}

/// Where an address is, for [`TargetPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetClass {
    Public,
    Loopback,
    PrivateNetwork,
}

/// The class of `ip`. IPv4-mapped IPv6 addresses count as the IPv4 address.
pub fn target_class(ip: IpAddr) -> TargetClass {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    let loopback = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified(),
    };
    if loopback {
        TargetClass::Loopback
    } else if is_public_ip(ip) {
        TargetClass::Public
    } else {
        TargetClass::PrivateNetwork
    }
}

/// A URL Usher calls: a connector's target, or an OAuth token endpoint. `https` with
/// a public host, unless the operator's [`TargetPolicy`] allows plain http, loopback
/// or the private network (development, tests, a connector inside the company
/// network). The connector client checks the address it connects to as well; this
/// refuses what is wrong outright.
pub fn check_connector_url(s: &str, policy: TargetPolicy) -> Result<(), String> {
    check_plain(s)?;
    if s.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = url::Url::parse(s)
        .map_err(|_| "must be an absolute URL such as https://api.contoso.com/check".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(
                "must use https; plain http targets are refused (connector_settings.allow_http_targets = true allows them, for development and tests)"
                    .into(),
            )
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
    let refusal = match host {
        url::Host::Domain(d) if is_localhost_name(d) && !policy.allow_loopback => Some(format!(
            "{d} names this machine; connector_settings.allow_loopback_targets = true allows such targets, for development and tests"
        )),
        url::Host::Domain(_) => None,
        url::Host::Ipv4(ip) => policy.refusal(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => policy.refusal(IpAddr::V6(ip)),
    };
    match refusal {
        Some(why) => Err(format!("names a non-public address: {why}")),
        None => Ok(()),
    }
}

/// The most certificates one setting of extra roots may hold.
pub const MAX_ROOT_CERTIFICATES: usize = 20;

/// Extra trusted roots as given (one or more PEM `CERTIFICATE` blocks, text around
/// them ignored as in any bundle), each parsed as X.509 and written back as one
/// certificate in canonical PEM. A private key is refused: it does not belong in a
/// setting stored and shown in the clear.
pub fn parse_root_certificates(text: &str) -> Result<Vec<String>, String> {
    use base64::Engine as _;
    if text.len() > 512 * 1024 {
        return Err("must be at most 512 KiB of PEM".into());
    }
    let mut out = Vec::new();
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()).enumerate() {
        let n = i + 1;
        let pem = block.map_err(|_| {
            format!("PEM block {n} cannot be read (its BEGIN/END lines or its base64 are broken)")
        })?;
        if pem.label.contains("PRIVATE KEY") {
            return Err(format!(
                "PEM block {n} is a private key; only the CA's certificates belong here, never a key"
            ));
        }
        if pem.label != "CERTIFICATE" {
            return Err(format!(
                "PEM block {n} is a {}; only CERTIFICATE blocks belong here",
                pem.label
            ));
        }
        if pem.parse_x509().is_err() {
            return Err(format!("PEM block {n} is not an X.509 certificate"));
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pem.contents);
        let mut cert = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            cert.push_str(std::str::from_utf8(line).unwrap_or_default());
            cert.push('\n');
        }
        cert.push_str("-----END CERTIFICATE-----\n");
        out.push(cert);
    }
    if out.is_empty() {
        return Err(
            "must hold at least one PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)"
                .into(),
        );
    }
    if out.len() > MAX_ROOT_CERTIFICATES {
        return Err(format!(
            "holds {} certificates; at most {MAX_ROOT_CERTIFICATES} are allowed",
            out.len()
        ));
    }
    Ok(out)
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

/// The fewest random bytes a signing secret may have: the Standard Webhooks
/// specification recommends 24 to 64.
pub const MIN_SIGNING_SECRET_BYTES: usize = 24;

/// A Standard Webhooks signing secret: `whsec_` and the standard, padded base64 of the
/// key, decoded as the connector client decodes it when it signs (a secret it cannot
/// decode would be used as its text, and no receiver would verify the signatures).
/// The message never repeats the secret.
pub fn check_signing_secret(s: &str) -> Result<(), String> {
    use base64::Engine as _;
    const SHAPE: &str = "must be a Standard Webhooks secret: whsec_ followed by the base64 of the key, such as whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let len = s
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .ok_or_else(|| SHAPE.to_owned())?
        .len();
    if len < MIN_SIGNING_SECRET_BYTES {
        return Err(format!(
            "the signing secret's key is {len} bytes; it must be at least {MIN_SIGNING_SECRET_BYTES} random bytes"
        ));
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

/// One scope of an identity provider's list (RFC 6749 §3.3: a scope token).
pub fn check_scope_token(s: &str) -> Result<(), String> {
    if s.contains(' ') {
        return Err("must be one scope; list each scope as its own item".into());
    }
    check_scope(s).map_err(|_| {
        "must be a scope: visible ASCII characters other than `\"` and `\\`, such as openid"
            .to_owned()
    })
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
    if s.eq_ignore_ascii_case(PASSCODE_IDENTITY_ISSUER) {
        return Err(format!(
            "{PASSCODE_IDENTITY_ISSUER} is the issuer of email one-time passcode identities: use the provider's own domain"
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        assert!(check_attribute_name("ShoeSize").is_ok());
        assert!(check_attribute_name("a1").is_ok());
        assert!(check_attribute_name(&"a".repeat(64)).is_ok());
        assert!(check_attribute_name(&"a".repeat(65)).is_err());
        assert!(check_attribute_name("1a").is_err());
        assert!(check_attribute_name("shoe_size").is_err());
        assert!(check_attribute_name("Shoe_Size").is_err());
        assert!(check_attribute_name("").is_err());
        assert!(check_attribute_name("Schuhgröße").is_err());
    }

    #[test]
    fn user_flow_ids() {
        assert_eq!(normalize_user_flow_id("partner").unwrap(), "B2X_1_partner");
        assert_eq!(normalize_user_flow_id("Partner").unwrap(), "B2X_1_Partner");
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
    fn option_values() {
        assert!(check_option_value("S", DataType::String, 100).is_ok());
        assert!(check_option_value("", DataType::String, 100).is_err());
        assert!(check_option_value("a,b", DataType::String, 100).is_err());
        assert!(check_option_value("42", DataType::Int, 100).is_ok());
        assert!(check_option_value("4.5", DataType::Int, 100)
            .unwrap_err()
            .contains("whole number"));
        assert!(check_option_value("abc", DataType::String, 2).is_err());
        assert!(check_option_value("a\nb", DataType::String, 100).is_err());
    }

    #[test]
    fn optional_texts() {
        assert!(check_optional_text("", MAX_DESCRIPTION).is_ok());
        assert!(check_optional_text("Shoe size", MAX_LABEL).is_ok());
        assert!(check_optional_text(&"a".repeat(MAX_LABEL), MAX_LABEL).is_ok());
        assert!(check_optional_text(&"a".repeat(MAX_LABEL + 1), MAX_LABEL).is_err());
        assert!(check_optional_text("a\u{7}b", MAX_LABEL).is_err());
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
        assert!(check_redirect_uri("http://127.0.0.1:9/cb", false).is_ok());
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
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(ip), "{ip} is public");
        }
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
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
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2002:7f00:1::",
            "2001::1",
            "2001:10::1",
        ] {
            assert!(!public(ip), "{ip} is not public");
        }
    }

    #[test]
    fn connector_urls() {
        let strict = TargetPolicy::default();
        let all = TargetPolicy::ALL;
        let only = |http, loopback, private| TargetPolicy {
            allow_http: http,
            allow_loopback: loopback,
            allow_private_network: private,
        };
        assert!(check_connector_url("https://api.contoso.com/approval/check", strict).is_ok());
        assert!(check_connector_url("https://f.azurewebsites.net/api/x?code=abc", strict).is_ok());
        assert!(check_connector_url("https://93.184.216.34:8443/x", strict).is_ok());
        assert!(check_connector_url("http://api.contoso.com/x", strict)
            .unwrap_err()
            .contains("allow_http_targets"));
        assert!(check_connector_url("http://api.contoso.com/x", only(true, false, false)).is_ok());
        for loopback in [
            "https://localhost/x",
            "https://api.localhost./x",
            "https://127.0.0.1/x",
            "https://2130706433/x",
            "https://[::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://0.0.0.0/x",
        ] {
            let e = check_connector_url(loopback, strict).unwrap_err();
            assert!(e.contains("allow_loopback_targets"), "{loopback}: {e}");
            // The private network's door does not open loopback, nor the other way.
            assert!(check_connector_url(loopback, only(false, false, true)).is_err());
            assert!(check_connector_url(loopback, only(false, true, false)).is_ok());
            assert!(check_connector_url(loopback, all).is_ok(), "{loopback}");
        }
        for private in [
            "https://10.0.0.5/x",
            "https://192.168.1.10/x",
            "https://[fd00::1]/x",
            "https://[2002:7f00:1::]/x",
            "https://169.254.169.254/latest/meta-data",
        ] {
            let e = check_connector_url(private, strict).unwrap_err();
            assert!(e.contains("non-public"), "{private}");
            assert!(
                e.contains("allow_private_network_targets"),
                "{private}: {e}"
            );
            assert!(check_connector_url(private, only(true, true, false)).is_err());
            assert!(check_connector_url(private, only(false, false, true)).is_ok());
            assert!(check_connector_url(private, all).is_ok(), "{private}");
        }
        assert!(
            check_connector_url("http://127.0.0.1:9000/hook", only(false, true, false)).is_err()
        );
        assert!(check_connector_url("http://127.0.0.1:9000/hook", only(true, true, false)).is_ok());
        assert!(check_connector_url("https://u:p@api.contoso.com/x", all)
            .unwrap_err()
            .contains("user name"));
        assert!(check_connector_url("https://api.contoso.com/x#y", all)
            .unwrap_err()
            .contains("fragment"));
        assert!(check_connector_url("/approval/check", all)
            .unwrap_err()
            .contains("absolute"));
        assert!(check_connector_url("ftp://api.contoso.com/x", all).is_err());
        assert!(check_connector_url("https://api.contoso.com/a b", all).is_err());
        assert!(check_connector_url(&format!("https://a.com/{}", "x".repeat(2048)), all).is_err());
    }

    #[test]
    fn root_certificates() {
        // Real certificates in a bundle with a comment line, as `cat` of several
        // files gives.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        let bundle = format!("# Contoso root\n{pem}\n{pem}");
        let parsed = parse_root_certificates(&bundle).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(parsed[0].starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(parsed[0].lines().all(|l| l.len() <= 64));
        // Canonical: parsing what came out gives the same.
        assert_eq!(parse_root_certificates(&parsed.concat()).unwrap(), parsed);
        for (text, why) in [
            ("", "at least one"),
            ("not pem at all", "at least one"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "private key",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                "cannot be read",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not an X.509",
            ),
            (
                "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
                "X509 CRL",
            ),
        ] {
            let e = parse_root_certificates(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        assert!(
            parse_root_certificates(&pem.repeat(MAX_ROOT_CERTIFICATES + 1))
                .unwrap_err()
                .contains("at most")
        );
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
        // Base64 whose last character carries bits beyond the key is not decoded by the
        // connector client, which would sign with the text instead.
        assert!(check_signing_secret(&format!("whsec_{}B=", "A".repeat(42))).is_err());
        // The message never quotes the secret.
        let e = check_signing_secret("whsec_not*base64*at*all*secret").unwrap_err();
        assert!(!e.contains("not*base64"));
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
            "https://[::ffff:255.255.255.255]/x",
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
        assert!(check_identity_issuer("MAIL")
            .unwrap_err()
            .contains("passcode"));
        for preset in PRESET_IDENTITY_ISSUERS {
            assert!(
                check_identity_issuer(&preset.to_ascii_uppercase())
                    .unwrap_err()
                    .contains("preset"),
                "{preset}"
            );
        }
    }
}
