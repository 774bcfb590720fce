//! What an operator configures for each upstream identity provider, and the
//! per-kind defaults (endpoints, scopes, claim mapping, identity issuer) that make a
//! preset work with only a client id and secret.

use std::collections::BTreeMap;
use std::time::Duration;

use usher_domain::Secret;

/// The Facebook Graph API version the preset's default endpoints name. Facebook
/// serves each version for about two years; an operator can move on by overriding
/// the endpoints before Usher is updated.
pub const FACEBOOK_GRAPH_VERSION: &str = "v23.0";

/// Google's issuer. Its ID tokens carry either this or the same without the scheme.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The tenant id Microsoft uses for personal Microsoft accounts.
pub const MICROSOFT_CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// One upstream identity provider.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The provider's id in Usher, e.g. `Google-OAUTH` or `contoso-oidc`. Matched
    /// without regard to case.
    pub id: String,
    /// The sign-in button text.
    pub display_name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: Secret,
    /// Empty means the kind's defaults (see [`ProviderKind::default_scopes`]).
    pub scopes: Vec<String>,
    /// Attribute id → upstream claim. Empty means [`ClaimMapping::defaults_for`] the kind.
    pub claim_mapping: ClaimMapping,
    pub endpoints: EndpointOverrides,
    /// How Usher authenticates at the token endpoint; `None` means the kind's default
    /// (see [`ProviderConfig::effective_client_auth`]).
    pub client_auth: Option<ClientAuthMethod>,
}

impl ProviderConfig {
    /// A provider with the kind's defaults for everything but its credentials.
    pub fn new(
        id: impl Into<String>,
        kind: ProviderKind,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> Self {
        Self {
            id: id.into(),
            display_name: kind.default_display_name().to_owned(),
            claim_mapping: ClaimMapping::defaults_for(&kind),
            kind,
            client_id: client_id.into(),
            client_secret,
            scopes: Vec::new(),
            endpoints: EndpointOverrides::default(),
            client_auth: None,
        }
    }

    /// The scopes requested: the configured ones, or the kind's defaults.
    pub fn effective_scopes(&self) -> Vec<String> {
        if self.scopes.is_empty() {
            self.kind
                .default_scopes()
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            self.scopes.clone()
        }
    }

    /// The claim mapping used: the configured one, or the kind's defaults.
    pub fn effective_claim_mapping(&self) -> ClaimMapping {
        if self.claim_mapping.0.is_empty() {
            ClaimMapping::defaults_for(&self.kind)
        } else {
            self.claim_mapping.clone()
        }
    }

    /// The configured method, or the kind's default: `client_secret_post` for
    /// Facebook and GitHub (which document only that), `client_secret_basic` for the
    /// rest (RFC 6749 §2.3.1 says every server must support it). For OpenID Connect
    /// kinds an unconfigured method also yields to what discovery says the provider
    /// supports (see `Federation::complete`).
    pub fn effective_client_auth(&self) -> ClientAuthMethod {
        self.client_auth.unwrap_or(match self.kind {
            ProviderKind::Facebook | ProviderKind::GitHub => ClientAuthMethod::ClientSecretPost,
            _ => ClientAuthMethod::ClientSecretBasic,
        })
    }
}

/// The kinds of upstream provider Usher speaks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect provider: discovery at `{issuer}/.well-known/openid-configuration`.
    /// Identity issuer: the issuer URL's host (`accounts.google.com` counts as
    /// `google.com`, so the same person is the same identity through either kind).
    /// Azure AD B2C and Entra External ID tenants are configured this way, with their
    /// own issuer, and so get its host (e.g. `contoso.b2clogin.com`).
    Oidc { issuer: String },
    /// Google: issuer `https://accounts.google.com`, identity issuer `google.com`.
    Google,
    /// Microsoft Entra ID (work and school) and personal Microsoft accounts, through
    /// the v2.0 endpoint of `tenant`: `common`, `organizations`, `consumers`, or one
    /// tenant's id or domain.
    ///
    /// For `common` and `organizations` the discovery document's issuer is the
    /// template `https://login.microsoftonline.com/{tenantid}/v2.0`: an ID token is
    /// accepted when its `iss` equals the template with the token's own `tid`
    /// substituted.
    ///
    /// Identity issuer: always `login.microsoftonline.com`, whatever the tenant, so
    /// that a user keeps one identity when an operator switches from `common` to a
    /// tenant id; the subject (`sub`) is Microsoft's pairwise id for this client.
    Microsoft { tenant: String },
    /// Facebook Login: OAuth 2.0 and the Graph API's `GET /me` (not OIDC).
    /// Identity issuer `facebook.com`, subject the Graph `id`.
    Facebook,
    /// GitHub OAuth apps: OAuth 2.0, `GET /user` and `GET /user/emails`.
    /// Identity issuer `github.com`, subject the numeric `id` as a string (the login
    /// name can change; the id cannot).
    GitHub,
    /// Any OAuth 2.0 provider with a JSON userinfo endpoint. `subject_claim` and the
    /// claim mapping are JSON paths into the userinfo answer, dotted for nesting
    /// (`data.id`).
    OAuth2 {
        authorization_endpoint: String,
        token_endpoint: String,
        userinfo_endpoint: String,
        subject_claim: String,
        identity_issuer: String,
    },
}

impl ProviderKind {
    /// Whether the kind speaks OpenID Connect (discovery, ID tokens, `nonce`).
    pub fn is_oidc(&self) -> bool {
        matches!(
            self,
            ProviderKind::Oidc { .. } | ProviderKind::Google | ProviderKind::Microsoft { .. }
        )
    }

    pub fn default_scopes(&self) -> &'static [&'static str] {
        match self {
            ProviderKind::Oidc { .. } | ProviderKind::Google | ProviderKind::Microsoft { .. } => {
                &["openid", "email", "profile"]
            }
            ProviderKind::Facebook => &["email", "public_profile"],
            ProviderKind::GitHub => &["read:user", "user:email"],
            // A generic OAuth 2.0 provider's scopes are its own business; none is safest.
            ProviderKind::OAuth2 { .. } => &[],
        }
    }

    pub fn default_display_name(&self) -> &'static str {
        match self {
            ProviderKind::Oidc { .. } | ProviderKind::OAuth2 { .. } => "Sign in",
            ProviderKind::Google => "Google",
            ProviderKind::Microsoft { .. } => "Microsoft",
            ProviderKind::Facebook => "Facebook",
            ProviderKind::GitHub => "GitHub",
        }
    }
}

/// Endpoint overrides, so presets can point at local test servers, GitHub
/// Enterprise or a newer Graph API version. Every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    /// Google and Microsoft: the issuer URL whose `/.well-known/openid-configuration`
    /// is read instead of the real one (Microsoft: including the tenant path, e.g.
    /// `https://login.microsoftonline.com/common/v2.0`). Ignored by the other kinds.
    pub issuer: Option<String>,
    /// Replaces the authorization endpoint (of the preset, or from discovery).
    pub authorization_endpoint: Option<String>,
    /// Replaces the token endpoint (of the preset, or from discovery).
    pub token_endpoint: Option<String>,
    /// Replaces the userinfo endpoint: OIDC userinfo, Facebook `/me`, GitHub `/user`.
    pub userinfo_endpoint: Option<String>,
    /// GitHub's `/user/emails`.
    pub emails_endpoint: Option<String>,
    /// Replaces the JWKS URI from discovery.
    pub jwks_uri: Option<String>,
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `Authorization: Basic` with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Attribute id (`email`, `displayName`, `givenName`, `surname`, a built-in one or
/// `extension_<appId>_<Name>`) → upstream claim name or dotted JSON path.
///
/// `email` names where the address is; it never becomes an attribute, only
/// [`crate::ExternalIdentity::email`] when verified. [`ClaimMapping::EMAIL_VERIFIED`]
/// names the claim that says so, for OIDC and generic OAuth 2.0 (default
/// `email_verified`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimMapping(pub BTreeMap<String, String>);

impl ClaimMapping {
    /// The pseudo-attribute naming the "email is verified" claim.
    pub const EMAIL_VERIFIED: &'static str = "emailVerified";

    pub fn defaults_for(kind: &ProviderKind) -> Self {
        let pairs: &[(&str, &str)] = match kind {
            ProviderKind::Oidc { .. }
            | ProviderKind::Google
            | ProviderKind::Microsoft { .. }
            | ProviderKind::OAuth2 { .. } => &[
                ("email", "email"),
                ("displayName", "name"),
                ("givenName", "given_name"),
                ("surname", "family_name"),
            ],
            ProviderKind::Facebook => &[
                ("email", "email"),
                ("displayName", "name"),
                ("givenName", "first_name"),
                ("surname", "last_name"),
            ],
            // The email comes from /user/emails, where GitHub says whether it is verified.
            ProviderKind::GitHub => &[("displayName", "name")],
        };
        Self(
            pairs
                .iter()
                .map(|(a, c)| ((*a).to_owned(), (*c).to_owned()))
                .collect(),
        )
    }

    /// The claim for attribute `id`, matched without regard to case as built-in ids are.
    pub fn claim_for(&self, id: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(id))
            .map(|(_, v)| v.as_str())
    }

    pub fn insert(&mut self, attribute: impl Into<String>, claim: impl Into<String>) {
        self.0.insert(attribute.into(), claim.into());
    }
}

/// Settings that apply to every provider.
#[derive(Debug, Clone)]
pub struct FederationSettings {
    /// Allows `http://` endpoints and loopback, link-local and unspecified addresses:
    /// for development and tests only.
    pub allow_insecure_endpoints: bool,
    /// Per HTTP request to a provider.
    pub timeout: Duration,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            allow_insecure_endpoints: false,
            timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_kind() {
        let fb = ProviderConfig::new("fb", ProviderKind::Facebook, "id", Secret::new("s"));
        assert_eq!(
            fb.effective_client_auth(),
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(fb.effective_scopes(), ["email", "public_profile"]);
        assert_eq!(fb.claim_mapping.claim_for("givenname"), Some("first_name"));
        let gh = ProviderConfig::new("gh", ProviderKind::GitHub, "id", Secret::new("s"));
        assert_eq!(gh.effective_scopes(), ["read:user", "user:email"]);
        assert_eq!(gh.claim_mapping.claim_for("email"), None);
        let mut google = ProviderConfig::new("g", ProviderKind::Google, "id", Secret::new("s"));
        assert_eq!(
            google.effective_client_auth(),
            ClientAuthMethod::ClientSecretBasic
        );
        google.claim_mapping = ClaimMapping::default();
        assert_eq!(
            google.effective_claim_mapping().claim_for("surname"),
            Some("family_name")
        );
        assert_eq!(google.effective_scopes(), ["openid", "email", "profile"]);
    }

    #[test]
    fn debug_hides_the_secret() {
        let p = ProviderConfig::new("g", ProviderKind::Google, "id", Secret::new("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
