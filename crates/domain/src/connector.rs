//! The steps of a user flow at which API connectors run.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectorStep {
    PostFederationSignup,
    PostAttributeCollection,
    PreTokenIssuance,
}

impl ConnectorStep {
    /// The `step` value sent on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "PostFederationSignup",
            ConnectorStep::PostAttributeCollection => "PostAttributeCollection",
            ConnectorStep::PreTokenIssuance => "PreTokenIssuance",
        }
    }

    /// The slot name in configuration and the admin API.
    pub fn slot_name(self) -> &'static str {
        match self {
            ConnectorStep::PostFederationSignup => "postFederationSignup",
            ConnectorStep::PostAttributeCollection => "postAttributeCollection",
            ConnectorStep::PreTokenIssuance => "preTokenIssuance",
        }
    }
}
