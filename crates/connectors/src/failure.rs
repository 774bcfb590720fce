//! Why a connector call failed. Each reason has a stable camelCase name: it is what
//! the call record's `failure_reason` holds, what operators filter on and what the
//! metrics and logs say, so the names never change once published.

use serde::{Serialize, Serializer};

/// The class of a failed call (contract §3, "Anything else is a failed call").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// No answer within the per-attempt timeout or the call's total budget.
    Timeout,
    ConnectionRefused,
    /// The connection broke off after the request was sent.
    ConnectionReset,
    /// Any other failure to connect.
    ConnectionFailed,
    /// The target's host name did not resolve.
    DnsFailed,
    /// The TLS handshake failed (certificate, protocol version, client certificate).
    TlsFailed,
    /// A 3xx answer; redirects are never followed.
    Redirect,
    /// HTTP 401.
    Unauthorized,
    /// HTTP 403.
    Forbidden,
    /// HTTP 429 after the retries, or with a `Retry-After` beyond the budget.
    Http429,
    /// Any other 4xx except 400.
    Http4xx,
    Http5xx,
    /// A status the contract has no meaning for (a 2xx other than 200, 1xx).
    UnexpectedStatus,
    NotJson,
    /// The body is over 1 MiB.
    TooLarge,
    MissingAction,
    UnknownAction,
    /// `ValidationError` with an HTTP status other than 400.
    ValidationErrorWrongStatus,
    /// `ValidationError` at a step other than `PostAttributeCollection`.
    ValidationErrorNotAllowed,
    /// `ShowBlockPage` at `PreTokenIssuance`.
    BlockNotAllowed,
    /// HTTP 400 without a well-formed `ValidationError`.
    MalformedValidationError,
    /// A claim value of the wrong type or an invalid one.
    ContractViolation,
    /// The connector's circuit breaker is open: no HTTP call was made.
    CircuitOpen,
    /// Plain `http://` or a non-public address, without the operator's permission.
    TargetNotAllowed,
    /// The OAuth 2.0 token endpoint did not give a token.
    TokenRequestFailed,
    /// No uploaded client certificate is inside its validity period (or none can be read).
    NoValidCertificate,
    /// The connector cannot be used as configured (bad URL, header name, CA…).
    ConfigurationError,
    /// The user flow names a connector that does not exist.
    UnknownConnector,
    /// The answer's `Content-Type` is not JSON (extensions).
    WrongContentType,
    /// The answer's `actions` do not hold exactly one action (extensions).
    NotOneAction,
    /// The claims of `provideClaimsForToken` are over 3 KB (extensions).
    ClaimsTooLarge,
    /// The resource id of an issued token is not `api://<host>/<app id>`.
    ResourceIdMalformed,
    /// The resource id names another host than the target URL's.
    ResourceHostMismatch,
}

impl FailureReason {
    pub const ALL: [FailureReason; 33] = [
        FailureReason::Timeout,
        FailureReason::ConnectionRefused,
        FailureReason::ConnectionReset,
        FailureReason::ConnectionFailed,
        FailureReason::DnsFailed,
        FailureReason::TlsFailed,
        FailureReason::Redirect,
        FailureReason::Unauthorized,
        FailureReason::Forbidden,
        FailureReason::Http429,
        FailureReason::Http4xx,
        FailureReason::Http5xx,
        FailureReason::UnexpectedStatus,
        FailureReason::NotJson,
        FailureReason::TooLarge,
        FailureReason::MissingAction,
        FailureReason::UnknownAction,
        FailureReason::ValidationErrorWrongStatus,
        FailureReason::ValidationErrorNotAllowed,
        FailureReason::BlockNotAllowed,
        FailureReason::MalformedValidationError,
        FailureReason::ContractViolation,
        FailureReason::CircuitOpen,
        FailureReason::TargetNotAllowed,
        FailureReason::TokenRequestFailed,
        FailureReason::NoValidCertificate,
        FailureReason::ConfigurationError,
        FailureReason::UnknownConnector,
        FailureReason::WrongContentType,
        FailureReason::NotOneAction,
        FailureReason::ClaimsTooLarge,
        FailureReason::ResourceIdMalformed,
        FailureReason::ResourceHostMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::ConnectionRefused => "connectionRefused",
            FailureReason::ConnectionReset => "connectionReset",
            FailureReason::ConnectionFailed => "connectionFailed",
            FailureReason::DnsFailed => "dnsFailed",
            FailureReason::TlsFailed => "tlsFailed",
            FailureReason::Redirect => "redirect",
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::Forbidden => "forbidden",
            FailureReason::Http429 => "http429",
            FailureReason::Http4xx => "http4xx",
            FailureReason::Http5xx => "http5xx",
            FailureReason::UnexpectedStatus => "unexpectedStatus",
            FailureReason::NotJson => "notJson",
            FailureReason::TooLarge => "tooLarge",
            FailureReason::MissingAction => "missingAction",
            FailureReason::UnknownAction => "unknownAction",
            FailureReason::ValidationErrorWrongStatus => "validationErrorWrongStatus",
            FailureReason::ValidationErrorNotAllowed => "validationErrorNotAllowed",
            FailureReason::BlockNotAllowed => "blockNotAllowed",
            FailureReason::MalformedValidationError => "malformedValidationError",
            FailureReason::ContractViolation => "contractViolation",
            FailureReason::CircuitOpen => "circuitOpen",
            FailureReason::TargetNotAllowed => "targetNotAllowed",
            FailureReason::TokenRequestFailed => "tokenRequestFailed",
            FailureReason::NoValidCertificate => "noValidCertificate",
            FailureReason::ConfigurationError => "configurationError",
            FailureReason::UnknownConnector => "unknownConnector",
            FailureReason::WrongContentType => "wrongContentType",
            FailureReason::NotOneAction => "notOneAction",
            FailureReason::ClaimsTooLarge => "claimsTooLarge",
            FailureReason::ResourceIdMalformed => "resourceIdMalformed",
            FailureReason::ResourceHostMismatch => "resourceHostMismatch",
        }
    }

    /// Whether another attempt may get a different answer (contract §5: connection
    /// failures and timeouts; the retryable HTTP statuses are decided on the response).
    pub(crate) fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureReason::Timeout
                | FailureReason::ConnectionRefused
                | FailureReason::ConnectionReset
                | FailureReason::ConnectionFailed
                | FailureReason::DnsFailed
        )
    }
}

impl FailureReason {
    /// The Entra error code Microsoft's sign-in log shows for a failed call of a
    /// custom authentication extension; Usher records the same. `plain_http` tells a
    /// target refused for being `http://` (1003014) from one refused for its address
    /// (1003023). The table has no code of its own for a failure on Usher's side
    /// (an open breaker, a token that could not be signed, a connector that cannot
    /// be used as configured): those are 1003023, "refused by the service".
    pub fn entra_error_code(self, plain_http: bool) -> u32 {
        match self {
            FailureReason::Redirect
            | FailureReason::Unauthorized
            | FailureReason::Forbidden
            | FailureReason::Http4xx
            | FailureReason::Http5xx
            | FailureReason::UnexpectedStatus => 1_003_002,
            FailureReason::NotJson
            | FailureReason::ContractViolation
            | FailureReason::MalformedValidationError => 1_003_003,
            FailureReason::Http429 => 1_003_004,
            FailureReason::Timeout => 1_003_005,
            FailureReason::WrongContentType => 1_003_006,
            FailureReason::NotOneAction | FailureReason::MissingAction => 1_003_010,
            FailureReason::UnknownAction
            | FailureReason::ValidationErrorWrongStatus
            | FailureReason::ValidationErrorNotAllowed
            | FailureReason::BlockNotAllowed => 1_003_012,
            FailureReason::TargetNotAllowed if plain_http => 1_003_014,
            FailureReason::ResourceIdMalformed => 1_003_015,
            FailureReason::ResourceHostMismatch => 1_003_020,
            FailureReason::TargetNotAllowed
            | FailureReason::CircuitOpen
            | FailureReason::TokenRequestFailed
            | FailureReason::NoValidCertificate
            | FailureReason::ConfigurationError
            | FailureReason::UnknownConnector => 1_003_023,
            FailureReason::TooLarge => 1_003_024,
            FailureReason::ClaimsTooLarge => 1_003_025,
            FailureReason::ConnectionRefused
            | FailureReason::ConnectionReset
            | FailureReason::ConnectionFailed
            | FailureReason::DnsFailed
            | FailureReason::TlsFailed => 1_003_027,
        }
    }
}

impl Failure {
    /// The Entra error code of this failure of `definition`'s call, when it is an
    /// extension (1.0.0 connectors have none); `targets` tells a target refused for
    /// plain `http://` from one refused for its address.
    pub fn entra_code(
        &self,
        definition: &usher_domain::ConnectorDefinition,
        targets: usher_domain::rules::TargetPolicy,
    ) -> Option<u32> {
        let plain_http = definition.target_url.starts_with("http:") && !targets.allow_http;
        definition
            .contract
            .is_extension()
            .then(|| self.reason.entra_error_code(plain_http))
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A failed call: its reason and a short explanation for operators. The detail is
/// written by this crate, never copied from a credential, so it is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_camel_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in FailureReason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "duplicate {s}");
            assert!(s.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(s));
        }
    }
}
