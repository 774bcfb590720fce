//! Users of the directory and the identities they sign in with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::attribute::AttributeValues;

/// How an identity signs in, as Graph names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignInType {
    /// A local account: email address and password.
    EmailAddress,
    /// An external identity provider or email one-time passcode.
    Federated,
}

impl SignInType {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInType::EmailAddress => "emailAddress",
            SignInType::Federated => "federated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "emailAddress" => Some(SignInType::EmailAddress),
            "federated" => Some(SignInType::Federated),
            _ => None,
        }
    }
}

/// One way a user signs in. `(sign_in_type, issuer, issuer_assigned_id)` is unique
/// across the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub sign_in_type: SignInType,
    pub issuer: String,
    pub issuer_assigned_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    /// The verified email address, normalised to lower case.
    pub email: Option<String>,
    /// Attribute values except `email`.
    pub attributes: AttributeValues,
    pub identities: Vec<Identity>,
    pub account_enabled: bool,
    pub created_at: DateTime<Utc>,
}

/// A user about to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: String,
    pub email: Option<String>,
    pub attributes: AttributeValues,
    pub identities: Vec<Identity>,
    /// Argon2id PHC string, for local accounts.
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}
