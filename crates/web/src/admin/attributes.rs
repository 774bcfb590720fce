//! User-flow attributes — Graph's `identityUserFlowAttribute` at
//! `/v1.0/identity/userFlowAttributes`: the built-in attributes (read-only) and the
//! tenant's custom ones, whose id is `extension_<extensionsAppId>_<displayName>`.

use axum::http::HeaderMap;
use usher_tenant::document;

use super::etag::{self, IfMatch};
use axum::{
    extract::{Path, State},
    http::Uri,
    response::Response,
};
use serde_json::{json, Value};
use usher_domain::{AttributeDefinition, BuiltInAttribute, DataType};

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::JsonBody;
use super::{created, no_content, odata, ok, path_segment, rules, Route};
use crate::state::AppState;

const RESOURCE: &str = "identityUserFlowAttribute";
const TAG: &str = "User flow attributes";

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::UserFlows);
    let write = Access::Write(Area::UserFlows);
    vec![
        Route::get("/v1.0/identity/userFlowAttributes", list)
            .access(read)
            .doc(TAG, "List attributes, built-in and custom")
            .lists(RESOURCE, &["$filter", "$select"]),
        Route::post("/v1.0/identity/userFlowAttributes", create)
            .access(write)
            .doc(TAG, "Create a custom attribute")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get("/v1.0/identity/userFlowAttributes/{id}", get)
            .access(read)
            .doc(
                TAG,
                "Get an attribute (built-in ids match without regard to case)",
            )
            .answers(200, RESOURCE),
        Route::patch("/v1.0/identity/userFlowAttributes/{id}", update)
            .access(write)
            .doc(TAG, "Update a custom attribute's description")
            .body(RESOURCE)
            .no_content(),
        Route::delete("/v1.0/identity/userFlowAttributes/{id}", delete)
            .access(write)
            .doc(
                TAG,
                "Delete a custom attribute (409 while a user flow uses it)",
            ),
    ]
}

/// Graph's display names and descriptions of the built-in attributes.
fn built_in_text(a: BuiltInAttribute) -> (&'static str, &'static str) {
    match a {
        BuiltInAttribute::DisplayName => ("Display Name", "Display Name of the User."),
        BuiltInAttribute::GivenName => (
            "Given Name",
            "The user's given name (also known as first name).",
        ),
        BuiltInAttribute::Surname => (
            "Surname",
            "The user's surname (also known as family name or last name).",
        ),
        BuiltInAttribute::JobTitle => ("Job Title", "The user's job title."),
        BuiltInAttribute::StreetAddress => (
            "Street Address",
            "The street address where the user is located.",
        ),
        BuiltInAttribute::City => ("City", "The city in which the user is located."),
        BuiltInAttribute::PostalCode => ("Postal Code", "The postal code of the user's address."),
        BuiltInAttribute::State => ("State/Province", "The state or province in user's address."),
        BuiltInAttribute::Country => (
            "Country/Region",
            "The country/region in which the user is located.",
        ),
        BuiltInAttribute::Email => ("Email Address", "Email address of the user."),
    }
}

pub fn data_type_name(t: DataType) -> &'static str {
    match t {
        DataType::String => "string",
        DataType::Boolean => "boolean",
        DataType::Int => "int64",
    }
}

pub fn to_json(a: &AttributeDefinition) -> Value {
    let built_in = BuiltInAttribute::from_id(&a.id).filter(|_| a.built_in);
    let (display_name, description) = match built_in {
        Some(b) => {
            let (n, d) = built_in_text(b);
            (n.to_owned(), d.to_owned())
        }
        None => (a.display_name.clone(), a.description.clone()),
    };
    json!({
        "id": a.id,
        "displayName": display_name,
        "description": description,
        "userFlowAttributeType": if a.built_in { "builtIn" } else { "custom" },
        "dataType": data_type_name(a.data_type),
    })
}

const PROPERTIES: [&str; 5] = [
    "id",
    "displayName",
    "description",
    "userFlowAttributeType",
    "dataType",
];

async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$filter", "$select"])?;
    options.check_select(RESOURCE, &|p| {
        PROPERTIES.iter().any(|k| k.eq_ignore_ascii_case(p))
    })?;
    // Graph's clients filter on the type: `userFlowAttributeType eq 'custom'`.
    let mut only: Option<bool> = None;
    for c in options.filter.iter().flatten() {
        match c {
            odata::Condition::Compare {
                property,
                op: odata::Op::Eq,
                value,
            } if property.eq_ignore_ascii_case("userFlowAttributeType") => {
                only = match value.as_string() {
                    Some("builtIn") => Some(true),
                    Some("custom") => Some(false),
                    _ => {
                        return Err(ApiError::unsupported_query(
                            "userFlowAttributeType is 'builtIn' or 'custom'.",
                        ))
                    }
                };
            }
            other => {
                return Err(odata::unsupported_condition(
                    other,
                    "userFlowAttributeType eq",
                ))
            }
        }
    }
    let snapshot = state.tenants.current().await?;
    let values = snapshot
        .tenant
        .attributes()
        .filter(|a| only.is_none_or(|b| a.built_in == b))
        .map(|a| options.apply_select(to_json(&a)))
        .collect();
    Ok(ok(odata::collection(
        &state,
        "identity/userFlowAttributes",
        values,
        None,
    )))
}

async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let snapshot = state.tenants.current().await?;
    let a = snapshot
        .tenant
        .attribute(&id)
        .ok_or_else(|| ApiError::no_such("identityUserFlowAttribute", &id))?;
    etag::tenant_object(&state, &snapshot, document::ATTRIBUTE, &a.id, to_json(&a))
}

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let name = body.required_string("displayName")?;
    rules::check_attribute_name(&name).map_err(|e| body.error("displayName", e))?;
    let description = body.string("description")?.unwrap_or_default();
    rules::check_optional_text(&description, rules::MAX_DESCRIPTION)
        .map_err(|e| body.error("description", e))?;
    let data_type = match body
        .required_string("dataType")?
        .to_ascii_lowercase()
        .as_str()
    {
        "string" => DataType::String,
        "boolean" => DataType::Boolean,
        "int64" | "int" => DataType::Int,
        "datetime" | "stringcollection" => {
            return Err(body.error(
                "dataType",
                "is not supported by Usher: use string, boolean or int64",
            ))
        }
        _ => return Err(body.error("dataType", "must be string, boolean or int64")),
    };
    body.read_only("userFlowAttributeType", &json!("custom"))?;
    body.ignore(&["id"]);
    body.finish()?;
    let snapshot = state.tenants.current().await?;
    if BuiltInAttribute::from_id(&name).is_some() {
        return Err(ApiError::conflict(format!(
            "{name} is a built-in attribute."
        )));
    }
    let id = format!("extension_{}_{name}", snapshot.tenant.extensions_app_id);
    if let Some(existing) = snapshot.tenant.attribute(&id) {
        return Err(ApiError::conflict(format!(
            "The attribute {} exists already (names ignore case).",
            existing.id
        )));
    }
    let attribute = AttributeDefinition {
        id,
        display_name: name,
        description,
        data_type,
        built_in: false,
    };
    state.tenants.put_custom_attribute(&attribute).await?;
    let location = format!(
        "/v1.0/identity/userFlowAttributes/{}",
        path_segment(&attribute.id)
    );
    Ok(created(&state, &location, to_json(&attribute)))
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
    let mut attribute = snapshot
        .tenant
        .attribute(&id)
        .ok_or_else(|| ApiError::no_such("identityUserFlowAttribute", &id))?;
    if attribute.built_in {
        return Err(ApiError::bad_request(format!(
            "{} is a built-in attribute: it cannot be changed.",
            attribute.id
        )));
    }
    let current = to_json(&attribute);
    for key in ["id", "displayName", "dataType", "userFlowAttributeType"] {
        body.read_only(key, &current[key])?;
    }
    if let Some(description) = body.nullable_string("description")? {
        let description = description.unwrap_or_default();
        rules::check_optional_text(&description, rules::MAX_DESCRIPTION)
            .map_err(|e| body.error("description", e))?;
        attribute.description = description;
    }
    body.finish()?;
    state
        .tenants
        .put_custom_attribute_if(&attribute, if_match.tags())
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
    let attribute = snapshot
        .tenant
        .attribute(&id)
        .ok_or_else(|| ApiError::no_such("identityUserFlowAttribute", &id))?;
    if attribute.built_in {
        return Err(ApiError::bad_request(format!(
            "{} is a built-in attribute: it cannot be deleted.",
            attribute.id
        )));
    }
    if state
        .tenants
        .delete_custom_attribute_if(&attribute.id, if_match.tags())
        .await?
    {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("identityUserFlowAttribute", &id))
    }
}
