//! [`TenantService`]: the stored tenant as every instance sees it, cached per
//! instance and reloaded when the stored version moves, and the writes that move it.
//!
//! The version is the whole protocol between instances: every write bumps it in the
//! transaction that makes the change, and every read of the tenant starts by asking
//! for it. An instance therefore serves an edit made anywhere from its next request
//! on, at the price of one single-row query per request.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use usher_domain::identity_provider::ProviderConfig;
use usher_domain::{
    Application, AttributeDefinition, ConnectorDefinition, EventListener, UserFlow,
};
use usher_oidc::crypto::{HmacKey, MasterKey};
use usher_storage::{StorageError, TenantObject, TenantObjects, TenantRepository};

use crate::diff::{self, Change};
use crate::document::{self, Doc, SecretMode};
use crate::{TenantError, TenantSnapshot};

/// How often a checked delete re-reads and re-checks when other writes keep landing
/// between its check and its delete, before giving up with `Conflict`.
const DELETE_ATTEMPTS: usize = 5;

/// The HMAC purpose of the secret fingerprints diffs compare.
const FINGERPRINT_PURPOSE: &str = "tenant-diff";

/// The tenant, stored in the database and cached in memory.
pub struct TenantService {
    store: Arc<dyn TenantRepository>,
    master: Arc<MasterKey>,
    fingerprints: HmacKey,
    cache: Mutex<Option<Arc<TenantSnapshot>>>,
    /// One reload at a time, so callers arriving during a reload share its result.
    reload: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TenantService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantService")
            .field("cached_version", &self.cached().map(|s| s.version))
            .finish_non_exhaustive()
    }
}

impl TenantService {
    /// `store` may be any repository handle, e.g. `Arc<dyn Store>` or
    /// `Arc<dyn TenantRepository>`; `master` a `MasterKey` or `Arc<MasterKey>`.
    pub fn new<S>(store: Arc<S>, master: impl Into<Arc<MasterKey>>) -> Self
    where
        S: TenantRepository + ?Sized + 'static,
    {
        let master = master.into();
        Self {
            store: Arc::new(Shared(store)),
            fingerprints: master.hmac_key(FINGERPRINT_PURPOSE),
            master,
            cache: Mutex::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// The current snapshot: one version query, and a reload only when the version
    /// differs from the cached snapshot's.
    pub async fn current(&self) -> Result<Arc<TenantSnapshot>, TenantError> {
        let version = self.store.tenant_version().await?;
        if let Some(snapshot) = self.cached().filter(|s| s.version == version) {
            return Ok(snapshot);
        }
        let _reloading = self.reload.lock().await;
        // Whoever held the lock may have just loaded this very version.
        if let Some(snapshot) = self.cached().filter(|s| s.version == version) {
            return Ok(snapshot);
        }
        let snapshot = Arc::new(document::snapshot(
            self.store.tenant_objects().await?,
            &self.master,
        )?);
        // Replaced even by an older version: a database restored from a backup is
        // what every instance must then serve.
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(snapshot.clone());
        tracing::debug!(version = snapshot.version, "loaded the tenant");
        Ok(snapshot)
    }

    /// Stores `desired` if the tenant has never been stored, atomically: of several
    /// instances starting together, one stores it and the others load it. Returns the
    /// current snapshot and whether it differs from `desired` (the file changed since
    /// the database was seeded, or the tenant was edited since).
    pub async fn seed(
        &self,
        desired: &TenantSnapshot,
    ) -> Result<(Arc<TenantSnapshot>, bool), TenantError> {
        if self.store.tenant_version().await? == 0 {
            desired.check()?;
            let objects = self.sealed(desired)?;
            match self.store.replace_tenant(&objects, 0).await {
                Ok(version) => tracing::info!(version, "stored the configured tenant"),
                // Another instance seeded first; what it stored is loaded below.
                Err(StorageError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let current = self.current().await?;
        let differs = !self.changes(&current, desired)?.is_empty();
        Ok((current, differs))
    }

    /// What `apply` would change.
    pub async fn diff(&self, desired: &TenantSnapshot) -> Result<Vec<Change>, TenantError> {
        let current = self.current().await?;
        self.changes(&current, desired)
    }

    /// Makes the stored tenant `desired`, in one transaction, and returns what changed.
    /// Nothing is written (and the version stays) when nothing differs. `Conflict` if
    /// the tenant changed between the comparison and the write; nothing is written
    /// then either.
    pub async fn apply(&self, desired: &TenantSnapshot) -> Result<Vec<Change>, TenantError> {
        let current = self.current().await?;
        let changes = self.changes(&current, desired)?;
        if changes.is_empty() {
            return Ok(changes);
        }
        desired.check()?;
        let objects = self.sealed(desired)?;
        let version = self.store.replace_tenant(&objects, current.version).await?;
        tracing::info!(version, changes = changes.len(), "applied the tenant");
        Ok(changes)
    }

    /// Adds or replaces a user flow (its id matched without regard to case); returns
    /// the new version.
    pub async fn put_user_flow(&self, flow: &UserFlow) -> Result<i64, TenantError> {
        self.current().await?.check_user_flow(flow)?;
        self.put(document::user_flow_doc(flow)?).await
    }

    pub async fn put_user_flow_if(
        &self,
        flow: &UserFlow,
        expected: Option<&[String]>,
    ) -> Result<i64, TenantError> {
        self.current().await?.check_user_flow(flow)?;
        self.put_checked(document::user_flow_doc(flow)?, expected)
            .await
    }

    /// `InUse` while an application signs people up with it.
    pub async fn delete_user_flow(&self, id: &str) -> Result<bool, TenantError> {
        self.delete_user_flow_if(id, None).await
    }

    /// As `delete_user_flow`, if the flow's `ETag` is one of `expected` (when given);
    /// `PreconditionFailed` otherwise.
    pub async fn delete_user_flow_if(
        &self,
        id: &str,
        expected: Option<&[String]>,
    ) -> Result<bool, TenantError> {
        self.delete_checked(document::USER_FLOW, id, expected, |s| {
            s.tenant
                .applications
                .iter()
                .find(|a| a.user_flow_id.eq_ignore_ascii_case(id))
                .map(|a| format!("{} {}", document::APPLICATION, a.client_id))
        })
        .await
    }

    pub async fn put_application(&self, app: &Application) -> Result<i64, TenantError> {
        self.current().await?.check_application(app)?;
        self.put(document::application_doc(app)?).await
    }

    /// As `put_application`, if the application's `ETag` is one of `expected` (when
    /// given); `PreconditionFailed` otherwise.
    pub async fn put_application_if(
        &self,
        app: &Application,
        expected: Option<&[String]>,
    ) -> Result<i64, TenantError> {
        self.current().await?.check_application(app)?;
        self.put_checked(document::application_doc(app)?, expected)
            .await
    }

    pub async fn delete_application(&self, client_id: &str) -> Result<bool, TenantError> {
        self.delete_application_if(client_id, None).await
    }

    pub async fn delete_application_if(
        &self,
        client_id: &str,
        expected: Option<&[String]>,
    ) -> Result<bool, TenantError> {
        self.delete_checked(document::APPLICATION, client_id, expected, |_| None)
            .await
    }

    pub async fn put_custom_attribute(
        &self,
        attribute: &AttributeDefinition,
    ) -> Result<i64, TenantError> {
        self.put(document::attribute_doc(attribute)?).await
    }

    pub async fn put_custom_attribute_if(
        &self,
        attribute: &AttributeDefinition,
        expected: Option<&[String]>,
    ) -> Result<i64, TenantError> {
        self.put_checked(document::attribute_doc(attribute)?, expected)
            .await
    }

    /// `id` may be the short form `extension_<Name>`. `InUse` while a user flow
    /// collects it or returns it as a claim.
    pub async fn delete_custom_attribute(&self, id: &str) -> Result<bool, TenantError> {
        self.delete_custom_attribute_if(id, None).await
    }

    pub async fn delete_custom_attribute_if(
        &self,
        id: &str,
        expected: Option<&[String]>,
    ) -> Result<bool, TenantError> {
        // The short form expands with the extensions app id of the moment.
        let full = self.current().await?.tenant.full_extension_id(id);
        self.delete_checked(document::ATTRIBUTE, &full, expected, |s| {
            let same = |other: &str| {
                s.tenant
                    .full_extension_id(other)
                    .eq_ignore_ascii_case(&full)
            };
            s.tenant
                .user_flows
                .iter()
                .find(|f| {
                    f.attributes.iter().any(|a| same(&a.attribute_id))
                        || f.extra_claims.iter().any(|c| same(c))
                })
                .map(|f| format!("{} {}", document::USER_FLOW, f.id))
        })
        .await
    }

    pub async fn put_connector(&self, connector: &ConnectorDefinition) -> Result<i64, TenantError> {
        self.put_connector_if(connector, None).await
    }

    pub async fn put_connector_if(
        &self,
        connector: &ConnectorDefinition,
        expected: Option<&[String]>,
    ) -> Result<i64, TenantError> {
        let doc = document::connector_doc(connector, &SecretMode::Seal(&self.master))?;
        self.put_checked(doc, expected).await
    }

    /// `InUse` while a user flow calls it at any step.
    pub async fn delete_connector(&self, id: &str) -> Result<bool, TenantError> {
        self.delete_connector_if(id, None).await
    }

    pub async fn delete_connector_if(
        &self,
        id: &str,
        expected: Option<&[String]>,
    ) -> Result<bool, TenantError> {
        self.delete_checked(document::CONNECTOR, id, expected, |s| {
            s.tenant
                .user_flows
                .iter()
                .find(|f| {
                    f.connectors
                        .iter()
                        .any(|(_, ids)| ids.iter().any(|c| c.eq_ignore_ascii_case(id)))
                })
                .map(|f| format!("{} {}", document::USER_FLOW, f.id))
                .or_else(|| {
                    s.event_listeners
                        .iter()
                        .find(|l| l.extension_id.eq_ignore_ascii_case(id))
                        .map(|l| format!("{} {}", document::EVENT_LISTENER, l.id))
                })
        })
        .await
    }

    /// Adds or replaces an event listener; `Invalid` unless its extension exists
    /// and has an event at the listener's step.
    pub async fn put_event_listener_if(
        &self,
        listener: &EventListener,
        expected: Option<&[String]>,
    ) -> Result<i64, TenantError> {
        self.current().await?.check_listener(listener)?;
        self.put_checked(document::listener_doc(listener)?, expected)
            .await
    }

    pub async fn delete_event_listener_if(
        &self,
        id: &str,
        expected: Option<&[String]>,
    ) -> Result<bool, TenantError> {
        self.delete_checked(document::EVENT_LISTENER, id, expected, |_| None)
            .await
    }

    pub async fn put_identity_provider(
        &self,
        provider: &ProviderConfig,
    ) -> Result<i64, TenantError> {
        self.put_identity_provider_if(provider, None).await
    }

    pub async fn put_identity_provider_if(
        &self,
        provider: &ProviderConfig,
        expected: Option<&[String]>,
    ) -> Result<i64, TenantError> {
        let doc = document::provider_doc(provider, &SecretMode::Seal(&self.master))?;
        self.put_checked(doc, expected).await
    }

    /// `InUse` while a user flow offers it.
    pub async fn delete_identity_provider(&self, id: &str) -> Result<bool, TenantError> {
        self.delete_identity_provider_if(id, None).await
    }

    pub async fn delete_identity_provider_if(
        &self,
        id: &str,
        expected: Option<&[String]>,
    ) -> Result<bool, TenantError> {
        self.delete_checked(document::IDENTITY_PROVIDER, id, expected, |s| {
            s.tenant
                .user_flows
                .iter()
                .find(|f| {
                    f.identity_providers
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(id))
                })
                .map(|f| format!("{} {}", document::USER_FLOW, f.id))
        })
        .await
    }

    pub async fn set_extensions_app_id(&self, id: &str) -> Result<i64, TenantError> {
        self.put(document::settings_doc(id)?).await
    }

    fn cached(&self) -> Option<Arc<TenantSnapshot>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes one object whatever the version: edits of different objects never
    /// conflict, and the last edit of one object wins, as the admin API wants.
    async fn put(&self, doc: Doc) -> Result<i64, TenantError> {
        let (kind, id) = (doc.kind, doc.id.clone());
        let version = self
            .store
            .put_tenant_object(&doc.into_object(), None)
            .await?;
        tracing::info!(kind, id, version, "stored a tenant object");
        Ok(version)
    }

    /// The `ETag` of one object of `snapshot` (`kind` one of `document::KINDS`), or
    /// `None` if it has no such object: a keyed hash of the object's document with
    /// its secrets as fingerprints, so any change of the object (a secret included)
    /// changes it, a change of another object does not, and it reveals nothing.
    pub fn etag(
        &self,
        snapshot: &TenantSnapshot,
        kind: &str,
        id: &str,
    ) -> Result<Option<String>, TenantError> {
        let key = document::key(id);
        let mode = SecretMode::Fingerprint(&self.fingerprints);
        Ok(document::docs(snapshot, &mode)?
            .into_iter()
            .find(|d| d.kind == kind && d.key == key)
            .map(|d| {
                let text = format!("{}\n{}\n{}", d.kind, d.key, d.document);
                let tag = self.fingerprints.sign_hex(text.as_bytes());
                tag[..32.min(tag.len())].to_owned()
            }))
    }

    /// Writes one object if its `ETag` is one of `expected` (`None`: whatever it is).
    /// The check and the write are tied to one version; a write of another object
    /// in between makes it check again rather than fail.
    async fn put_checked(&self, doc: Doc, expected: Option<&[String]>) -> Result<i64, TenantError> {
        let Some(expected) = expected else {
            return self.put(doc).await;
        };
        let (kind, key) = (doc.kind, doc.key.clone());
        let object = doc.into_object();
        for _ in 0..DELETE_ATTEMPTS {
            let snapshot = self.current().await?;
            self.check_etag(&snapshot, kind, &key, expected)?;
            match self
                .store
                .put_tenant_object(&object, Some(snapshot.version))
                .await
            {
                Ok(version) => {
                    tracing::info!(kind, id = key, version, "stored a tenant object");
                    return Ok(version);
                }
                Err(StorageError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(TenantError::Conflict)
    }

    fn check_etag(
        &self,
        snapshot: &TenantSnapshot,
        kind: &str,
        key: &str,
        expected: &[String],
    ) -> Result<(), TenantError> {
        match self.etag(snapshot, kind, key)? {
            Some(tag) if expected.contains(&tag) => Ok(()),
            _ => Err(TenantError::PreconditionFailed),
        }
    }

    /// Deletes unless `used_by` names something that refers to the object (or its
    /// `ETag` is not one of `expected`, when given). The checks and the delete are
    /// tied to one version, so a reference added meanwhile (by another instance,
    /// say) makes the delete retry rather than succeed.
    async fn delete_checked(
        &self,
        kind: &'static str,
        id: &str,
        expected: Option<&[String]>,
        used_by: impl Fn(&TenantSnapshot) -> Option<String>,
    ) -> Result<bool, TenantError> {
        let key = document::key(id);
        for _ in 0..DELETE_ATTEMPTS {
            let snapshot = self.current().await?;
            if let Some(expected) = expected {
                self.check_etag(&snapshot, kind, &key, expected)?;
            }
            if let Some(by) = used_by(&snapshot) {
                return Err(TenantError::InUse {
                    kind,
                    id: id.to_owned(),
                    by,
                });
            }
            match self
                .store
                .delete_tenant_object(kind, &key, Some(snapshot.version))
                .await
            {
                Ok(Some(version)) => {
                    tracing::info!(kind, id, version, "deleted a tenant object");
                    return Ok(true);
                }
                Ok(None) => return Ok(false),
                Err(StorageError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(TenantError::Conflict)
    }

    fn sealed(&self, snapshot: &TenantSnapshot) -> Result<Vec<TenantObject>, TenantError> {
        Ok(document::docs(snapshot, &SecretMode::Seal(&self.master))?
            .into_iter()
            .map(Doc::into_object)
            .collect())
    }

    fn changes(
        &self,
        current: &TenantSnapshot,
        desired: &TenantSnapshot,
    ) -> Result<Vec<Change>, TenantError> {
        let mode = SecretMode::Fingerprint(&self.fingerprints);
        // A tenant never stored has no objects at all, not an empty settings object.
        let current = if current.version == 0 {
            Vec::new()
        } else {
            document::docs(current, &mode)?
        };
        Ok(diff::changes(&current, &document::docs(desired, &mode)?))
    }
}

/// Lets `new` take any repository handle (including `Arc<dyn Store>`) without relying
/// on trait-object upcasting, which is newer than the workspace's minimum Rust.
struct Shared<S: ?Sized>(Arc<S>);

#[async_trait]
impl<S> TenantRepository for Shared<S>
where
    S: TenantRepository + ?Sized + 'static,
{
    async fn tenant_version(&self) -> usher_storage::Result<i64> {
        self.0.tenant_version().await
    }

    async fn tenant_objects(&self) -> usher_storage::Result<TenantObjects> {
        self.0.tenant_objects().await
    }

    async fn replace_tenant(
        &self,
        objects: &[TenantObject],
        expected_version: i64,
    ) -> usher_storage::Result<i64> {
        self.0.replace_tenant(objects, expected_version).await
    }

    async fn put_tenant_object(
        &self,
        object: &TenantObject,
        expected_version: Option<i64>,
    ) -> usher_storage::Result<i64> {
        self.0.put_tenant_object(object, expected_version).await
    }

    async fn delete_tenant_object(
        &self,
        kind: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> usher_storage::Result<Option<i64>> {
        self.0
            .delete_tenant_object(kind, id, expected_version)
            .await
    }
}
