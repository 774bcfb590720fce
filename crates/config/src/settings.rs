//! The validated configuration: what the server runs with once the file, the
//! environment and the defaults have been merged and checked.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use usher_domain::identity_provider::{
    EndpointOverrides, FederationSettings, ProviderConfig, ProviderKind,
};
use usher_domain::{
    CertificateSource, ClientCertificate, ConnectorAuthentication, ConnectorDefinition,
};

use crate::{rules, secret::Secret};

/// Everything the server needs to start, already validated.
#[derive(Clone)]
pub struct Config {
    /// The file the configuration came from, if any.
    pub source: Option<PathBuf>,
    pub listen: SocketAddr,
    /// Absolute http(s) URL without a trailing slash; the `iss` of every token.
    pub issuer: String,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`. May hold a password: `Debug` hides it.
    pub database_url: String,
    pub master_key: MasterKeySource,
    /// Templates here replace the built-in ones with the same file name.
    pub templates_dir: Option<PathBuf>,
    pub signing: SigningSettings,
    pub tokens: TokenSettings,
    pub email: EmailSettings,
    /// Whether the demo application and user flow are served.
    pub demo: bool,
    /// `shutdown_drain_seconds`: on SIGTERM, how long `/health/ready` answers 503
    /// while requests are still served, so a load balancer takes the instance out
    /// before it stops accepting connections (default 0).
    pub shutdown_drain: std::time::Duration,
    /// `USHER_METRICS_TOKEN`: the bearer token `/metrics` requires. Without one,
    /// `/metrics` is open in the demo and closed otherwise.
    pub metrics_token: Option<Secret>,
    pub tenant: usher_domain::Tenant,
    /// The API connectors user flows may call (`[[connectors]]`), in file order. Every
    /// id a user flow's connector slot lists is one of these.
    pub connectors: Vec<ConnectorDefinition>,
    pub connector_settings: ConnectorSettings,
    /// The upstream identity providers user flows may offer (`[[identity_providers]]`),
    /// in file order, ids unique without regard to case. Unset scopes are empty (the
    /// kind's defaults); claim mappings are the kind's defaults with the file's
    /// entries merged over them.
    pub identity_providers: Vec<ProviderConfig>,
    /// `[[event_listeners]]`: extensions run at token issuance or code delivery
    /// for the applications they name.
    pub event_listeners: Vec<usher_domain::EventListener>,
    /// `[federation]`: settings for every upstream provider.
    pub federation: FederationSettings,
    /// `[rate_limits]`: limits across flows and instances (defaults on).
    pub rate_limits: usher_domain::RateLimitPolicy,
    /// The plaintext secrets of the confidential applications that give one
    /// (`client_secret_env`, `client_secret_file`), by client id in lower case. Every
    /// load hashes them with a new salt, so the tenant holds a different hash each
    /// time: with these, a comparison with the stored tenant can tell an unchanged
    /// secret (the stored hash verifies it) from a new one.
    pub client_secrets: std::collections::BTreeMap<String, Secret>,
}

// By hand: the federation crate's types do not implement `PartialEq`.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        let Config {
            source,
            listen,
            issuer,
            data_dir,
            database_url,
            master_key,
            templates_dir,
            signing,
            tokens,
            email,
            demo,
            shutdown_drain,
            metrics_token,
            tenant,
            connectors,
            connector_settings,
            identity_providers,
            event_listeners,
            federation,
            rate_limits,
            client_secrets,
        } = self;
        *source == other.source
            && *listen == other.listen
            && *issuer == other.issuer
            && *data_dir == other.data_dir
            && *database_url == other.database_url
            && *master_key == other.master_key
            && *templates_dir == other.templates_dir
            && *signing == other.signing
            && *tokens == other.tokens
            && *email == other.email
            && *demo == other.demo
            && *shutdown_drain == other.shutdown_drain
            && *metrics_token == other.metrics_token
            && *tenant == other.tenant
            && *connectors == other.connectors
            && *connector_settings == other.connector_settings
            && identity_providers.len() == other.identity_providers.len()
            && identity_providers
                .iter()
                .zip(&other.identity_providers)
                .all(|(a, b)| same_provider(a, b))
            && *event_listeners == other.event_listeners
            && same_federation_settings(federation, &other.federation)
            && *rate_limits == other.rate_limits
            && *client_secrets == other.client_secrets
    }
}

impl Eq for Config {}

/// Whether two providers are configured alike, every field compared (secrets
/// included).
pub(crate) fn same_provider(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    // Destructured so that a field added to `ProviderConfig` cannot be forgotten here.
    let ProviderConfig {
        id,
        display_name,
        kind,
        client_id,
        client_secret,
        scopes,
        claim_mapping,
        endpoints,
        client_auth,
    } = a;
    *id == b.id
        && *display_name == b.display_name
        && *kind == b.kind
        && *client_id == b.client_id
        && *client_secret == b.client_secret
        && *scopes == b.scopes
        && *claim_mapping == b.claim_mapping
        && *endpoints == b.endpoints
        && *client_auth == b.client_auth
}

pub(crate) fn same_federation_settings(a: &FederationSettings, b: &FederationSettings) -> bool {
    let FederationSettings {
        allow_insecure_endpoints,
        timeout,
    } = a;
    *allow_insecure_endpoints == b.allow_insecure_endpoints && *timeout == b.timeout
}

impl Config {
    pub fn database_kind(&self) -> DatabaseKind {
        // The URL was checked at load, so anything that is not PostgreSQL is SQLite.
        rules::database_kind(&self.database_url).unwrap_or(DatabaseKind::Sqlite)
    }
}

// Written by hand so that a password inside `database_url` never reaches a log.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &rules::redact_url_password(&self.database_url),
            )
            .field("master_key", &self.master_key)
            .field("templates_dir", &self.templates_dir)
            .field("signing", &self.signing)
            .field("tokens", &self.tokens)
            .field("email", &self.email)
            .field("demo", &self.demo)
            .field("shutdown_drain", &self.shutdown_drain)
            .field("metrics_token", &self.metrics_token)
            .field("tenant", &self.tenant)
            .field("connectors", &ConnectorsDebug(&self.connectors))
            .field("connector_settings", &self.connector_settings)
            .field(
                "identity_providers",
                &self
                    .identity_providers
                    .iter()
                    .map(ProviderDebug)
                    .collect::<Vec<_>>(),
            )
            .field("event_listeners", &self.event_listeners)
            .field("federation", &self.federation)
            .field("rate_limits", &self.rate_limits)
            .field("client_secrets", &self.client_secrets)
            .finish()
    }
}

/// A provider as `Config`'s `Debug` shows it: its secret as `******` (as the
/// provider's own `Debug` does) and the query of every URL hidden, as a generic
/// provider's endpoint may carry a key there.
pub(crate) struct ProviderDebug<'a>(pub(crate) &'a ProviderConfig);

impl fmt::Debug for ProviderDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a field added to `ProviderConfig` cannot be forgotten here.
        let ProviderConfig {
            id,
            display_name,
            kind,
            client_id,
            client_secret,
            scopes,
            claim_mapping,
            endpoints,
            client_auth,
        } = self.0;
        f.debug_struct("ProviderConfig")
            .field("id", id)
            .field("display_name", display_name)
            .field("kind", &KindDebug(kind))
            .field("client_id", client_id)
            .field("client_secret", client_secret)
            .field("scopes", scopes)
            .field("claim_mapping", claim_mapping)
            .field("endpoints", &EndpointsDebug(endpoints))
            .field("client_auth", client_auth)
            .finish()
    }
}

/// A URL with its query hidden.
struct Url<'a>(&'a str);

impl fmt::Debug for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&rules::redact_url_query(self.0), f)
    }
}

struct KindDebug<'a>(&'a ProviderKind);

impl fmt::Debug for KindDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ProviderKind::Oidc { issuer } => f
                .debug_struct("Oidc")
                .field("issuer", &Url(issuer))
                .finish(),
            ProviderKind::OAuth2 {
                authorization_endpoint,
                token_endpoint,
                userinfo_endpoint,
                subject_claim,
                identity_issuer,
            } => f
                .debug_struct("OAuth2")
                .field("authorization_endpoint", &Url(authorization_endpoint))
                .field("token_endpoint", &Url(token_endpoint))
                .field("userinfo_endpoint", &Url(userinfo_endpoint))
                .field("subject_claim", subject_claim)
                .field("identity_issuer", identity_issuer)
                .finish(),
            other @ (ProviderKind::Google
            | ProviderKind::Microsoft { .. }
            | ProviderKind::Facebook
            | ProviderKind::GitHub) => fmt::Debug::fmt(other, f),
        }
    }
}

struct EndpointsDebug<'a>(&'a EndpointOverrides);

impl fmt::Debug for EndpointsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let EndpointOverrides {
            issuer,
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            emails_endpoint,
            jwks_uri,
        } = self.0;
        fn url(v: &Option<String>) -> Option<Url<'_>> {
            v.as_deref().map(Url)
        }
        f.debug_struct("EndpointOverrides")
            .field("issuer", &url(issuer))
            .field("authorization_endpoint", &url(authorization_endpoint))
            .field("token_endpoint", &url(token_endpoint))
            .field("userinfo_endpoint", &url(userinfo_endpoint))
            .field("emails_endpoint", &url(emails_endpoint))
            .field("jwks_uri", &url(jwks_uri))
            .finish()
    }
}

/// Settings that apply to every API connector (`[connector_settings]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorSettings {
    /// Allows plain `http://` targets (development and tests). Default: false.
    pub allow_http_targets: bool,
    /// Allows targets on loopback (`127.0.0.0/8`, `::1`, `localhost`). Default: false.
    pub allow_loopback_targets: bool,
    /// Allows targets on private and other non-public addresses (RFC 1918, CGNAT,
    /// unique local, link-local). Default: false.
    pub allow_private_network_targets: bool,
    /// Keeps the request and response bodies of connector calls with their records.
    /// Default: false.
    pub record_bodies: bool,
    /// PEM certificates every connector trusts as roots besides the public web PKI,
    /// one certificate each.
    pub extra_root_certificates: Vec<String>,
    /// Where the deprecated `allow_insecure_targets` was set, if it was: the server
    /// warns at start.
    pub deprecated_insecure_targets_at: Option<String>,
}

impl ConnectorSettings {
    /// The three target settings as the connector client and the rules take them.
    pub fn target_policy(&self) -> usher_domain::rules::TargetPolicy {
        usher_domain::rules::TargetPolicy {
            allow_http: self.allow_http_targets,
            allow_loopback: self.allow_loopback_targets,
            allow_private_network: self.allow_private_network_targets,
        }
    }
}

impl Config {
    /// What the operator should change, though the server runs: deprecated settings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(at) = &self.connector_settings.deprecated_insecure_targets_at {
            out.push(format!(
                "{at}: connector_settings.allow_insecure_targets is deprecated: it allows plain http, loopback and the private network at once; set only what is needed of allow_http_targets, allow_loopback_targets and allow_private_network_targets instead"
            ));
        }
        out
    }
}

/// Connectors as `Config`'s `Debug` shows them: the domain's own `Debug` would print
/// a PKCS#12 file byte by byte (private key included) and a target's query, which
/// may hold a key (`?code=…`).
pub(crate) struct ConnectorsDebug<'a>(pub(crate) &'a [ConnectorDefinition]);

impl fmt::Debug for ConnectorsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ConnectorDebug))
            .finish()
    }
}

struct ConnectorDebug<'a>(&'a ConnectorDefinition);

impl fmt::Debug for ConnectorDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        f.debug_struct("ConnectorDefinition")
            .field("id", &c.id)
            .field("display_name", &c.display_name)
            .field("target_url", &rules::redact_url_query(&c.target_url))
            .field("authentication", &AuthenticationDebug(&c.authentication))
            .field("signing_secrets", &c.signing_secrets)
            .field("timeout", &c.timeout)
            .field("retries", &c.retries)
            .field("budget", &c.budget)
            .field("failure_policy", &c.failure_policy)
            .field("lenient", &c.lenient)
            .field("breaker", &c.breaker)
            .finish()
    }
}

struct AuthenticationDebug<'a>(&'a ConnectorAuthentication);

impl fmt::Debug for AuthenticationDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ConnectorAuthentication::ClientCertificate { certificates } => f
                .debug_struct("ClientCertificate")
                .field(
                    "certificates",
                    &certificates
                        .iter()
                        .map(CertificateDebug)
                        .collect::<Vec<_>>(),
                )
                .finish(),
            ConnectorAuthentication::OAuthClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => f
                .debug_struct("OAuthClientCredentials")
                .field("token_url", &rules::redact_url_query(token_url))
                .field("client_id", client_id)
                .field("client_secret", client_secret)
                .field("scope", scope)
                .finish(),
            // The others hold their secrets as `Secret`, which prints `******`.
            other => fmt::Debug::fmt(other, f),
        }
    }
}

struct CertificateDebug<'a>(&'a ClientCertificate);

impl fmt::Debug for CertificateDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ClientCertificate");
        match &self.0.source {
            CertificateSource::Pkcs12 { der, password } => s
                .field("pkcs12", &format_args!("<{} bytes>", der.len()))
                .field("password", password),
            CertificateSource::Pem { chain, key } => s
                .field("pem_chain", &format_args!("<{} bytes>", chain.len()))
                .field("key", key),
        };
        s.field("uploaded_at", &self.0.uploaded_at).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    /// Several instances may share it, which is why a master key must then be given.
    Postgres,
}

/// Where the master key (which encrypts signing keys at rest) comes from. The key
/// itself is parsed by the caller.
#[derive(Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// The key text, from the environment variable `var`.
    Env { var: String, value: String },
    /// A file holding the key; it existed at load.
    File(PathBuf),
    /// `data_dir/master.key`, created on first start if missing (SQLite only).
    GenerateInDataDir(PathBuf),
}

impl MasterKeySource {
    /// The file the key lives in, if it lives in one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            MasterKeySource::Env { .. } => None,
            MasterKeySource::File(p) | MasterKeySource::GenerateInDataDir(p) => Some(p),
        }
    }
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MasterKeySource::Env { var, .. } => f
                .debug_struct("Env")
                .field("var", var)
                .field("value", &"******")
                .finish(),
            MasterKeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            MasterKeySource::GenerateInDataDir(p) => {
                f.debug_tuple("GenerateInDataDir").field(p).finish()
            }
        }
    }
}

/// JOSE algorithm names, spelled as on the wire.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SigningAlgorithm {
    #[default]
    ES256,
    RS256,
}

impl SigningAlgorithm {
    /// The `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::RS256 => "RS256",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningSettings {
    pub algorithm: SigningAlgorithm,
    /// A new signing key takes over after this many days.
    pub rotation_days: u32,
    /// A new key is published in the JWKS this long before it signs anything, so
    /// relying parties that cache the JWKS already know it.
    pub publish_ahead_hours: u32,
}

impl Default for SigningSettings {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::ES256,
            rotation_days: 90,
            publish_ahead_hours: 24,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSettings {
    pub authorization_code_seconds: u64,
    pub access_token_seconds: u64,
    pub id_token_seconds: u64,
    pub refresh_token_days: u32,
    /// How long the browser session at Usher lasts (single sign-on across apps).
    pub session_hours: u32,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            authorization_code_seconds: 60,
            access_token_seconds: 3600,
            id_token_seconds: 3600,
            refresh_token_days: 14,
            session_hours: 24,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// The `From` header: `Name <address>` or a bare address.
    pub from: String,
    pub delivery: EmailDelivery,
    /// Whether verification codes are written to the log (for development).
    pub log_codes: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailDelivery {
    /// Each message is written as a file into `outbox_dir`.
    File {
        outbox_dir: PathBuf,
    },
    Smtp(SmtpSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a trusted network.
    None,
}
