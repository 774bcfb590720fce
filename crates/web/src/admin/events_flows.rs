//! The user flows as External ID's sign-up event flows — Graph's
//! `externalUsersSelfServiceSignUpEventsFlow` at
//! `/v1.0/identity/authenticationEventsFlows` — so a script can attach custom
//! authentication extensions to `onAttributeCollectionStart` and
//! `onAttributeCollectionSubmit`. An events flow is a user flow (same id); its
//! handlers are the extensions in the flow's `attributeCollectionStart` and
//! `postAttributeCollection` slots. Setting a handler replaces the extension in the
//! slot and keeps any 1.0.0 connectors there, in front of it.

use axum::{
    extract::{Path, State},
    response::Response,
};
use serde_json::{json, Value};
use usher_domain::{ConnectorStep, UserFlow};
use usher_tenant::TenantSnapshot;

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::{Body, JsonBody};
use super::{no_content, odata, ok, Route};
use crate::state::AppState;

const RESOURCE: &str = "externalUsersSelfServiceSignUpEventsFlow";
const TYPE: &str = "#microsoft.graph.externalUsersSelfServiceSignUpEventsFlow";
const TAG: &str = "Authentication events flows";
const COLLECTION: &str = "identity/authenticationEventsFlows";

/// Each handler property, its handler type and the slot it is.
const HANDLERS: [(&str, &str, ConnectorStep); 2] = [
    (
        "onAttributeCollectionStart",
        "#microsoft.graph.onAttributeCollectionStartCustomExtensionHandler",
        ConnectorStep::AttributeCollectionStart,
    ),
    (
        "onAttributeCollectionSubmit",
        "#microsoft.graph.onAttributeCollectionSubmitCustomExtensionHandler",
        ConnectorStep::PostAttributeCollection,
    ),
];

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::EventListeners);
    let write = Access::Write(Area::EventListeners);
    vec![
        Route::get("/v1.0/identity/authenticationEventsFlows", list)
            .access(read)
            .doc(TAG, "List the user flows as sign-up events flows")
            .lists(RESOURCE, &[]),
        Route::get("/v1.0/identity/authenticationEventsFlows/{id}", get)
            .access(read)
            .doc(TAG, "Get a user flow as a sign-up events flow")
            .answers(200, RESOURCE),
        Route::patch("/v1.0/identity/authenticationEventsFlows/{id}", update)
            .access(write)
            .doc(
                TAG,
                "Attach (or with null detach) the extensions of onAttributeCollectionStart and onAttributeCollectionSubmit",
            )
            .body(RESOURCE)
            .no_content(),
    ]
}

fn to_json(snapshot: &TenantSnapshot, flow: &UserFlow) -> Value {
    let apps: Vec<Value> = snapshot
        .tenant
        .applications
        .iter()
        .filter(|a| a.user_flow_id.eq_ignore_ascii_case(&flow.id))
        .map(|a| json!({"appId": a.client_id}))
        .collect();
    let mut value = json!({
        "@odata.type": TYPE,
        "id": flow.id,
        "displayName": flow.id,
        "description": null,
        "conditions": {"applications": {"includeApplications": apps}},
    });
    for (property, handler, step) in HANDLERS {
        let extension = flow.connectors.at(step).iter().find(|id| {
            snapshot
                .connector(id)
                .is_some_and(|c| c.contract.is_extension())
        });
        value[property] = match extension {
            Some(id) => json!({"@odata.type": handler, "customExtension": {"id": id}}),
            None => Value::Null,
        };
    }
    value
}

/// The user flow `id` names, with or without its `B2X_1_` prefix (as `b2xUserFlows`).
fn find(snapshot: &TenantSnapshot, id: &str) -> ApiResult<UserFlow> {
    super::user_flows::find(&snapshot.tenant, id)
        .map_err(|_| ApiError::no_such("authenticationEventsFlow", id))
}

async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let values = snapshot
        .tenant
        .user_flows
        .iter()
        .map(|f| to_json(&snapshot, f))
        .collect();
    Ok(ok(odata::collection(&state, COLLECTION, values, None)))
}

async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let flow = find(&snapshot, &id)?;
    let mut value = to_json(&snapshot, &flow);
    value["@odata.context"] = json!(odata::context_url(&state, &format!("{COLLECTION}/$entity")));
    // The user flow's ETag: a PATCH with If-Match changes only what was read.
    super::etag::tenant_object(
        &state,
        &snapshot,
        usher_tenant::document::USER_FLOW,
        &flow.id,
        value,
    )
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let if_match = super::etag::IfMatch::from_headers(&headers)?;
    let mut body = body.object(RESOURCE)?;
    match body.take("@odata.type") {
        None => {}
        Some(Value::String(t)) if odata::same_type(&t, TYPE) => {}
        Some(_) => return Err(body.error("@odata.type", format!("must be {TYPE}"))),
    }
    let snapshot = state.tenants.current().await?;
    let mut flow = find(&snapshot, &id)?;
    body.read_only("id", &json!(flow.id))?;
    for (property, handler, step) in HANDLERS {
        let Some(given) = body.nullable_object(property)? else {
            continue;
        };
        let extension = match given {
            None => None,
            Some(h) => Some(handler_extension(&snapshot, h, handler, step)?),
        };
        let slot = flow.connectors.at_mut(step);
        // The 1.0.0 connectors of the slot stay; the extension is replaced.
        slot.retain(|c| {
            !snapshot
                .connector(c)
                .is_some_and(|c| c.contract.is_extension())
        });
        slot.extend(extension);
    }
    body.ignore(&["displayName", "description", "priority", "conditions"]);
    body.finish()?;
    state
        .tenants
        .put_user_flow_if(&flow, if_match.tags())
        .await?;
    Ok(no_content())
}

/// The extension a handler names, checked to be one for `step`.
fn handler_extension(
    snapshot: &TenantSnapshot,
    mut h: Body,
    handler: &str,
    step: ConnectorStep,
) -> ApiResult<String> {
    match h.take("@odata.type") {
        Some(Value::String(t)) if odata::same_type(&t, handler) => {}
        _ => return Err(h.error("@odata.type", format!("must be {handler}"))),
    }
    let Some(mut reference) = h.object("customExtension")? else {
        return Err(h.error("customExtension", "is required: {\"id\": …}"));
    };
    let id = reference.required_string("id")?;
    reference.finish()?;
    h.ignore(&["configuration"]);
    h.finish()?;
    let c = snapshot
        .connector(&id)
        .filter(|c| c.contract.is_extension())
        .ok_or_else(|| {
            ApiError::invalid_property(
                "customExtension.id",
                RESOURCE,
                format!("there is no custom authentication extension {id}"),
            )
        })?;
    if !c.contract.serves(step) {
        return Err(ApiError::invalid_property(
            "customExtension.id",
            RESOURCE,
            format!("{} is an extension for another event", c.id),
        ));
    }
    Ok(c.id.clone())
}
