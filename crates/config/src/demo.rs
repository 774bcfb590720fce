//! The demo: a user flow and a public application that let someone try sign-up
//! against a fresh install at `{issuer}/try` without configuring anything.

use usher_domain::{
    user_flow::EMAIL_PASSWORD_PROVIDER, Application, AttributeAssignment, BuiltInAttribute,
    ClientType, ConnectorSlots, UserFlow, UserInputType,
};

pub const DEMO_CLIENT_ID: &str = "usher-demo";
pub const DEMO_USER_FLOW_ID: &str = "B2X_1_demo";

pub(crate) fn user_flow() -> UserFlow {
    let field = |attribute: BuiltInAttribute, required: bool| AttributeAssignment {
        attribute_id: attribute.id().to_owned(),
        label: None,
        is_optional: !required,
        input_type: UserInputType::TextBox,
        options: Vec::new(),
        is_claim: true,
    };
    UserFlow {
        id: DEMO_USER_FLOW_ID.to_owned(),
        identity_providers: vec![EMAIL_PASSWORD_PROVIDER.to_owned()],
        attributes: vec![
            field(BuiltInAttribute::DisplayName, true),
            field(BuiltInAttribute::GivenName, false),
            field(BuiltInAttribute::Surname, false),
        ],
        extra_claims: vec![BuiltInAttribute::Email.id().to_owned()],
        connectors: ConnectorSlots::default(),
        requires_approval: false,
    }
}

pub(crate) fn application(issuer: &str) -> Application {
    Application {
        client_id: DEMO_CLIENT_ID.to_owned(),
        name: "Usher demo".to_owned(),
        redirect_uris: vec![format!("{issuer}/try/callback")],
        post_logout_redirect_uris: vec![format!("{issuer}/try")],
        // The demo page runs in the browser: it cannot keep a secret, so PKCE it is.
        client_type: ClientType::Public,
        user_flow_id: DEMO_USER_FLOW_ID.to_owned(),
        roles: Vec::new(),
    }
}
