//! Password hashing off the async runtime. Argon2id costs tens of milliseconds of CPU
//! and 19 MiB of memory per hash, so hashes run on the blocking pool with at most one
//! per core at a time; the rest wait their turn instead of starving the server.

use std::sync::Arc;

use rand::rngs::OsRng;
use tokio::sync::Semaphore;
use usher_domain::password::{hash_password, verify_password};

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so an unknown email takes
    /// as long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        let dummy = hash_password("usher dummy password for timing", &mut OsRng);
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy.into(),
        }
    }

    pub async fn hash(&self, password: String) -> String {
        let _permit = self.permits.acquire().await;
        tokio::task::spawn_blocking(move || hash_password(&password, &mut OsRng))
            .await
            .unwrap_or_default()
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is none,
    /// so both cases cost the same.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let _permit = self.permits.acquire().await;
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        ok && real
    }
}
