//! The tenant in the database: custom attributes, user flows, applications, API
//! connectors and upstream identity providers, stored as versioned objects
//! (`usher_storage::TenantRepository`) so that an edit made through one instance
//! takes effect on the next flow step of every instance, without a restart.
//!
//! [`TenantService`] is the whole interface. At start, [`TenantService::seed`] stores
//! the configuration file's tenant if the database has none; on every request,
//! [`TenantService::current`] costs one version query and reloads only when the
//! version moved. [`TenantService::diff`] and [`TenantService::apply`] bring the
//! database to what the file says; the `put_*`/`delete_*` methods edit one object.
//!
//! Every secret (connector credentials and signing secrets, identity provider client
//! secrets) is stored encrypted with the master key; see [`document`] for the stored
//! forms.

mod check;
pub mod diff;
pub mod document;
mod service;

use usher_domain::identity_provider::ProviderConfig;
use usher_domain::{ConnectorDefinition, EventListener, Tenant};
use usher_storage::StorageError;

pub use diff::{Change, ChangeAction, FieldChange};
pub use service::TenantService;

/// The whole tenant at one version.
#[derive(Debug, Clone)]
pub struct TenantSnapshot {
    /// The stored version this is a copy of; 0 when the tenant has never been stored.
    /// Ignored when the snapshot is an input (`seed`, `diff`, `apply`).
    pub version: i64,
    /// The extensions app id, custom attributes, user flows and applications.
    pub tenant: Tenant,
    pub connectors: Vec<ConnectorDefinition>,
    pub identity_providers: Vec<ProviderConfig>,
    /// Extensions run at token issuance or code delivery for some applications.
    pub event_listeners: Vec<EventListener>,
}

impl TenantSnapshot {
    /// A tenant to seed or apply (its version is irrelevant there, so 0).
    pub fn new(
        tenant: Tenant,
        connectors: Vec<ConnectorDefinition>,
        identity_providers: Vec<ProviderConfig>,
    ) -> Self {
        Self {
            version: 0,
            tenant,
            connectors,
            identity_providers,
            event_listeners: Vec::new(),
        }
    }

    /// The same tenant with these event listeners.
    #[must_use]
    pub fn with_listeners(mut self, event_listeners: Vec<EventListener>) -> Self {
        self.event_listeners = event_listeners;
        self
    }

    /// The event listener with this id, matched without regard to case.
    pub fn event_listener(&self, id: &str) -> Option<&EventListener> {
        self.event_listeners
            .iter()
            .find(|l| l.id.eq_ignore_ascii_case(id))
    }

    /// What a database that has never stored a tenant holds.
    pub fn empty() -> Self {
        Self::new(
            Tenant {
                extensions_app_id: String::new(),
                custom_attributes: Vec::new(),
                user_flows: Vec::new(),
                applications: Vec::new(),
            },
            Vec::new(),
            Vec::new(),
        )
    }

    /// The connector with this id, matched without regard to case as ids are unique
    /// that way.
    pub fn connector(&self, id: &str) -> Option<&ConnectorDefinition> {
        self.connectors
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(id))
    }

    /// The identity provider with this id, matched without regard to case.
    pub fn identity_provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.identity_providers
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id))
    }
}

// By hand: `ProviderConfig` does not implement `PartialEq`.
impl PartialEq for TenantSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.tenant == other.tenant
            && self.connectors == other.connectors
            && self.event_listeners == other.event_listeners
            && self.identity_providers.len() == other.identity_providers.len()
            && self
                .identity_providers
                .iter()
                .zip(&other.identity_providers)
                .all(|(a, b)| same_provider(a, b))
    }
}

impl Eq for TenantSnapshot {}

/// Every field compared, secrets included.
fn same_provider(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    // Destructured so that a field added to `ProviderConfig` cannot be forgotten here.
    let ProviderConfig {
        id,
        display_name,
        kind,
        client_id,
        client_secret,
        scopes,
        claim_mapping,
        endpoints,
        client_auth,
    } = a;
    *id == b.id
        && *display_name == b.display_name
        && *kind == b.kind
        && *client_id == b.client_id
        && *client_secret == b.client_secret
        && *scopes == b.scopes
        && *claim_mapping == b.claim_mapping
        && *endpoints == b.endpoints
        && *client_auth == b.client_auth
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant storage: {0}")]
    Storage(#[source] StorageError),
    /// A stored document could not be read as the object it should be.
    #[error("the stored tenant could not be read: {0}")]
    Corrupt(String),
    /// A stored secret did not decrypt: almost always a master key other than the one
    /// the tenant was stored with.
    #[error(
        "a secret of {kind} {id} could not be decrypted: the master key is not the one \
         the tenant was stored with (or the stored data was altered)"
    )]
    Decrypt { kind: String, id: String },
    /// A delete refused because another object refers to this one.
    #[error("{kind} {id} is in use by {by}")]
    InUse {
        kind: &'static str,
        id: String,
        /// What refers to it, e.g. `userFlow B2X_1_signup`.
        by: String,
    },
    /// The tenant changed between reading it and writing: read it again and retry.
    #[error("the tenant was changed meanwhile (by another instance or administrator); try again")]
    Conflict,
    /// A write conditioned on the object's `ETag` found the object changed since.
    #[error("the object was changed since the version the write was conditioned on")]
    PreconditionFailed,
    /// Two objects of one kind share an id (ids are unique without regard to case).
    #[error("{kind} {id} is given more than once (ids ignore case)")]
    Duplicate { kind: &'static str, id: String },
    /// An object that breaks a rule of its kind (see `ConnectorDefinition::check`).
    #[error("{kind} {id}: {reason}")]
    Invalid {
        kind: &'static str,
        id: String,
        reason: String,
    },
}

// By hand rather than `#[from]`: a storage conflict is this crate's `Conflict`.
impl From<StorageError> for TenantError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict => TenantError::Conflict,
            e => TenantError::Storage(e),
        }
    }
}
