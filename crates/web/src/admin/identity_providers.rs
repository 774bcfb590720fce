//! Identity providers at `/v1.0/identity/identityProviders`: the built-in ones
//! (`EmailPassword-OAUTH`, `EmailOtpSignup-OAUTH`, read-only) and the configured
//! upstream ones (mapped to [`ProviderConfig`]), in the style of Graph's
//! `identityProviderBase` types: `#microsoft.graph.builtInIdentityProvider`,
//! `#microsoft.graph.socialIdentityProvider` (Google, Facebook, GitHub, Microsoft),
//! `#microsoft.graph.openIdConnectIdentityProvider` (any OpenID Connect provider, by
//! its `metadataUrl`) and Usher's `#usher.oauth2IdentityProvider`.
//!
//! Usher's settings are `usher`-prefixed properties: `usherTenant` (Microsoft),
//! `usherAuthorizationEndpoint`, `usherTokenEndpoint`, `usherUserinfoEndpoint`,
//! `usherSubjectClaim`, `usherIdentityIssuer` (generic OAuth 2.0),
//! `usherClaimsMapping`, `usherEndpoints` and `usherClientAuthentication`. The client
//! secret is write-only.

use axum::http::HeaderMap;
use usher_tenant::document;

use super::etag::{self, IfMatch};
use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::Uri,
    response::Response,
};
use serde_json::{json, Map, Value};
use usher_domain::{
    user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER},
    BuiltInAttribute, DataType, Secret,
};
use usher_federation::{
    ClaimMapping, ClientAuthMethod, EndpointOverrides, ProviderConfig, ProviderKind,
};
use usher_tenant::TenantSnapshot;

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::{Body, JsonBody};
use super::{created, no_content, odata, ok, path_segment, rules, Route, MASKED};
use crate::state::AppState;

const RESOURCE: &str = "identityProvider";
const TAG: &str = "Identity providers";
const DISCOVERY: &str = "/.well-known/openid-configuration";

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::UserFlows);
    let write = Access::Write(Area::UserFlows);
    vec![
        Route::get("/v1.0/identity/identityProviders", list)
            .access(read)
            .doc(TAG, "List identity providers, built-in and configured")
            .lists(RESOURCE, &["$select"]),
        Route::post("/v1.0/identity/identityProviders", create)
            .access(write)
            .doc(TAG, "Configure an upstream identity provider")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get("/v1.0/identity/identityProviders/{id}", get)
            .access(read)
            .doc(TAG, "Get an identity provider")
            .answers(200, RESOURCE),
        Route::patch("/v1.0/identity/identityProviders/{id}", update)
            .access(write)
            .doc(
                TAG,
                "Update a configured identity provider (a ****** secret is kept)",
            )
            .body(RESOURCE)
            .no_content(),
        Route::delete("/v1.0/identity/identityProviders/{id}", delete)
            .access(write)
            .doc(
                TAG,
                "Delete a configured identity provider (409 while a user flow offers it)",
            ),
    ]
}

/// The built-in providers: id, display name, type.
const BUILT_IN: [(&str, &str, &str); 2] = [
    (
        EMAIL_PASSWORD_PROVIDER,
        "Email with password",
        "EmailPassword",
    ),
    (EMAIL_OTP_PROVIDER, "Email one-time passcode", "EmailOTP"),
];

fn built_in(id: &str) -> Option<(&'static str, &'static str, &'static str)> {
    BUILT_IN
        .into_iter()
        .find(|(b, _, _)| b.eq_ignore_ascii_case(id))
}

/// The provider an id names, as it is spelt: a built-in one or a configured one.
pub fn resolve(snapshot: &TenantSnapshot, id: &str) -> Option<String> {
    built_in(id)
        .map(|(b, _, _)| b.to_owned())
        .or_else(|| snapshot.identity_provider(id).map(|p| p.id.clone()))
}

/// The provider an id names, as the API shows it.
pub fn to_json_by_id(snapshot: &TenantSnapshot, id: &str) -> Value {
    if let Some((id, name, kind)) = built_in(id) {
        return json!({
            "@odata.type": "#microsoft.graph.builtInIdentityProvider",
            "id": id, "displayName": name, "identityProviderType": kind,
        });
    }
    match snapshot.identity_provider(id) {
        Some(p) => to_json(p),
        None => json!({"id": id}),
    }
}

fn kind_name(kind: &ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Oidc { .. } => "OpenIDConnect",
        ProviderKind::Google => "Google",
        ProviderKind::Microsoft { .. } => "Microsoft",
        ProviderKind::Facebook => "Facebook",
        ProviderKind::GitHub => "GitHub",
        ProviderKind::OAuth2 { .. } => "OAuth2",
    }
}

fn odata_type(kind: &ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Oidc { .. } => "#microsoft.graph.openIdConnectIdentityProvider",
        ProviderKind::OAuth2 { .. } => "#usher.oauth2IdentityProvider",
        _ => "#microsoft.graph.socialIdentityProvider",
    }
}

pub fn to_json(p: &ProviderConfig) -> Value {
    let mut v = Map::new();
    v.insert("@odata.type".into(), json!(odata_type(&p.kind)));
    v.insert("id".into(), json!(p.id));
    v.insert("displayName".into(), json!(p.display_name));
    v.insert("identityProviderType".into(), json!(kind_name(&p.kind)));
    v.insert("clientId".into(), json!(p.client_id));
    v.insert("clientSecret".into(), json!(MASKED));
    v.insert("scope".into(), json!(p.effective_scopes().join(" ")));
    match &p.kind {
        ProviderKind::Oidc { issuer } => {
            v.insert(
                "metadataUrl".into(),
                json!(format!("{}{DISCOVERY}", issuer.trim_end_matches('/'))),
            );
        }
        ProviderKind::Microsoft { tenant } => {
            v.insert("usherTenant".into(), json!(tenant));
        }
        ProviderKind::OAuth2 {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            subject_claim,
            identity_issuer,
        } => {
            v.insert(
                "usherAuthorizationEndpoint".into(),
                json!(authorization_endpoint),
            );
            v.insert("usherTokenEndpoint".into(), json!(token_endpoint));
            v.insert("usherUserinfoEndpoint".into(), json!(userinfo_endpoint));
            v.insert("usherSubjectClaim".into(), json!(subject_claim));
            v.insert("usherIdentityIssuer".into(), json!(identity_issuer));
        }
        _ => {}
    }
    v.insert(
        "usherClaimsMapping".into(),
        json!(p.effective_claim_mapping().0),
    );
    let e = &p.endpoints;
    let mut endpoints = Map::new();
    for (k, value) in [
        ("issuer", &e.issuer),
        ("authorizationEndpoint", &e.authorization_endpoint),
        ("tokenEndpoint", &e.token_endpoint),
        ("userinfoEndpoint", &e.userinfo_endpoint),
        ("emailsEndpoint", &e.emails_endpoint),
        ("jwksUri", &e.jwks_uri),
    ] {
        if let Some(value) = value {
            endpoints.insert(k.into(), json!(value));
        }
    }
    v.insert("usherEndpoints".into(), Value::Object(endpoints));
    v.insert(
        "usherClientAuthentication".into(),
        json!(p.client_auth.map(auth_name)),
    );
    Value::Object(v)
}

fn auth_name(m: ClientAuthMethod) -> &'static str {
    match m {
        ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
        ClientAuthMethod::ClientSecretPost => "client_secret_post",
    }
}

const PROPERTIES: [&str; 17] = [
    "id",
    "displayName",
    "identityProviderType",
    "clientId",
    "clientSecret",
    "scope",
    "metadataUrl",
    "usherTenant",
    "usherAuthorizationEndpoint",
    "usherTokenEndpoint",
    "usherUserinfoEndpoint",
    "usherSubjectClaim",
    "usherIdentityIssuer",
    "usherClaimsMapping",
    "usherEndpoints",
    "usherClientAuthentication",
    "@odata.type",
];

async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$select"])?;
    options.check_select(RESOURCE, &|p| {
        PROPERTIES.iter().any(|k| k.eq_ignore_ascii_case(p))
    })?;
    let snapshot = state.tenants.current().await?;
    let values = BUILT_IN
        .iter()
        .map(|(id, _, _)| to_json_by_id(&snapshot, id))
        .chain(snapshot.identity_providers.iter().map(to_json))
        .map(|v| options.apply_select(v))
        .collect();
    Ok(ok(odata::collection(
        &state,
        "identity/identityProviders",
        values,
        None,
    )))
}

async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    if resolve(&snapshot, &id).is_none() {
        return Err(ApiError::no_such("identityProvider", &id));
    }
    // Built-in providers are not stored objects: they have no tag.
    let stored = snapshot
        .identity_provider(&id)
        .map(|p| p.id.clone())
        .unwrap_or_default();
    etag::tenant_object(
        &state,
        &snapshot,
        document::IDENTITY_PROVIDER,
        &stored,
        to_json_by_id(&snapshot, &id),
    )
}

fn find(snapshot: &TenantSnapshot, id: &str) -> ApiResult<ProviderConfig> {
    if let Some((b, _, _)) = built_in(id) {
        return Err(ApiError::bad_request(format!(
            "{b} is a built-in identity provider: it cannot be changed or deleted."
        )));
    }
    snapshot
        .identity_provider(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("identityProvider", id))
}

/// The kind an `identityProviderType` names, with empty settings to fill in.
fn kind_from_name(name: &str) -> Option<ProviderKind> {
    Some(match name.to_ascii_lowercase().as_str() {
        "openidconnect" | "oidc" => ProviderKind::Oidc {
            issuer: String::new(),
        },
        "google" => ProviderKind::Google,
        "microsoft" | "microsoftaccount" => ProviderKind::Microsoft {
            tenant: "common".into(),
        },
        "facebook" => ProviderKind::Facebook,
        "github" => ProviderKind::GitHub,
        "oauth2" => ProviderKind::OAuth2 {
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            userinfo_endpoint: String::new(),
            subject_claim: String::new(),
            identity_issuer: String::new(),
        },
        _ => return None,
    })
}

/// Type-specific properties, and the type they belong to.
const TYPE_PROPERTIES: [(&str, &str); 7] = [
    ("metadataUrl", "OpenIDConnect"),
    ("usherTenant", "Microsoft"),
    ("usherAuthorizationEndpoint", "OAuth2"),
    ("usherTokenEndpoint", "OAuth2"),
    ("usherUserinfoEndpoint", "OAuth2"),
    ("usherSubjectClaim", "OAuth2"),
    ("usherIdentityIssuer", "OAuth2"),
];

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let id = body.required_string("id")?;
    rules::check_provider_id(&id).map_err(|e| body.error("id", e))?;
    let snapshot = state.tenants.current().await?;
    if let Some(existing) = snapshot.identity_provider(&id) {
        return Err(ApiError::conflict(format!(
            "An identity provider with the id {} exists already (ids ignore case).",
            existing.id
        )));
    }
    let type_name = body.required_string("identityProviderType")?;
    let kind = kind_from_name(&type_name).ok_or_else(|| {
        body.error(
            "identityProviderType",
            "must be one of Google, Facebook, GitHub, Microsoft, OpenIDConnect, OAuth2",
        )
    })?;
    body.take("@odata.type");
    let client_id = body.required_string("clientId")?;
    let secret = body.required_string("clientSecret")?;
    if secret.is_empty() || secret == MASKED {
        return Err(body.error("clientSecret", "must be the client secret itself"));
    }
    let mut provider = ProviderConfig::new(id, kind, client_id, Secret::new(secret));
    apply(&state, &snapshot, &mut body, &mut provider, true)?;
    body.finish()?;
    check_issuer_unshared(&snapshot, &provider)?;
    state.tenants.put_identity_provider(&provider).await?;
    let location = format!(
        "/v1.0/identity/identityProviders/{}",
        path_segment(&provider.id)
    );
    Ok(created(&state, &location, to_json(&provider)))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    // `******` keeps the stored client secret, but not for a provider whose endpoints
    // change in the same request: the secret would go where it was never given.
    let keeps_a_secret = std::str::from_utf8(&body.0).is_ok_and(|t| t.contains(MASKED));
    let mut body = body.object(RESOURCE)?;
    let snapshot = state.tenants.current().await?;
    let mut provider = find(&snapshot, &id)?;
    let before = (
        format!("{:?}", provider.kind),
        format!("{:?}", provider.endpoints),
    );
    body.read_only("id", &json!(provider.id))?;
    if let Some(t) = body.string("identityProviderType")? {
        if kind_from_name(&t).is_none_or(|k| kind_name(&k) != kind_name(&provider.kind)) {
            return Err(body.error("identityProviderType", "is read-only"));
        }
    }
    body.take("@odata.type");
    if let Some(client_id) = body.string("clientId")? {
        provider.client_id = client_id;
    }
    match body.string("clientSecret")?.as_deref() {
        None | Some(MASKED) => {}
        Some("") => return Err(body.error("clientSecret", "must not be empty")),
        Some(s) => provider.client_secret = Secret::new(s),
    }
    apply(&state, &snapshot, &mut body, &mut provider, false)?;
    body.finish()?;
    let after = (
        format!("{:?}", provider.kind),
        format!("{:?}", provider.endpoints),
    );
    if keeps_a_secret && after != before {
        return Err(ApiError::bad_request(
            "The provider's endpoints change, so clientSecret must be given again (not ******).",
        ));
    }
    check_issuer_unshared(&snapshot, &provider)?;
    state
        .tenants
        .put_identity_provider_if(&provider, if_match.tags())
        .await?;
    Ok(no_content())
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let snapshot = state.tenants.current().await?;
    let provider = find(&snapshot, &id)?;
    if state
        .tenants
        .delete_identity_provider_if(&provider.id, if_match.tags())
        .await?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("identityProvider", &id))
    }
}

/// Refuses a provider whose identities would have the issuer of another provider's:
/// a user of one could sign in as a user of the other (users are found by issuer and
/// subject).
fn check_issuer_unshared(snapshot: &TenantSnapshot, provider: &ProviderConfig) -> ApiResult<()> {
    let others = snapshot
        .identity_providers
        .iter()
        .filter(|p| !p.id.eq_ignore_ascii_case(&provider.id));
    for other in others {
        if let Some(shared) = usher_federation::shared_identity_issuer([other, provider]) {
            return Err(ApiError::conflict(format!(
                "The identity provider cannot be saved: {shared}."
            )));
        }
    }
    Ok(())
}

/// The properties shared by POST and PATCH, then the whole provider's rules.
fn apply(
    state: &AppState,
    snapshot: &TenantSnapshot,
    body: &mut Body,
    p: &mut ProviderConfig,
    creating: bool,
) -> ApiResult<()> {
    let insecure = state.federation_settings.allow_insecure_endpoints;
    let this_type = kind_name(&p.kind);
    for (key, owner) in TYPE_PROPERTIES {
        if owner != this_type && body.has(key) {
            return Err(body.error(key, format!("belongs to type {owner}, not {this_type}")));
        }
    }
    if let Some(name) = body.string("displayName")? {
        rules::check_display_text(&name, rules::MAX_LABEL)
            .map_err(|e| body.error("displayName", e))?;
        p.display_name = name;
    }
    if let Some(scope) = body.nullable_string("scope")? {
        let scopes: Vec<String> = scope
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        for s in &scopes {
            rules::check_scope_token(s).map_err(|e| body.error("scope", e))?;
        }
        p.scopes = scopes;
    }
    apply_kind_settings(body, &mut p.kind, insecure, creating)?;
    if p.kind.is_oidc() && !p.scopes.is_empty() && !p.scopes.iter().any(|s| s == "openid") {
        return Err(body.error(
            "scope",
            "must include openid: an OpenID Connect provider returns no ID token without it",
        ));
    }
    if let Some(auth) = body.nullable_string("usherClientAuthentication")? {
        p.client_auth = match auth.as_deref() {
            None => None,
            Some("client_secret_basic") => Some(ClientAuthMethod::ClientSecretBasic),
            Some("client_secret_post") => Some(ClientAuthMethod::ClientSecretPost),
            Some(_) => {
                return Err(body.error(
                    "usherClientAuthentication",
                    "must be client_secret_basic or client_secret_post",
                ))
            }
        };
    }
    if let Some(e) = body.object("usherEndpoints")? {
        p.endpoints = read_endpoints(e, insecure)?;
    }
    if let Some(mut m) = body.object("usherClaimsMapping")? {
        p.claim_mapping = read_claims_mapping(&mut m, snapshot, &p.kind, creating)?;
    }
    Ok(())
}

/// The settings only one type has: the OpenID Connect provider's `metadataUrl`,
/// Microsoft's `usherTenant`, the generic OAuth 2.0 provider's endpoints and claims.
/// Creating, a type's required settings must be given.
fn apply_kind_settings(
    body: &mut Body,
    kind: &mut ProviderKind,
    insecure: bool,
    creating: bool,
) -> ApiResult<()> {
    match kind {
        ProviderKind::Oidc { issuer } => {
            if let Some(url) = body.string("metadataUrl")? {
                let base = url.strip_suffix(DISCOVERY).ok_or_else(|| {
                    body.error("metadataUrl", format!("must end with {DISCOVERY}"))
                })?;
                rules::check_oidc_issuer(base, insecure)
                    .map_err(|e| body.error("metadataUrl", e))?;
                base.clone_into(issuer);
            } else if creating {
                return Err(body.error("metadataUrl", "is required for OpenIDConnect"));
            }
        }
        ProviderKind::Microsoft { tenant } => {
            if let Some(t) = body.string("usherTenant")? {
                rules::check_microsoft_tenant(&t).map_err(|e| body.error("usherTenant", e))?;
                *tenant = t;
            }
        }
        ProviderKind::OAuth2 {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            subject_claim,
            identity_issuer,
        } => {
            for (key, slot) in [
                ("usherAuthorizationEndpoint", authorization_endpoint),
                ("usherTokenEndpoint", token_endpoint),
                ("usherUserinfoEndpoint", userinfo_endpoint),
            ] {
                match body.string(key)? {
                    Some(url) => {
                        rules::check_federation_url(&url, insecure)
                            .map_err(|e| body.error(key, e))?;
                        *slot = url;
                    }
                    None if creating => return Err(body.error(key, "is required for OAuth2")),
                    None => {}
                }
            }
            apply_oauth2_identity(body, subject_claim, identity_issuer, creating)?;
        }
        _ => {}
    }
    Ok(())
}

/// How a generic OAuth 2.0 provider's users are told apart: the userinfo claim that
/// is the subject (`usherSubjectClaim`) and the issuer identities are keyed by
/// (`usherIdentityIssuer`).
fn apply_oauth2_identity(
    body: &mut Body,
    subject_claim: &mut String,
    identity_issuer: &mut String,
    creating: bool,
) -> ApiResult<()> {
    match body.string("usherSubjectClaim")? {
        Some(c) => {
            rules::check_claim_path(&c).map_err(|e| body.error("usherSubjectClaim", e))?;
            *subject_claim = c;
        }
        None if creating => return Err(body.error("usherSubjectClaim", "is required for OAuth2")),
        None => {}
    }
    match body.string("usherIdentityIssuer")? {
        Some(i) => {
            rules::check_identity_issuer(&i).map_err(|e| body.error("usherIdentityIssuer", e))?;
            *identity_issuer = i;
        }
        None if creating => return Err(body.error("usherIdentityIssuer", "is required for OAuth2")),
        None => {}
    }
    Ok(())
}

/// `usherEndpoints`: the URLs that replace a preset's or discovery's, as a whole (an
/// endpoint left out is no longer replaced).
fn read_endpoints(mut e: Body, insecure: bool) -> ApiResult<EndpointOverrides> {
    let mut endpoints = EndpointOverrides::default();
    for (key, slot) in [
        ("issuer", &mut endpoints.issuer),
        (
            "authorizationEndpoint",
            &mut endpoints.authorization_endpoint,
        ),
        ("tokenEndpoint", &mut endpoints.token_endpoint),
        ("userinfoEndpoint", &mut endpoints.userinfo_endpoint),
        ("emailsEndpoint", &mut endpoints.emails_endpoint),
        ("jwksUri", &mut endpoints.jwks_uri),
    ] {
        if let Some(url) = e.string(key)? {
            let checked = if key == "issuer" {
                rules::check_oidc_issuer(&url, insecure)
            } else {
                rules::check_federation_url(&url, insecure)
            };
            checked.map_err(|m| e.error(key, m))?;
            *slot = Some(url);
        }
    }
    e.finish()?;
    Ok(endpoints)
}

/// `usherClaimsMapping`: which upstream claim fills which attribute.
fn read_claims_mapping(
    m: &mut Body,
    snapshot: &TenantSnapshot,
    kind: &ProviderKind,
    creating: bool,
) -> ApiResult<ClaimMapping> {
    // Creating: over the type's defaults. Updating: the whole mapping, as read.
    let mut mapping = if creating {
        ClaimMapping::defaults_for(kind).0
    } else {
        BTreeMap::new()
    };
    for key in m.remaining_keys() {
        let claim = m.required_string(&key)?;
        rules::check_claim_path(&claim).map_err(|e| m.error(&key, e))?;
        let attribute = mapped_attribute(snapshot, kind, &key).map_err(|e| m.error(&key, e))?;
        mapping.retain(|k, _| !k.eq_ignore_ascii_case(&attribute));
        mapping.insert(attribute, claim);
    }
    Ok(ClaimMapping(mapping))
}

/// What a claim mapping's key names: `email`, `emailVerified`, a built-in attribute
/// or a string custom attribute (its full id).
fn mapped_attribute(
    snapshot: &TenantSnapshot,
    kind: &ProviderKind,
    key: &str,
) -> Result<String, String> {
    if key.eq_ignore_ascii_case(ClaimMapping::EMAIL_VERIFIED) {
        return match kind {
            ProviderKind::Facebook | ProviderKind::GitHub => Err(
                "this provider says itself whether an address is verified: there is no claim to name".into(),
            ),
            _ => Ok(ClaimMapping::EMAIL_VERIFIED.to_owned()),
        };
    }
    let def = snapshot
        .tenant
        .attribute(key)
        .ok_or_else(|| format!("there is no attribute {key}"))?;
    if matches!(kind, ProviderKind::GitHub) && def.id == BuiltInAttribute::Email.id() {
        return Err("GitHub's address comes from /user/emails, not from a claim".into());
    }
    if def.data_type != DataType::String {
        return Err(format!(
            "{} is not a string attribute; claims fill string attributes only",
            def.id
        ));
    }
    Ok(def.id)
}
