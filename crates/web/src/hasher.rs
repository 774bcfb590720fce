//! Password hashing off the async runtime. Argon2id costs tens of milliseconds of CPU
//! and 19 MiB of memory per hash, so hashes run on the blocking pool with at most one
//! per core at a time; the rest wait their turn instead of starving the server.

use std::sync::Arc;

use rand::rngs::OsRng;
use tokio::sync::Semaphore;
use usher_domain::password::{hash_password, verify_password};

/// How long a verification waits for a core before giving up.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Every core is busy hashing and the wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the account does not exist, so an unknown email takes
    /// as long as a wrong password.
    dummy_hash: Arc<str>,
    queue_wait: std::time::Duration,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        let dummy = hash_password("usher dummy password for timing", &mut OsRng);
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy.into(),
            queue_wait: QUEUE_WAIT,
        }
    }

    pub async fn hash(&self, password: String) -> String {
        let _permit = self.permits.acquire().await;
        tokio::task::spawn_blocking(move || hash_password(&password, &mut OsRng))
            .await
            .unwrap_or_default()
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is none,
    /// so both cases cost the same. When every core has been hashing for a while
    /// (a burst of guesses), it answers [`Busy`] instead of queueing without end, so
    /// the server stays responsive and the caller can say "try again shortly".
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        let _permit = tokio::time::timeout(self.queue_wait, self.permits.acquire())
            .await
            .map_err(|_| Busy)?;
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_saturated_hasher_says_busy_instead_of_queueing() {
        let mut hasher = PasswordHasher::new(1);
        hasher.queue_wait = std::time::Duration::from_millis(50);
        let hash = hasher.hash("correct horse battery".into()).await;
        assert_eq!(
            hasher
                .verify("correct horse battery".into(), Some(hash.clone()))
                .await,
            Ok(true)
        );
        assert_eq!(hasher.verify("wrong".into(), None).await, Ok(false));
        // Every permit taken (a burst in progress): the next verification gives up.
        let _held = hasher.permits.clone().acquire_owned().await.unwrap();
        assert_eq!(
            hasher
                .verify("correct horse battery".into(), Some(hash))
                .await,
            Err(Busy)
        );
    }
}
