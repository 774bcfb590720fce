//! User flows — Graph's `b2xIdentityUserFlow` at `/v1.0/identity/b2xUserFlows`: the
//! flow itself, the identity providers it offers, and the API connectors of its steps
//! (`apiConnectorConfiguration`). The attribute page is in [`super::assignments`].
//!
//! Usher's extensions: `usherRequiresApproval` (sign-ups wait in the built-in
//! approval queue) and `usherClaims` (attributes returned as claims without being on
//! the page, `email` by default) on the flow, settable with `PATCH`; `usherConnectors`
//! on the connector configuration, the ordered list of connectors of each step (Graph
//! allows one per step; Usher runs several in order).

use axum::http::HeaderMap;
use usher_tenant::document;

use super::etag::{self, IfMatch};
use axum::{
    extract::{Path, State},
    http::Uri,
    response::Response,
};
use serde_json::{json, Map, Value};
use usher_domain::{
    AttributeAssignment, BuiltInAttribute, ConnectorSlots, ConnectorStep, Tenant, UserFlow,
    UserInputType,
};
use usher_tenant::TenantSnapshot;

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::{read_reference, Body, JsonBody};
use super::{
    connectors, created, identity_providers, no_content, odata, ok, path_segment, rules, Route,
};
use crate::state::AppState;

const RESOURCE: &str = "b2xIdentityUserFlow";
const TAG: &str = "User flows";
const FLOW_TYPE: &str = "signUpOrSignIn";

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::UserFlows);
    let write = Access::Write(Area::UserFlows);
    let mut routes = vec![
        Route::get("/v1.0/identity/b2xUserFlows", list)
            .access(read)
            .doc(TAG, "List user flows")
            .lists(RESOURCE, &["$select"]),
        Route::post("/v1.0/identity/b2xUserFlows", create)
            .access(write)
            .doc(TAG, "Create a user flow (the id gets the prefix B2X_1_)")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get("/v1.0/identity/b2xUserFlows/{id}", get)
            .access(read)
            .doc(TAG, "Get a user flow")
            .answers(200, RESOURCE)
            .query(&["$select"]),
        Route::patch("/v1.0/identity/b2xUserFlows/{id}", update)
            .access(write)
            .doc(
                TAG,
                "Update a user flow's Usher extensions (usherRequiresApproval, usherClaims)",
            )
            .body(RESOURCE),
        Route::delete("/v1.0/identity/b2xUserFlows/{id}", delete)
            .access(write)
            .doc(TAG, "Delete a user flow (409 while an application uses it)"),
        Route::get(
            "/v1.0/identity/b2xUserFlows/{id}/identityProviders",
            list_providers,
        )
        .access(read)
        .doc(TAG, "List the identity providers a user flow offers")
        .lists("identityProvider", &[]),
        Route::post(
            "/v1.0/identity/b2xUserFlows/{id}/identityProviders/$ref",
            add_provider,
        )
        .access(write)
        .doc(TAG, "Offer an identity provider in a user flow")
        .body("reference")
        .no_content(),
        Route::delete(
            "/v1.0/identity/b2xUserFlows/{id}/identityProviders/{idpId}/$ref",
            remove_provider,
        )
        .access(write)
        .doc(TAG, "Stop offering an identity provider in a user flow"),
    ];
    routes.extend(configuration_routes(read, write));
    routes
}

/// The routes of a flow's API connector configuration: the whole configuration, then
/// one route per step.
fn configuration_routes(read: Access, write: Access) -> Vec<Route> {
    let mut routes = vec![
        Route::get(
            "/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration",
            get_configuration,
        )
        .access(read)
        .doc(
            TAG,
            "The API connectors of a user flow's steps ($expand gives the connector objects)",
        )
        .answers(200, "userFlowApiConnectorConfiguration")
        .query(&["$expand"]),
        Route::patch(
            "/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration",
            update_configuration,
        )
        .access(write)
        .doc(
            TAG,
            "Set the ordered connector lists of steps (usherConnectors)",
        )
        .body("userFlowApiConnectorConfiguration")
        .no_content(),
    ];
    // One route per step, so the document names each; `{}` clears the step.
    routes.push(
        Route::put(
            "/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration/postFederationSignup/$ref",
            |s: State<AppState>, p: Path<String>, b: JsonBody| {
                set_step(ConnectorStep::PostFederationSignup, s, p, b)
            },
        )
        .access(write)
        .doc(
            TAG,
            "Set (or with {} clear) the postFederationSignup connector",
        )
        .body("reference")
        .no_content(),
    );
    routes.push(
        Route::put(
            "/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration/postAttributeCollection/$ref",
            |s: State<AppState>, p: Path<String>, b: JsonBody| {
                set_step(ConnectorStep::PostAttributeCollection, s, p, b)
            },
        )
        .access(write)
        .doc(TAG, "Set (or with {} clear) the postAttributeCollection connector")
        .body("reference")
        .no_content(),
    );
    routes.push(
        Route::put(
            "/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration/preTokenIssuance/$ref",
            |s: State<AppState>, p: Path<String>, b: JsonBody| {
                set_step(ConnectorStep::PreTokenIssuance, s, p, b)
            },
        )
        .access(write)
        .doc(
            TAG,
            "Set (or with {} clear) the preTokenIssuance connector (Usher)",
        )
        .body("reference")
        .no_content(),
    );
    routes
}

/// The user flow with this id (ids ignore case; `Partner` means `B2X_1_Partner`).
pub fn find(tenant: &Tenant, id: &str) -> ApiResult<UserFlow> {
    let full = rules::normalize_user_flow_id(id).unwrap_or_else(|_| id.to_owned());
    tenant
        .user_flow(&full)
        .cloned()
        .ok_or_else(|| ApiError::no_such("b2xIdentityUserFlow", id))
}

const PROPERTIES: [&str; 5] = [
    "id",
    "userFlowType",
    "userFlowTypeVersion",
    "usherRequiresApproval",
    "usherClaims",
];

fn to_json(flow: &UserFlow) -> Value {
    json!({
        "id": flow.id,
        "userFlowType": FLOW_TYPE,
        "userFlowTypeVersion": 1,
        "usherRequiresApproval": flow.requires_approval,
        "usherClaims": flow.extra_claims,
    })
}

async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$select"])?;
    options.check_select(RESOURCE, &|p| {
        PROPERTIES.iter().any(|k| k.eq_ignore_ascii_case(p))
    })?;
    let snapshot = state.tenants.current().await?;
    let values = snapshot
        .tenant
        .user_flows
        .iter()
        .map(|f| options.apply_select(to_json(f)))
        .collect();
    Ok(ok(odata::collection(
        &state,
        "identity/b2xUserFlows",
        values,
        None,
    )))
}

async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$select"])?;
    options.check_select(RESOURCE, &|p| {
        PROPERTIES.iter().any(|k| k.eq_ignore_ascii_case(p))
    })?;
    let snapshot = state.tenants.current().await?;
    let flow = find(&snapshot.tenant, &id)?;
    let mut value = to_json(&flow);
    value["@odata.context"] = json!(odata::context_url(&state, "identity/b2xUserFlows/$entity"));
    etag::tenant_object(
        &state,
        &snapshot,
        document::USER_FLOW,
        &flow.id,
        options.apply_select(value),
    )
}

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let id = body.required_string("id")?;
    let id = rules::normalize_user_flow_id(&id).map_err(|e| body.error("id", e))?;
    let flow_type = body.required_string("userFlowType")?;
    if !flow_type.eq_ignore_ascii_case(FLOW_TYPE) {
        return Err(body.error("userFlowType", format!("must be {FLOW_TYPE}")));
    }
    match body.take("userFlowTypeVersion") {
        None => {}
        Some(v) if v.as_f64() == Some(1.0) => {}
        Some(_) => return Err(body.error("userFlowTypeVersion", "must be 1")),
    }
    let snapshot = state.tenants.current().await?;
    if let Some(existing) = snapshot.tenant.user_flow(&id) {
        return Err(ApiError::conflict(format!(
            "A user flow with the id {} exists already (ids ignore case).",
            existing.id
        )));
    }
    let identity_providers = match body.objects("identityProviders")? {
        None => vec![usher_domain::user_flow::EMAIL_PASSWORD_PROVIDER.to_owned()],
        Some(list) => {
            let mut ids: Vec<String> = Vec::new();
            for mut p in list {
                let given = p.required_string("id")?;
                // What Graph's sample bodies carry besides the id: the provider itself is
                // configured under /identity/identityProviders.
                p.ignore(&[
                    "type",
                    "name",
                    "displayName",
                    "identityProviderType",
                    "clientId",
                    "clientSecret",
                ]);
                p.finish()?;
                let id = identity_providers::resolve(&snapshot, &given).ok_or_else(|| {
                    body.error(
                        "identityProviders",
                        format!("no identity provider {given} is configured"),
                    )
                })?;
                if ids.contains(&id) {
                    return Err(body.error("identityProviders", format!("{id} is listed twice")));
                }
                ids.push(id);
            }
            if ids.is_empty() {
                return Err(body.error(
                    "identityProviders",
                    "must list at least one identity provider",
                ));
            }
            ids
        }
    };
    let mut flow = UserFlow {
        id,
        identity_providers,
        // Graph's new flows collect the display name; the email is verified before the
        // page and returned as a claim.
        attributes: vec![AttributeAssignment {
            attribute_id: BuiltInAttribute::DisplayName.id().to_owned(),
            label: None,
            is_optional: false,
            input_type: UserInputType::TextBox,
            options: Vec::new(),
            is_claim: true,
        }],
        extra_claims: vec![BuiltInAttribute::Email.id().to_owned()],
        connectors: ConnectorSlots::default(),
        requires_approval: false,
    };
    if let Some(mut configuration) = body.object("apiConnectorConfiguration")? {
        for step in STEPS {
            if let Some(reference) = configuration.object(step.slot_name())? {
                let connector = connector_reference(&snapshot, Some(reference))?;
                *slot(&mut flow.connectors, step) = connector.into_iter().collect();
            }
        }
        configuration.finish()?;
    }
    extensions(&snapshot, &mut body, &mut flow)?;
    body.finish()?;
    state.tenants.put_user_flow(&flow).await?;
    let location = format!("/v1.0/identity/b2xUserFlows/{}", path_segment(&flow.id));
    Ok(created(&state, &location, to_json(&flow)))
}

/// `usherRequiresApproval` and `usherClaims`.
fn extensions(snapshot: &TenantSnapshot, body: &mut Body, flow: &mut UserFlow) -> ApiResult<()> {
    if let Some(r) = body.bool("usherRequiresApproval")? {
        flow.requires_approval = r;
    }
    if let Some(claims) = body.strings("usherClaims")? {
        let mut ids: Vec<String> = Vec::new();
        for c in claims {
            let def = snapshot
                .tenant
                .attribute(&c)
                .ok_or_else(|| body.error("usherClaims", format!("there is no attribute {c}")))?;
            if flow.assignment(&def.id).is_some() {
                return Err(body.error(
                    "usherClaims",
                    format!("{} is on the page: whether it is a claim is set on its assignment (usherIsClaim)", def.id),
                ));
            }
            if ids.contains(&def.id) {
                return Err(body.error("usherClaims", format!("{} is listed twice", def.id)));
            }
            ids.push(def.id);
        }
        flow.extra_claims = ids;
    }
    Ok(())
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
    let mut flow = find(&snapshot.tenant, &id)?;
    body.read_only("id", &json!(flow.id))?;
    body.read_only("userFlowType", &json!(FLOW_TYPE))?;
    body.read_only("userFlowTypeVersion", &json!(1))?;
    extensions(&snapshot, &mut body, &mut flow)?;
    body.finish()?;
    state
        .tenants
        .put_user_flow_if(&flow, if_match.tags())
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
    let flow = find(&snapshot.tenant, &id)?;
    if state
        .tenants
        .delete_user_flow_if(&flow.id, if_match.tags())
        .await?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("b2xIdentityUserFlow", &id))
    }
}

async fn list_providers(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let flow = find(&snapshot.tenant, &id)?;
    let values = flow
        .identity_providers
        .iter()
        .map(|p| identity_providers::to_json_by_id(&snapshot, p))
        .collect();
    Ok(ok(odata::collection(
        &state,
        &format!("identity/b2xUserFlows('{}')/identityProviders", flow.id),
        values,
        None,
    )))
}

async fn add_provider(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let body = body.object("reference")?;
    let snapshot = state.tenants.current().await?;
    let mut flow = find(&snapshot.tenant, &id)?;
    let given = read_reference(Some(body), "identityProviders")?
        .ok_or_else(|| ApiError::invalid_property("@odata.id", "reference", "is required"))?;
    let provider = identity_providers::resolve(&snapshot, &given).ok_or_else(|| {
        ApiError::invalid_property(
            "@odata.id",
            "reference",
            format!("no identity provider {given} is configured"),
        )
    })?;
    if flow.identity_providers.contains(&provider) {
        return Err(ApiError::conflict(format!(
            "The user flow {} already offers {provider}.",
            flow.id
        )));
    }
    flow.identity_providers.push(provider);
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

async fn remove_provider(
    State(state): State<AppState>,
    Path((id, provider)): Path<(String, String)>,
) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let mut flow = find(&snapshot.tenant, &id)?;
    let before = flow.identity_providers.len();
    flow.identity_providers
        .retain(|p| !p.eq_ignore_ascii_case(&provider));
    if flow.identity_providers.len() == before {
        return Err(ApiError::not_found(format!(
            "The user flow {} does not offer {provider}.",
            flow.id
        )));
    }
    if flow.identity_providers.is_empty() {
        return Err(ApiError::bad_request(
            "A user flow needs at least one identity provider: add another before removing this one.",
        ));
    }
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

/// The steps Graph's `userFlowApiConnectorConfiguration` has; `usherConnectors`
/// lists every step ([`ConnectorStep::ALL`]).
const STEPS: [ConnectorStep; 3] = [
    ConnectorStep::PostFederationSignup,
    ConnectorStep::PostAttributeCollection,
    ConnectorStep::PreTokenIssuance,
];

fn slot(slots: &mut ConnectorSlots, step: ConnectorStep) -> &mut Vec<String> {
    slots.at_mut(step)
}

/// The connector an `@odata.id` names, as it is spelt; `None` for `{}`.
fn connector_reference(snapshot: &TenantSnapshot, body: Option<Body>) -> ApiResult<Option<String>> {
    let Some(given) = read_reference(body, "apiConnectors")? else {
        return Ok(None);
    };
    snapshot
        .connector(&given)
        .filter(|c| !c.contract.is_extension())
        .map(|c| Some(c.id.clone()))
        .ok_or_else(|| {
            ApiError::invalid_property(
                "@odata.id",
                "reference",
                format!("there is no API connector {given}"),
            )
        })
}

async fn get_configuration(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$expand"])?;
    for e in options.expand.iter().flatten() {
        if !STEPS.iter().any(|s| s.slot_name().eq_ignore_ascii_case(e)) {
            return Err(ApiError::bad_request(format!(
                "Could not find a property named '{e}' on type 'userFlowApiConnectorConfiguration'."
            )));
        }
    }
    let snapshot = state.tenants.current().await?;
    let mut flow = find(&snapshot.tenant, &id)?;
    let mut value = Map::new();
    value.insert(
        "@odata.context".into(),
        json!(odata::context_url(
            &state,
            &format!(
                "identity/b2xUserFlows('{}')/apiConnectorConfiguration",
                flow.id
            )
        )),
    );
    let mut lists = Map::new();
    for step in ConnectorStep::ALL {
        let ids = slot(&mut flow.connectors, step).clone();
        if STEPS.contains(&step) && options.expands(step.slot_name()) {
            // Graph's one connector per step: the first of Usher's list.
            let first = match ids.first().and_then(|c| snapshot.connector(c)) {
                Some(c) => connectors::to_json(&state, c).await,
                None => Value::Null,
            };
            value.insert(step.slot_name().into(), first);
        }
        lists.insert(step.slot_name().into(), json!(ids));
    }
    value.insert("usherConnectors".into(), Value::Object(lists));
    Ok(ok(Value::Object(value)))
}

async fn update_configuration(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let mut body = body.object("userFlowApiConnectorConfiguration")?;
    let snapshot = state.tenants.current().await?;
    let mut flow = find(&snapshot.tenant, &id)?;
    if let Some(mut lists) = body.object("usherConnectors")? {
        for step in ConnectorStep::ALL {
            let Some(ids) = lists.strings(step.slot_name())? else {
                continue;
            };
            let mut resolved: Vec<String> = Vec::new();
            for given in ids {
                let c = snapshot.connector(&given).ok_or_else(|| {
                    lists.error(
                        step.slot_name(),
                        format!("there is no API connector {given}"),
                    )
                })?;
                if resolved.contains(&c.id) {
                    return Err(lists.error(step.slot_name(), format!("{} is listed twice", c.id)));
                }
                resolved.push(c.id.clone());
            }
            *slot(&mut flow.connectors, step) = resolved;
        }
        lists.finish()?;
    }
    for step in STEPS {
        if let Some(reference) = body.nullable_object(step.slot_name())? {
            let connector = connector_reference(&snapshot, reference)?;
            replace_api_connectors(&snapshot, slot(&mut flow.connectors, step), connector);
        }
    }
    body.finish()?;
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

async fn set_step(
    step: ConnectorStep,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let body = body.optional_object("reference")?;
    let snapshot = state.tenants.current().await?;
    let mut flow = find(&snapshot.tenant, &id)?;
    // Graph has one connector per step: setting one replaces Usher's list of 1.0.0
    // connectors with it.
    let connector = connector_reference(&snapshot, body)?;
    replace_api_connectors(&snapshot, slot(&mut flow.connectors, step), connector);
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

/// A slot's 1.0.0 connectors replaced by `connector` (or none); the extensions there
/// (attached as events flow handlers) stay, after it.
fn replace_api_connectors(
    snapshot: &TenantSnapshot,
    slot: &mut Vec<String>,
    connector: Option<String>,
) {
    slot.retain(|c| {
        snapshot
            .connector(c)
            .is_some_and(|c| c.contract.is_extension())
    });
    if let Some(c) = connector {
        slot.insert(0, c);
    }
}
