//! Custom authentication extensions — Graph's `customAuthenticationExtension` at
//! `/v1.0/identity/customAuthenticationExtensions`, mapped to a
//! [`ConnectorDefinition`] of the extension contract. Its `@odata.type` names the
//! event it is for (`#microsoft.graph.onTokenIssuanceStartCustomExtension`, …), kept
//! as the connector's event, so it can be attached only there.
//!
//! Usher's extensions, all prefixed `usher`: `usherFailurePolicy` (`continue` on an
//! OTP extension falls back to Usher's mailer), `usherBudgetMs` and
//! `authenticationConfiguration.usherCallerId` (the token's `azp`/`appid`). The
//! 1.0.0 connectors stay at `/v1.0/identity/apiConnectors`; neither list shows the
//! other's.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use serde_json::{json, Value};
use usher_domain::{
    connector::{parse_resource_id, url_authority},
    connector_limits as limits, ConnectorAuthentication, ConnectorContract, ConnectorDefinition,
    ConnectorField, ConnectorStep, FailurePolicy, ENTRA_EXTENSION_CALLER_ID,
};
use usher_tenant::{document, TenantSnapshot};

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::etag::{self, IfMatch};
use super::json::{Body, JsonBody};
use super::{created, no_content, odata, ok, path_segment, rules, Route};
use crate::state::AppState;

const RESOURCE: &str = "customAuthenticationExtension";
const TAG: &str = "Custom authentication extensions";
const COLLECTION: &str = "identity/customAuthenticationExtensions";
const HTTP_ENDPOINT: &str = "#microsoft.graph.httpRequestEndpoint";
const TOKEN_AUTHENTICATION: &str = "#microsoft.graph.azureAdTokenAuthentication";

/// The Graph type of the extension for each event.
const TYPES: [(&str, ConnectorStep); 4] = [
    (
        "#microsoft.graph.onAttributeCollectionStartCustomExtension",
        ConnectorStep::AttributeCollectionStart,
    ),
    (
        "#microsoft.graph.onAttributeCollectionSubmitCustomExtension",
        ConnectorStep::PostAttributeCollection,
    ),
    (
        "#microsoft.graph.onTokenIssuanceStartCustomExtension",
        ConnectorStep::PreTokenIssuance,
    ),
    (
        "#microsoft.graph.onOtpSendCustomExtension",
        ConnectorStep::EmailOtpSend,
    ),
];

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::Extensions);
    let write = Access::Write(Area::Extensions);
    let one = "/v1.0/identity/customAuthenticationExtensions/{id}";
    vec![
        Route::get("/v1.0/identity/customAuthenticationExtensions", list)
            .access(read)
            .doc(TAG, "List custom authentication extensions")
            .lists(RESOURCE, &[]),
        Route::post("/v1.0/identity/customAuthenticationExtensions", create)
            .access(write)
            .doc(TAG, "Create a custom authentication extension")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get(one, get)
            .access(read)
            .doc(TAG, "Get a custom authentication extension")
            .answers(200, RESOURCE),
        Route::patch(one, update)
            .access(write)
            .doc(TAG, "Update a custom authentication extension")
            .body(RESOURCE)
            .no_content(),
        Route::delete(one, delete)
            .access(write)
            .doc(
                TAG,
                "Delete a custom authentication extension (409 while a user flow uses it)",
            ),
        Route::post(
            "/v1.0/identity/customAuthenticationExtensions/{id}/validateAuthenticationConfiguration",
            validate,
        )
        .access(read)
        .doc(
            TAG,
            "Check the endpoint and the token authentication without calling the API",
        )
        .answers(200, "authenticationConfigurationValidation"),
    ]
}

fn type_of(c: &ConnectorDefinition) -> Option<&'static str> {
    let ConnectorContract::CustomAuthenticationExtension { event, .. } = &c.contract else {
        return None;
    };
    let event = event.unwrap_or(ConnectorStep::PostAttributeCollection);
    TYPES.iter().find(|(_, s)| *s == event).map(|(t, _)| *t)
}

/// The extension with this id (ids ignore case); a 1.0.0 connector is not one.
fn find(snapshot: &TenantSnapshot, id: &str) -> ApiResult<ConnectorDefinition> {
    snapshot
        .connector(id)
        .filter(|c| c.contract.is_extension())
        .cloned()
        .ok_or_else(|| ApiError::no_such("customAuthenticationExtension", id))
}

/// The extension as Graph shows it.
pub fn to_json(c: &ConnectorDefinition) -> Value {
    let ConnectorContract::CustomAuthenticationExtension {
        claims_for_token, ..
    } = &c.contract
    else {
        return Value::Null;
    };
    let authentication = match &c.authentication {
        ConnectorAuthentication::IssuedToken {
            resource_id,
            caller_id,
        } => json!({
            "@odata.type": TOKEN_AUTHENTICATION,
            "resourceId": resource_id,
            "usherCallerId": caller_id,
        }),
        // Set in the configuration file; Graph has no name for it.
        _ => Value::Null,
    };
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let mut value = json!({
        "@odata.type": type_of(c),
        "id": c.id,
        "displayName": c.display_name,
        "description": if c.description.is_empty() { Value::Null } else { json!(c.description) },
        "endpointConfiguration": {"@odata.type": HTTP_ENDPOINT, "targetUrl": c.target_url},
        "authenticationConfiguration": authentication,
        "clientConfiguration": {
            "timeoutInMilliseconds": ms(c.timeout),
            "maximumRetries": c.retries,
        },
        "usherBudgetMs": ms(c.budget),
        "usherFailurePolicy": match c.failure_policy {
            FailurePolicy::Block => "block",
            FailurePolicy::Continue => "continue",
        },
    });
    if type_of(c) == Some(TYPES[2].0) || !claims_for_token.is_empty() {
        value["claimsForTokenConfiguration"] = claims_for_token
            .iter()
            .map(|claim| json!({"claimIdInApiResponse": claim}))
            .collect();
    }
    value
}

async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let values = snapshot
        .connectors
        .iter()
        .filter(|c| c.contract.is_extension())
        .map(to_json)
        .collect();
    Ok(ok(odata::collection(&state, COLLECTION, values, None)))
}

async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let c = find(&snapshot, &id)?;
    let mut value = to_json(&c);
    value["@odata.context"] = json!(odata::context_url(&state, &format!("{COLLECTION}/$entity")));
    etag::tenant_object(&state, &snapshot, document::CONNECTOR, &c.id, value)
}

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let event = match body.take("@odata.type") {
        Some(Value::String(t)) => TYPES
            .iter()
            .find(|(name, _)| odata::same_type(&t, name))
            .map(|(_, step)| *step)
            .ok_or_else(|| {
                body.error(
                    "@odata.type",
                    "must name the event: #microsoft.graph.onAttributeCollectionStartCustomExtension, …SubmitCustomExtension, #microsoft.graph.onTokenIssuanceStartCustomExtension or #microsoft.graph.onOtpSendCustomExtension",
                )
            })?,
        _ => return Err(body.error("@odata.type", "is required: it names the event")),
    };
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
            "A connector or extension with the id {} exists already (ids ignore case).",
            existing.id
        )));
    }
    let mut c = ConnectorDefinition::extension(id, "", "");
    c.contract = ConnectorContract::CustomAuthenticationExtension {
        claims_for_token: Vec::new(),
        event: Some(event),
    };
    c.authentication = ConnectorAuthentication::None;
    c.display_name = body.required_string("displayName")?;
    apply(&mut body, &mut c)?;
    body.finish()?;
    if c.target_url.is_empty() {
        return Err(ApiError::invalid_property(
            "endpointConfiguration",
            RESOURCE,
            "is required: the API's targetUrl",
        ));
    }
    check(&state, &c)?;
    state.tenants.put_connector(&c).await?;
    let location = format!(
        "/v1.0/identity/customAuthenticationExtensions/{}",
        path_segment(&c.id)
    );
    Ok(created(&state, &location, to_json(&c)))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let mut body = body.object(RESOURCE)?;
    let snapshot = state.tenants.current().await?;
    let mut c = find(&snapshot, &id)?;
    body.read_only("id", &json!(c.id))?;
    if let Some(t) = body.take("@odata.type") {
        if !t
            .as_str()
            .zip(type_of(&c))
            .is_some_and(|(t, kind)| odata::same_type(t, kind))
        {
            return Err(body.error("@odata.type", "cannot change: create another extension"));
        }
    }
    match body.nullable_string("displayName")? {
        Some(Some(name)) => c.display_name = name,
        Some(None) => return Err(body.error("displayName", "cannot be removed")),
        None => {}
    }
    apply(&mut body, &mut c)?;
    body.finish()?;
    check(&state, &c)?;
    state.tenants.put_connector_if(&c, if_match.tags()).await?;
    Ok(no_content())
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let snapshot = state.tenants.current().await?;
    let c = find(&snapshot, &id)?;
    if state
        .tenants
        .delete_connector_if(&c.id, if_match.tags())
        .await?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("customAuthenticationExtension", &id))
    }
}

/// The properties shared by POST and PATCH.
fn apply(body: &mut Body, c: &mut ConnectorDefinition) -> ApiResult<()> {
    if let Some(d) = body.nullable_string("description")? {
        c.description = d.unwrap_or_default();
    }
    if let Some(mut e) = body.object("endpointConfiguration")? {
        e.take("@odata.type");
        if let Some(url) = e.string("targetUrl")? {
            c.target_url = url;
        }
        e.finish()?;
    }
    if let Some(auth) = body.nullable_object("authenticationConfiguration")? {
        c.authentication = match auth {
            None => ConnectorAuthentication::None,
            Some(mut a) => {
                match a.take("@odata.type") {
                    Some(Value::String(t)) if odata::same_type(&t, TOKEN_AUTHENTICATION) => {}
                    _ => {
                        return Err(a.error(
                            "@odata.type",
                            "must be #microsoft.graph.azureAdTokenAuthentication",
                        ))
                    }
                }
                let resource_id = a.required_string("resourceId")?;
                let caller_id = a
                    .string("usherCallerId")?
                    .unwrap_or_else(|| ENTRA_EXTENSION_CALLER_ID.to_owned());
                a.finish()?;
                ConnectorAuthentication::IssuedToken {
                    resource_id,
                    caller_id,
                }
            }
        };
    }
    if let Some(mut client) = body.object("clientConfiguration")? {
        client.take("@odata.type");
        if let Some(ms) = client.integer(
            "timeoutInMilliseconds",
            limits::lo(&limits::extension::TIMEOUT_MS),
            limits::hi(&limits::extension::TIMEOUT_MS),
        )? {
            c.timeout = Duration::from_millis(ms.unsigned_abs());
            // The default budget covers both attempts of the new timeout.
            c.budget = c.budget.max(c.timeout * (c.retries + 1));
        }
        if let Some(n) = client.integer(
            "maximumRetries",
            limits::lo(&limits::extension::RETRIES),
            limits::hi(&limits::extension::RETRIES),
        )? {
            c.retries = u32::try_from(n).unwrap_or(0);
            c.budget = c.budget.max(c.timeout * (c.retries + 1));
        }
        client.finish()?;
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
    if let Some(claims) = body.objects("claimsForTokenConfiguration")? {
        let mut names: Vec<String> = Vec::new();
        for mut claim in claims {
            claim.take("@odata.type");
            let name = claim.required_string("claimIdInApiResponse")?;
            if names.contains(&name) {
                return Err(claim.error("claimIdInApiResponse", format!("{name} is listed twice")));
            }
            names.push(name);
            claim.finish()?;
        }
        if let ConnectorContract::CustomAuthenticationExtension {
            claims_for_token, ..
        } = &mut c.contract
        {
            *claims_for_token = names;
        }
    }
    // Graph reads these back; they are not Usher's to set.
    body.ignore(&["behaviorOnError"]);
    Ok(())
}

fn check(state: &AppState, c: &ConnectorDefinition) -> ApiResult<()> {
    rules::check_connector_url(&c.target_url, state.runner_settings.targets)
        .map_err(|e| ApiError::invalid_property("endpointConfiguration.targetUrl", RESOURCE, e))?;
    rules::check_display_text(&c.display_name, rules::MAX_LABEL)
        .map_err(|e| ApiError::invalid_property("displayName", RESOURCE, e))?;
    c.check().map_err(|e| {
        let property = match e.field {
            ConnectorField::Timeout => "clientConfiguration.timeoutInMilliseconds",
            ConnectorField::Retries => "clientConfiguration.maximumRetries",
            ConnectorField::Budget => "usherBudgetMs",
            ConnectorField::ResourceId => "authenticationConfiguration.resourceId",
            ConnectorField::CallerId => "authenticationConfiguration.usherCallerId",
            ConnectorField::ClaimsForToken => "claimsForTokenConfiguration",
            ConnectorField::Description => "description",
            ConnectorField::FailurePolicy => "usherFailurePolicy",
            ConnectorField::BreakerFailureThreshold
            | ConnectorField::BreakerOpenSeconds
            | ConnectorField::ClientCertificates => "authenticationConfiguration",
        };
        ApiError::invalid_property(property, RESOURCE, e.message)
    })
}

/// `validateAuthenticationConfiguration`: what would keep a call from being
/// authenticated, found without calling the API.
async fn validate(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let c = find(&snapshot, &id)?;
    let mut errors = Vec::new();
    let mut error = |code: &str, message: String| {
        errors.push(json!({"code": code, "message": message}));
    };
    if let Err(e) = rules::check_connector_url(&c.target_url, state.runner_settings.targets) {
        error("InvalidTargetUrl", e);
    }
    match &c.authentication {
        ConnectorAuthentication::IssuedToken { resource_id, .. } => {
            match parse_resource_id(resource_id) {
                None => error(
                    "InvalidResourceId",
                    format!("{resource_id:?} is not of the form api://<host>/<app id>"),
                ),
                Some((host, _)) => {
                    if url_authority(&c.target_url).as_deref()
                        != Some(host.to_ascii_lowercase().as_str())
                    {
                        error(
                            "ResourceIdHostMismatch",
                            format!("the resource id names {host:?}, not the target URL's host"),
                        );
                    }
                }
            }
            if let Err(e) = state.keys.keyring().await {
                error(
                    "SigningKeyUnavailable",
                    format!("no token key to sign with: {e}"),
                );
            }
        }
        _ => error(
            "NoTokenAuthentication",
            "the extension is not authenticated with a token (azureAdTokenAuthentication)".into(),
        ),
    }
    Ok(ok(json!({
        "@odata.context": odata::context_url(&state, "microsoft.graph.authenticationConfigurationValidation"),
        "errors": errors,
        "warnings": [],
    })))
}
