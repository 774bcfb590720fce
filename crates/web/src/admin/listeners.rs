//! Authentication event listeners — Graph's `authenticationEventListener` at
//! `/v1.0/identity/authenticationEventListeners`: `onTokenIssuanceStartListener`
//! and `onEmailOtpSendListener`, each running one custom authentication extension
//! for the applications of `conditions.applications.includeApplications`, in
//! `priority` order. An OTP listener's `behaviorOnError` of
//! `#microsoft.graph.fallbackToMicrosoftProviderOnError` sends the code by Usher's
//! mailer when the extension fails.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use serde_json::{json, Value};
use usher_domain::{event_listener::DEFAULT_PRIORITY, ConnectorStep, EventListener};
use usher_tenant::{document, TenantSnapshot};

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::etag::{self, IfMatch};
use super::json::{Body, JsonBody};
use super::{created, no_content, odata, path_segment, rules, Route};
use crate::state::AppState;

const RESOURCE: &str = "authenticationEventListener";
const TAG: &str = "Authentication event listeners";
const COLLECTION: &str = "identity/authenticationEventListeners";
const FALLBACK: &str = "#microsoft.graph.fallbackToMicrosoftProviderOnError";

/// Each listener type, its handler type and the step it listens at.
const TYPES: [(&str, &str, ConnectorStep); 2] = [
    (
        "#microsoft.graph.onTokenIssuanceStartListener",
        "#microsoft.graph.onTokenIssuanceStartCustomExtensionHandler",
        ConnectorStep::PreTokenIssuance,
    ),
    (
        "#microsoft.graph.onEmailOtpSendListener",
        "#microsoft.graph.onOtpSendCustomExtensionHandler",
        ConnectorStep::EmailOtpSend,
    ),
];

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::EventListeners);
    let write = Access::Write(Area::EventListeners);
    let one = "/v1.0/identity/authenticationEventListeners/{id}";
    vec![
        Route::get("/v1.0/identity/authenticationEventListeners", list)
            .access(read)
            .doc(TAG, "List authentication event listeners")
            .lists(RESOURCE, &[]),
        Route::post("/v1.0/identity/authenticationEventListeners", create)
            .access(write)
            .doc(TAG, "Create an authentication event listener")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get(one, get)
            .access(read)
            .doc(TAG, "Get an authentication event listener")
            .answers(200, RESOURCE),
        Route::patch(one, update)
            .access(write)
            .doc(TAG, "Update an authentication event listener")
            .body(RESOURCE)
            .no_content(),
        Route::delete(one, delete)
            .access(write)
            .doc(TAG, "Delete an authentication event listener"),
    ]
}

fn to_json(l: &EventListener) -> Value {
    let (kind, handler, _) = TYPES
        .iter()
        .find(|(_, _, s)| *s == l.step)
        .copied()
        .unwrap_or(TYPES[0]);
    let apps: Vec<Value> = l.applications.iter().map(|a| json!({"appId": a})).collect();
    let mut value = json!({
        "@odata.type": kind,
        "id": l.id,
        "priority": l.priority,
        "conditions": {"applications": {"includeAllApplications": false, "includeApplications": apps}},
        "handler": {"@odata.type": handler, "customExtension": {"id": l.extension_id}},
    });
    if l.step == ConnectorStep::EmailOtpSend {
        value["behaviorOnError"] = if l.fall_back_to_mailer {
            json!({"@odata.type": FALLBACK})
        } else {
            Value::Null
        };
    }
    value
}

fn find(snapshot: &TenantSnapshot, id: &str) -> ApiResult<EventListener> {
    snapshot
        .event_listener(id)
        .cloned()
        .ok_or_else(|| ApiError::no_such("authenticationEventListener", id))
}

async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let values = snapshot.event_listeners.iter().map(to_json).collect();
    Ok(super::ok(odata::collection(
        &state, COLLECTION, values, None,
    )))
}

async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let l = find(&snapshot, &id)?;
    let mut value = to_json(&l);
    value["@odata.context"] = json!(odata::context_url(&state, &format!("{COLLECTION}/$entity")));
    etag::tenant_object(&state, &snapshot, document::EVENT_LISTENER, &l.id, value)
}

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let step = match body.take("@odata.type") {
        Some(Value::String(t)) => TYPES
            .iter()
            .find(|(name, _, _)| odata::same_type(&t, name))
            .map(|(_, _, step)| *step)
            .ok_or_else(|| {
                body.error(
                    "@odata.type",
                    "must be #microsoft.graph.onTokenIssuanceStartListener or #microsoft.graph.onEmailOtpSendListener",
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
    if let Some(existing) = state.tenants.current().await?.event_listener(&id) {
        return Err(ApiError::conflict(format!(
            "A listener with the id {} exists already (ids ignore case).",
            existing.id
        )));
    }
    let mut l = EventListener {
        id,
        step,
        extension_id: String::new(),
        applications: Vec::new(),
        priority: DEFAULT_PRIORITY,
        fall_back_to_mailer: false,
    };
    apply(&mut body, &mut l)?;
    body.finish()?;
    if l.extension_id.is_empty() {
        return Err(ApiError::invalid_property(
            "handler",
            RESOURCE,
            "is required: {\"customExtension\": {\"id\": …}}",
        ));
    }
    state.tenants.put_event_listener_if(&l, None).await?;
    let location = format!(
        "/v1.0/identity/authenticationEventListeners/{}",
        path_segment(&l.id)
    );
    Ok(created(&state, &location, to_json(&l)))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let mut body = body.object(RESOURCE)?;
    let mut l = find(&*state.tenants.current().await?, &id)?;
    body.read_only("id", &json!(l.id))?;
    if let Some(t) = body.take("@odata.type") {
        let kind = TYPES
            .iter()
            .find(|(_, _, s)| *s == l.step)
            .map(|(k, _, _)| *k);
        if !t
            .as_str()
            .zip(kind)
            .is_some_and(|(t, k)| odata::same_type(t, k))
        {
            return Err(body.error("@odata.type", "cannot change: create another listener"));
        }
    }
    apply(&mut body, &mut l)?;
    body.finish()?;
    state
        .tenants
        .put_event_listener_if(&l, if_match.tags())
        .await?;
    Ok(no_content())
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let l = find(&*state.tenants.current().await?, &id)?;
    if state
        .tenants
        .delete_event_listener_if(&l.id, if_match.tags())
        .await?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("authenticationEventListener", &id))
    }
}

/// The properties shared by POST and PATCH.
fn apply(body: &mut Body, l: &mut EventListener) -> ApiResult<()> {
    if let Some(p) = body.integer("priority", 0, 1_000_000)? {
        l.priority = i32::try_from(p).unwrap_or(DEFAULT_PRIORITY);
    }
    if let Some(mut conditions) = body.object("conditions")? {
        if let Some(mut apps) = conditions.object("applications")? {
            apps.take("@odata.type");
            if apps.bool("includeAllApplications")? == Some(true) {
                return Err(apps.error(
                    "includeAllApplications",
                    "is not supported: list the applications in includeApplications",
                ));
            }
            if let Some(list) = apps.objects("includeApplications")? {
                let mut ids: Vec<String> = Vec::new();
                for mut app in list {
                    app.take("@odata.type");
                    let id = app.required_string("appId")?;
                    app.finish()?;
                    if !ids.iter().any(|i| i.eq_ignore_ascii_case(&id)) {
                        ids.push(id);
                    }
                }
                l.applications = ids;
            }
            apps.finish()?;
        }
        conditions.finish()?;
    }
    if let Some(mut handler) = body.object("handler")? {
        let expected = TYPES
            .iter()
            .find(|(_, _, s)| *s == l.step)
            .map_or("", |(_, h, _)| *h);
        match handler.take("@odata.type") {
            Some(Value::String(t)) if odata::same_type(&t, expected) => {}
            _ => return Err(handler.error("@odata.type", format!("must be {expected}"))),
        }
        let Some(mut extension) = handler.object("customExtension")? else {
            return Err(handler.error("customExtension", "is required: {\"id\": …}"));
        };
        l.extension_id = extension.required_string("id")?;
        extension.finish()?;
        read_behavior_on_error(&mut handler, l)?;
        handler.ignore(&["configuration"]);
        handler.finish()?;
    }
    read_behavior_on_error(body, l)
}

/// `behaviorOnError`, on the listener or (as some of Microsoft's examples put it)
/// on its handler: the fallback to Usher's mailer, or `null` for none.
fn read_behavior_on_error(body: &mut Body, l: &mut EventListener) -> ApiResult<()> {
    match body.nullable_object("behaviorOnError")? {
        None => {}
        Some(None) => l.fall_back_to_mailer = false,
        Some(Some(mut b)) => {
            match b.take("@odata.type") {
                Some(Value::String(t)) if odata::same_type(&t, FALLBACK) => {
                    l.fall_back_to_mailer = true;
                }
                Some(Value::String(t))
                    if odata::same_type(&t, "#microsoft.graph.customExtensionBehaviorOnError") =>
                {
                    l.fall_back_to_mailer = false;
                }
                _ => return Err(b.error("@odata.type", format!("must be {FALLBACK}"))),
            }
            b.finish()?;
        }
    }
    Ok(())
}
