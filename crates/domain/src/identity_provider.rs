//! What an operator configures for each upstream identity provider, the per-kind
//! defaults (endpoints, scopes, claim mapping, identity issuer) that make a preset work
//! with only a client id and secret, and the issuers its users' identities are keyed
//! by. Part of the tenant model: the configuration file, the stored tenant and the
//! admin API read and write these types; the federation client runs them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::Secret;

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

/// A provider configuration that cannot work (an OAuth 2.0 provider without an
/// identity issuer, an issuer that is not a URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("identity provider misconfigured: {0}")]
pub struct Misconfigured(pub String);

/// The contract's issuer value for a provider: the `issuer` of its users' identities.
pub fn identity_issuer(kind: &ProviderKind) -> Result<String, Misconfigured> {
    Ok(match kind {
        ProviderKind::Google => "google.com".to_owned(),
        ProviderKind::Facebook => "facebook.com".to_owned(),
        ProviderKind::GitHub => "github.com".to_owned(),
        ProviderKind::Microsoft { .. } => "login.microsoftonline.com".to_owned(),
        ProviderKind::OAuth2 {
            identity_issuer, ..
        } => {
            let issuer = identity_issuer.trim();
            if issuer.is_empty() || issuer.chars().any(char::is_control) {
                return Err(Misconfigured(
                    "OAuth 2.0 provider needs an identity issuer".into(),
                ));
            }
            issuer.to_owned()
        }
        ProviderKind::Oidc { issuer } => {
            let url = url::Url::parse(issuer)
                .map_err(|e| Misconfigured(format!("issuer is not a URL: {e}")))?;
            let host = url
                .host_str()
                .ok_or_else(|| Misconfigured("issuer has no host".into()))?
                .to_ascii_lowercase();
            // The same Google account must be the same identity whether the operator
            // configured the Google preset or Google as a plain OIDC provider.
            if host == "accounts.google.com" {
                "google.com".to_owned()
            } else {
                host
            }
        }
    })
}

/// The exact issuer of Facebook's identities: the Graph API's origin.
pub const FACEBOOK_API: &str = "https://graph.facebook.com";
/// The exact issuer of github.com's identities: the API's origin.
pub const GITHUB_API: &str = "https://api.github.com";

/// An issuer as identities are keyed by it: without a trailing slash (operators type
/// issuers by hand, and discovery accepts either), and Google's bare
/// `accounts.google.com` with its scheme.
pub fn normalize_exact_issuer(issuer: &str) -> String {
    let issuer = issuer.trim().trim_end_matches('/');
    if issuer.eq_ignore_ascii_case("accounts.google.com") {
        GOOGLE_ISSUER.to_owned()
    } else {
        issuer.to_owned()
    }
}

/// The exact issuer a provider's identities are keyed by, as far as its configuration
/// says: the configured (and discovered) issuer of OpenID Connect kinds, a fixed
/// authority for the OAuth-only ones (the API's origin, so that GitHub Enterprise is
/// not github.com), the configured identity issuer of generic OAuth 2.0. For
/// Microsoft this is the issuer of the configured tenant; a multi-tenant Microsoft
/// provider's identities are keyed by each token's own `iss` instead.
pub fn exact_issuer(config: &ProviderConfig) -> Result<String, Misconfigured> {
    let origin_of = |url: Option<&String>, default: &str| -> String {
        url.and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .unwrap_or_else(|| default.to_owned())
    };
    Ok(normalize_exact_issuer(&match &config.kind {
        ProviderKind::Oidc { issuer } => issuer.clone(),
        ProviderKind::Google => config
            .endpoints
            .issuer
            .clone()
            .unwrap_or_else(|| GOOGLE_ISSUER.to_owned()),
        ProviderKind::Microsoft { tenant } => match &config.endpoints.issuer {
            Some(issuer) => issuer.clone(),
            None => format!(
                "https://login.microsoftonline.com/{}/v2.0",
                tenant.to_ascii_lowercase()
            ),
        },
        ProviderKind::Facebook => {
            origin_of(config.endpoints.userinfo_endpoint.as_ref(), FACEBOOK_API)
        }
        ProviderKind::GitHub => origin_of(config.endpoints.userinfo_endpoint.as_ref(), GITHUB_API),
        ProviderKind::OAuth2 { .. } => identity_issuer(&config.kind)?,
    }))
}

/// Two providers whose identities would be keyed by the same exact issuer.
///
/// A user is found by exact issuer and subject, so two such providers could each
/// vouch for a subject the other one assigned: someone who holds subject `x` at the
/// second would be signed in as the user with subject `x` at the first. Such a pair
/// is refused wherever providers are configured. Providers that merely share a host
/// (and so the contract's short issuer) are two populations and may coexist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "identity providers {first:?} and {second:?} have the same issuer {issuer:?}, so a \
     user of one could sign in as a user of the other; configure at most one provider \
     per issuer"
)]
pub struct SharedIssuer {
    pub first: String,
    pub second: String,
    pub issuer: String,
}

/// The first pair of `providers` (in order) that share an exact issuer. Providers
/// whose issuer cannot be worked out are skipped: they are refused for that reason
/// on their own.
pub fn shared_identity_issuer<'a>(
    providers: impl IntoIterator<Item = &'a ProviderConfig>,
) -> Option<SharedIssuer> {
    let mut seen: Vec<(String, &ProviderConfig)> = Vec::new();
    for p in providers {
        let Ok(issuer) = exact_issuer(p) else {
            continue;
        };
        // Scheme and host ignore case; so, to be safe, does the rest.
        let key = issuer.to_ascii_lowercase();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            return Some(SharedIssuer {
                first: first.id.clone(),
                second: p.id.clone(),
                issuer,
            });
        }
        seen.push((key, p));
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn providers_sharing_an_identity_issuer() {
        let p = |id: &str, kind: ProviderKind| {
            ProviderConfig::new(id, kind, "c", crate::Secret::new("s"))
        };
        let oidc = |issuer: &str| ProviderKind::Oidc {
            issuer: issuer.into(),
        };
        let ms = |tenant: &str| ProviderKind::Microsoft {
            tenant: tenant.into(),
        };
        let pair = |a: ProviderKind, b: ProviderKind| {
            shared_identity_issuer(&[p("a", a), p("b", b)]).map(|s| s.issuer)
        };
        // One host, two issuers: two populations, no clash.
        assert_eq!(
            pair(oidc("https://id.example:1"), oidc("https://ID.example:2/x")),
            None
        );
        assert_eq!(
            pair(oidc("https://id.example/a"), oidc("https://id.example/b")),
            None
        );
        // The same issuer, however it is typed.
        assert_eq!(
            pair(oidc("https://id.example/x/"), oidc("https://ID.example/x")),
            Some("https://ID.example/x".into())
        );
        assert_eq!(
            pair(oidc("https://a.example"), oidc("https://b.example")),
            None
        );
        assert_eq!(
            pair(ProviderKind::Google, oidc("https://accounts.google.com/")),
            Some("https://accounts.google.com".into())
        );
        assert_eq!(
            pair(ProviderKind::GitHub, ProviderKind::GitHub),
            Some("https://api.github.com".into())
        );
        // GitHub Enterprise is another GitHub.
        let mut enterprise = p("b", ProviderKind::GitHub);
        enterprise.endpoints.userinfo_endpoint = Some("https://ghe.example/api/v3/user".into());
        assert!(shared_identity_issuer(&[p("a", ProviderKind::GitHub), enterprise]).is_none());
        assert_eq!(pair(ms("organizations"), ms("consumers")), None);
        assert!(pair(ms("common"), ms("Common")).is_some());
        assert!(pair(
            ms("9188040d-6c67-4c5b-b112-36a304b66dad"),
            oidc("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")
        )
        .is_some());
    }

    #[test]
    fn identity_issuers_follow_the_contract() {
        let oidc = |issuer: &str| {
            identity_issuer(&ProviderKind::Oidc {
                issuer: issuer.into(),
            })
        };
        assert_eq!(
            oidc("https://Login.Contoso.com/oidc/").unwrap(),
            "login.contoso.com"
        );
        assert_eq!(oidc("https://accounts.google.com").unwrap(), "google.com");
        assert!(oidc("not a url").is_err());
        assert_eq!(
            identity_issuer(&ProviderKind::Google).unwrap(),
            "google.com"
        );
        assert_eq!(
            identity_issuer(&ProviderKind::Microsoft {
                tenant: "common".into()
            })
            .unwrap(),
            "login.microsoftonline.com"
        );
        assert_eq!(
            identity_issuer(&ProviderKind::Facebook).unwrap(),
            "facebook.com"
        );
        assert_eq!(
            identity_issuer(&ProviderKind::GitHub).unwrap(),
            "github.com"
        );
    }

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
