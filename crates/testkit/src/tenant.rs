//! Builders for tenant objects, with the defaults most tests want.

use usher_domain::{
    Application, AttributeAssignment, AttributeDefinition, ClientType, ConnectorSlots, DataType,
    Tenant, UserFlow, UserInputType,
};

/// The extensions application id of the tenants built here.
pub const EXTENSIONS_APP_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// The id of custom attribute `name` in those tenants.
pub fn ext(name: &str) -> String {
    format!("extension_{EXTENSIONS_APP_ID}_{name}")
}

/// A custom attribute.
pub fn custom(name: &str, data_type: DataType) -> AttributeDefinition {
    AttributeDefinition {
        id: ext(name),
        display_name: name.into(),
        description: String::new(),
        data_type,
        built_in: false,
    }
}

/// An optional attribute on the attribute page, returned as a claim.
pub fn assign(id: &str, input_type: UserInputType) -> AttributeAssignment {
    AttributeAssignment {
        attribute_id: id.into(),
        label: None,
        is_optional: true,
        input_type,
        options: vec![],
        is_claim: true,
    }
}

/// The same, required.
pub fn require(id: &str, input_type: UserInputType) -> AttributeAssignment {
    AttributeAssignment {
        is_optional: false,
        ..assign(id, input_type)
    }
}

/// A user flow with `providers`, no attributes, no connectors, no approval.
pub fn user_flow(id: &str, providers: &[&str]) -> UserFlow {
    UserFlow {
        id: id.into(),
        identity_providers: providers.iter().map(|p| (*p).to_owned()).collect(),
        attributes: Vec::new(),
        extra_claims: Vec::new(),
        connectors: ConnectorSlots::default(),
        requires_approval: false,
    }
}

/// An application of `client_type` for `user_flow_id`, redirecting to
/// `https://<client_id>.example/callback` and `http://localhost:8080/cb`.
pub fn application(client_id: &str, client_type: ClientType, user_flow_id: &str) -> Application {
    Application {
        client_id: client_id.into(),
        name: format!("The {client_id} app"),
        redirect_uris: vec![
            format!("https://{client_id}.example/callback"),
            "http://localhost:8080/cb".into(),
        ],
        post_logout_redirect_uris: vec![format!("https://{client_id}.example/")],
        client_type,
        user_flow_id: user_flow_id.into(),
        roles: Vec::new(),
    }
}

/// A tenant of these custom attributes, user flows and applications.
pub fn tenant(
    custom_attributes: Vec<AttributeDefinition>,
    user_flows: Vec<UserFlow>,
    applications: Vec<Application>,
) -> Tenant {
    Tenant {
        extensions_app_id: EXTENSIONS_APP_ID.into(),
        custom_attributes,
        user_flows,
        applications,
    }
}
