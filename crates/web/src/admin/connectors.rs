//! API connectors — Graph's `identityApiConnector` at `/v1.0/identity/apiConnectors`,
//! mapped to [`ConnectorDefinition`].
//!
//! Graph's authentication types are `authenticationConfiguration`
//! (`#microsoft.graph.basicAuthentication`, `#microsoft.graph.pkcs12Certificate` on
//! write, `#microsoft.graph.clientCertificateAuthentication` with its certificate list
//! on read). Usher's extensions are further properties, all prefixed `usher`:
//! `usherApiKey`, `usherOAuthClientCredentials`, `usherSigningSecrets`,
//! `usherTimeoutMs`, `usherRetries`, `usherBudgetMs`, `usherFailurePolicy`,
//! `usherLenient`, `usherBreaker`, `usherExtraRootCertificates` (PEM CA certificates
//! trusted for this connector's server, public, read back as sent in canonical
//! form). A connector uses at most one way to authenticate.
//!
//! Secrets are write-only: they read back as `******`, and a `******` sent back in
//! a PATCH keeps the stored secret, so a script can PATCH what it read.

use axum::http::HeaderMap;
use usher_tenant::document;

use super::etag::{self, IfMatch};
use std::time::Duration;

use axum::{
    extract::{Path, State},
    response::Response,
};
use base64::Engine as _;
use serde_json::{json, Value};
use usher_connectors::certificate;
use usher_domain::{
    connector_limits as limits, rules::TargetPolicy, CertificateSource, ClientCertificate,
    ConnectorAuthentication, ConnectorDefinition, ConnectorField, FailurePolicy, Secret,
};

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::{Body, JsonBody};
use super::{created, no_content, odata, ok, path_segment, rules, Route, MASKED};
use crate::state::AppState;

const RESOURCE: &str = "identityApiConnector";
const TAG: &str = "API connectors";
const BASIC: &str = "#microsoft.graph.basicAuthentication";
const PKCS12: &str = "#microsoft.graph.pkcs12Certificate";
const CLIENT_CERTIFICATE: &str = "#microsoft.graph.clientCertificateAuthentication";
/// A PKCS#12 file is a few kilobytes; this leaves room for long chains.
const MAX_PKCS12_BYTES: usize = 32 * 1024;

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::Connectors);
    let write = Access::Write(Area::Connectors);
    vec![
        Route::get("/v1.0/identity/apiConnectors", list)
            .access(read)
            .doc(TAG, "List API connectors")
            .lists(RESOURCE, &["$select"]),
        Route::post("/v1.0/identity/apiConnectors", create)
            .access(write)
            .doc(TAG, "Create an API connector")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get("/v1.0/identity/apiConnectors/{id}", get)
            .access(read)
            .doc(TAG, "Get an API connector")
            .answers(200, RESOURCE)
            .query(&["$select"]),
        Route::patch("/v1.0/identity/apiConnectors/{id}", update)
            .access(write)
            .doc(
                TAG,
                "Update an API connector (secrets sent as ****** are kept)",
            )
            .body(RESOURCE)
            .no_content(),
        Route::delete("/v1.0/identity/apiConnectors/{id}", delete)
            .access(write)
            .doc(
                TAG,
                "Delete an API connector (409 while a user flow uses it)",
            ),
        Route::post(
            "/v1.0/identity/apiConnectors/{id}/uploadClientCertificate",
            upload_certificate,
        )
        .access(write)
        .doc(
            TAG,
            "Add a client certificate (PKCS#12); the newest one inside its validity period is used",
        )
        .body("pkcs12Certificate")
        .answers(200, RESOURCE),
    ]
}

/// The connector with this id (ids ignore case).
pub async fn find(state: &AppState, id: &str) -> ApiResult<ConnectorDefinition> {
    let snapshot = state.tenants.current().await?;
    snapshot
        .connector(id)
        .filter(|c| !c.contract.is_extension())
        .cloned()
        .ok_or_else(|| ApiError::no_such("apiConnector", id))
}

async fn list(State(state): State<AppState>, uri: axum::http::Uri) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$select"])?;
    options.check_select(RESOURCE, &is_property)?;
    let snapshot = state.tenants.current().await?;
    let mut values = Vec::new();
    // Extensions are listed at customAuthenticationExtensions.
    for c in snapshot
        .connectors
        .iter()
        .filter(|c| !c.contract.is_extension())
    {
        values.push(options.apply_select(to_json(&state, c).await));
    }
    Ok(ok(odata::collection(
        &state,
        "identity/apiConnectors",
        values,
        None,
    )))
}

async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$select"])?;
    options.check_select(RESOURCE, &is_property)?;
    let snapshot = state.tenants.current().await?;
    let c = snapshot
        .connector(&id)
        .filter(|c| !c.contract.is_extension())
        .cloned()
        .ok_or_else(|| ApiError::no_such("apiConnector", &id))?;
    let mut value = to_json(&state, &c).await;
    if let Value::Object(m) = &mut value {
        m.insert(
            "@odata.context".into(),
            json!(odata::context_url(&state, "identity/apiConnectors/$entity")),
        );
    }
    etag::tenant_object(
        &state,
        &snapshot,
        document::CONNECTOR,
        &c.id,
        options.apply_select(value),
    )
}

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let id = match body.string("id")? {
        Some(id) => {
            rules::check_connector_id(&id).map_err(|e| body.error("id", e))?;
            id
        }
        None => state.new_id(),
    };
    let snapshot = state.tenants.current().await?;
    if let Some(existing) = snapshot.connector(&id) {
        return Err(ApiError::conflict(format!(
            "An API connector with the id {} exists already (ids ignore case).",
            existing.id
        )));
    }
    let target_url = body.required_string("targetUrl")?;
    let mut connector = ConnectorDefinition::new(id, target_url);
    connector.display_name = body.required_string("displayName")?;
    apply(&state, &mut body, &mut connector).await?;
    body.finish()?;
    check(&state, &connector)?;
    state.tenants.put_connector(&connector).await?;
    let location = format!(
        "/v1.0/identity/apiConnectors/{}",
        path_segment(&connector.id)
    );
    Ok(created(
        &state,
        &location,
        to_json(&state, &connector).await,
    ))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    // `******` keeps a stored secret, but never while the connector moves elsewhere:
    // the secret would be sent to a destination its owner never gave it for.
    let keeps_a_secret = std::str::from_utf8(&body.0).is_ok_and(|t| t.contains(MASKED));
    let mut body = body.object(RESOURCE)?;
    let mut connector = find(&state, &id).await?;
    body.read_only("id", &json!(connector.id))?;
    match body.nullable_string("targetUrl")? {
        Some(Some(url)) if url != connector.target_url && keeps_a_secret => {
            return Err(body.error(
                "targetUrl",
                "changes, so the credentials must be given again (not ******)",
            ))
        }
        Some(Some(url)) => connector.target_url = url,
        Some(None) => return Err(body.error("targetUrl", "cannot be removed")),
        None => {}
    }
    match body.nullable_string("displayName")? {
        Some(Some(name)) => connector.display_name = name,
        Some(None) => return Err(body.error("displayName", "cannot be removed")),
        None => {}
    }
    apply(&state, &mut body, &mut connector).await?;
    body.finish()?;
    check(&state, &connector)?;
    state
        .tenants
        .put_connector_if(&connector, if_match.tags())
        .await?;
    Ok(no_content())
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let connector = find(&state, &id).await?;
    if state
        .tenants
        .delete_connector_if(&connector.id, if_match.tags())
        .await?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("apiConnector", &id))
    }
}

const MAX_CERTIFICATES: usize = limits::CLIENT_CERTIFICATES;

async fn upload_certificate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let mut body = body.object("pkcs12Certificate")?;
    let mut connector = find(&state, &id).await?;
    let upload = read_pkcs12(&state, &mut body).await?;
    body.finish()?;
    match &mut connector.authentication {
        ConnectorAuthentication::ClientCertificate { certificates } => {
            // Bounded: every read opens each PKCS#12 file (a slow key derivation).
            if certificates.len() >= MAX_CERTIFICATES {
                return Err(ApiError::bad_request(format!(
                    "The connector has {MAX_CERTIFICATES} certificates already: upload again after replacing the authentication configuration."
                )));
            }
            certificates.push(upload);
        }
        other => {
            *other = ConnectorAuthentication::ClientCertificate {
                certificates: vec![upload],
            }
        }
    }
    state.tenants.put_connector(&connector).await?;
    Ok(ok(to_json(&state, &connector).await))
}

/// The properties a connector reads back with.
fn is_property(name: &str) -> bool {
    [
        "id",
        "displayName",
        "targetUrl",
        "authenticationConfiguration",
        "usherApiKey",
        "usherOAuthClientCredentials",
        "usherSigningSecrets",
        "usherTimeoutMs",
        "usherRetries",
        "usherBudgetMs",
        "usherFailurePolicy",
        "usherLenient",
        "usherBreaker",
        "usherExtraRootCertificates",
    ]
    .iter()
    .any(|p| p.eq_ignore_ascii_case(name))
}

/// The whole-connector rules: the target, and a budget that leaves room for one
/// attempt.
fn check(state: &AppState, c: &ConnectorDefinition) -> ApiResult<()> {
    let targets = state.runner_settings.targets;
    rules::check_connector_url(&c.target_url, targets)
        .map_err(|e| ApiError::invalid_property("targetUrl", RESOURCE, e))?;
    rules::check_display_text(&c.display_name, rules::MAX_LABEL)
        .map_err(|e| ApiError::invalid_property("displayName", RESOURCE, e))?;
    if c.budget < c.timeout {
        return Err(ApiError::invalid_property(
            "usherBudgetMs",
            RESOURCE,
            format!(
                "must be at least usherTimeoutMs ({} ms): the budget covers every attempt",
                c.timeout.as_millis()
            ),
        ));
    }
    // The rules every entry point shares.
    c.check().map_err(|e| {
        let property = match e.field {
            ConnectorField::Timeout => "usherTimeoutMs",
            ConnectorField::Retries => "usherRetries",
            ConnectorField::Budget => "usherBudgetMs",
            ConnectorField::BreakerFailureThreshold => "usherBreaker.failureThreshold",
            ConnectorField::BreakerOpenSeconds => "usherBreaker.openSeconds",
            ConnectorField::ClientCertificates
            | ConnectorField::ResourceId
            | ConnectorField::CallerId => "authenticationConfiguration",
            ConnectorField::ClaimsForToken => "usherClaimsForToken",
            ConnectorField::Description => "description",
            ConnectorField::FailurePolicy => "usherFailurePolicy",
        };
        ApiError::invalid_property(property, RESOURCE, e.message)
    })
}

/// Applies the properties shared by POST and PATCH.
async fn apply(state: &AppState, body: &mut Body, c: &mut ConnectorDefinition) -> ApiResult<()> {
    apply_authentication(state, body, c).await?;
    if let Some(kept) = read_signing_secrets(body, &c.signing_secrets)? {
        c.signing_secrets = kept;
    }
    if let Some(ms) = body.integer(
        "usherTimeoutMs",
        limits::lo(&limits::TIMEOUT_MS),
        limits::hi(&limits::TIMEOUT_MS),
    )? {
        c.timeout = Duration::from_millis(ms.unsigned_abs());
    }
    if let Some(n) = body.integer(
        "usherRetries",
        limits::lo(&limits::RETRIES),
        limits::hi(&limits::RETRIES),
    )? {
        c.retries = u32::try_from(n).unwrap_or(0);
    }
    if let Some(ms) = body.integer(
        "usherBudgetMs",
        limits::lo(&limits::BUDGET_MS),
        limits::hi(&limits::BUDGET_MS),
    )? {
        c.budget = Duration::from_millis(ms.unsigned_abs());
    }
    if let Some(p) = body.string("usherFailurePolicy")? {
        c.failure_policy = match p.to_ascii_lowercase().as_str() {
            "block" => FailurePolicy::Block,
            "continue" => FailurePolicy::Continue,
            _ => return Err(body.error("usherFailurePolicy", "must be block or continue")),
        };
    }
    if let Some(l) = body.bool("usherLenient")? {
        c.lenient = l;
    }
    if body.has("usherExtraRootCertificates") {
        c.extra_root_certificates = read_extra_root_certificates(body)?;
    }
    if let Some(mut b) = body.object("usherBreaker")? {
        if let Some(n) = b.integer(
            "failureThreshold",
            limits::lo(&limits::BREAKER_FAILURE_THRESHOLD),
            limits::hi(&limits::BREAKER_FAILURE_THRESHOLD),
        )? {
            c.breaker.failure_threshold = u32::try_from(n).unwrap_or(1);
        }
        if let Some(s) = b.integer(
            "openSeconds",
            limits::lo(&limits::BREAKER_OPEN_SECONDS),
            limits::hi(&limits::BREAKER_OPEN_SECONDS),
        )? {
            c.breaker.open_for = Duration::from_secs(s.unsigned_abs());
        }
        b.finish()?;
    }
    Ok(())
}

/// The ways a connector authenticates: `authenticationConfiguration`, `usherApiKey`
/// and `usherOAuthClientCredentials`. At most one way to authenticate: the one given
/// replaces the current one (a null `usherApiKey` or `usherOAuthClientCredentials`
/// removes only an authentication of its own kind).
async fn apply_authentication(
    state: &AppState,
    body: &mut Body,
    c: &mut ConnectorDefinition,
) -> ApiResult<()> {
    let targets = state.runner_settings.targets;
    let mut given: Vec<&str> = Vec::new();
    if let Some(auth) = body.nullable_object("authenticationConfiguration")? {
        given.push("authenticationConfiguration");
        c.authentication = match auth {
            None => ConnectorAuthentication::None,
            Some(mut a) => {
                let auth = authentication_configuration(state, &mut a, &c.authentication).await?;
                a.finish()?;
                auth
            }
        };
    }
    if let Some(key) = body.nullable_object("usherApiKey")? {
        given.push("usherApiKey");
        match key {
            None if matches!(c.authentication, ConnectorAuthentication::ApiKey { .. }) => {
                c.authentication = ConnectorAuthentication::None;
            }
            None => {}
            Some(k) => c.authentication = read_api_key(k, &c.authentication)?,
        }
    }
    if let Some(oauth) = body.nullable_object("usherOAuthClientCredentials")? {
        given.push("usherOAuthClientCredentials");
        match oauth {
            None if matches!(
                c.authentication,
                ConnectorAuthentication::OAuthClientCredentials { .. }
            ) =>
            {
                c.authentication = ConnectorAuthentication::None;
            }
            None => {}
            Some(o) => {
                c.authentication = read_oauth_client_credentials(o, &c.authentication, targets)?;
            }
        }
    }
    if given.len() > 1 {
        return Err(ApiError::bad_request(format!(
            "A connector authenticates in one way: give only one of {}.",
            given.join(", ")
        )));
    }
    Ok(())
}

/// `usherApiKey` as sent, given the current authentication: `******` keeps the
/// stored key.
fn read_api_key(
    mut k: Body,
    current: &ConnectorAuthentication,
) -> ApiResult<ConnectorAuthentication> {
    let header = k.required_string("header")?;
    rules::check_api_key_header(&header).map_err(|e| k.error("header", e))?;
    let value = k.required_string("value")?;
    let value = match (current, value.as_str()) {
        (ConnectorAuthentication::ApiKey { value: old, .. }, MASKED) => old.clone(),
        (_, MASKED) => return Err(k.error("value", "must be the key itself")),
        (_, "") => return Err(k.error("value", "must not be empty")),
        _ => Secret::new(value),
    };
    k.finish()?;
    Ok(ConnectorAuthentication::ApiKey { header, value })
}

/// `usherOAuthClientCredentials` as sent, given the current authentication: `******`
/// keeps the stored client secret.
fn read_oauth_client_credentials(
    mut o: Body,
    current: &ConnectorAuthentication,
    targets: TargetPolicy,
) -> ApiResult<ConnectorAuthentication> {
    let token_url = o.required_string("tokenUrl")?;
    rules::check_connector_url(&token_url, targets).map_err(|e| o.error("tokenUrl", e))?;
    let client_id = o.required_string("clientId")?;
    rules::check_oauth_client_id(&client_id).map_err(|e| o.error("clientId", e))?;
    let secret = o.required_string("clientSecret")?;
    let client_secret = match (current, secret.as_str()) {
        // Kept only for the same token endpoint it was given for.
        (
            ConnectorAuthentication::OAuthClientCredentials {
                client_secret: old,
                token_url: old_url,
                ..
            },
            MASKED,
        ) if *old_url == token_url => old.clone(),
        (_, MASKED) => return Err(o.error("clientSecret", "must be the secret itself")),
        (_, "") => return Err(o.error("clientSecret", "must not be empty")),
        _ => Secret::new(secret),
    };
    let scope = o.string("scope")?.filter(|s| !s.is_empty());
    if let Some(s) = &scope {
        rules::check_scope(s).map_err(|e| o.error("scope", e))?;
    }
    o.finish()?;
    Ok(ConnectorAuthentication::OAuthClientCredentials {
        token_url,
        client_id,
        client_secret,
        scope,
    })
}

/// `usherSigningSecrets`, when given, against the secrets stored: `******` at a
/// position keeps the secret stored there.
fn read_signing_secrets(body: &mut Body, stored: &[Secret]) -> ApiResult<Option<Vec<Secret>>> {
    let Some(secrets) = body.strings("usherSigningSecrets")? else {
        return Ok(None);
    };
    let mut kept = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        if s == MASKED {
            match stored.get(i) {
                Some(old) => kept.push(old.clone()),
                None => {
                    return Err(body.error(
                        "usherSigningSecrets",
                        format!("item {i} is ****** but there is no stored secret there"),
                    ))
                }
            }
        } else {
            rules::check_signing_secret(s).map_err(|e| body.error("usherSigningSecrets", e))?;
            kept.push(Secret::new(s.clone()));
        }
    }
    Ok(Some(kept))
}

/// `usherExtraRootCertificates`: the company CAs trusted for the connector's server,
/// one PEM certificate per item once read, and not too many.
fn read_extra_root_certificates(body: &mut Body) -> ApiResult<Vec<String>> {
    // `null` or `[]` clears; each item may hold several PEM certificates.
    let mut roots = Vec::new();
    for (i, pem) in body
        .strings("usherExtraRootCertificates")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let parsed = rules::parse_root_certificates(pem)
            .map_err(|e| body.error("usherExtraRootCertificates", format!("item {i}: {e}")))?;
        roots.extend(parsed);
    }
    if roots.len() > rules::MAX_ROOT_CERTIFICATES {
        return Err(body.error(
            "usherExtraRootCertificates",
            format!(
                "holds {} certificates; at most {} are allowed",
                roots.len(),
                rules::MAX_ROOT_CERTIFICATES
            ),
        ));
    }
    Ok(roots)
}

/// `authenticationConfiguration` as sent, given the current authentication.
async fn authentication_configuration(
    state: &AppState,
    a: &mut Body,
    current: &ConnectorAuthentication,
) -> ApiResult<ConnectorAuthentication> {
    let Some(Value::String(kind)) = a.take("@odata.type") else {
        return Err(a.error("@odata.type", format!("is required: {BASIC} or {PKCS12}")));
    };
    let kind = kind.trim_start_matches('#').to_ascii_lowercase();
    match kind.as_str() {
        "microsoft.graph.basicauthentication" => {
            let username = a.required_string("username")?;
            rules::check_basic_username(&username).map_err(|e| a.error("username", e))?;
            let password = a.required_string("password")?;
            let password = match (current, password.as_str()) {
                (ConnectorAuthentication::Basic { password: old, .. }, MASKED) => old.clone(),
                (_, MASKED) => return Err(a.error("password", "must be the password itself")),
                (_, "") => return Err(a.error("password", "must not be empty")),
                _ => Secret::new(password),
            };
            Ok(ConnectorAuthentication::Basic { username, password })
        }
        "microsoft.graph.pkcs12certificate" => Ok(ConnectorAuthentication::ClientCertificate {
            certificates: vec![read_pkcs12(state, a).await?],
        }),
        "microsoft.graph.clientcertificateauthentication" => match current {
            // What a GET answers, sent back unchanged: keep the certificates.
            ConnectorAuthentication::ClientCertificate { .. } => {
                a.take("certificateList");
                Ok(current.clone())
            }
            _ => Err(a.error(
                "@odata.type",
                format!("certificates are added as {PKCS12} or with uploadClientCertificate"),
            )),
        },
        _ => Err(a.error("@odata.type", format!("must be {BASIC} or {PKCS12}"))),
    }
}

/// `{pkcs12Value, password}`: the file is read (on the blocking pool: PKCS#12 key
/// derivation is slow on purpose) so that a wrong password is refused now, not at
/// the first sign-up.
async fn read_pkcs12(state: &AppState, a: &mut Body) -> ApiResult<ClientCertificate> {
    let value = a.required_string("pkcs12Value")?;
    let password = a.string("password")?.unwrap_or_default();
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| a.error("pkcs12Value", "must be the base64 of a .pfx file"))?;
    if der.is_empty() || der.len() > MAX_PKCS12_BYTES {
        return Err(a.error(
            "pkcs12Value",
            format!("must be a .pfx file of at most {MAX_PKCS12_BYTES} bytes"),
        ));
    }
    let upload = ClientCertificate {
        source: CertificateSource::Pkcs12 {
            der,
            password: Secret::new(password),
        },
        uploaded_at: state.clock.now(),
    };
    let check = upload.clone();
    let loaded = tokio::task::spawn_blocking(move || certificate::load(&check))
        .await
        .map_err(ApiError::internal)?;
    loaded.map_err(|e| a.error("pkcs12Value", e))?;
    Ok(upload)
}

/// The connector as the API shows it: secrets masked, certificates listed.
pub async fn to_json(state: &AppState, c: &ConnectorDefinition) -> Value {
    let mut api_key = Value::Null;
    let mut oauth = Value::Null;
    let authentication = match &c.authentication {
        ConnectorAuthentication::None => Value::Null,
        ConnectorAuthentication::Basic { username, .. } => json!({
            "@odata.type": BASIC, "username": username, "password": MASKED,
        }),
        ConnectorAuthentication::ClientCertificate { certificates } => json!({
            "@odata.type": CLIENT_CERTIFICATE,
            "certificateList": certificate_list(state, certificates).await,
        }),
        ConnectorAuthentication::ApiKey { header, .. } => {
            api_key = json!({"header": header, "value": MASKED});
            Value::Null
        }
        ConnectorAuthentication::OAuthClientCredentials {
            token_url,
            client_id,
            scope,
            ..
        } => {
            oauth = json!({
                "tokenUrl": token_url, "clientId": client_id,
                "clientSecret": MASKED, "scope": scope,
            });
            Value::Null
        }
        ConnectorAuthentication::IssuedToken {
            resource_id,
            caller_id,
        } => json!({
            "@odata.type": "#microsoft.graph.azureAdTokenAuthentication",
            "resourceId": resource_id,
            "usherCallerId": caller_id,
        }),
    };
    json!({
        "id": c.id,
        "displayName": c.display_name,
        "targetUrl": c.target_url,
        "authenticationConfiguration": authentication,
        "usherApiKey": api_key,
        "usherOAuthClientCredentials": oauth,
        "usherSigningSecrets": vec![MASKED; c.signing_secrets.len()],
        "usherTimeoutMs": millis(c.timeout),
        "usherRetries": c.retries,
        "usherBudgetMs": millis(c.budget),
        "usherFailurePolicy": match c.failure_policy {
            FailurePolicy::Block => "block",
            FailurePolicy::Continue => "continue",
        },
        "usherLenient": c.lenient,
        "usherBreaker": {
            "failureThreshold": c.breaker.failure_threshold,
            "openSeconds": c.breaker.open_for.as_secs(),
        },
        "usherExtraRootCertificates": c.extra_root_certificates,
        "usherContract": c.contract.name(),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Graph's `certificateList`: thumbprint (SHA-1 of the leaf, as Windows shows it),
/// validity in Unix seconds, and which one is used now.
async fn certificate_list(state: &AppState, certificates: &[ClientCertificate]) -> Vec<Value> {
    let list = certificates.to_vec();
    let now = state.clock.now();
    let loaded = tokio::task::spawn_blocking(move || {
        list.iter()
            .map(|c| certificate::load(c).ok())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let active = certificate::select(&loaded, now);
    loaded
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = c.as_ref()?;
            let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &c.leaf_der);
            let thumbprint: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
            Some(json!({
                "thumbprint": thumbprint,
                "notBefore": c.not_before.timestamp(),
                "notAfter": c.not_after.timestamp(),
                "isActive": active == Some(i),
            }))
        })
        .collect()
}
