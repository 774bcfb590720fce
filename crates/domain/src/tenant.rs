//! A tenant: the directory's schema (its attributes), its user flows and applications.

use serde::{Deserialize, Serialize};

use crate::{
    application::Application,
    attribute::{AttributeDefinition, BuiltInAttribute},
    user_flow::UserFlow,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// The extensions application id, 32 lowercase hex digits (a GUID without hyphens).
    pub extensions_app_id: String,
    /// Custom attributes; built-in ones are implied.
    pub custom_attributes: Vec<AttributeDefinition>,
    pub user_flows: Vec<UserFlow>,
    pub applications: Vec<Application>,
}

impl Tenant {
    pub fn application(&self, client_id: &str) -> Option<&Application> {
        self.applications.iter().find(|a| a.client_id == client_id)
    }

    pub fn user_flow(&self, id: &str) -> Option<&UserFlow> {
        self.user_flows
            .iter()
            .find(|f| f.id.eq_ignore_ascii_case(id))
    }

    /// Every attribute the tenant knows, built-in first.
    pub fn attributes(&self) -> impl Iterator<Item = AttributeDefinition> + '_ {
        BuiltInAttribute::ALL
            .into_iter()
            .map(AttributeDefinition::built_in)
            .chain(self.custom_attributes.iter().cloned())
    }

    /// Finds an attribute by id. Built-in ids match without regard to case; custom ids
    /// may use the short form `extension_<Name>`.
    pub fn attribute(&self, id: &str) -> Option<AttributeDefinition> {
        if let Some(b) = BuiltInAttribute::from_id(id) {
            return Some(AttributeDefinition::built_in(b));
        }
        let full = self.full_extension_id(id);
        self.custom_attributes
            .iter()
            .find(|a| a.id.eq_ignore_ascii_case(&full))
            .cloned()
    }

    /// `extension_<Name>` → `extension_<appId>_<Name>`; other ids unchanged.
    pub fn full_extension_id(&self, id: &str) -> String {
        if let Some(rest) = id.strip_prefix("extension_") {
            let prefix = format!("{}_", self.extensions_app_id);
            if !rest.starts_with(&prefix) {
                return format!("extension_{}_{}", self.extensions_app_id, rest);
            }
        }
        id.to_owned()
    }
}
