//! The steps of a user flow at which API connectors run.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectorStep {
    PostFederationSignup,
    PostAttributeCollection,
    PreTokenIssuance,
}

impl ConnectorStep {
    /// The `step` value sent on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "PostFederationSignup",
            ConnectorStep::PostAttributeCollection => "PostAttributeCollection",
            ConnectorStep::PreTokenIssuance => "PreTokenIssuance",
        }
    }

    /// The slot name in configuration and the admin API.
    pub fn slot_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "postFederationSignup",
            ConnectorStep::PostAttributeCollection => "postAttributeCollection",
            ConnectorStep::PreTokenIssuance => "preTokenIssuance",
        }
    }
}

/// A credential Usher sends but never shows: `Debug` and `Display` print `******`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("******")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("******")
    }
}

/// What happens when a connector call fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailurePolicy {
    /// The sign-up stops with the generic error page (Entra's behaviour).
    #[default]
    Block,
    /// Fail open: the step continues as if the connector answered `Continue` with no
    /// claims.
    Continue,
}

/// A client certificate uploaded for a connector.
#[derive(Clone, PartialEq, Eq)]
pub enum CertificateSource {
    /// A PKCS#12 (.pfx) file and its password.
    Pkcs12 { der: Vec<u8>, password: Secret },
    /// A PEM certificate chain (leaf first) and its PEM private key.
    Pem { chain: String, key: Secret },
}

/// A PKCS#12 file holds the private key: its bytes are never printed.
impl std::fmt::Debug for CertificateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateSource::Pkcs12 { der, .. } => f
                .debug_struct("Pkcs12")
                .field("der", &format_args!("<{} bytes>", der.len()))
                .field("password", &"******")
                .finish(),
            CertificateSource::Pem { chain, .. } => f
                .debug_struct("Pem")
                .field("chain", &format_args!("<{} bytes>", chain.len()))
                .field("key", &"******")
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub source: CertificateSource,
    /// When it was uploaded: among certificates inside their validity period, the most
    /// recently uploaded one is used.
    pub uploaded_at: chrono::DateTime<chrono::Utc>,
}

/// How Usher authenticates to the connector's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorAuthentication {
    None,
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        username: String,
        password: Secret,
    },
    /// Mutual TLS with one of these certificates.
    ClientCertificate {
        certificates: Vec<ClientCertificate>,
    },
    /// A static key in a named header (extension).
    ApiKey {
        header: String,
        value: Secret,
    },
    /// A bearer token from an OAuth 2.0 token endpoint by the client-credentials grant,
    /// cached until shortly before it expires (extension).
    OAuthClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: Option<String>,
    },
}

/// When to stop calling an endpoint that keeps failing (extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is let through.
    pub open_for: std::time::Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: std::time::Duration::from_secs(30),
        }
    }
}

/// An API connector: a customer's web API called at a step of a user flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorDefinition {
    pub id: String,
    pub display_name: String,
    /// `https://…` (plain `http` and non-public addresses only when the operator allows
    /// them).
    pub target_url: String,
    pub authentication: ConnectorAuthentication,
    /// Standard Webhooks signing secrets (`whsec_<base64>`); several while rotating.
    pub signing_secrets: Vec<Secret>,
    /// Per attempt (default 10 s).
    pub timeout: std::time::Duration,
    /// Attempts after the first (default 1).
    pub retries: u32,
    /// For the whole call, retries included (default 20 s).
    pub budget: std::time::Duration,
    pub failure_policy: FailurePolicy,
    /// Accept what older samples send: `Allow` for `Continue`, `ValidationError` with
    /// HTTP 200.
    pub lenient: bool,
    pub breaker: BreakerSettings,
    /// PEM certificates trusted as roots for this connector's server certificate,
    /// besides the public web PKI and the operator's global ones: a connector behind
    /// a company CA. One certificate each, as `rules::parse_root_certificates` left it.
    pub extra_root_certificates: Vec<String>,
}

impl ConnectorDefinition {
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
    pub const DEFAULT_RETRIES: u32 = 1;
    pub const DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

    /// A connector with the defaults of the contract and no authentication.
    pub fn new(id: impl Into<String>, target_url: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            display_name: id.clone(),
            id,
            target_url: target_url.into(),
            authentication: ConnectorAuthentication::None,
            signing_secrets: Vec::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            retries: Self::DEFAULT_RETRIES,
            budget: Self::DEFAULT_BUDGET,
            failure_policy: FailurePolicy::Block,
            lenient: false,
            breaker: BreakerSettings::default(),
            extra_root_certificates: Vec::new(),
        }
    }
}
