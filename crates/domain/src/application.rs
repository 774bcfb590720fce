//! Applications (OAuth 2.0 clients) that people sign up to.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientType {
    /// A browser or native app that cannot keep a secret: PKCE is required.
    Public,
    /// A server-side app; `secret_hash` is an Argon2id PHC string.
    Confidential { secret_hash: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub client_type: ClientType,
    /// The user flow people sign up and sign in with.
    pub user_flow_id: String,
    /// Application permissions granted to this client for the client-credentials grant
    /// (Graph-named, e.g. `User.Read.All`); they go into the access token's `roles`.
    pub roles: Vec<String>,
}

/// The client id of Usher's own admin console, which signs administrators in through
/// a user flow of the tenant: it never offers a sign-up (an administrator is a user
/// who was given the role, not someone who signs themselves up).
pub const CONSOLE_CLIENT_ID: &str = "usher-console";

impl Application {
    /// Whether people may sign themselves up through this application (all but the
    /// admin console).
    pub fn offers_sign_up(&self) -> bool {
        self.client_id != CONSOLE_CLIENT_ID
    }

    pub fn is_public(&self) -> bool {
        matches!(self.client_type, ClientType::Public)
    }

    /// Redirect URIs match exactly, as OAuth 2.0 Security BCP requires.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|u| u == uri)
    }
}
