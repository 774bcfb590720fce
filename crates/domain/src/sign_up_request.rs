//! Sign-ups that wait for a person's approval (the built-in approval queue): what the
//! user gave, held until an administrator approves (the user is created) or denies
//! (later attempts with the same identity or email are blocked until cleared).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{attribute::AttributeValues, user::Identity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignUpRequestStatus {
    Pending,
    Approved,
    Denied,
}

impl SignUpRequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SignUpRequestStatus::Pending => "pending",
            SignUpRequestStatus::Approved => "approved",
            SignUpRequestStatus::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(SignUpRequestStatus::Pending),
            "approved" => Some(SignUpRequestStatus::Approved),
            "denied" => Some(SignUpRequestStatus::Denied),
            _ => None,
        }
    }
}

/// A sign-up held for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUpRequest {
    pub id: String,
    pub user_flow_id: String,
    pub client_id: String,
    /// The verified email address, lower case.
    pub email: String,
    /// Every identity the user will have, the local one included.
    pub identities: Vec<Identity>,
    pub attributes: AttributeValues,
    /// Argon2id PHC string for a local account; never shown by the API.
    #[serde(skip_serializing, default)]
    pub password_hash: Option<String>,
    pub status: SignUpRequestStatus,
    pub created_at: DateTime<Utc>,
    /// Who decided (the admin's user id or the API client id) and when.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The user created on approval.
    pub user_id: Option<String>,
}
