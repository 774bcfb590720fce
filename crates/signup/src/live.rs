//! The live tenant: the stored tenant compiled into what runs it — its step
//! connectors and its upstream identity providers — rebuilt when an administrator
//! changes the stored tenant (on any instance). A rebuild keeps the live state (circuit
//! breakers, tokens, connections) of every connector whose definition did not change.

use std::sync::{Arc, RwLock};

use usher_connectors::{
    BreakerState, ConnectorRunner, Metrics, RunnerSettings, StepConnectors, TokenSigner,
};
use usher_domain::{Clock, Identity, Tenant};
use usher_federation::{
    AuthorizationRequest, Completion, ExternalIdentity, Federation, FederationError,
    FederationSettings,
};
use usher_storage::Store;
use usher_tenant::{TenantService, TenantSnapshot};

/// An upstream provider's configured id and the name its button shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderName {
    pub id: String,
    pub display_name: String,
}

/// The upstream identity providers of the tenant, as the engine uses them.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync {
    /// Provider `id` (matched as the tenant matches ids) as configured; `None` if the
    /// tenant has no such provider.
    fn provider(&self, id: &str) -> Option<ProviderName>;
    /// The provider whose identities `identity` is one of (see
    /// [`Federation::provider_for`]).
    fn provider_for(&self, identity: &Identity) -> Option<String>;
    /// Whether provider `id` takes on stored identities with its short issuer and no
    /// exact issuer (see [`Federation::takes_on_unresolved`]).
    fn takes_on_unresolved(&self, id: &str) -> bool;
    /// (short issuer, exact issuer) of each provider that owns stored identities.
    fn identity_owners(&self) -> Vec<(String, String)>;
    /// Where to send the browser to sign in at provider `id`.
    async fn authorization_url(
        &self,
        id: &str,
        request: &AuthorizationRequest<'_>,
    ) -> Result<String, FederationError>;
    /// Redeems the provider's code for the identity it vouches for.
    async fn complete(
        &self,
        id: &str,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError>;
}

#[async_trait::async_trait]
impl Upstream for Federation {
    fn provider(&self, id: &str) -> Option<ProviderName> {
        Federation::provider(self, id).map(|p| ProviderName {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
        })
    }

    fn provider_for(&self, identity: &Identity) -> Option<String> {
        Federation::provider_for(self, identity).map(|p| p.id.clone())
    }

    fn takes_on_unresolved(&self, id: &str) -> bool {
        Federation::takes_on_unresolved(self, id)
    }

    fn identity_owners(&self) -> Vec<(String, String)> {
        Federation::identity_owners(self)
    }

    async fn authorization_url(
        &self,
        id: &str,
        request: &AuthorizationRequest<'_>,
    ) -> Result<String, FederationError> {
        Federation::authorization_url(self, id, request).await
    }

    async fn complete(
        &self,
        id: &str,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        Federation::complete(self, id, completion).await
    }
}

/// A tenant snapshot with what runs it.
pub struct Compiled {
    pub snapshot: Arc<TenantSnapshot>,
    pub connectors: Arc<dyn StepConnectors>,
    /// The same runner as `connectors`, typed, when it is Usher's own: its breakers
    /// are shown by the console and `/metrics`, and carried over to the next build.
    pub runner: Option<Arc<ConnectorRunner>>,
    pub upstream: Arc<dyn Upstream>,
}

/// Compiles a stored tenant; `previous` is the compiled tenant it replaces.
pub trait CompileTenant: Send + Sync {
    fn compile(
        &self,
        previous: Option<&Compiled>,
        snapshot: Arc<TenantSnapshot>,
    ) -> Result<Compiled, FederationError>;
}

/// Usher's own compiler: the connector runner and the federation client.
pub struct RunnerCompiler {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub runner_settings: RunnerSettings,
    pub federation_settings: FederationSettings,
    /// Signs the tokens connectors authenticated by an issued token carry.
    pub signer: Option<Arc<dyn TokenSigner>>,
}

/// Signs connectors' issued tokens with the tenant's token keys, so an API checks
/// them against Usher's JWKS as it would Entra's.
pub struct KeySigner {
    pub keys: Arc<usher_oidc::keys::KeyManager>,
    /// The tokens' `iss`: Usher's issuer URL.
    pub issuer: String,
}

#[async_trait::async_trait]
impl TokenSigner for KeySigner {
    fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let keyring = self.keys.keyring().await.map_err(|e| e.to_string())?;
        keyring
            .signing
            .sign_jwt("JWT", claims)
            .map_err(|e| e.to_string())
    }
}

impl CompileTenant for RunnerCompiler {
    fn compile(
        &self,
        previous: Option<&Compiled>,
        snapshot: Arc<TenantSnapshot>,
    ) -> Result<Compiled, FederationError> {
        let tenant = Arc::new(snapshot.tenant.clone());
        let runner = Arc::new(match previous.and_then(|p| p.runner.as_ref()) {
            Some(previous) => previous.succeed(
                snapshot.connectors.clone(),
                tenant,
                self.runner_settings.clone(),
            ),
            None => match &self.signer {
                Some(signer) => ConnectorRunner::with_signer(
                    snapshot.connectors.clone(),
                    tenant,
                    self.store.clone(),
                    self.clock.clone(),
                    self.runner_settings.clone(),
                    self.metrics.clone(),
                    signer.clone(),
                ),
                None => ConnectorRunner::new(
                    snapshot.connectors.clone(),
                    tenant,
                    self.store.clone(),
                    self.clock.clone(),
                    self.runner_settings.clone(),
                    self.metrics.clone(),
                ),
            },
        });
        let federation = Federation::new(
            snapshot.identity_providers.clone(),
            self.federation_settings.clone(),
            self.clock.clone(),
        )?;
        Ok(Compiled {
            snapshot,
            connectors: runner.clone(),
            runner: Some(runner),
            upstream: Arc::new(federation),
        })
    }
}

/// The tenant a request reads (derefs to [`Tenant`]).
#[derive(Clone)]
pub struct TenantRef(Arc<Compiled>);

impl std::ops::Deref for TenantRef {
    type Target = Tenant;
    fn deref(&self) -> &Tenant {
        &self.0.snapshot.tenant
    }
}

/// The stored tenant and its compiled form, as of the last refresh.
pub struct Live {
    pub tenants: Arc<TenantService>,
    store: Arc<dyn Store>,
    compiler: Arc<dyn CompileTenant>,
    current: RwLock<Arc<Compiled>>,
}

impl Live {
    /// Compiles `snapshot` for a start; the store's identities without an exact
    /// issuer are given their owner's (see [`resolve_stored_identities`]).
    pub async fn start(
        tenants: Arc<TenantService>,
        store: Arc<dyn Store>,
        compiler: Arc<dyn CompileTenant>,
        snapshot: Arc<TenantSnapshot>,
    ) -> Result<Self, FederationError> {
        let compiled = compiler.compile(None, snapshot)?;
        resolve_stored_identities(store.as_ref(), compiled.upstream.as_ref()).await;
        Ok(Self {
            tenants,
            store,
            compiler,
            current: RwLock::new(Arc::new(compiled)),
        })
    }

    fn compiled(&self) -> Arc<Compiled> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The tenant as of the last refresh.
    pub fn tenant(&self) -> TenantRef {
        TenantRef(self.compiled())
    }

    /// The whole tenant as of the last refresh, connectors and providers included.
    pub fn snapshot(&self) -> Arc<TenantSnapshot> {
        self.compiled().snapshot.clone()
    }

    pub fn connectors(&self) -> Arc<dyn StepConnectors> {
        self.compiled().connectors.clone()
    }

    pub fn upstream(&self) -> Arc<dyn Upstream> {
        self.compiled().upstream.clone()
    }

    /// A connector's circuit breaker on this instance (breakers are per process);
    /// `None` for a connector the tenant does not have.
    pub fn breaker_state(&self, connector_id: &str) -> Option<BreakerState> {
        self.compiled()
            .runner
            .as_ref()
            .and_then(|r| r.breaker_state(connector_id))
    }

    /// Every connector's circuit breaker on this instance, by id.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.compiled()
            .runner
            .as_ref()
            .map(|r| r.breaker_states())
            .unwrap_or_default()
    }

    /// Brings the compiled tenant up to the stored version: one cheap version query,
    /// and a rebuild only when an administrator changed something. On a database
    /// error, or a changed tenant that cannot be compiled, the last good one serves.
    pub async fn refresh(&self) {
        let snapshot = match self.tenants.current().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the tenant; serving the last one read");
                return;
            }
        };
        let current = self.compiled();
        if current.snapshot.version == snapshot.version {
            return;
        }
        match self.compiler.compile(Some(&current), snapshot) {
            Ok(c) => {
                tracing::info!(version = c.snapshot.version, "tenant configuration changed");
                let upstream = c.upstream.clone();
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(c);
                resolve_stored_identities(self.store.as_ref(), upstream.as_ref()).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "the changed tenant cannot be used; keeping the previous one");
            }
        }
    }
}

/// Gives the stored federated identities that have no exact issuer the one of the
/// provider that owns them (see [`Federation::identity_owners`]), when Usher starts and
/// after each tenant change: identities stored before exact issuers were kept, and
/// those an administrator entered, then sign in exactly as before, and a provider
/// added later on the same host cannot take them on. A failure is logged; the owner
/// still takes each one on when its user signs in.
pub async fn resolve_stored_identities(store: &dyn Store, upstream: &dyn Upstream) {
    for (issuer, exact_issuer) in upstream.identity_owners() {
        match store.resolve_identities(&issuer, &exact_issuer).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(%issuer, %exact_issuer, identities = n, "stored identities given their provider's exact issuer");
            }
            Err(e) => {
                tracing::warn!(%issuer, error = %e, "could not give stored identities their exact issuer");
            }
        }
    }
}
