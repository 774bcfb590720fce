//! `GET /console/flows`: the user flows as they run now: which identity providers
//! each offers, its attribute page, the API connectors at each step, whether its
//! sign-ups wait for approval, and which applications use it. Read-only: the admin
//! API and `usher apply` change flows.

use axum::{extract::State, http::HeaderMap, response::Response};
use serde::Serialize;
use usher_domain::{user_flow, UserInputType};

use super::{attribute_label, msg, render, segment, Section, View};
use crate::{pages::request_locale, state::AppState};

#[derive(Serialize)]
struct AttributeRow {
    id: String,
    label: String,
    input: &'static str,
    required: bool,
    claim: bool,
}

#[derive(Serialize)]
struct ConnectorRef {
    id: String,
    url: String,
}

#[derive(Serialize)]
struct Step {
    name: String,
    connectors: Vec<ConnectorRef>,
}

#[derive(Serialize)]
struct FlowRow {
    id: String,
    providers: Vec<String>,
    attributes: Vec<AttributeRow>,
    extra_claims: Vec<String>,
    steps: Vec<Step>,
    requires_approval: bool,
    applications: Vec<String>,
}

#[derive(Serialize)]
struct Flows {
    flows: Vec<FlowRow>,
}

fn input_name(t: UserInputType) -> &'static str {
    match t {
        UserInputType::TextBox => "textBox",
        UserInputType::NumericTextBox => "numericTextBox",
        UserInputType::EmailBox => "emailBox",
        UserInputType::CheckboxSingleSelect => "checkboxSingleSelect",
        UserInputType::RadioSingleSelect => "radioSingleSelect",
        UserInputType::DropdownSingleSelect => "dropdownSingleSelect",
        UserInputType::CheckboxMultiSelect => "checkboxMultiSelect",
    }
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = match super::require(&state, &headers, "/console/flows").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let locale = request_locale(&headers, None);
    let snapshot = state.snapshot();
    let tenant = &snapshot.tenant;
    let provider = |p: &str| -> String {
        if p.eq_ignore_ascii_case(user_flow::EMAIL_PASSWORD_PROVIDER) {
            msg(&state, locale, "console.flows.email_password")
        } else if p.eq_ignore_ascii_case(user_flow::EMAIL_OTP_PROVIDER) {
            msg(&state, locale, "console.flows.email_otp")
        } else {
            match state.federation_provider_label(p) {
                Some(label) => format!("{label} ({p})"),
                None => p.to_owned(),
            }
        }
    };
    let connector = |id: &String| ConnectorRef {
        id: id.clone(),
        url: format!("/console/connectors/{}", segment(id)),
    };
    let flows = tenant
        .user_flows
        .iter()
        .map(|f| FlowRow {
            id: f.id.clone(),
            providers: f.identity_providers.iter().map(|p| provider(p)).collect(),
            attributes: f
                .attributes
                .iter()
                .map(|a| AttributeRow {
                    id: a.attribute_id.clone(),
                    label: a.label.as_ref().map_or_else(
                        || attribute_label(&state, locale, &a.attribute_id),
                        |l| l.get(locale).to_owned(),
                    ),
                    input: input_name(a.input_type),
                    required: !a.is_optional,
                    claim: a.is_claim,
                })
                .collect(),
            extra_claims: f.extra_claims.clone(),
            // Every step, in the order a flow reaches them, with the ones in use.
            steps: usher_domain::ConnectorStep::ALL
                .into_iter()
                .map(|step| (step, f.connectors.at(step)))
                .filter(|(step, ids)| {
                    !ids.is_empty()
                        || matches!(
                            step,
                            usher_domain::ConnectorStep::PostFederationSignup
                                | usher_domain::ConnectorStep::PostAttributeCollection
                                | usher_domain::ConnectorStep::PreTokenIssuance
                        )
                })
                .map(|(step, ids)| (format!("console.flows.step.{}", step.config_name()), ids))
                .map(|(key, ids)| Step {
                    name: msg(&state, locale, &key),
                    connectors: ids.iter().map(connector).collect(),
                })
                .collect(),
            requires_approval: f.requires_approval,
            applications: tenant
                .applications
                .iter()
                .filter(|a| a.user_flow_id.eq_ignore_ascii_case(&f.id))
                .map(|a| format!("{} ({})", a.name, a.client_id))
                .collect(),
        })
        .collect();
    render(
        &state,
        locale,
        Some(&admin),
        View::new("console_flows.html", "console.flows.title", Section::Flows),
        &Flows { flows },
    )
}
