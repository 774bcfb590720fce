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

/// One way a user signs in. `(sign_in_type, issuer, issuer_assigned_id, exact_issuer)`
/// is unique across the directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub sign_in_type: SignInType,
    /// The issuer as the API connector contract and Graph show it: the tenant's
    /// domain for local accounts, `mail` for email one-time passcodes, and for an
    /// upstream provider a short name (`google.com`, or its issuer URL's host) that
    /// two providers can share.
    pub issuer: String,
    pub issuer_assigned_id: String,
    /// For an identity an upstream provider vouched for: that provider's exact issuer
    /// (the ID token's `iss`; a fixed authority for OAuth-only providers). A returning
    /// identity is found by this and the subject, so two providers on one host are
    /// two populations. `None` for local and passcode identities, and for federated
    /// ones an administrator entered or that were stored before exact issuers were
    /// kept: the first provider with that short issuer takes those on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_issuer: Option<String>,
}

impl Identity {
    /// An identity known only by the contract's fields (local accounts, passcodes,
    /// what an administrator entered).
    pub fn new(sign_in_type: SignInType, issuer: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            sign_in_type,
            issuer: issuer.into(),
            issuer_assigned_id: id.into(),
            exact_issuer: None,
        }
    }
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
    /// Whether Usher saw `email` proven (a code sent to it, or a provider that
    /// vouched for it); the `email_verified` claim says so. An address an
    /// administrator typed in is not.
    pub email_verified: bool,
    /// Graph's directory properties Usher holds without using them.
    pub profile: UserProfile,
    /// Bumped by every change of the user, so a stale write can be told apart
    /// (the admin API's `ETag`).
    pub version: i64,
    /// When the password was last set (Graph's `lastPasswordChangeDateTime`); `None`
    /// for an account without one, and for passwords set before Usher recorded it.
    #[serde(default)]
    pub password_changed_at: Option<DateTime<Utc>>,
}

/// Graph's `userType`: a member of the organisation or a guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserType {
    #[default]
    Member,
    Guest,
}

impl UserType {
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Member => "Member",
            UserType::Guest => "Guest",
        }
    }

    /// Graph's names, matched without regard to case as Graph does.
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("Member") {
            Some(UserType::Member)
        } else if s.eq_ignore_ascii_case("Guest") {
            Some(UserType::Guest)
        } else {
            None
        }
    }
}

/// Directory properties of Graph's `user` that approval systems send and read back
/// (`userPrincipalName`, `mailNickname`, `userType`); Usher keeps them as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_nickname: Option<String>,
    pub user_type: UserType,
    /// Other simple string properties by their Graph names (`department`, …).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub strings: std::collections::BTreeMap<String, String>,
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
    pub account_enabled: bool,
    /// See [`User::email_verified`].
    pub email_verified: bool,
    pub profile: UserProfile,
}

/// Something a person did to their own account, kept for administrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountEventKind {
    /// A forgotten password was reset with an emailed code.
    PasswordReset,
    /// A signed-in person changed their password.
    PasswordChanged,
    /// A signed-in person edited their profile.
    ProfileUpdated,
    /// An account-recovery connector blocked a reset.
    ResetBlocked,
    /// An administrator sent a password reset link.
    ResetLinkSent,
}

impl AccountEventKind {
    pub const ALL: [AccountEventKind; 5] = [
        AccountEventKind::PasswordReset,
        AccountEventKind::PasswordChanged,
        AccountEventKind::ProfileUpdated,
        AccountEventKind::ResetBlocked,
        AccountEventKind::ResetLinkSent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountEventKind::PasswordReset => "passwordReset",
            AccountEventKind::PasswordChanged => "passwordChanged",
            AccountEventKind::ProfileUpdated => "profileUpdated",
            AccountEventKind::ResetBlocked => "resetBlocked",
            AccountEventKind::ResetLinkSent => "resetLinkSent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One [`AccountEventKind`] of one user, when and through which application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEvent {
    pub id: String,
    pub user_id: String,
    pub kind: AccountEventKind,
    pub at: DateTime<Utc>,
    pub client_id: Option<String>,
    pub flow_id: Option<String>,
}
