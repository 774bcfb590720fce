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

/// The limits of a connector definition, in one place: the configuration file, the
/// admin API and its OpenAPI document take them from here.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Per attempt, in milliseconds.
    pub const TIMEOUT_MS: RangeInclusive<u64> = 100..=60_000;
    /// Attempts after the first.
    pub const RETRIES: RangeInclusive<u32> = 0..=5;
    /// For the whole call, retries included, in milliseconds.
    pub const BUDGET_MS: RangeInclusive<u64> = 100..=120_000;
    /// Consecutive failed calls that open the breaker.
    pub const BREAKER_FAILURE_THRESHOLD: RangeInclusive<u32> = 1..=100;
    /// How long an open breaker stays open, in seconds.
    pub const BREAKER_OPEN_SECONDS: RangeInclusive<u64> = 1..=3600;
    /// Client certificates one connector may hold: enough for a rotation with room
    /// to spare (each call may open each PKCS#12 file, a slow key derivation).
    pub const CLIENT_CERTIFICATES: usize = 5;

    /// A limit's lower bound as the entry points' integer readers take it.
    pub fn lo<T: Copy + TryInto<i64>>(r: &RangeInclusive<T>) -> i64 {
        (*r.start()).try_into().unwrap_or(i64::MAX)
    }

    /// A limit's upper bound as the entry points' integer readers take it.
    pub fn hi<T: Copy + TryInto<i64>>(r: &RangeInclusive<T>) -> i64 {
        (*r.end()).try_into().unwrap_or(i64::MAX)
    }
}

/// Which part of a connector definition breaks a rule; each entry point names it in
/// its own words (a TOML key, a Graph property).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorField {
    Timeout,
    Retries,
    Budget,
    BreakerFailureThreshold,
    BreakerOpenSeconds,
    ClientCertificates,
}

/// A rule a connector definition breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorRuleError {
    pub field: ConnectorField,
    pub message: String,
}

impl ConnectorDefinition {
    /// The rules of a connector definition that span fields or come from
    /// [`limits`]: every entry point (configuration file, `apply`, admin API, stored
    /// tenant) checks a definition with this before using it.
    pub fn check(&self) -> Result<(), ConnectorRuleError> {
        let fail = |field, message: String| Err(ConnectorRuleError { field, message });
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (timeout, budget) = (ms(self.timeout), ms(self.budget));
        if !limits::TIMEOUT_MS.contains(&timeout) {
            return fail(
                ConnectorField::Timeout,
                format!(
                    "must be {} to {} ms",
                    limits::TIMEOUT_MS.start(),
                    limits::TIMEOUT_MS.end()
                ),
            );
        }
        if !limits::RETRIES.contains(&self.retries) {
            return fail(
                ConnectorField::Retries,
                format!(
                    "must be {} to {}",
                    limits::RETRIES.start(),
                    limits::RETRIES.end()
                ),
            );
        }
        if !limits::BUDGET_MS.contains(&budget) {
            return fail(
                ConnectorField::Budget,
                format!(
                    "must be {} to {} ms",
                    limits::BUDGET_MS.start(),
                    limits::BUDGET_MS.end()
                ),
            );
        }
        if budget < timeout {
            return fail(
                ConnectorField::Budget,
                format!(
                    "the budget ({budget} ms) must be at least the timeout ({timeout} ms): it covers every attempt"
                ),
            );
        }
        if !limits::BREAKER_FAILURE_THRESHOLD.contains(&self.breaker.failure_threshold) {
            return fail(
                ConnectorField::BreakerFailureThreshold,
                format!(
                    "must be {} to {}",
                    limits::BREAKER_FAILURE_THRESHOLD.start(),
                    limits::BREAKER_FAILURE_THRESHOLD.end()
                ),
            );
        }
        if !limits::BREAKER_OPEN_SECONDS.contains(&self.breaker.open_for.as_secs()) {
            return fail(
                ConnectorField::BreakerOpenSeconds,
                format!(
                    "must be {} to {} seconds",
                    limits::BREAKER_OPEN_SECONDS.start(),
                    limits::BREAKER_OPEN_SECONDS.end()
                ),
            );
        }
        if let ConnectorAuthentication::ClientCertificate { certificates } = &self.authentication {
            if certificates.len() > limits::CLIENT_CERTIFICATES {
                return fail(
                    ConnectorField::ClientCertificates,
                    format!(
                        "a connector holds at most {} client certificates",
                        limits::CLIENT_CERTIFICATES
                    ),
                );
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod rule_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_check_for_every_entry_point() {
        let ok = ConnectorDefinition::new("c", "https://api.example/c");
        assert_eq!(ok.check(), Ok(()));
        let field = |c: ConnectorDefinition| c.check().unwrap_err().field;
        let with = |f: &dyn Fn(&mut ConnectorDefinition)| {
            let mut c = ok.clone();
            f(&mut c);
            c
        };
        assert_eq!(
            field(with(&|c| c.timeout = Duration::from_millis(99))),
            ConnectorField::Timeout
        );
        assert_eq!(field(with(&|c| c.retries = 6)), ConnectorField::Retries);
        assert_eq!(
            field(with(&|c| c.budget = Duration::from_millis(120_001))),
            ConnectorField::Budget
        );
        assert_eq!(
            field(with(&|c| c.budget = Duration::from_secs(5))),
            ConnectorField::Budget,
            "below the timeout"
        );
        assert_eq!(
            field(with(&|c| c.breaker.failure_threshold = 0)),
            ConnectorField::BreakerFailureThreshold
        );
        assert_eq!(
            field(with(&|c| c.breaker.open_for = Duration::from_secs(3601))),
            ConnectorField::BreakerOpenSeconds
        );
        let certificate = ClientCertificate {
            source: CertificateSource::Pem {
                chain: String::new(),
                key: Secret::new(""),
            },
            uploaded_at: chrono::DateTime::UNIX_EPOCH,
        };
        let certificates = |n: usize| {
            with(&|c| {
                c.authentication = ConnectorAuthentication::ClientCertificate {
                    certificates: vec![certificate.clone(); n],
                }
            })
        };
        assert_eq!(certificates(limits::CLIENT_CERTIFICATES).check(), Ok(()));
        assert_eq!(
            field(certificates(limits::CLIENT_CERTIFICATES + 1)),
            ConnectorField::ClientCertificates
        );
    }
}
