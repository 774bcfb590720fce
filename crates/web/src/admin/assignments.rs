//! The attribute page of a user flow — Graph's `identityUserFlowAttributeAssignment`
//! at `/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments`: which attributes
//! the page collects, how (`userInputType`, `userAttributeValues`), whether each is
//! optional, and in which order (`setOrder`).
//!
//! Usher's extensions: `usherIsClaim` (whether the attribute is returned to
//! applications, default true) and `usherLabels` (the label per language tag, next
//! to Graph's single `displayName`).

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    response::Response,
};
use serde_json::{json, Value};
use usher_domain::{
    AttributeAssignment, AttributeDefinition, AttributeOption, BuiltInAttribute, LocalizedText,
    UserFlow, UserInputType,
};
use usher_tenant::TenantSnapshot;

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::{Body, JsonBody};
use super::{attributes, created, no_content, odata, ok, path_segment, rules, user_flows, Route};
use crate::state::AppState;

const RESOURCE: &str = "identityUserFlowAttributeAssignment";
const TAG: &str = "User flow attribute assignments";

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::UserFlows);
    let write = Access::Write(Area::UserFlows);
    vec![
        Route::get(
            "/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments",
            list,
        )
        .access(read)
        .doc(
            TAG,
            "List the attributes on a user flow's page, in page order",
        )
        .lists(RESOURCE, &["$expand"]),
        Route::post(
            "/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments",
            create,
        )
        .access(write)
        .doc(TAG, "Put an attribute on the page (at the end)")
        .body(RESOURCE)
        .answers(201, RESOURCE),
        Route::put(
            "/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments/setOrder",
            set_order,
        )
        .access(write)
        .doc(TAG, "Set the page order (a permutation of the assignments)")
        .body("setOrder")
        .no_content(),
        Route::get(
            "/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments/{attributeId}",
            get,
        )
        .access(read)
        .doc(TAG, "Get one attribute of the page")
        .answers(200, RESOURCE)
        .query(&["$expand"]),
        Route::patch(
            "/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments/{attributeId}",
            update,
        )
        .access(write)
        .doc(TAG, "Update how the page collects an attribute")
        .body(RESOURCE)
        .no_content(),
        Route::delete(
            "/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments/{attributeId}",
            delete,
        )
        .access(write)
        .doc(TAG, "Take an attribute off the page"),
    ]
}

fn input_type_name(t: UserInputType) -> &'static str {
    match t {
        UserInputType::TextBox => "textBox",
        UserInputType::EmailBox => "emailBox",
        UserInputType::NumericTextBox => "numericTextBox",
        UserInputType::CheckboxSingleSelect => "checkboxSingleSelect",
        UserInputType::RadioSingleSelect => "radioSingleSelect",
        UserInputType::DropdownSingleSelect => "dropdownSingleSelect",
        UserInputType::CheckboxMultiSelect => "checkboxMultiSelect",
    }
}

const INPUT_TYPES: [UserInputType; 7] = [
    UserInputType::TextBox,
    UserInputType::EmailBox,
    UserInputType::NumericTextBox,
    UserInputType::CheckboxSingleSelect,
    UserInputType::RadioSingleSelect,
    UserInputType::DropdownSingleSelect,
    UserInputType::CheckboxMultiSelect,
];

fn parse_input_type(s: &str) -> Result<UserInputType, String> {
    if s.eq_ignore_ascii_case("dateTimeDropdown") {
        return Err("dateTimeDropdown is not supported by Usher".into());
    }
    INPUT_TYPES
        .into_iter()
        .find(|t| input_type_name(*t).eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let names: Vec<_> = INPUT_TYPES.iter().map(|t| input_type_name(*t)).collect();
            format!("must be one of {}", names.join(", "))
        })
}

fn english(text: &LocalizedText) -> String {
    text.get("en").to_owned()
}

/// The page's label: the assignment's, else Graph's name of a built-in attribute,
/// else the custom attribute's display name.
fn display_name(a: &AttributeAssignment, def: Option<&AttributeDefinition>) -> String {
    if let Some(label) = &a.label {
        return english(label);
    }
    match def {
        Some(d) if d.built_in => attributes::to_json(d)["displayName"]
            .as_str()
            .unwrap_or(&d.display_name)
            .to_owned(),
        Some(d) => d.display_name.clone(),
        None => a.attribute_id.clone(),
    }
}

fn to_json(snapshot: &TenantSnapshot, a: &AttributeAssignment, expand: bool) -> Value {
    let def = snapshot.tenant.attribute(&a.attribute_id);
    let labels = match &a.label {
        Some(LocalizedText::PerLocale(map)) => json!(map),
        _ => Value::Null,
    };
    let user_attribute = match (&def, expand) {
        (Some(d), true) => attributes::to_json(d),
        _ => json!({"id": a.attribute_id}),
    };
    json!({
        "id": a.attribute_id,
        "displayName": display_name(a, def.as_ref()),
        "isOptional": a.is_optional,
        "requiresVerification": false,
        "userInputType": input_type_name(a.input_type),
        "userAttributeValues": a.options.iter().map(|o| json!({
            "name": english(&o.name), "value": o.value, "isDefault": o.is_default,
        })).collect::<Vec<_>>(),
        "userAttribute": user_attribute,
        "usherIsClaim": a.is_claim,
        "usherLabels": labels,
    })
}

/// The index of the page's assignment of `id` (built-in ids match without case;
/// custom ones also in the short form `extension_<Name>`).
fn position(snapshot: &TenantSnapshot, flow: &UserFlow, id: &str) -> Option<usize> {
    let canonical = snapshot
        .tenant
        .attribute(id)
        .map_or_else(|| id.to_owned(), |d| d.id);
    flow.attributes
        .iter()
        .position(|a| a.attribute_id.eq_ignore_ascii_case(&canonical))
}

async fn load(
    state: &AppState,
    flow_id: &str,
) -> ApiResult<(std::sync::Arc<TenantSnapshot>, UserFlow)> {
    let snapshot = state.tenants.current().await?;
    let flow = user_flows::find(&snapshot.tenant, flow_id)?;
    Ok((snapshot, flow))
}

async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$expand"])?;
    let expand = expand_option(&options)?;
    let (snapshot, flow) = load(&state, &id).await?;
    let values = flow
        .attributes
        .iter()
        .map(|a| to_json(&snapshot, a, expand))
        .collect();
    Ok(ok(odata::collection(
        &state,
        &format!(
            "identity/b2xUserFlows('{}')/userAttributeAssignments",
            flow.id
        ),
        values,
        None,
    )))
}

fn expand_option(options: &odata::QueryOptions) -> ApiResult<bool> {
    for e in options.expand.iter().flatten() {
        if !e.eq_ignore_ascii_case("userAttribute") {
            return Err(ApiError::bad_request(format!(
                "Could not find a property named '{e}' on type '{RESOURCE}'."
            )));
        }
    }
    Ok(options.expands("userAttribute"))
}

async fn get(
    State(state): State<AppState>,
    Path((id, attribute)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let options = odata::QueryOptions::parse(&uri, &["$expand"])?;
    let expand = expand_option(&options)?;
    let (snapshot, flow) = load(&state, &id).await?;
    let i = position(&snapshot, &flow, &attribute)
        .ok_or_else(|| ApiError::no_such(RESOURCE, &attribute))?;
    Ok(ok(to_json(&snapshot, &flow.attributes[i], expand)))
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let (snapshot, mut flow) = load(&state, &id).await?;
    let mut reference = body
        .object("userAttribute")?
        .ok_or_else(|| body.error("userAttribute", "is required: {\"id\": \"<attribute id>\"}"))?;
    let given = reference.required_string("id")?;
    reference.ignore(&[
        "displayName",
        "description",
        "userFlowAttributeType",
        "dataType",
    ]);
    reference.finish()?;
    let def = snapshot
        .tenant
        .attribute(&given)
        .ok_or_else(|| body.error("userAttribute", format!("there is no attribute {given}")))?;
    if def.id == BuiltInAttribute::Email.id() {
        return Err(body.error(
            "userAttribute",
            "email cannot be on the attribute page: it is collected, and verified, before it",
        ));
    }
    if flow.assignment(&def.id).is_some() {
        return Err(ApiError::conflict(format!(
            "{} is on the page of {} already.",
            def.id, flow.id
        )));
    }
    body.read_only("id", &json!(def.id))?;
    let mut assignment = AttributeAssignment {
        attribute_id: def.id.clone(),
        label: None,
        is_optional: false,
        input_type: UserInputType::default_for(def.data_type),
        options: Vec::new(),
        is_claim: true,
    };
    apply(&mut body, &def, &mut assignment)?;
    body.finish()?;
    // On the page, its claim is set by `usherIsClaim`; it leaves the flow's extra claims.
    flow.extra_claims
        .retain(|c| !c.eq_ignore_ascii_case(&def.id));
    flow.attributes.push(assignment.clone());
    state.tenants.put_user_flow(&flow).await?;
    let location = format!(
        "/v1.0/identity/b2xUserFlows/{}/userAttributeAssignments/{}",
        path_segment(&flow.id),
        path_segment(&def.id)
    );
    Ok(created(
        &state,
        &location,
        to_json(&snapshot, &assignment, false),
    ))
}

async fn update(
    State(state): State<AppState>,
    Path((id, attribute)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let (snapshot, mut flow) = load(&state, &id).await?;
    let i = position(&snapshot, &flow, &attribute)
        .ok_or_else(|| ApiError::no_such(RESOURCE, &attribute))?;
    let assignment = &mut flow.attributes[i];
    let def = snapshot
        .tenant
        .attribute(&assignment.attribute_id)
        .ok_or_else(|| {
            ApiError::internal(format!(
                "{} is assigned but not defined",
                assignment.attribute_id
            ))
        })?;
    body.read_only("id", &json!(assignment.attribute_id))?;
    if let Some(mut reference) = body.object("userAttribute")? {
        let given = reference.required_string("id")?;
        if !given.eq_ignore_ascii_case(&assignment.attribute_id) {
            return Err(reference.error("id", "is read-only"));
        }
        reference.ignore(&[
            "displayName",
            "description",
            "userFlowAttributeType",
            "dataType",
        ]);
        reference.finish()?;
    }
    apply(&mut body, &def, assignment)?;
    body.finish()?;
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

async fn delete(
    State(state): State<AppState>,
    Path((id, attribute)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (snapshot, mut flow) = load(&state, &id).await?;
    let i = position(&snapshot, &flow, &attribute)
        .ok_or_else(|| ApiError::no_such(RESOURCE, &attribute))?;
    flow.attributes.remove(i);
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

async fn set_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let mut body = body.object("setOrder")?;
    let (snapshot, mut flow) = load(&state, &id).await?;
    let mut order_body = body
        .object("newAssignmentOrder")?
        .ok_or_else(|| body.error("newAssignmentOrder", "is required: {\"order\": [ids]}"))?;
    let order = order_body
        .strings("order")?
        .ok_or_else(|| order_body.error("order", "is required"))?;
    let mut reordered: Vec<AttributeAssignment> = Vec::new();
    let mut taken = vec![false; flow.attributes.len()];
    for given in &order {
        let i = position(&snapshot, &flow, given).ok_or_else(|| {
            order_body.error(
                "order",
                format!("{given} is not on the page of {}", flow.id),
            )
        })?;
        if taken[i] {
            return Err(order_body.error("order", format!("{given} is listed twice")));
        }
        taken[i] = true;
        reordered.push(flow.attributes[i].clone());
    }
    if reordered.len() != flow.attributes.len() {
        let missing: Vec<&str> = flow
            .attributes
            .iter()
            .zip(&taken)
            .filter(|(_, t)| !**t)
            .map(|(a, _)| a.attribute_id.as_str())
            .collect();
        return Err(order_body.error(
            "order",
            format!(
                "must list every assignment of the page; missing: {}",
                missing.join(", ")
            ),
        ));
    }
    order_body.finish()?;
    body.finish()?;
    flow.attributes = reordered;
    state.tenants.put_user_flow(&flow).await?;
    Ok(no_content())
}

/// The properties of POST and PATCH, then the assignment's rules.
fn apply(body: &mut Body, def: &AttributeDefinition, a: &mut AttributeAssignment) -> ApiResult<()> {
    if let Some(name) = body.nullable_string("displayName")? {
        a.label = match name {
            None => None,
            Some(n) => {
                rules::check_display_text(&n, rules::MAX_LABEL)
                    .map_err(|e| body.error("displayName", e))?;
                Some(LocalizedText::Plain(n))
            }
        };
    }
    apply_usher_labels(body, a)?;
    if let Some(optional) = body.bool("isOptional")? {
        a.is_optional = optional;
    }
    if body.bool("requiresVerification")? == Some(true) {
        return Err(body.error(
            "requiresVerification",
            "only the email address is verified, and it is not on the page",
        ));
    }
    if let Some(t) = body.string("userInputType")? {
        let input = parse_input_type(&t).map_err(|e| body.error("userInputType", e))?;
        if input != a.input_type && !input.has_options() {
            a.options.clear();
        }
        a.input_type = input;
    }
    if let Some(values) = body.objects("userAttributeValues")? {
        a.options = read_options(values, def)?;
    }
    if let Some(claim) = body.bool("usherIsClaim")? {
        a.is_claim = claim;
    }
    check_input_type(body, def, a)
}

/// The `usherLabels` of POST and PATCH: a label per language tag, or null to drop
/// the per-language labels (a plain `displayName` stays).
fn apply_usher_labels(body: &mut Body, a: &mut AttributeAssignment) -> ApiResult<()> {
    match body.nullable_object("usherLabels")? {
        None => {}
        // null: no per-language labels any more.
        Some(None) => {
            if matches!(a.label, Some(LocalizedText::PerLocale(_))) {
                a.label = None;
            }
        }
        Some(Some(mut labels)) => {
            let mut map = BTreeMap::new();
            for tag in labels.remaining_keys() {
                rules::check_locale(&tag).map_err(|e| labels.error(&tag, e))?;
                let text = labels.required_string(&tag)?;
                rules::check_display_text(&text, rules::MAX_LABEL)
                    .map_err(|e| labels.error(&tag, e))?;
                map.insert(tag, text);
            }
            if map.is_empty() {
                return Err(body.error("usherLabels", "must have at least one language"));
            }
            a.label = Some(LocalizedText::PerLocale(map));
        }
    }
    Ok(())
}

/// The `userAttributeValues` of POST and PATCH: the options a select or checkbox
/// offers, each a value of the attribute's type, none twice.
fn read_options(values: Vec<Body>, def: &AttributeDefinition) -> ApiResult<Vec<AttributeOption>> {
    let mut options: Vec<AttributeOption> = Vec::new();
    for mut v in values {
        let value = v.required_string("value")?;
        rules::check_option_value(&value, def.data_type, def.max_length())
            .map_err(|e| v.error("value", e))?;
        if options.iter().any(|o| o.value == value) {
            return Err(v.error("value", format!("`{value}` is an option twice")));
        }
        let name = v.string("name")?.unwrap_or_else(|| value.clone());
        rules::check_display_text(&name, rules::MAX_LABEL).map_err(|e| v.error("name", e))?;
        let is_default = v.bool("isDefault")?.unwrap_or(false);
        v.finish()?;
        options.push(AttributeOption {
            name: LocalizedText::Plain(name),
            value,
            is_default,
        });
    }
    Ok(options)
}

/// The assignment's rules once the body is applied: the input type can collect the
/// attribute's type, and has values exactly when it is a choice among them.
fn check_input_type(
    body: &Body,
    def: &AttributeDefinition,
    a: &AttributeAssignment,
) -> ApiResult<()> {
    let name = input_type_name(a.input_type);
    if !a.input_type.accepts(def.data_type) {
        return Err(body.error(
            "userInputType",
            format!(
                "{name} cannot collect {} (a {} attribute)",
                def.id,
                attributes::data_type_name(def.data_type)
            ),
        ));
    }
    if a.input_type.has_options() && a.options.is_empty() {
        return Err(body.error(
            "userAttributeValues",
            format!("{name} needs at least one value"),
        ));
    }
    if !a.input_type.has_options() && !a.options.is_empty() {
        return Err(body.error(
            "userAttributeValues",
            format!("{name} has no values; they are for radioSingleSelect, dropdownSingleSelect and checkboxMultiSelect"),
        ));
    }
    if a.input_type != UserInputType::CheckboxMultiSelect
        && a.options.iter().filter(|o| o.is_default).count() > 1
    {
        return Err(body.error(
            "userAttributeValues",
            format!("a {name} can have only one default value"),
        ));
    }
    Ok(())
}
