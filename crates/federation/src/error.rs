//! What can go wrong while federating, and the few categories a sign-in page tells
//! apart. Messages name endpoints and reasons, never secrets, codes, tokens or the
//! provider's free-text error descriptions.

/// What the user is told, broadly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The provider could not be reached or failed (network, timeout, 5xx, an
    /// unusable discovery document): try again later.
    ProviderUnavailable,
    /// The provider answered with an error (an expired code, a refused token…).
    ProviderError,
    /// The provider's ID token failed validation: possibly an attack.
    InvalidIdToken,
    /// Usher's own configuration or the caller is at fault.
    Misconfigured,
}

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("no identity provider with id {0:?}")]
    UnknownProvider(String),
    /// The provider configuration is unusable (reported by `Federation::new`).
    #[error("identity provider misconfigured: {0}")]
    Misconfigured(String),
    /// The caller passed something unusable (e.g. a malformed PKCE verifier).
    #[error("invalid federation request: {0}")]
    InvalidRequest(String),
    /// An endpoint that settings forbid: `http://`, or a loopback, link-local or
    /// unspecified address.
    #[error("endpoint not allowed: {0}")]
    NotAllowed(String),
    /// The discovery document or the JWKS could not be fetched or is unusable.
    #[error("OpenID Connect discovery failed: {0}")]
    Discovery(String),
    /// The token endpoint failed: `status` is `None` when there was no HTTP answer,
    /// `error` is the OAuth error code when the provider sent one.
    #[error("token endpoint failed (status {status:?}, error {error:?})")]
    TokenEndpoint {
        status: Option<u16>,
        error: Option<String>,
    },
    /// The ID token was refused. The reason is one of a small vocabulary:
    /// `signature`, `unknown signing key`, `algorithm`, `issuer`, `audience`,
    /// `authorized party`, `expired`, `not yet valid`, `issued in the future`,
    /// `nonce`, `at_hash`, `subject`, `missing`, or `malformed: …`.
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    /// A userinfo endpoint (OIDC userinfo, Facebook `/me`, GitHub `/user`, OAuth 2.0
    /// userinfo) failed; `status` is `None` when there was no HTTP answer.
    #[error("userinfo endpoint failed (status {status:?}): {reason}")]
    UserInfo { status: Option<u16>, reason: String },
}

impl From<usher_domain::identity_provider::Misconfigured> for FederationError {
    fn from(e: usher_domain::identity_provider::Misconfigured) -> Self {
        FederationError::Misconfigured(e.0)
    }
}

impl FederationError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            FederationError::UnknownProvider(_)
            | FederationError::Misconfigured(_)
            | FederationError::InvalidRequest(_)
            | FederationError::NotAllowed(_) => ErrorKind::Misconfigured,
            FederationError::Discovery(_) => ErrorKind::ProviderUnavailable,
            FederationError::TokenEndpoint { status, .. }
            | FederationError::UserInfo { status, .. } => match status {
                None => ErrorKind::ProviderUnavailable,
                Some(s) if *s >= 500 || *s == 429 => ErrorKind::ProviderUnavailable,
                Some(_) => ErrorKind::ProviderError,
            },
            FederationError::InvalidIdToken(_) => ErrorKind::InvalidIdToken,
        }
    }

    pub(crate) fn id_token(reason: impl Into<String>) -> Self {
        FederationError::InvalidIdToken(reason.into())
    }

    pub(crate) fn userinfo(status: Option<u16>, reason: impl Into<String>) -> Self {
        FederationError::UserInfo {
            status,
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let token = |status| FederationError::TokenEndpoint {
            status,
            error: None,
        };
        assert_eq!(token(None).kind(), ErrorKind::ProviderUnavailable);
        assert_eq!(token(Some(503)).kind(), ErrorKind::ProviderUnavailable);
        assert_eq!(token(Some(400)).kind(), ErrorKind::ProviderError);
        assert_eq!(
            FederationError::id_token("nonce").kind(),
            ErrorKind::InvalidIdToken
        );
        assert_eq!(
            FederationError::UnknownProvider("x".into()).kind(),
            ErrorKind::Misconfigured
        );
        assert_eq!(
            FederationError::Discovery("x".into()).kind(),
            ErrorKind::ProviderUnavailable
        );
        assert_eq!(
            FederationError::userinfo(Some(401), "x").kind(),
            ErrorKind::ProviderError
        );
    }
}
