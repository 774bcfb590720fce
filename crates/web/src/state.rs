//! What every handler receives: the store, the tenant, keys, clock, randomness,
//! templates, mail and settings.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use rand::{rngs::StdRng, RngCore, SeedableRng};
use usher_domain::{Clock, Tenant};
use usher_oidc::{crypto::HmacKey, keys::KeyManager};
use usher_storage::Store;

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
    pub tenant: Arc<Tenant>,
    pub keys: Arc<KeyManager>,
    pub clock: Arc<dyn Clock>,
    pub rng: Mutex<StdRng>,
    pub templates: Arc<Templates>,
    pub mailer: Arc<Mailer>,
    pub hasher: PasswordHasher,
    pub connectors: Arc<dyn StepConnectors>,
    /// Connector call counts and latencies, served at `/metrics`.
    pub metrics: Arc<usher_connectors::Metrics>,
    pub settings: Settings,
    /// Upstream identity providers (Google, Microsoft, any OIDC provider, …).
    pub federation: Arc<usher_federation::Federation>,
    /// Keys email codes and the demo's cookie.
    pub code_key: HmacKey,
    pub cookie_key: HmacKey,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Runs `f` with the state's random number generator.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut *rng)
    }

    /// The display name of a configured upstream identity provider.
    pub fn federation_provider_label(&self, id: &str) -> Option<String> {
        self.federation.provider(id).map(|p| p.display_name.clone())
    }

    pub fn new_id(&self) -> String {
        self.with_rng(|r| usher_domain::id::new_uuid(r))
    }

    pub fn new_token(&self) -> String {
        self.with_rng(|r| usher_domain::id::new_secret_token(r))
    }
}

/// A random generator seeded from the operating system, or from `seed` in tests.
pub fn rng(seed: Option<u64>) -> Mutex<StdRng> {
    Mutex::new(match seed {
        Some(s) => StdRng::seed_from_u64(s),
        None => StdRng::from_entropy(),
    })
}
