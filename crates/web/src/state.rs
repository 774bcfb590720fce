//! What every handler receives: the sign-up engine (with the live tenant, the clock
//! and randomness), the store, keys, templates and settings.

use std::sync::Arc;

use chrono::Duration;
use rand::RngCore;
use usher_connectors::{BreakerState, RunnerSettings};
use usher_domain::Clock;
use usher_federation::FederationSettings;
use usher_oidc::{crypto::HmacKey, keys::KeyManager};
use usher_signup::{Engine, TenantRef};
use usher_storage::Store;
use usher_tenant::{TenantService, TenantSnapshot};

use crate::templates::Templates;

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
    /// The bearer token `/metrics` requires; without one `/metrics` is open in the
    /// demo and closed otherwise.
    pub metrics_token: Option<usher_domain::Secret>,
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
    /// The sign-up engine: every flow operation, and the live tenant.
    pub engine: Arc<Engine>,
    /// The engine's store, for the admin API, the console and the token endpoints.
    pub store: Arc<dyn Store>,
    /// The tenant as stored in the database (the engine's live tenant compiles it).
    pub tenants: Arc<TenantService>,
    /// What connector and provider definitions are checked against.
    pub runner_settings: RunnerSettings,
    pub federation_settings: FederationSettings,
    pub keys: Arc<KeyManager>,
    pub clock: Arc<dyn Clock>,
    pub templates: Arc<Templates>,
    /// Confidential clients' secrets, on their own cores and remembered once right.
    pub client_secrets: crate::hasher::ClientSecrets,
    /// Connector call counts and latencies, served at `/metrics`.
    pub metrics: Arc<usher_connectors::Metrics>,
    pub settings: Settings,
    /// Keys the demo's cookie.
    pub cookie_key: HmacKey,
    /// Set when a shutdown begins: from then on the instance is not ready (its own
    /// state, not the cluster's).
    pub draining: std::sync::atomic::AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The tenant as of the last refresh (the start of this request).
    pub fn tenant(&self) -> TenantRef {
        self.engine.live.tenant()
    }

    /// The whole tenant as of the last refresh, connectors and providers included.
    pub fn snapshot(&self) -> Arc<TenantSnapshot> {
        self.engine.live.snapshot()
    }

    /// A connector's circuit breaker on this instance (breakers are per process);
    /// `None` for a connector the tenant does not have.
    pub fn breaker_state(&self, connector_id: &str) -> Option<BreakerState> {
        self.engine.live.breaker_state(connector_id)
    }

    /// Every connector's circuit breaker on this instance, by id, for `/metrics`.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.engine.live.breaker_states()
    }

    /// Brings the compiled tenant up to the stored version (see [`usher_signup::Live::refresh`]).
    pub async fn refresh_tenant(&self) {
        self.engine.live.refresh().await;
    }

    /// The instance is shutting down: `/health/ready` fails from now on.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `f` with the instance's random number generator.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        self.engine.random.with(f)
    }

    /// The display name of a configured upstream identity provider.
    pub fn federation_provider_label(&self, id: &str) -> Option<String> {
        self.engine
            .live
            .upstream()
            .provider(id)
            .map(|p| p.display_name)
    }

    pub fn new_id(&self) -> String {
        self.engine.random.new_id()
    }

    pub fn new_token(&self) -> String {
        self.engine.random.new_token()
    }

    pub async fn rate_reserve(
        &self,
        limits: &[(usher_domain::Limit, Option<&str>)],
    ) -> Result<crate::throttle::Reservation, crate::throttle::Throttled> {
        self.engine.reserve(limits).await
    }

    pub async fn rate_release(&self, reservation: crate::throttle::Reservation) {
        self.engine.release(reservation).await;
    }
}
