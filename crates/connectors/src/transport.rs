//! The HTTP side of a connector call (contract §4, §5): one reqwest client per
//! connector configuration (so connections are reused), rustls only, redirects never
//! followed, the address check inside the client's resolver, a 1 MiB cap on what is
//! read, a timeout per attempt inside a budget for the whole call, retries with a
//! short jittered backoff on the failures another attempt may cure, and the
//! authentication of each connector (Basic, API key, OAuth 2.0 client credentials,
//! client certificate) and request signing.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::time::Instant;
use url::Url;
use usher_domain::rules::TargetPolicy;
use usher_domain::{Clock, ConnectorAuthentication, ConnectorDefinition};

use crate::address::{check_target, AddressRefused, FilteringResolver, ResolveFailed};
use crate::certificate::{self, LoadedCertificate};
use crate::failure::{Failure, FailureReason};
use crate::request::{
    basic_authorization, webhook_signature, CONTENT_TYPE_JSON, HEADER_ATTEMPT, HEADER_CALL_ID,
    HEADER_FLOW_ID, HEADER_IDEMPOTENCY_KEY, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE,
    HEADER_WEBHOOK_TIMESTAMP,
};

/// The most of a response body that is read (contract §3: over 1 MiB is a failure).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// For answers whose body means nothing (3xx, 401, 5xx, …), only this much is kept.
const MAX_IGNORED_BODY_BYTES: usize = 64 * 1024;
/// A cached OAuth token is refreshed this long before it expires.
const TOKEN_REFRESH_MARGIN: chrono::Duration = chrono::Duration::seconds(60);
/// How credentials are shown.
pub const MASK: &str = "******";

/// Operator settings that shape every connector's transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportSettings {
    /// Which of plain http, loopback and the private network may be called.
    pub targets: TargetPolicy,
    /// PEM certificates trusted as roots besides the public web PKI (a private CA),
    /// for every connector; each connector may add its own.
    pub extra_root_certificates: Vec<String>,
}

/// One HTTP exchange that produced a response.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was cut short (only for answers whose body is not read).
    pub truncated: bool,
}

/// A request as it was (or would have been) sent, credentials masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<NamedValue>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedValue {
    pub name: String,
    pub value: String,
}

impl SentRequest {
    fn new(url: &str, headers: &HeaderMap, body: &[u8]) -> Self {
        Self {
            method: "POST".into(),
            url: display_url(url),
            headers: headers
                .iter()
                .map(|(name, value)| NamedValue {
                    name: name.as_str().to_owned(),
                    value: if value.is_sensitive() {
                        MASK.to_owned()
                    } else {
                        String::from_utf8_lossy(value.as_bytes()).into_owned()
                    },
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

/// The URL as it may be shown: the password of its user info and the values of its
/// query masked, since keys travel there too (`?code=…` for Azure Functions).
fn display_url(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return url.to_owned();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some(MASK));
    }
    if u.query().is_some() {
        let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let query = names
            .iter()
            .map(|k| {
                format!(
                    "{}={MASK}",
                    url::form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        u.set_query(Some(&query));
    }
    u.to_string()
}

/// How one call went at the HTTP level.
#[derive(Debug)]
pub struct CallReport {
    /// HTTP attempts made (0 when the call failed before sending anything).
    pub attempts: u32,
    pub latency: Duration,
    /// The last response, or why there was none.
    pub result: Result<Exchange, Failure>,
    /// The last request sent, or the one that would have been.
    pub last_request: SentRequest,
}

#[derive(Debug, Clone)]
struct CachedToken {
    access_token: String,
    refresh_at: DateTime<Utc>,
}

/// A connector's transport: its client(s), certificates and token cache.
pub struct Endpoint {
    definition: ConnectorDefinition,
    settings: TransportSettings,
    url: Result<Url, Failure>,
    /// Built once, for every authentication but client certificates (`None`).
    client: Option<Result<reqwest::Client, Failure>>,
    certificates: OnceLock<Vec<Option<LoadedCertificate>>>,
    /// The client for the certificate in use, rebuilt when the choice changes.
    certificate_client: Mutex<Option<(usize, reqwest::Client)>>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// Signs the tokens of [`ConnectorAuthentication::IssuedToken`].
    signer: Option<Arc<dyn TokenSigner>>,
}

/// Signs the tokens Usher issues to authenticate its calls to custom
/// authentication extensions, with the tenant's token keys (those in its JWKS).
#[async_trait::async_trait]
pub trait TokenSigner: Send + Sync {
    /// The token's `iss`.
    fn issuer(&self) -> &str;
    /// `claims` as a signed JWT; the error says why not, for the call record.
    async fn sign(&self, claims: &serde_json::Value) -> Result<String, String>;
}

/// How long an issued token lasts; it is reused until a minute before that.
const ISSUED_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("connector", &self.definition.id)
            .finish_non_exhaustive()
    }
}

/// What identifies a call to the API besides its body.
#[derive(Debug, Clone, Copy)]
pub struct CallIds<'a> {
    /// The sign-up attempt (`usher-flow-id`).
    pub flow_id: &'a str,
    /// The same for every attempt of the run of a step's connectors this call is
    /// part of, also when the run is resumed after its instance stopped
    /// (`idempotency-key`); `None` outside a flow (a probe).
    pub idempotency_key: Option<&'a str>,
}

impl Endpoint {
    /// An endpoint whose issued tokens (if it uses them) `signer` signs.
    pub fn with_signer(
        definition: ConnectorDefinition,
        mut settings: TransportSettings,
        signer: Option<Arc<dyn TokenSigner>>,
    ) -> Self {
        // The connector's own roots on top of the operator's: a company CA serves
        // only the connectors behind it.
        settings
            .extra_root_certificates
            .extend(definition.extra_root_certificates.iter().cloned());
        let url = Url::parse(&definition.target_url).map_err(|e| {
            Failure::new(
                FailureReason::ConfigurationError,
                format!("the target URL cannot be parsed: {e}"),
            )
        });
        let client = match definition.authentication {
            ConnectorAuthentication::ClientCertificate { .. } => None,
            _ => Some(build_client(&settings, None)),
        };
        Self {
            definition,
            settings,
            url,
            client,
            certificates: OnceLock::new(),
            certificate_client: Mutex::new(None),
            token: tokio::sync::Mutex::new(None),
            signer,
        }
    }

    /// The bearer token calls carry now, if any: to mask it wherever a call is
    /// recorded (an API may echo its request).
    pub async fn bearer_in_use(&self) -> Option<String> {
        self.token
            .lock()
            .await
            .as_ref()
            .map(|c| c.access_token.clone())
    }

    /// Whether calls carry a bearer token (fetched or issued).
    fn uses_bearer(&self) -> bool {
        matches!(
            self.definition.authentication,
            ConnectorAuthentication::OAuthClientCredentials { .. }
                | ConnectorAuthentication::IssuedToken { .. }
        )
    }

    pub fn definition(&self) -> &ConnectorDefinition {
        &self.definition
    }

    /// A configuration problem found when the connector was set up, if any.
    pub fn configuration_error(&self) -> Option<&Failure> {
        self.url
            .as_ref()
            .err()
            .or_else(|| self.client.as_ref().and_then(|c| c.as_ref().err()))
    }

    /// Every secret value of this connector, to scrub from anything stored.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .definition
            .signing_secrets
            .iter()
            .map(|s| s.expose().to_owned())
            .collect();
        match &self.definition.authentication {
            ConnectorAuthentication::None
            | ConnectorAuthentication::ClientCertificate { .. }
            | ConnectorAuthentication::IssuedToken { .. } => {}
            ConnectorAuthentication::Basic { username, password } => {
                out.push(password.expose().to_owned());
                out.push(basic_authorization(username, password));
            }
            ConnectorAuthentication::ApiKey { value, .. } => out.push(value.expose().to_owned()),
            ConnectorAuthentication::OAuthClientCredentials { client_secret, .. } => {
                out.push(client_secret.expose().to_owned());
            }
        }
        out.retain(|s| s.len() >= 4);
        out
    }

    /// Makes one call: attempts, retries and all, within the connector's budget.
    pub async fn call(
        &self,
        body: &[u8],
        ids: CallIds<'_>,
        call_id: &str,
        clock: &dyn Clock,
    ) -> CallReport {
        let started = Instant::now();
        let deadline = later(started, self.definition.budget);
        let mut attempts = 0;
        let mut last_request = self.describe(body, ids, call_id, 1, clock);
        let inner = self.attempts(
            body,
            ids,
            call_id,
            clock,
            deadline,
            &mut attempts,
            &mut last_request,
        );
        // Each wait inside is bounded by the deadline already; this only guards against
        // a step that is not (a resolver that never answers, say).
        let result =
            match tokio::time::timeout_at(later(deadline, Duration::from_millis(100)), inner).await
            {
                Ok(r) => r,
                Err(_) => Err(Failure::new(
                    FailureReason::Timeout,
                    "the call's time budget ran out",
                )),
            };
        CallReport {
            attempts,
            latency: started.elapsed(),
            result,
            last_request,
        }
    }

    /// The request of attempt `attempt` with no token yet: what a call that fails
    /// before sending would have sent.
    fn describe(
        &self,
        body: &[u8],
        ids: CallIds<'_>,
        call_id: &str,
        attempt: u32,
        clock: &dyn Clock,
    ) -> SentRequest {
        let bearer = self.uses_bearer().then_some(MASK);
        let headers = self
            .headers(body, ids, call_id, attempt, clock.now().timestamp(), bearer)
            .unwrap_or_default();
        SentRequest::new(&self.definition.target_url, &headers, body)
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempts(
        &self,
        body: &[u8],
        ids: CallIds<'_>,
        call_id: &str,
        clock: &dyn Clock,
        deadline: Instant,
        attempts: &mut u32,
        last_request: &mut SentRequest,
    ) -> Result<Exchange, Failure> {
        let url = self.url.clone()?;
        check_target(&url, self.settings.targets)?;
        self.check_resource(&url)?;
        let client = self.client_for(clock.now())?;
        let oauth = matches!(
            self.definition.authentication,
            ConnectorAuthentication::OAuthClientCredentials { .. }
        );
        let bearer_needed = self.uses_bearer();
        let mut retries_left = self.definition.retries;
        let mut reauthenticated = false;
        let mut refresh_token = false;
        loop {
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    FailureReason::Timeout,
                    "the call's time budget ran out",
                ));
            }
            let bearer = if bearer_needed {
                Some(self.bearer(&client, clock, deadline, refresh_token).await?)
            } else {
                None
            };
            refresh_token = false;
            let attempt = *attempts + 1;
            let headers = self.headers(
                body,
                ids,
                call_id,
                attempt,
                clock.now().timestamp(),
                bearer.as_deref(),
            )?;
            *attempts = attempt;
            *last_request = SentRequest::new(&self.definition.target_url, &headers, body);
            let per_attempt = self
                .definition
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let sent = tokio::time::timeout(
                per_attempt,
                send_once(&client, &url, headers, body.to_vec()),
            )
            .await;
            let failure = match sent {
                Err(_) => Failure::new(
                    FailureReason::Timeout,
                    format!("no answer within {} ms", per_attempt.as_millis()),
                ),
                Ok(Err(f)) => f,
                Ok(Ok(exchange)) => {
                    if exchange.status == 401 && oauth && !reauthenticated {
                        // The token may have been revoked before its time: one new one.
                        reauthenticated = true;
                        refresh_token = true;
                        continue;
                    }
                    // An extension is retried after any 5xx, never after a 429
                    // (its contract); a 1.0.0 connector after 429, 502, 503 or 504.
                    let retryable = if self.definition.contract.is_extension() {
                        (500..=599).contains(&exchange.status)
                    } else {
                        matches!(exchange.status, 429 | 502 | 503 | 504)
                    };
                    if !retryable || retries_left == 0 {
                        return Ok(exchange);
                    }
                    let retry_after = (exchange.status == 429)
                        .then(|| retry_after(&exchange.headers, clock.now()))
                        .flatten();
                    let wait = retry_after.unwrap_or_else(|| {
                        backoff(self.definition.retries.saturating_sub(retries_left))
                    });
                    if !fits(wait, deadline) {
                        // Waiting would overrun the budget: this answer stands.
                        return Ok(exchange);
                    }
                    tokio::time::sleep(wait).await;
                    retries_left -= 1;
                    continue;
                }
            };
            if !failure.reason.is_retryable() || retries_left == 0 {
                return Err(failure);
            }
            let wait = backoff(self.definition.retries.saturating_sub(retries_left));
            if !fits(wait, deadline) {
                return Err(failure);
            }
            tokio::time::sleep(wait).await;
            retries_left -= 1;
        }
    }

    fn headers(
        &self,
        body: &[u8],
        ids: CallIds<'_>,
        call_id: &str,
        attempt: u32,
        timestamp: i64,
        bearer: Option<&str>,
    ) -> Result<HeaderMap, Failure> {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE_JSON),
        );
        h.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        h.insert(HEADER_FLOW_ID, plain_value(ids.flow_id)?);
        if let Some(key) = ids.idempotency_key {
            h.insert(HEADER_IDEMPOTENCY_KEY, plain_value(key)?);
        }
        h.insert(HEADER_CALL_ID, plain_value(call_id)?);
        h.insert(HEADER_ATTEMPT, HeaderValue::from(attempt));
        match &self.definition.authentication {
            ConnectorAuthentication::None | ConnectorAuthentication::ClientCertificate { .. } => {}
            ConnectorAuthentication::Basic { username, password } => {
                h.insert(
                    reqwest::header::AUTHORIZATION,
                    secret_value(&basic_authorization(username, password))?,
                );
            }
            ConnectorAuthentication::ApiKey { header, value } => {
                let name = HeaderName::from_bytes(header.trim().as_bytes()).map_err(|_| {
                    Failure::new(
                        FailureReason::ConfigurationError,
                        format!("{header:?} is not a valid header name"),
                    )
                })?;
                h.insert(name, secret_value(value.expose())?);
            }
            ConnectorAuthentication::OAuthClientCredentials { .. }
            | ConnectorAuthentication::IssuedToken { .. } => {
                if let Some(token) = bearer {
                    h.insert(
                        reqwest::header::AUTHORIZATION,
                        secret_value(&format!("Bearer {token}"))?,
                    );
                }
            }
        }
        if let Some(signature) =
            webhook_signature(&self.definition.signing_secrets, call_id, timestamp, body)
        {
            h.insert(HEADER_WEBHOOK_ID, plain_value(call_id)?);
            h.insert(HEADER_WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
            h.insert(HEADER_WEBHOOK_SIGNATURE, secret_value(&signature)?);
        }
        Ok(h)
    }

    /// The client to use now: for client certificates, the one holding the newest
    /// upload that is valid at `now`.
    fn client_for(&self, now: DateTime<Utc>) -> Result<reqwest::Client, Failure> {
        if let Some(client) = &self.client {
            return client.clone();
        }
        let ConnectorAuthentication::ClientCertificate { certificates } =
            &self.definition.authentication
        else {
            return Err(Failure::new(
                FailureReason::ConfigurationError,
                "the connector has no HTTP client",
            ));
        };
        let loaded = self.certificates.get_or_init(|| {
            certificates
                .iter()
                .enumerate()
                .map(|(index, c)| match certificate::load(c) {
                    Ok(l) => Some(l),
                    Err(error) => {
                        tracing::warn!(connector = %self.definition.id, index, %error, "a client certificate of the connector cannot be used");
                        None
                    }
                })
                .collect()
        });
        let index = certificate::select(loaded, now).ok_or_else(|| {
            Failure::new(
                FailureReason::NoValidCertificate,
                "no uploaded client certificate is inside its validity period",
            )
        })?;
        let mut cached = self
            .certificate_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((i, client)) = cached.as_ref() {
            if *i == index {
                return Ok(client.clone());
            }
        }
        let pem = loaded
            .get(index)
            .and_then(Option::as_ref)
            .map(|c| c.identity_pem.as_slice())
            .unwrap_or_default();
        let identity = reqwest::Identity::from_pem(pem).map_err(|_| {
            Failure::new(
                FailureReason::NoValidCertificate,
                "the selected client certificate cannot be used for TLS",
            )
        })?;
        let client = build_client(&self.settings, Some(identity))?;
        *cached = Some((index, client.clone()));
        Ok(client)
    }

    /// An issued token's resource id must be `api://<the target's host>/<app id>`,
    /// so the token is good only for the API it is sent to.
    fn check_resource(&self, url: &Url) -> Result<(), Failure> {
        let ConnectorAuthentication::IssuedToken { resource_id, .. } =
            &self.definition.authentication
        else {
            return Ok(());
        };
        let Some((host, _)) = usher_domain::connector::parse_resource_id(resource_id) else {
            return Err(Failure::new(
                FailureReason::ResourceIdMalformed,
                format!("the resource id {resource_id:?} is not api://<host>/<app id>"),
            ));
        };
        if usher_domain::connector::url_authority(url.as_str()).as_deref()
            != Some(host.to_ascii_lowercase().as_str())
        {
            return Err(Failure::new(
                FailureReason::ResourceHostMismatch,
                format!("the resource id names {host:?}, not the target's host"),
            ));
        }
        Ok(())
    }

    /// A token Usher issues itself, from the cache or newly signed.
    async fn issued_token(
        &self,
        resource_id: &str,
        caller_id: &str,
        clock: &dyn Clock,
    ) -> Result<String, Failure> {
        let mut cache = self.token.lock().await;
        let now = clock.now();
        if let Some(t) = cache.as_ref() {
            if now < t.refresh_at {
                return Ok(t.access_token.clone());
            }
        }
        let signer = self.signer.as_ref().ok_or_else(|| {
            Failure::new(
                FailureReason::ConfigurationError,
                "no token keys to sign the connector's token with",
            )
        })?;
        let claims = crate::extension::issued_token_claims(
            signer.issuer(),
            resource_id,
            caller_id,
            &crate::runner::new_id(),
            now,
            ISSUED_TOKEN_LIFETIME,
        );
        let token = signer.sign(&claims).await.map_err(|e| {
            Failure::new(
                FailureReason::TokenRequestFailed,
                format!("the connector's token could not be signed: {e}"),
            )
        })?;
        *cache = Some(CachedToken {
            access_token: token.clone(),
            refresh_at: now + ISSUED_TOKEN_LIFETIME - TOKEN_REFRESH_MARGIN,
        });
        Ok(token)
    }

    /// A bearer token from the cache, or a new one from the token endpoint (or
    /// issued by Usher).
    async fn bearer(
        &self,
        client: &reqwest::Client,
        clock: &dyn Clock,
        deadline: Instant,
        refresh: bool,
    ) -> Result<String, Failure> {
        if let ConnectorAuthentication::IssuedToken {
            resource_id,
            caller_id,
        } = &self.definition.authentication
        {
            return self.issued_token(resource_id, caller_id, clock).await;
        }
        let ConnectorAuthentication::OAuthClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } = &self.definition.authentication
        else {
            return Err(Failure::new(
                FailureReason::ConfigurationError,
                "not an OAuth connector",
            ));
        };
        // One fetch at a time: concurrent sign-ups wait for the same token.
        let mut cache = self.token.lock().await;
        if !refresh {
            if let Some(t) = cache.as_ref() {
                if clock.now() < t.refresh_at {
                    return Ok(t.access_token.clone());
                }
            }
        }
        *cache = None;
        let issued_at = clock.now();
        let token_failure =
            |detail: String| Failure::new(FailureReason::TokenRequestFailed, detail);
        let url = Url::parse(token_url)
            .map_err(|e| token_failure(format!("the token URL cannot be parsed: {e}")))?;
        check_target(&url, self.settings.targets)?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope.as_deref().filter(|s| !s.is_empty()) {
            form.push(("scope", scope));
        }
        // client_secret_basic: both parts form-encoded first (RFC 6749 §2.3.1).
        let credentials = format!(
            "{}:{}",
            url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(client_secret.expose().as_bytes())
                .collect::<String>()
        );
        let authorization = secret_value(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ))?;
        let per_attempt = self
            .definition
            .timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let request = client
            .post(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form);
        let exchange = match tokio::time::timeout(per_attempt, read_response(request)).await {
            Err(_) => {
                return Err(token_failure(
                    "the token endpoint did not answer in time".into(),
                ))
            }
            Ok(Err(f)) if f.reason == FailureReason::TargetNotAllowed => return Err(f),
            Ok(Err(f)) => return Err(token_failure(format!("token endpoint: {f}"))),
            Ok(Ok(e)) => e,
        };
        if !(200..300).contains(&exchange.status) {
            return Err(token_failure(format!(
                "the token endpoint answered HTTP {}",
                exchange.status
            )));
        }
        let (access_token, expires_in) = token_answer(&exchange.body)?;
        // Without expires_in there is no telling how long the token lasts: use it once.
        if let Some(seconds) = expires_in {
            let refresh_at = issued_at
                .checked_add_signed(chrono::Duration::seconds(
                    seconds.clamp(0, 10 * 365 * 86_400),
                ))
                .and_then(|t| t.checked_sub_signed(TOKEN_REFRESH_MARGIN))
                .unwrap_or(issued_at);
            *cache = Some(CachedToken {
                access_token: access_token.clone(),
                refresh_at,
            });
        }
        Ok(access_token)
    }
}

/// The bearer token and its lifetime in seconds (if said) from a token endpoint's
/// successful answer (RFC 6749 §5.1).
fn token_answer(body: &[u8]) -> Result<(String, Option<i64>), Failure> {
    let token_failure = |detail: String| Failure::new(FailureReason::TokenRequestFailed, detail);
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| token_failure("the token endpoint's answer is not JSON".into()))?;
    let access_token = json
        .get("access_token")
        .and_then(|v| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| token_failure("the token endpoint's answer has no access_token".into()))?;
    if let Some(kind) = json.get("token_type").and_then(|v| v.as_str()) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(token_failure(format!(
                "the token endpoint gave a {kind:?} token, not a bearer token"
            )));
        }
    }
    let expires_in = match json.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    Ok((access_token.to_owned(), expires_in))
}

fn plain_value(s: &str) -> Result<HeaderValue, Failure> {
    HeaderValue::from_str(s).map_err(|_| {
        Failure::new(
            FailureReason::ConfigurationError,
            "a header value contains characters HTTP does not allow",
        )
    })
}

/// A header value that is never shown: reqwest and Usher's displays mask it.
fn secret_value(s: &str) -> Result<HeaderValue, Failure> {
    let mut v = HeaderValue::from_str(s).map_err(|_| {
        Failure::new(
            FailureReason::ConfigurationError,
            "a credential contains characters HTTP headers do not allow",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Builds a client with Usher's transport rules.
pub fn build_client(
    settings: &TransportSettings,
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, Failure> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the connector transport owns outbound HTTP to connectors"
    )]
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would be the address connected to, not the target.
        .no_proxy()
        .dns_resolver(Arc::new(FilteringResolver {
            policy: settings.targets,
        }))
        .https_only(!settings.targets.allow_http)
        .user_agent(concat!("usher-connectors/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_mins(1));
    for pem in &settings.extra_root_certificates {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| {
            Failure::new(
                FailureReason::ConfigurationError,
                "an extra root certificate cannot be read",
            )
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| {
        Failure::new(
            FailureReason::ConfigurationError,
            format!("the HTTP client cannot be built: {}", innermost(&e)),
        )
    })
}

async fn send_once(
    client: &reqwest::Client,
    url: &Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Exchange, Failure> {
    read_response(client.post(url.clone()).headers(headers).body(body)).await
}

/// Sends and reads the answer. The body of a 200 or 400 (the ones that carry an
/// answer) must fit in 1 MiB; others are kept only in part.
async fn read_response(request: reqwest::RequestBuilder) -> Result<Exchange, Failure> {
    let mut response = request.send().await.map_err(|e| classify(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let strict = matches!(status, 200 | 400);
    let too_large = || {
        Failure::new(
            FailureReason::TooLarge,
            format!("the body is over {MAX_BODY_BYTES} bytes"),
        )
    };
    if strict
        && response
            .content_length()
            .is_some_and(|l| l > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let limit = if strict {
        MAX_BODY_BYTES
    } else {
        MAX_IGNORED_BODY_BYTES
    };
    let mut body = Vec::new();
    let mut truncated = false;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) if strict => return Err(classify(&e)),
            // The status already decides; a broken body does not change it.
            Err(_) => break,
        };
        if body.len() + chunk.len() > limit {
            if strict {
                return Err(too_large());
            }
            let room = limit - body.len();
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Exchange {
        status,
        headers,
        body,
        truncated,
    })
}

/// The causes of an error, including what an `io::Error` wraps (its `source()` skips
/// the wrapped error itself).
fn causes<'a>(err: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        if out.len() > 32 {
            break;
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The deepest cause's message: it says what happened without the URL.
fn innermost(err: &(dyn StdError + 'static)) -> String {
    let chain = causes(err);
    if chain.len() > 1 {
        chain
            .last()
            .map(std::string::ToString::to_string)
            .unwrap_or_default()
    } else {
        String::new()
    }
}

/// Sorts a transport error into a failure reason.
fn classify(err: &reqwest::Error) -> Failure {
    let chain = causes(err);
    let detail = innermost(err);
    if let Some(e) = chain
        .iter()
        .find_map(|e| e.downcast_ref::<AddressRefused>())
    {
        return Failure::new(FailureReason::TargetNotAllowed, e.to_string());
    }
    if let Some(e) = chain.iter().find_map(|e| e.downcast_ref::<ResolveFailed>()) {
        return Failure::new(FailureReason::DnsFailed, e.to_string());
    }
    if let Some(e) = chain.iter().find_map(|e| e.downcast_ref::<rustls::Error>()) {
        // The usual cause behind a company network: say what fixes it.
        if matches!(
            e,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ) {
            return Failure::new(
                FailureReason::TlsFailed,
                format!("the server's certificate is not issued by a trusted CA ({e}); for a connector behind a private CA, add that CA's certificate to its extra_root_certificates"),
            );
        }
        return Failure::new(FailureReason::TlsFailed, e.to_string());
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{
                BrokenPipe, ConnectionAborted, ConnectionRefused, ConnectionReset, TimedOut,
                UnexpectedEof,
            };
            let reason = match io.kind() {
                ConnectionRefused => Some(FailureReason::ConnectionRefused),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    Some(FailureReason::ConnectionReset)
                }
                TimedOut => Some(FailureReason::Timeout),
                _ => None,
            };
            if let Some(reason) = reason {
                return Failure::new(reason, io.to_string());
            }
        }
    }
    if err.is_timeout() {
        return Failure::new(FailureReason::Timeout, detail);
    }
    if err.is_connect() {
        return Failure::new(FailureReason::ConnectionFailed, detail);
    }
    if err.is_builder() {
        return Failure::new(FailureReason::ConfigurationError, detail);
    }
    // The request went out and the exchange broke off.
    Failure::new(
        FailureReason::ConnectionReset,
        if detail.is_empty() {
            "the connection closed before a whole answer arrived".into()
        } else {
            detail
        },
    )
}

/// `from + by`, saturating a century out: budgets and `Retry-After` come from outside.
fn later(from: Instant, by: Duration) -> Instant {
    from.checked_add(by)
        .or_else(|| from.checked_add(Duration::from_hours(876_000)))
        .unwrap_or(from)
}

/// Whether waiting `wait` from now still leaves time before `deadline`.
fn fits(wait: Duration, deadline: Instant) -> bool {
    Instant::now()
        .checked_add(wait)
        .is_some_and(|end| end < deadline)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &[(String, String)], now: DateTime<Utc>) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (date.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// 50 ms, 100 ms, 200 ms … (at most 1 s), each between half and one and a half times.
fn backoff(retry_index: u32) -> Duration {
    let base = 50u64.saturating_mul(1u64 << retry_index.min(5));
    #[allow(
        clippy::disallowed_methods,
        reason = "retry jitter only spreads load; nothing depends on its values"
    )]
    let factor: f64 = rand::thread_rng().gen_range(0.5..1.5);
    Duration::from_millis((base as f64 * factor) as u64).min(Duration::from_secs(1))
}

/// Masks every secret value found in `text`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.is_empty() && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now: DateTime<Utc> = "2015-10-21T07:27:00Z".parse().unwrap();
        let h = |v: &str| vec![("Retry-After".to_owned(), v.to_owned())];
        assert_eq!(retry_after(&h("3"), now), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT"), now),
            Some(Duration::from_mins(1))
        );
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h("soon"), now), None);
        assert_eq!(retry_after(&[], now), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "any time works for this test")]
    fn huge_durations_do_not_overflow() {
        let now = Instant::now();
        assert!(later(now, Duration::MAX) > now);
        assert!(!fits(Duration::MAX, later(now, Duration::from_secs(10))));
        assert!(fits(Duration::ZERO, later(now, Duration::from_secs(10))));
        let h = vec![("retry-after".to_owned(), u64::MAX.to_string())];
        assert_eq!(
            retry_after(&h, Utc::now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn backoff_is_short_and_jittered() {
        for i in 0..20 {
            let b = backoff(i);
            assert!(b <= Duration::from_secs(1));
            assert!(b >= Duration::from_millis(25));
        }
        assert!(backoff(0) < Duration::from_millis(76));
    }

    #[test]
    fn urls_are_shown_without_passwords() {
        assert_eq!(
            display_url("https://user:pw@api.example.com/x"),
            "https://user:******@api.example.com/x"
        );
        assert_eq!(
            display_url("https://api.example.com/x"),
            "https://api.example.com/x"
        );
        assert_eq!(
            display_url("https://fn.example.net/api/check?code=abc%3D%3D&x=1"),
            "https://fn.example.net/api/check?code=******&x=******"
        );
    }

    #[test]
    fn scrubbing() {
        assert_eq!(
            scrub("key=abcd1234 and abcd1234", &["abcd1234".into()]),
            "key=****** and ******"
        );
    }
}
