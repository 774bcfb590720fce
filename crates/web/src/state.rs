//! What every handler receives: the store, the tenant, keys, clock, randomness,
//! templates, mail and settings.

use std::sync::{Arc, Mutex, RwLock};

use chrono::Duration;
use rand::{rngs::StdRng, RngCore, SeedableRng};
use usher_connectors::{BreakerState, ConnectorRunner, Metrics, RunnerSettings};
use usher_domain::{Clock, Tenant};
use usher_federation::{Federation, FederationSettings};
use usher_oidc::{crypto::HmacKey, keys::KeyManager};
use usher_storage::Store;
use usher_tenant::{TenantService, TenantSnapshot};

use crate::{
    connectors::StepConnectors, hasher::PasswordHasher, mail::Mailer, templates::Templates,
};

/// Lifetimes of what the token endpoint and the sign-in issue.
#[derive(Debug, Clone)]
pub struct Lifetimes {
    pub authorization_code: Duration,
    pub access_token: Duration,
    pub id_token: Duration,
    pub refresh_token: Duration,
    pub session: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            authorization_code: Duration::seconds(60),
            access_token: Duration::hours(1),
            id_token: Duration::hours(1),
            refresh_token: Duration::days(14),
            session: Duration::hours(24),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer URL, without a trailing slash.
    pub issuer: String,
    pub lifetimes: Lifetimes,
    /// The demo application's client id, when the demo is served.
    pub demo_client_id: Option<String>,
    /// How long a shutdown drains: `/health/ready` fails, requests are still served.
    pub shutdown_drain: std::time::Duration,
}

impl Settings {
    /// Cookies are `Secure` whenever the issuer is https.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The issuer of local accounts' identities: the issuer URL's host.
    pub fn local_issuer(&self) -> String {
        url::Url::parse(&self.issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| self.issuer.clone())
    }
}

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    /// The tenant as stored in the database; see [`AppState::refresh_tenant`].
    pub tenants: Arc<TenantService>,
    /// The current tenant, compiled: what requests read.
    pub compiled: RwLock<Arc<Compiled>>,
    /// What compiling a tenant needs besides the tenant.
    pub runner_settings: RunnerSettings,
    pub federation_settings: FederationSettings,
    pub keys: Arc<KeyManager>,
    pub clock: Arc<dyn Clock>,
    pub rng: Mutex<StdRng>,
    pub templates: Arc<Templates>,
    pub mailer: Arc<Mailer>,
    pub hasher: PasswordHasher,
    /// Confidential clients' secrets, on their own cores and remembered once right.
    pub client_secrets: crate::hasher::ClientSecrets,
    /// Connector call counts and latencies, served at `/metrics`.
    pub metrics: Arc<usher_connectors::Metrics>,
    pub settings: Settings,
    /// Rate limits across flows and instances.
    pub throttle: crate::throttle::Throttle,
    /// Keys email codes and the demo's cookie.
    pub code_key: HmacKey,
    pub cookie_key: HmacKey,
    /// Set when a shutdown begins: from then on the instance is not ready (its own
    /// state, not the cluster's).
    pub draining: std::sync::atomic::AtomicBool,
}

/// A tenant snapshot with what runs it: its connectors' client and its upstream
/// identity providers. Rebuilt when the stored tenant's version moves.
pub struct Compiled {
    pub snapshot: Arc<TenantSnapshot>,
    pub connectors: Arc<dyn StepConnectors>,
    /// The same runner as `connectors`, typed: the console reads its breakers.
    pub runner: Arc<ConnectorRunner>,
    pub federation: Arc<Federation>,
}

impl Compiled {
    /// `previous`: the compiled tenant this one replaces, whose connectors' live state
    /// (breakers, tokens, connections) carries over where their definitions agree.
    pub fn build(
        previous: Option<&Compiled>,
        snapshot: Arc<TenantSnapshot>,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        metrics: &Arc<Metrics>,
        runner_settings: &RunnerSettings,
        federation_settings: &FederationSettings,
    ) -> Result<Self, usher_federation::FederationError> {
        let tenant = Arc::new(snapshot.tenant.clone());
        let runner = Arc::new(match previous {
            Some(previous) => previous.runner.succeed(
                snapshot.connectors.clone(),
                tenant,
                runner_settings.clone(),
            ),
            None => ConnectorRunner::new(
                snapshot.connectors.clone(),
                tenant,
                store.clone(),
                clock.clone(),
                runner_settings.clone(),
                metrics.clone(),
            ),
        });
        let federation = Arc::new(Federation::new(
            snapshot.identity_providers.clone(),
            federation_settings.clone(),
            clock.clone(),
        )?);
        Ok(Self {
            snapshot,
            connectors: runner.clone(),
            runner,
            federation,
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

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    fn compiled(&self) -> Arc<Compiled> {
        self.compiled
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The tenant as of the last refresh (the start of this request).
    pub fn tenant(&self) -> TenantRef {
        TenantRef(self.compiled())
    }

    pub fn connectors(&self) -> Arc<dyn StepConnectors> {
        self.compiled().connectors.clone()
    }

    pub fn federation(&self) -> Arc<Federation> {
        self.compiled().federation.clone()
    }

    /// The whole tenant as of the last refresh, connectors and providers included.
    pub fn snapshot(&self) -> Arc<TenantSnapshot> {
        self.compiled().snapshot.clone()
    }

    /// A connector's circuit breaker on this instance (breakers are per process);
    /// `None` for a connector the tenant does not have.
    pub fn breaker_state(&self, connector_id: &str) -> Option<BreakerState> {
        self.compiled().runner.breaker_state(connector_id)
    }

    /// Every connector's circuit breaker on this instance, by id, for `/metrics`.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.compiled().runner.breaker_states()
    }

    /// Brings the compiled tenant up to the stored version: one cheap version query,
    /// and a rebuild only when an admin changed something (on any instance). On a
    /// database error the last good tenant keeps serving.
    pub async fn refresh_tenant(&self) {
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
        match Compiled::build(
            Some(&current),
            snapshot,
            &self.store,
            &self.clock,
            &self.metrics,
            &self.runner_settings,
            &self.federation_settings,
        ) {
            Ok(c) => {
                tracing::info!(version = c.snapshot.version, "tenant configuration changed");
                let federation = c.federation.clone();
                *self
                    .compiled
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(c);
                resolve_stored_identities(self.store.as_ref(), &federation).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "the changed tenant cannot be used; keeping the previous one");
            }
        }
    }

    /// The instance is shutting down: `/health/ready` fails from now on.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `f` with the state's random number generator.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut *rng)
    }

    /// The display name of a configured upstream identity provider.
    pub fn federation_provider_label(&self, id: &str) -> Option<String> {
        self.federation()
            .provider(id)
            .map(|p| p.display_name.clone())
    }

    pub fn new_id(&self) -> String {
        self.with_rng(|r| usher_domain::id::new_uuid(r))
    }

    pub fn new_token(&self) -> String {
        self.with_rng(|r| usher_domain::id::new_secret_token(r))
    }
}

/// Gives the stored federated identities that have no exact issuer the one of the
/// provider that owns them (see [`Federation::identity_owners`]), when Usher starts and
/// after each tenant change: identities stored before exact issuers were kept, and
/// those an administrator entered, then sign in exactly as before, and a provider
/// added later on the same host cannot take them on. A failure is logged; the owner
/// still takes each one on when its user signs in.
pub async fn resolve_stored_identities(store: &dyn Store, federation: &Federation) {
    for (issuer, exact_issuer) in federation.identity_owners() {
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

/// A random generator seeded from the operating system, or from `seed` in tests.
pub fn rng(seed: Option<u64>) -> Mutex<StdRng> {
    Mutex::new(match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    })
}
