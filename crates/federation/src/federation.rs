//! [`Federation`]: the configured providers, one HTTP client, and per provider a
//! cache of the discovery document and JWK set. It builds the authorization URL the
//! browser is sent to, and on the way back exchanges the code and turns what the
//! provider says into an [`ExternalIdentity`].

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use url::Url;
use usher_domain::{Clock, Identity};
use usher_oidc::pkce;

use crate::claims::{self, ExternalIdentity, ProfileContext};
use crate::discovery::{self, IssuerRule, Metadata};
use crate::error::FederationError;
use crate::http::Http;
use crate::id_token::{self, Expected, IssuerQuirk, SignatureError};
use crate::oauth::{self, TokenResponse};
use usher_domain::identity_provider::{
    ClaimMapping, ClientAuthMethod, FederationSettings, ProviderConfig, ProviderKind,
    FACEBOOK_GRAPH_VERSION, GOOGLE_ISSUER,
};
use usher_domain::identity_provider::{FACEBOOK_API, GITHUB_API};

/// How long a discovery document or JWK set is used before it is fetched again.
const CACHE_TTL_SECS: i64 = 3600;

/// The Graph fields Facebook's `/me` is always asked for.
const FACEBOOK_FIELDS: [&str; 5] = ["id", "name", "email", "first_name", "last_name"];

const GITHUB_API_VERSION: &str = "2022-11-28";

/// What [`Federation::authorization_url`] needs from the sign-in flow.
#[derive(Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    /// Usher's callback, registered with the provider.
    pub redirect_uri: &'a str,
    /// Binds the callback to this browser session.
    pub state: &'a str,
    /// Sent to OpenID Connect providers only; echoed in the ID token.
    pub nonce: &'a str,
    /// The PKCE code verifier (RFC 7636: 43–128 unreserved characters); only its S256
    /// challenge is sent.
    pub pkce_verifier: &'a str,
    /// The end user's locales, space-separated (e.g. `"fr-CA fr en"`).
    pub ui_locales: Option<&'a str>,
    /// The address or login the user probably uses at the provider.
    pub login_hint: Option<&'a str>,
}

impl std::fmt::Debug for AuthorizationRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri)
            .field("ui_locales", &self.ui_locales)
            .finish_non_exhaustive()
    }
}

/// What [`Federation::complete`] needs from the callback and the sign-in session.
#[derive(Clone, Copy)]
pub struct Completion<'a> {
    /// The same redirect URI as in the authorization request.
    pub redirect_uri: &'a str,
    /// The `code` the provider sent back.
    pub code: &'a str,
    /// The verifier whose challenge was in the authorization request.
    pub pkce_verifier: &'a str,
    /// The nonce of the authorization request (ignored by OAuth-only kinds).
    pub nonce: &'a str,
}

impl std::fmt::Debug for Completion<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Where an OpenID Connect provider's metadata comes from and how to trust it.
#[derive(Debug)]
struct DiscoverySource {
    url: Url,
    rule: IssuerRule,
    quirk: IssuerQuirk,
}

/// The fixed endpoints of an OAuth-only provider.
#[derive(Debug)]
struct OAuthEndpoints {
    authorization: Url,
    token: Url,
    userinfo: Url,
    emails: Option<Url>,
}

#[derive(Debug)]
struct Provider {
    config: ProviderConfig,
    identity_issuer: String,
    exact_issuer: String,
    mapping: ClaimMapping,
    discovery: Option<DiscoverySource>,
    oauth: Option<OAuthEndpoints>,
    /// Why the provider is out of service: it shares its identity issuer with an
    /// earlier one (see [`claims::SharedIssuer`]).
    refused: Option<String>,
}

impl Provider {
    fn context(&self) -> ProfileContext<'_> {
        ProfileContext {
            provider_id: &self.config.id,
            kind: &self.config.kind,
            identity_issuer: &self.identity_issuer,
            exact_issuer: &self.exact_issuer,
            mapping: &self.mapping,
        }
    }
}

#[derive(Debug, Default)]
struct ProviderCache {
    metadata: Option<(Arc<Metadata>, DateTime<Utc>)>,
    jwks: Option<(Arc<Vec<Value>>, DateTime<Utc>)>,
}

/// Usher as a relying party towards its upstream identity providers.
pub struct Federation {
    providers: Vec<Provider>,
    http: Http,
    clock: Arc<dyn Clock>,
    cache: Mutex<Vec<ProviderCache>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field(
                "providers",
                &self
                    .providers
                    .iter()
                    .map(|p| &p.config.id)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// Checks every provider's configuration (ids unique without regard to case,
    /// endpoints parseable and allowed by `settings`) and builds the HTTP client.
    pub fn new(
        providers: Vec<ProviderConfig>,
        settings: FederationSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, FederationError> {
        let http = Http::new(&settings)?;
        let mut resolved: Vec<Provider> = Vec::with_capacity(providers.len());
        for config in providers {
            if config.id.trim().is_empty() {
                return Err(FederationError::Misconfigured(
                    "a provider has an empty id".into(),
                ));
            }
            if resolved
                .iter()
                .any(|p| p.config.id.eq_ignore_ascii_case(&config.id))
            {
                return Err(FederationError::Misconfigured(format!(
                    "two providers have the id {:?}",
                    config.id
                )));
            }
            resolved.push(resolve(config, &http)?);
        }
        // A tenant stored before such pairs were refused must still start; the
        // second provider of a pair is taken out of service, the first keeps working.
        for i in 1..resolved.len() {
            let (earlier, rest) = resolved.split_at_mut(i);
            let later = &mut rest[0];
            let usable = earlier.iter().filter(|p| p.refused.is_none());
            if let Some(shared) = usher_domain::identity_provider::shared_identity_issuer(
                usable.map(|p| &p.config).chain([&later.config]),
            ) {
                if shared.second == later.config.id {
                    tracing::error!(provider = %later.config.id, error = %shared, "identity provider refused");
                    later.refused = Some(shared.to_string());
                }
            }
        }
        let cache = resolved.iter().map(|_| ProviderCache::default()).collect();
        Ok(Self {
            providers: resolved,
            http,
            clock,
            cache: Mutex::new(cache),
        })
    }

    pub fn providers(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| &p.config)
    }

    /// The provider with this id, without regard to case (also one taken out of
    /// service, whose sign-ins fail with the reason).
    pub fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers
            .iter()
            .find(|p| p.config.id.eq_ignore_ascii_case(id))
            .map(|p| &p.config)
    }

    /// The provider that vouched for `identity`: the first in service whose exact
    /// issuer it carries (for Microsoft, any issuer on Microsoft's origin the
    /// provider accepts), or, for an identity without one, the first whose short
    /// issuer it carries.
    pub fn provider_for(&self, identity: &Identity) -> Option<&ProviderConfig> {
        let usable = || self.providers.iter().filter(|p| p.refused.is_none());
        let found = match identity.exact_issuer.as_deref() {
            Some(exact) => usable()
                .find(|p| p.exact_issuer.eq_ignore_ascii_case(exact))
                .or_else(|| {
                    usable().find(|p| match &p.config.kind {
                        ProviderKind::Microsoft { tenant } => {
                            same_origin(&p.exact_issuer, exact)
                                && microsoft_tenant_accepts(tenant, exact)
                        }
                        _ => false,
                    })
                }),
            None => usable().find(|p| p.identity_issuer.eq_ignore_ascii_case(&identity.issuer)),
        };
        found.map(|p| &p.config)
    }

    /// Whether provider `id` owns the identities stored with its short issuer but no
    /// exact issuer (made before exact issuers were kept, or entered by an
    /// administrator). It does when it is the only provider in service with that
    /// short issuer — for Google, Facebook and GitHub, only when it is the real
    /// service rather than another one behind overridden endpoints (a GitHub
    /// Enterprise server numbers its users apart from github.com). Any Microsoft
    /// provider does for Microsoft's: Microsoft's subjects are unique per user and
    /// application across all tenants, so no two accounts share one. Passcode
    /// identities (`mail`) belong to no provider.
    pub fn takes_on_unresolved(&self, id: &str) -> bool {
        let Ok((_, provider)) = self.find(id) else {
            return false;
        };
        if provider
            .identity_issuer
            .eq_ignore_ascii_case(usher_domain::rules::PASSCODE_IDENTITY_ISSUER)
        {
            return false;
        }
        let canonical = match &provider.config.kind {
            ProviderKind::Microsoft { .. } => return true,
            ProviderKind::Google => Some(GOOGLE_ISSUER),
            ProviderKind::Facebook => Some(FACEBOOK_API),
            ProviderKind::GitHub => Some(GITHUB_API),
            ProviderKind::Oidc { .. } | ProviderKind::OAuth2 { .. } => None,
        };
        if canonical.is_some_and(|c| !provider.exact_issuer.eq_ignore_ascii_case(c)) {
            return false;
        }
        self.providers
            .iter()
            .filter(|p| p.refused.is_none())
            .filter(|p| {
                p.identity_issuer
                    .eq_ignore_ascii_case(&provider.identity_issuer)
            })
            .count()
            == 1
    }

    /// For every provider in service that owns the stored identities of its short
    /// issuer (see [`Self::takes_on_unresolved`]) and has one exact issuer: the
    /// short issuer and the exact one, so that those identities can be given it when
    /// Usher starts. A multi-tenant Microsoft provider has no single exact issuer;
    /// its users' identities are taken on as they sign in.
    pub fn identity_owners(&self) -> Vec<(String, String)> {
        self.providers
            .iter()
            .filter(|p| p.refused.is_none())
            .filter(|p| !matches!(p.config.kind, ProviderKind::Microsoft { .. }))
            .filter(|p| self.takes_on_unresolved(&p.config.id))
            .map(|p| (p.identity_issuer.clone(), p.exact_issuer.clone()))
            .collect()
    }

    fn find(&self, id: &str) -> Result<(usize, &Provider), FederationError> {
        self.providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.config.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| FederationError::UnknownProvider(id.to_owned()))
            .and_then(|(i, p)| match &p.refused {
                Some(reason) => Err(FederationError::Misconfigured(reason.clone())),
                None => Ok((i, p)),
            })
    }

    /// Where to send the browser: the provider's authorization endpoint with
    /// `response_type=code`, `client_id`, `redirect_uri`, `scope`, `state`, the PKCE
    /// S256 challenge (GitHub and Facebook ignore what they do not know), and for
    /// OpenID Connect kinds `nonce`. `ui_locales` and `login_hint` are passed to every
    /// kind when given (RFC 6749 §3.1 has servers ignore unknown parameters);
    /// Facebook and GitHub take the language from the user's own account settings
    /// instead, and have no documented parameter for it.
    ///
    /// For OpenID Connect kinds this reads (and caches) the discovery document unless
    /// the authorization endpoint is overridden.
    pub async fn authorization_url(
        &self,
        provider_id: &str,
        request: &AuthorizationRequest<'_>,
    ) -> Result<String, FederationError> {
        let (index, provider) = self.find(provider_id)?;
        let kind = &provider.config.kind;
        if !pkce::is_valid_verifier(request.pkce_verifier) {
            return Err(FederationError::InvalidRequest(
                "the PKCE verifier is not 43 to 128 unreserved characters".into(),
            ));
        }
        if request.redirect_uri.is_empty() || request.state.is_empty() {
            return Err(FederationError::InvalidRequest(
                "redirect_uri and state are required".into(),
            ));
        }
        if kind.is_oidc() && request.nonce.is_empty() {
            return Err(FederationError::InvalidRequest(
                "a nonce is required for OpenID Connect".into(),
            ));
        }

        let mut url = match (
            &provider.oauth,
            &provider.config.endpoints.authorization_endpoint,
        ) {
            (Some(oauth), _) => oauth.authorization.clone(),
            (None, Some(endpoint)) => self.http.check_url(endpoint, "authorization endpoint")?,
            (None, None) => {
                let metadata = self.metadata(index, provider).await?;
                self.http
                    .check_url(&metadata.authorization_endpoint, "authorization endpoint")?
            }
        };
        let scope = provider.config.effective_scopes().join(" ");
        let challenge = pkce::challenge_s256(request.pkce_verifier);
        {
            // Appending keeps parameters the endpoint already has (e.g. a B2C `p=`).
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.config.client_id)
                .append_pair("redirect_uri", request.redirect_uri);
            if !scope.is_empty() {
                query.append_pair("scope", &scope);
            }
            query
                .append_pair("state", request.state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if kind.is_oidc() {
                query.append_pair("nonce", request.nonce);
            }
            if let Some(locales) = request.ui_locales.filter(|l| !l.is_empty()) {
                query.append_pair("ui_locales", locales);
            }
            if let Some(hint) = request.login_hint.filter(|h| !h.is_empty()) {
                query.append_pair("login_hint", hint);
            }
        }
        Ok(url.into())
    }

    /// Exchanges the code and returns who the user is at the provider.
    ///
    /// OpenID Connect kinds: the ID token is validated (signature against the JWK
    /// set, refreshed once when it names an unknown `kid`; `iss`, `aud`, `azp`, `exp`
    /// with 60 s leeway, `iat`, `nonce`, `at_hash`), and when the claim mapping names
    /// claims the token lacks, the userinfo endpoint is asked too; a userinfo failure
    /// there is logged and the token's claims are used alone, since the identity is
    /// already established. OAuth-only kinds: the userinfo endpoints are read with
    /// the access token, and their failure is an error (except GitHub's
    /// `/user/emails`, without which there is just no email).
    pub async fn complete(
        &self,
        provider_id: &str,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        let (index, provider) = self.find(provider_id)?;
        if !pkce::is_valid_verifier(completion.pkce_verifier) {
            return Err(FederationError::InvalidRequest(
                "the PKCE verifier is not 43 to 128 unreserved characters".into(),
            ));
        }
        if completion.code.is_empty() {
            return Err(FederationError::InvalidRequest("the code is empty".into()));
        }
        // An empty expected nonce would accept a token whose nonce is empty too.
        if provider.config.kind.is_oidc() && completion.nonce.is_empty() {
            return Err(FederationError::InvalidRequest(
                "a nonce is required for OpenID Connect".into(),
            ));
        }
        let result = match &provider.config.kind {
            ProviderKind::Oidc { .. } | ProviderKind::Google | ProviderKind::Microsoft { .. } => {
                self.complete_oidc(index, provider, completion).await
            }
            ProviderKind::Facebook => self.complete_facebook(provider, completion).await,
            ProviderKind::GitHub => self.complete_github(provider, completion).await,
            ProviderKind::OAuth2 { subject_claim, .. } => {
                self.complete_oauth2(provider, subject_claim, completion)
                    .await
            }
        };
        match &result {
            Ok(identity) => tracing::debug!(
                provider = %provider.config.id,
                issuer = %identity.identity.issuer,
                has_email = identity.email.is_some(),
                "federated sign-in completed"
            ),
            Err(e) => {
                tracing::info!(provider = %provider.config.id, error = %e, "federated sign-in failed");
            }
        }
        result
    }

    async fn complete_oidc(
        &self,
        index: usize,
        provider: &Provider,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        let config = &provider.config;
        let metadata = self.metadata(index, provider).await?;
        let token_endpoint = match &config.endpoints.token_endpoint {
            Some(e) => self.http.check_url(e, "token endpoint")?,
            None => self
                .http
                .check_url(&metadata.token_endpoint, "token endpoint")?,
        };
        let auth =
            config
                .client_auth
                .unwrap_or_else(|| match &metadata.token_endpoint_auth_methods {
                    Some(methods)
                        if !methods.iter().any(|m| m == "client_secret_basic")
                            && methods.iter().any(|m| m == "client_secret_post") =>
                    {
                        ClientAuthMethod::ClientSecretPost
                    }
                    _ => ClientAuthMethod::ClientSecretBasic,
                });
        let tokens = self
            .exchange_code(config, token_endpoint, auth, completion)
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| FederationError::id_token("missing"))?;

        let mut claims = self
            .verify_id_token(index, provider, &metadata, id_token)
            .await?;
        let quirk = match provider.discovery.as_ref() {
            Some(d) => d.quirk,
            None => IssuerQuirk::None,
        };
        id_token::validate_claims(
            &claims,
            &Expected {
                issuer: &metadata.issuer,
                quirk,
                client_id: &config.client_id,
                nonce: completion.nonce,
                now: self.clock.now().timestamp(),
                access_token: tokens.access_token.as_deref(),
            },
        )?;

        if claims::needs_more_claims(&provider.mapping, &claims) {
            let endpoint = config
                .endpoints
                .userinfo_endpoint
                .as_ref()
                .or(metadata.userinfo_endpoint.as_ref());
            if let (Some(endpoint), Some(access_token)) = (endpoint, tokens.access_token.as_deref())
            {
                match self.oidc_userinfo(endpoint, access_token).await {
                    // Core §5.3.2: a userinfo answer about someone else must not be used.
                    Ok(info) if info.get("sub") == claims.get("sub") => {
                        for (name, value) in info {
                            claims.entry(name).or_insert(value);
                        }
                    }
                    Ok(_) => tracing::warn!(
                        provider = %config.id,
                        "userinfo answered for another subject; ignored"
                    ),
                    Err(e) => tracing::warn!(
                        provider = %config.id,
                        error = %e,
                        "userinfo failed; using the ID token's claims alone"
                    ),
                }
            }
        }
        claims::oidc_identity(&provider.context(), claims)
    }

    async fn oidc_userinfo(
        &self,
        endpoint: &str,
        access_token: &str,
    ) -> Result<Map<String, Value>, FederationError> {
        let url = self.http.check_url(endpoint, "userinfo endpoint")?;
        let request = self
            .http
            .client()
            .get(url)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json");
        self.read_userinfo(request).await
    }

    /// Verifies the signature, fetching the JWK set again once if the token names a
    /// key Usher has not seen (the provider rotated its keys).
    async fn verify_id_token(
        &self,
        index: usize,
        provider: &Provider,
        metadata: &Metadata,
        token: &str,
    ) -> Result<Map<String, Value>, FederationError> {
        let jwks = self.jwks(index, provider, metadata, false).await?;
        match id_token::verify_signature(token, &jwks) {
            Ok(claims) => return Ok(claims),
            Err(SignatureError::Invalid(e)) => return Err(e),
            Err(SignatureError::UnknownKey) => {}
        }
        tracing::debug!(provider = %provider.config.id, "ID token names an unknown key; refreshing the JWK set");
        let jwks = self.jwks(index, provider, metadata, true).await?;
        id_token::verify_signature(token, &jwks).map_err(|e| match e {
            SignatureError::Invalid(e) => e,
            SignatureError::UnknownKey => FederationError::id_token("unknown signing key"),
        })
    }

    async fn complete_facebook(
        &self,
        provider: &Provider,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        let config = &provider.config;
        let endpoints = oauth_endpoints(provider)?;
        let access_token = self.access_token(provider, endpoints, completion).await?;
        let mut fields: Vec<String> = FACEBOOK_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        // Mapped claims beyond the basics must be asked for; Graph field names are
        // plain identifiers, and a nested path asks for its top-level field.
        for claim in provider.mapping.0.values() {
            let field = claim.split('.').next().unwrap_or_default();
            let plain = !field.is_empty()
                && field
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if plain && !fields.iter().any(|f| f == field) {
                fields.push(field.to_owned());
            }
        }
        let mut url = endpoints.userinfo.clone();
        url.query_pairs_mut()
            .append_pair("fields", &fields.join(","))
            .append_pair(
                "appsecret_proof",
                &oauth::facebook_appsecret_proof(config.client_secret.expose(), &access_token),
            );
        let request = self
            .http
            .client()
            .get(url)
            .bearer_auth(&access_token)
            .header(reqwest::header::ACCEPT, "application/json");
        let me = self.read_userinfo(request).await?;
        claims::facebook_identity(&provider.context(), me)
    }

    async fn complete_github(
        &self,
        provider: &Provider,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        let endpoints = oauth_endpoints(provider)?;
        let access_token = self.access_token(provider, endpoints, completion).await?;
        let github_get = |url: Url| {
            self.http
                .client()
                .get(url)
                .bearer_auth(&access_token)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", GITHUB_API_VERSION)
        };
        let user = self
            .read_userinfo(github_get(endpoints.userinfo.clone()))
            .await?;
        let emails = match &endpoints.emails {
            None => None,
            Some(url) => match self.http.execute(github_get(url.clone())).await {
                Ok(answer) if answer.is_success() => serde_json::from_slice(&answer.body).ok(),
                // Without the user:email scope (or a GitHub App's email permission)
                // the list is refused; the user can still verify an address with Usher.
                Ok(answer) => {
                    tracing::warn!(provider = %provider.config.id, status = answer.status, "GitHub /user/emails refused; no email");
                    None
                }
                Err(reason) => {
                    tracing::warn!(provider = %provider.config.id, %reason, "GitHub /user/emails failed; no email");
                    None
                }
            },
        };
        claims::github_identity(&provider.context(), user, emails)
    }

    async fn complete_oauth2(
        &self,
        provider: &Provider,
        subject_claim: &str,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        let endpoints = oauth_endpoints(provider)?;
        let access_token = self.access_token(provider, endpoints, completion).await?;
        let request = self
            .http
            .client()
            .get(endpoints.userinfo.clone())
            .bearer_auth(&access_token)
            .header(reqwest::header::ACCEPT, "application/json");
        let info = self.read_userinfo(request).await?;
        claims::oauth2_identity(&provider.context(), subject_claim, info)
    }

    /// The access token of an OAuth-only provider's code exchange.
    async fn access_token(
        &self,
        provider: &Provider,
        endpoints: &OAuthEndpoints,
        completion: &Completion<'_>,
    ) -> Result<String, FederationError> {
        let tokens = self
            .exchange_code(
                &provider.config,
                endpoints.token.clone(),
                provider.config.effective_client_auth(),
                completion,
            )
            .await?;
        tokens.access_token.ok_or(FederationError::TokenEndpoint {
            status: Some(200),
            error: None,
        })
    }

    async fn read_userinfo(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Map<String, Value>, FederationError> {
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(|reason| FederationError::userinfo(None, reason))?;
        oauth::parse_json_object(answer.status, &answer.body)
    }

    /// The authorization code grant (RFC 6749 §4.1.3) with the PKCE verifier.
    async fn exchange_code(
        &self,
        config: &ProviderConfig,
        endpoint: Url,
        auth: ClientAuthMethod,
        completion: &Completion<'_>,
    ) -> Result<TokenResponse, FederationError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", completion.code),
            ("redirect_uri", completion.redirect_uri),
            ("code_verifier", completion.pkce_verifier),
        ];
        let mut request = self
            .http
            .client()
            .post(endpoint)
            // GitHub answers form-encoded without it; everyone else accepts it.
            .header(reqwest::header::ACCEPT, "application/json");
        match auth {
            ClientAuthMethod::ClientSecretBasic => {
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    oauth::basic_authorization(&config.client_id, config.client_secret.expose()),
                );
            }
            ClientAuthMethod::ClientSecretPost => {
                form.push(("client_id", &config.client_id));
                form.push(("client_secret", config.client_secret.expose()));
            }
        }
        let answer = self
            .http
            .execute(request.form(&form))
            .await
            .map_err(|reason| {
                tracing::warn!(provider = %config.id, %reason, "token endpoint unreachable");
                FederationError::TokenEndpoint {
                    status: None,
                    error: None,
                }
            })?;
        oauth::parse_token_response(answer.status, &answer.body)
    }

    /// The provider's discovery document, from the cache while it is fresh. When a
    /// refresh fails the stale document is used, so a short outage of the discovery
    /// endpoint alone does not stop sign-ins.
    async fn metadata(
        &self,
        index: usize,
        provider: &Provider,
    ) -> Result<Arc<Metadata>, FederationError> {
        let now = self.clock.now();
        let cached = self.with_cache(index, |c| c.metadata.clone());
        if let Some((metadata, fetched)) = &cached {
            if fresh(*fetched, now) {
                return Ok(metadata.clone());
            }
        }
        let source = provider.discovery.as_ref().ok_or_else(|| {
            FederationError::Misconfigured("the provider has no discovery document".into())
        })?;
        match self.fetch_metadata(source).await {
            Ok(metadata) => {
                let metadata = Arc::new(metadata);
                self.with_cache(index, |c| c.metadata = Some((metadata.clone(), now)));
                Ok(metadata)
            }
            Err(e) => match cached {
                Some((metadata, _)) => {
                    tracing::warn!(provider = %provider.config.id, error = %e, "discovery refresh failed; using the cached document");
                    Ok(metadata)
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_metadata(&self, source: &DiscoverySource) -> Result<Metadata, FederationError> {
        let request = self
            .http
            .client()
            .get(source.url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        let answer = self
            .http
            .execute(request)
            .await
            .map_err(FederationError::Discovery)?;
        if !answer.is_success() {
            return Err(FederationError::Discovery(format!(
                "the discovery document answered HTTP {}",
                answer.status
            )));
        }
        let metadata =
            discovery::parse_metadata(&answer.body).map_err(FederationError::Discovery)?;
        source
            .rule
            .check(&metadata.issuer)
            .map_err(FederationError::Discovery)?;
        if metadata.issuer.contains("{tenantid}") && source.quirk != IssuerQuirk::MicrosoftTemplate
        {
            return Err(FederationError::Discovery(
                "an issuer template is only accepted from Microsoft".into(),
            ));
        }
        Ok(metadata)
    }

    /// The provider's JWK set: cached while fresh unless `force`.
    async fn jwks(
        &self,
        index: usize,
        provider: &Provider,
        metadata: &Metadata,
        force: bool,
    ) -> Result<Arc<Vec<Value>>, FederationError> {
        let now = self.clock.now();
        let cached = self.with_cache(index, |c| c.jwks.clone());
        if let Some((keys, fetched)) = &cached {
            if !force && fresh(*fetched, now) {
                return Ok(keys.clone());
            }
        }
        let uri = provider
            .config
            .endpoints
            .jwks_uri
            .as_deref()
            .unwrap_or(&metadata.jwks_uri);
        let url = self.http.check_url(uri, "jwks_uri")?;
        let fetched = async {
            let request = self
                .http
                .client()
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json");
            let answer = self
                .http
                .execute(request)
                .await
                .map_err(FederationError::Discovery)?;
            if !answer.is_success() {
                return Err(FederationError::Discovery(format!(
                    "the JWK set answered HTTP {}",
                    answer.status
                )));
            }
            discovery::parse_jwks(&answer.body).map_err(FederationError::Discovery)
        }
        .await;
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.with_cache(index, |c| c.jwks = Some((keys.clone(), now)));
                Ok(keys)
            }
            // A forced refresh must not fall back: the old set already lacked the key.
            Err(e) if force => Err(e),
            Err(e) => match cached {
                Some((keys, _)) => {
                    tracing::warn!(provider = %provider.config.id, error = %e, "JWK set refresh failed; using the cached set");
                    Ok(keys)
                }
                None => Err(e),
            },
        }
    }

    fn with_cache<T>(&self, index: usize, f: impl FnOnce(&mut ProviderCache) -> T) -> T {
        // A panic elsewhere cannot leave the cache inconsistent: every update is one
        // assignment, so a poisoned lock is still usable.
        let mut caches = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match caches.get_mut(index) {
            Some(cache) => f(cache),
            None => f(&mut ProviderCache::default()),
        }
    }
}

fn fresh(fetched: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now.signed_duration_since(fetched) < Duration::seconds(CACHE_TTL_SECS)
}

fn oauth_endpoints(provider: &Provider) -> Result<&OAuthEndpoints, FederationError> {
    provider
        .oauth
        .as_ref()
        .ok_or_else(|| FederationError::Misconfigured("the provider has no OAuth endpoints".into()))
}

/// Checks a provider's configuration and works out its endpoints.
fn resolve(config: ProviderConfig, http: &Http) -> Result<Provider, FederationError> {
    let id = config.id.clone();
    let misconfigured =
        |what: &str| FederationError::Misconfigured(format!("provider {id:?}: {what}"));
    if config.client_id.trim().is_empty() {
        return Err(misconfigured("client_id is empty"));
    }
    let identity_issuer = usher_domain::identity_provider::identity_issuer(&config.kind)?;
    let exact_issuer = usher_domain::identity_provider::exact_issuer(&config)?;
    let overrides = &config.endpoints;
    let checked = |url: &str, what: &str| http.check_url(url, what);
    for (value, what) in [
        (&overrides.authorization_endpoint, "authorization endpoint"),
        (&overrides.token_endpoint, "token endpoint"),
        (&overrides.userinfo_endpoint, "userinfo endpoint"),
        (&overrides.emails_endpoint, "emails endpoint"),
        (&overrides.jwks_uri, "jwks_uri"),
        (&overrides.issuer, "issuer"),
    ] {
        if let Some(url) = value {
            checked(url, what)?;
        }
    }
    let discovery_at = |issuer: &str| -> Result<Url, FederationError> {
        let base = checked(issuer, "issuer")?;
        let mut text = base.as_str().trim_end_matches('/').to_owned();
        text.push_str("/.well-known/openid-configuration");
        checked(&text, "discovery document")
    };

    let (discovery, oauth) = match &config.kind {
        ProviderKind::Oidc { issuer } => {
            let source = DiscoverySource {
                url: discovery_at(issuer)?,
                rule: IssuerRule::Exact(issuer.clone()),
                quirk: IssuerQuirk::None,
            };
            (Some(source), None)
        }
        ProviderKind::Google => {
            let issuer = overrides.issuer.as_deref().unwrap_or(GOOGLE_ISSUER);
            let source = DiscoverySource {
                url: discovery_at(issuer)?,
                rule: IssuerRule::Exact(issuer.to_owned()),
                quirk: IssuerQuirk::GoogleBare,
            };
            (Some(source), None)
        }
        ProviderKind::Microsoft { tenant } => {
            let valid_tenant = !tenant.is_empty()
                && tenant.len() <= 256
                && tenant
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !valid_tenant {
                return Err(misconfigured("the Microsoft tenant must be common, organizations, consumers, a tenant id or a domain"));
            }
            let issuer = match &overrides.issuer {
                Some(issuer) => issuer.clone(),
                None => format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            };
            let url = discovery_at(&issuer)?;
            let source = DiscoverySource {
                rule: IssuerRule::SameOrigin(url.origin().ascii_serialization()),
                url,
                quirk: IssuerQuirk::MicrosoftTemplate,
            };
            (Some(source), None)
        }
        ProviderKind::OAuth2 { subject_claim, .. } if subject_claim.trim().is_empty() => {
            return Err(misconfigured("subject_claim is empty"));
        }
        ProviderKind::Facebook | ProviderKind::GitHub | ProviderKind::OAuth2 { .. } => (
            None,
            Some(preset_oauth_endpoints(&config.kind, overrides, http)?),
        ),
    };
    let mapping = config.effective_claim_mapping();
    Ok(Provider {
        config,
        identity_issuer,
        exact_issuer,
        mapping,
        discovery,
        oauth,
        refused: None,
    })
}

/// The endpoints of an OAuth-only provider (Facebook, GitHub, generic OAuth 2.0): the
/// preset's, or the configured ones, each checked against the endpoint rules.
fn preset_oauth_endpoints(
    kind: &ProviderKind,
    overrides: &usher_domain::identity_provider::EndpointOverrides,
    http: &Http,
) -> Result<OAuthEndpoints, FederationError> {
    let pick = |over: &Option<String>, default: &str, what: &str| -> Result<Url, FederationError> {
        http.check_url(over.as_deref().unwrap_or(default), what)
    };
    match kind {
        ProviderKind::Facebook => {
            let graph = format!("https://graph.facebook.com/{FACEBOOK_GRAPH_VERSION}");
            let endpoints = OAuthEndpoints {
                authorization: pick(
                    &overrides.authorization_endpoint,
                    &format!("https://www.facebook.com/{FACEBOOK_GRAPH_VERSION}/dialog/oauth"),
                    "authorization endpoint",
                )?,
                token: pick(
                    &overrides.token_endpoint,
                    &format!("{graph}/oauth/access_token"),
                    "token endpoint",
                )?,
                userinfo: pick(
                    &overrides.userinfo_endpoint,
                    &format!("{graph}/me"),
                    "userinfo endpoint",
                )?,
                emails: None,
            };
            Ok(endpoints)
        }
        ProviderKind::GitHub => {
            let endpoints = OAuthEndpoints {
                authorization: pick(
                    &overrides.authorization_endpoint,
                    "https://github.com/login/oauth/authorize",
                    "authorization endpoint",
                )?,
                token: pick(
                    &overrides.token_endpoint,
                    "https://github.com/login/oauth/access_token",
                    "token endpoint",
                )?,
                userinfo: pick(
                    &overrides.userinfo_endpoint,
                    "https://api.github.com/user",
                    "userinfo endpoint",
                )?,
                emails: Some(pick(
                    &overrides.emails_endpoint,
                    "https://api.github.com/user/emails",
                    "emails endpoint",
                )?),
            };
            Ok(endpoints)
        }
        ProviderKind::OAuth2 {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            ..
        } => {
            let endpoints = OAuthEndpoints {
                authorization: pick(
                    &overrides.authorization_endpoint,
                    authorization_endpoint,
                    "authorization endpoint",
                )?,
                token: pick(&overrides.token_endpoint, token_endpoint, "token endpoint")?,
                userinfo: pick(
                    &overrides.userinfo_endpoint,
                    userinfo_endpoint,
                    "userinfo endpoint",
                )?,
                emails: None,
            };
            Ok(endpoints)
        }
        ProviderKind::Oidc { .. } | ProviderKind::Google | ProviderKind::Microsoft { .. } => {
            Err(FederationError::Misconfigured(
                "an OpenID Connect provider has no fixed OAuth endpoints".into(),
            ))
        }
    }
}

/// Whether a Microsoft provider of `tenant` accepts a token of issuer `exact`
/// (`https://login.microsoftonline.com/<tenant id>/v2.0`): `common` any,
/// `consumers` only personal accounts, `organizations` all but them, a tenant its
/// own (given by id; one given by domain is only known by its id after discovery,
/// so any is taken).
fn microsoft_tenant_accepts(tenant: &str, exact: &str) -> bool {
    let tid = Url::parse(exact)
        .ok()
        .and_then(|u| u.path_segments()?.next().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let personal = tid == usher_domain::identity_provider::MICROSOFT_CONSUMERS_TENANT_ID;
    match tenant.to_ascii_lowercase().as_str() {
        "common" => true,
        "consumers" => personal,
        "organizations" => !personal,
        t if t.contains('.') => true,
        t => t == tid,
    }
}

/// Whether two URLs have the same origin (scheme, host and port).
fn same_origin(a: &str, b: &str) -> bool {
    match (Url::parse(a), Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}
