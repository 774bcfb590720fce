//! The steps of a user flow at which API connectors run.

use serde::{Deserialize, Serialize};

/// Where in a sign-up a user flow's connectors run. The 1.0.0 contract names three
/// of them; the custom authentication extensions of Entra External ID name four
/// events, two of which (`attributeCollectionSubmit`, `tokenIssuanceStart`) are the
/// same moments as 1.0.0 steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectorStep {
    PostFederationSignup,
    /// Before the attribute page is shown, for local and federated sign-ups alike
    /// (External ID's `attributeCollectionStart`).
    AttributeCollectionStart,
    PostAttributeCollection,
    PreTokenIssuance,
    /// A one-time code must be emailed; the connector delivers it (External ID's
    /// `emailOtpSend`).
    EmailOtpSend,
    /// A password reset's code was proven, before the new password is asked for: the
    /// connector lets the recovery continue or blocks it (Usher's step).
    PreAccountRecovery,
    /// A signed-in person submitted the profile page: validate, block or overwrite,
    /// as after a sign-up's attribute page (Usher's step).
    OnProfileUpdate,
}

impl ConnectorStep {
    /// In the order a sign-up reaches them.
    pub const ALL: [ConnectorStep; 7] = [
        ConnectorStep::EmailOtpSend,
        ConnectorStep::PostFederationSignup,
        ConnectorStep::AttributeCollectionStart,
        ConnectorStep::PostAttributeCollection,
        ConnectorStep::PreTokenIssuance,
        ConnectorStep::PreAccountRecovery,
        ConnectorStep::OnProfileUpdate,
    ];

    /// Whether a connector may answer `ValidationError` here: only after a form the
    /// person can correct.
    pub fn takes_validation_errors(self) -> bool {
        matches!(
            self,
            ConnectorStep::PostAttributeCollection | ConnectorStep::OnProfileUpdate
        )
    }

    /// The `step` value sent on the wire (1.0.0 contract).
    pub fn wire_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "PostFederationSignup",
            ConnectorStep::AttributeCollectionStart => "AttributeCollectionStart",
            ConnectorStep::PostAttributeCollection => "PostAttributeCollection",
            ConnectorStep::PreTokenIssuance => "PreTokenIssuance",
            ConnectorStep::EmailOtpSend => "EmailOtpSend",
            ConnectorStep::OnProfileUpdate => "OnProfileUpdate",
            ConnectorStep::PreAccountRecovery => "PreAccountRecovery",
        }
    }

    /// The slot name in the admin API (the configuration file writes it in
    /// `snake_case`).
    pub fn slot_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "postFederationSignup",
            ConnectorStep::AttributeCollectionStart => "attributeCollectionStart",
            ConnectorStep::PostAttributeCollection => "postAttributeCollection",
            ConnectorStep::PreTokenIssuance => "preTokenIssuance",
            ConnectorStep::EmailOtpSend => "emailOtpSend",
            ConnectorStep::OnProfileUpdate => "onProfileUpdate",
            ConnectorStep::PreAccountRecovery => "preAccountRecovery",
        }
    }

    /// The slot name in the configuration file.
    pub fn config_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "post_federation_signup",
            ConnectorStep::AttributeCollectionStart => "attribute_collection_start",
            ConnectorStep::PostAttributeCollection => "post_attribute_collection",
            ConnectorStep::PreTokenIssuance => "pre_token_issuance",
            ConnectorStep::EmailOtpSend => "email_otp_send",
            ConnectorStep::OnProfileUpdate => "on_profile_update",
            ConnectorStep::PreAccountRecovery => "pre_account_recovery",
        }
    }

    /// The External ID event at this step, if the extension contract has one
    /// (`postFederationSignup` exists only in the 1.0.0 contract).
    pub fn extension_event(self) -> Option<&'static str> {
        match self {
            ConnectorStep::PostFederationSignup
            | ConnectorStep::PreAccountRecovery
            | ConnectorStep::OnProfileUpdate => None,
            ConnectorStep::AttributeCollectionStart => Some("attributeCollectionStart"),
            ConnectorStep::PostAttributeCollection => Some("attributeCollectionSubmit"),
            ConnectorStep::PreTokenIssuance => Some("tokenIssuanceStart"),
            ConnectorStep::EmailOtpSend => Some("emailOtpSend"),
        }
    }
}

/// Which of Entra's two wire contracts a connector speaks, so code written for
/// either product runs unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ConnectorContract {
    /// The API connectors of Azure AD B2C and Entra workforce tenants, version 1.0.0.
    #[default]
    ApiConnector,
    /// The custom authentication extensions of Entra External ID.
    #[serde(rename_all = "camelCase")]
    CustomAuthenticationExtension {
        /// At `tokenIssuanceStart`, only the claims of the answer named here go
        /// into the token (Graph's `claimsForTokenConfiguration`).
        #[serde(default)]
        claims_for_token: Vec<String>,
        /// The one step it is for, when it was declared for one (Graph's
        /// `@odata.type`, `onTokenIssuanceStartCustomExtension` and the like);
        /// `None`: any step with an event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<ConnectorStep>,
    },
}

impl ConnectorContract {
    /// Its name in the configuration file and the admin API.
    pub fn name(&self) -> &'static str {
        match self {
            ConnectorContract::ApiConnector => Self::API_CONNECTOR,
            ConnectorContract::CustomAuthenticationExtension { .. } => Self::EXTENSION,
        }
    }

    pub const API_CONNECTOR: &'static str = "api-connector-1.0.0";
    pub const EXTENSION: &'static str = "custom-authentication-extension";

    pub fn is_extension(&self) -> bool {
        matches!(
            self,
            ConnectorContract::CustomAuthenticationExtension { .. }
        )
    }

    /// Whether a connector of this contract can run at `step`: an extension only at
    /// the steps that have an event, a 1.0.0 connector everywhere but the code
    /// delivery, which its contract has no answer for.
    pub fn serves(&self, step: ConnectorStep) -> bool {
        match self {
            ConnectorContract::ApiConnector => step != ConnectorStep::EmailOtpSend,
            ConnectorContract::CustomAuthenticationExtension { event, .. } => {
                step.extension_event().is_some() && event.is_none_or(|e| e == step)
            }
        }
    }
}

impl ConnectorStep {
    /// The step of an External ID event name (`attributeCollectionSubmit`, …).
    pub fn from_extension_event(event: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| {
            s.extension_event()
                .is_some_and(|e| e.eq_ignore_ascii_case(event))
        })
    }
}

/// The caller id Entra puts in the tokens it sends to extensions (`azp`, `appid`),
/// which Microsoft's SDK and samples check for.
pub const ENTRA_EXTENSION_CALLER_ID: &str = "99045fe1-7639-4a75-9d4a-577b6ca3810f";

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
    /// A short-lived JWT Usher issues itself, signed with the tenant's token keys
    /// (published in its JWKS), as Entra authenticates calls to custom
    /// authentication extensions (Graph's `azureAdTokenAuthentication`).
    IssuedToken {
        /// The token's `aud`: `api://<the target's host>/<app id>`.
        resource_id: String,
        /// The token's `azp` and `appid` ([`ENTRA_EXTENSION_CALLER_ID`] by default).
        caller_id: String,
    },
}

/// Reads `api://<host>/<app id>` into its host and app id.
pub fn parse_resource_id(resource_id: &str) -> Option<(&str, &str)> {
    let rest = resource_id.strip_prefix("api://")?;
    let (host, app) = rest.split_once('/')?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    let app_ok = !app.is_empty()
        && app.len() <= 128
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (host_ok && app_ok).then_some((host, app))
}

/// The host (with a port other than 443, as `host:port`) of an absolute URL, lower
/// case; what a resource id must name.
pub fn url_authority(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // A user name, or a backslash some parsers take for a slash, makes the host
    // ambiguous: no authority then, and no resource id matches.
    if authority.contains(['@', '\\']) {
        return None;
    }
    let authority = authority.strip_suffix(":443").unwrap_or(authority);
    (!authority.is_empty()).then(|| authority.to_ascii_lowercase())
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

    /// The custom authentication extension contract's own limits (Graph's
    /// `clientConfiguration`).
    pub mod extension {
        use std::ops::RangeInclusive;

        pub const TIMEOUT_MS: RangeInclusive<u64> = 200..=2000;
        pub const RETRIES: RangeInclusive<u32> = 0..=1;
        /// Claims named in `claimsForTokenConfiguration`.
        pub const CLAIMS_FOR_TOKEN: usize = 50;
        /// All the claims an answer may give, serialized, in bytes.
        pub const CLAIMS_BYTES: usize = 3 * 1024;
    }

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
    /// `authentication.resource_id` (Graph: `authenticationConfiguration.resourceId`).
    ResourceId,
    /// `authentication.caller_id`.
    CallerId,
    /// `claims_for_token` (Graph: `claimsForTokenConfiguration`).
    ClaimsForToken,
    Description,
    FailurePolicy,
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
        if let ConnectorContract::CustomAuthenticationExtension {
            claims_for_token,
            event,
        } = &self.contract
        {
            self.check_extension(timeout, claims_for_token, *event)?;
        }
        if self.description.chars().count() > 1024 {
            return fail(
                ConnectorField::Description,
                "must be at most 1024 characters".into(),
            );
        }
        if let ConnectorAuthentication::IssuedToken {
            resource_id,
            caller_id,
        } = &self.authentication
        {
            self.check_issued_token(resource_id, caller_id)?;
        }
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

impl ConnectorDefinition {
    fn check_extension(
        &self,
        timeout: u64,
        claims: &[String],
        event: Option<ConnectorStep>,
    ) -> Result<(), ConnectorRuleError> {
        let fail = |field, message: String| Err(ConnectorRuleError { field, message });
        // Every failure of an extension is fail-closed but at code delivery, where
        // `continue` means the mailer sends the code instead; an extension that may
        // run elsewhere too must not skip a step by failing.
        if self.failure_policy == FailurePolicy::Continue
            && event != Some(ConnectorStep::EmailOtpSend)
        {
            return fail(
                ConnectorField::FailurePolicy,
                "continue is for an extension made for emailOtpSend only (event = emailOtpSend): elsewhere an extension's failure stops the sign-up".into(),
            );
        }
        let ext = &limits::extension::TIMEOUT_MS;
        if !ext.contains(&timeout) {
            return fail(
                ConnectorField::Timeout,
                format!(
                    "must be {} to {} ms for a custom authentication extension",
                    ext.start(),
                    ext.end()
                ),
            );
        }
        let retries = &limits::extension::RETRIES;
        if !retries.contains(&self.retries) {
            return fail(
                ConnectorField::Retries,
                format!(
                    "must be {} or {} for a custom authentication extension",
                    retries.start(),
                    retries.end()
                ),
            );
        }
        if let Some(twice) = claims
            .iter()
            .enumerate()
            .find_map(|(i, c)| claims[..i].contains(c).then_some(c))
        {
            return fail(
                ConnectorField::ClaimsForToken,
                format!("{twice} is listed twice"),
            );
        }
        if claims.len() > limits::extension::CLAIMS_FOR_TOKEN {
            return fail(
                ConnectorField::ClaimsForToken,
                format!("at most {} claims", limits::extension::CLAIMS_FOR_TOKEN),
            );
        }
        if let Some(bad) = claims
            .iter()
            .find(|c| c.is_empty() || c.len() > 128 || c.chars().any(char::is_control))
        {
            return fail(
                ConnectorField::ClaimsForToken,
                format!("{bad:?} is not a claim name (1 to 128 printable characters)"),
            );
        }
        Ok(())
    }

    fn check_issued_token(
        &self,
        resource_id: &str,
        caller_id: &str,
    ) -> Result<(), ConnectorRuleError> {
        let fail = |field, message: String| Err(ConnectorRuleError { field, message });
        let Some((host, _)) = parse_resource_id(resource_id) else {
            return fail(
                ConnectorField::ResourceId,
                format!("{resource_id:?} is not of the form api://<host>/<app id>"),
            );
        };
        if url_authority(&self.target_url).as_deref() != Some(&host.to_ascii_lowercase()) {
            return fail(
                ConnectorField::ResourceId,
                format!(
                    "names the host {host:?}, but the target URL is on another host: the token is meant for the API it is sent to"
                ),
            );
        }
        if caller_id.is_empty() || caller_id.len() > 128 || caller_id.chars().any(char::is_control)
        {
            return fail(
                ConnectorField::CallerId,
                "must be 1 to 128 printable characters".into(),
            );
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
    pub contract: ConnectorContract,
    pub display_name: String,
    /// What it is for, in the administrators' words (may be empty).
    pub description: String,
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
    pub const EXTENSION_DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
    pub const EXTENSION_DEFAULT_RETRIES: u32 = 1;
    /// Both attempts of the default.
    pub const EXTENSION_DEFAULT_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

    /// A connector with the defaults of the contract and no authentication.
    pub fn new(id: impl Into<String>, target_url: impl Into<String>) -> Self {
        let id = id.into();
        Self {
            display_name: id.clone(),
            id,
            contract: ConnectorContract::ApiConnector,
            description: String::new(),
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

    /// A custom authentication extension with its contract's defaults, authenticated
    /// by a token Usher issues for `resource_id`.
    pub fn extension(
        id: impl Into<String>,
        target_url: impl Into<String>,
        resource_id: impl Into<String>,
    ) -> Self {
        Self {
            contract: ConnectorContract::CustomAuthenticationExtension {
                claims_for_token: Vec::new(),
                event: None,
            },
            authentication: ConnectorAuthentication::IssuedToken {
                resource_id: resource_id.into(),
                caller_id: ENTRA_EXTENSION_CALLER_ID.into(),
            },
            timeout: Self::EXTENSION_DEFAULT_TIMEOUT,
            retries: Self::EXTENSION_DEFAULT_RETRIES,
            budget: Self::EXTENSION_DEFAULT_BUDGET,
            ..Self::new(id, target_url)
        }
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn extensions_keep_their_contracts_limits() {
        let ok = ConnectorDefinition::extension(
            "x",
            "https://api.contoso.com/start",
            "api://api.contoso.com/7f1c2e0a-1b2c-4d5e-8f90-0123456789ab",
        );
        assert_eq!(ok.check(), Ok(()));
        let field = |c: ConnectorDefinition| c.check().unwrap_err().field;
        let with = |f: &dyn Fn(&mut ConnectorDefinition)| {
            let mut c = ok.clone();
            f(&mut c);
            c
        };
        assert_eq!(
            field(with(&|c| c.timeout = Duration::from_millis(199))),
            ConnectorField::Timeout
        );
        assert_eq!(
            field(with(&|c| c.timeout = Duration::from_millis(2001))),
            ConnectorField::Timeout
        );
        assert_eq!(field(with(&|c| c.retries = 2)), ConnectorField::Retries);
        let auth = |resource_id: &str| {
            with(&|c| {
                c.authentication = ConnectorAuthentication::IssuedToken {
                    resource_id: resource_id.into(),
                    caller_id: ENTRA_EXTENSION_CALLER_ID.into(),
                }
            })
        };
        assert_eq!(
            field(auth("https://api.contoso.com/x")),
            ConnectorField::ResourceId
        );
        assert_eq!(
            field(auth("api://api.contoso.com")),
            ConnectorField::ResourceId
        );
        assert_eq!(
            field(auth("api://other.contoso.com/abc")),
            ConnectorField::ResourceId,
            "another host than the target's"
        );
        assert_eq!(auth("api://API.contoso.com/abc").check(), Ok(()));
        assert_eq!(
            field(with(&|c| {
                c.contract = ConnectorContract::CustomAuthenticationExtension {
                    claims_for_token: vec![String::new()],
                    event: None,
                }
            })),
            ConnectorField::ClaimsForToken
        );
        // Failing open is for code delivery only (the mailer then sends the code).
        assert_eq!(
            field(with(&|c| c.failure_policy = FailurePolicy::Continue)),
            ConnectorField::FailurePolicy
        );
        let otp = with(&|c| {
            c.failure_policy = FailurePolicy::Continue;
            c.contract = ConnectorContract::CustomAuthenticationExtension {
                claims_for_token: vec![],
                event: Some(ConnectorStep::EmailOtpSend),
            };
        });
        assert_eq!(otp.check(), Ok(()));
        assert_eq!(
            field(with(&|c| {
                c.contract = ConnectorContract::CustomAuthenticationExtension {
                    claims_for_token: vec!["a".into(), "a".into()],
                    event: None,
                }
            })),
            ConnectorField::ClaimsForToken,
            "listed twice"
        );
        // The 1.0.0 limits still apply to 1.0.0 connectors.
        let mut plain = with(&|c| c.contract = ConnectorContract::ApiConnector);
        plain.timeout = Duration::from_secs(5);
        plain.retries = 3;
        plain.budget = Duration::from_secs(20);
        assert_eq!(plain.check(), Ok(()));
    }

    #[test]
    fn resource_ids_and_authorities() {
        assert_eq!(
            parse_resource_id("api://api.contoso.com/abc-1"),
            Some(("api.contoso.com", "abc-1"))
        );
        assert_eq!(
            parse_resource_id("api://127.0.0.1:8443/a"),
            Some(("127.0.0.1:8443", "a"))
        );
        assert_eq!(parse_resource_id("api:///a"), None);
        assert_eq!(parse_resource_id("api://h/a b"), None);
        assert_eq!(
            url_authority("https://Api.Contoso.com:443/x?y").as_deref(),
            Some("api.contoso.com")
        );
        assert_eq!(
            url_authority("http://127.0.0.1:8443/x").as_deref(),
            Some("127.0.0.1:8443")
        );
        assert!(ConnectorContract::ApiConnector.serves(ConnectorStep::AttributeCollectionStart));
        assert!(!ConnectorContract::ApiConnector.serves(ConnectorStep::EmailOtpSend));
        let ext = ConnectorContract::CustomAuthenticationExtension {
            claims_for_token: vec![],
            event: None,
        };
        assert!(!ext.serves(ConnectorStep::PostFederationSignup));
        assert!(ext.serves(ConnectorStep::EmailOtpSend));
        let token_only = ConnectorContract::CustomAuthenticationExtension {
            claims_for_token: vec![],
            event: Some(ConnectorStep::PreTokenIssuance),
        };
        assert!(token_only.serves(ConnectorStep::PreTokenIssuance));
        assert!(!token_only.serves(ConnectorStep::EmailOtpSend));
        assert_eq!(
            ConnectorStep::from_extension_event("TokenIssuanceStart"),
            Some(ConnectorStep::PreTokenIssuance)
        );
    }

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
