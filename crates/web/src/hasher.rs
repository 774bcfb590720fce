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

/// How long a client-secret verification waits for a core: machine clients retry.
const CLIENT_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// Clients remembered at once; beyond it the memory starts over.
const MAX_REMEMBERED_CLIENTS: usize = 10_000;

/// Confidential clients' secrets, checked without Argon2 on every token request.
///
/// A secret that verified once against a client's stored Argon2id hash is remembered
/// as an HMAC (keyed from the master key) of client id and secret, next to the hash
/// it verified against: the same secret again costs one HMAC and a constant-time
/// comparison, microseconds. A new or wrong secret, or a changed hash, is verified with
/// Argon2id on permits of its own, so a flood of token requests never takes the cores
/// that sign-up and sign-in hash on. Only what verified is remembered, only in memory,
/// so nothing is lost when an instance stops: its successor verifies once again.
pub struct ClientSecrets {
    key: usher_oidc::crypto::HmacKey,
    /// By client id: the hash the secret verified against, and the secret's HMAC.
    remembered: std::sync::Mutex<std::collections::HashMap<String, Remembered>>,
    permits: Arc<Semaphore>,
    queue_wait: std::time::Duration,
}

type Remembered = (Arc<str>, Vec<u8>);

impl ClientSecrets {
    pub fn new(key: usher_oidc::crypto::HmacKey, concurrency: usize) -> Self {
        Self {
            key,
            remembered: std::sync::Mutex::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            queue_wait: CLIENT_QUEUE_WAIT,
        }
    }

    /// Whether `secret` is the secret of `client_id`, whose stored hash is
    /// `secret_hash`. [`Busy`] when every client-secret permit stayed taken.
    pub async fn verify(
        &self,
        client_id: &str,
        secret: &str,
        secret_hash: &str,
    ) -> Result<bool, Busy> {
        let mac = self.key.sign(format!("{client_id}\0{secret}").as_bytes());
        let known = {
            let remembered = self
                .remembered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            remembered.get(client_id).is_some_and(|(hash, m)| {
                **hash == *secret_hash && usher_domain::flow::constant_time_eq(m, &mac)
            })
        };
        if known {
            return Ok(true);
        }
        let _permit = tokio::time::timeout(self.queue_wait, self.permits.acquire())
            .await
            .map_err(|_| Busy)?;
        let (candidate, hash) = (secret.to_owned(), secret_hash.to_owned());
        let ok = tokio::task::spawn_blocking(move || verify_password(&candidate, &hash))
            .await
            .unwrap_or(false);
        if ok {
            let mut remembered = self
                .remembered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if remembered.len() >= MAX_REMEMBERED_CLIENTS {
                remembered.clear();
            }
            remembered.insert(client_id.to_owned(), (secret_hash.into(), mac));
        }
        Ok(ok)
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

    #[tokio::test]
    async fn a_client_secret_that_verified_once_needs_no_argon2_again() {
        let master = usher_oidc::crypto::MasterKey::generate();
        let mut secrets = ClientSecrets::new(master.hmac_key("client-secrets"), 1);
        secrets.queue_wait = std::time::Duration::from_millis(50);
        let hash = hash_password("a long machine secret", &mut OsRng);
        assert_eq!(
            secrets.verify("app", "a long machine secret", &hash).await,
            Ok(true)
        );
        assert_eq!(secrets.verify("app", "wrong", &hash).await, Ok(false));

        // No core free for Argon2: the remembered secret still passes...
        let _held = secrets.permits.clone().acquire_owned().await.unwrap();
        assert_eq!(
            secrets.verify("app", "a long machine secret", &hash).await,
            Ok(true)
        );
        // ...but nothing else does without a hash: a wrong secret, the secret for
        // another client id, the secret after the stored hash changed.
        assert_eq!(secrets.verify("app", "wrong", &hash).await, Err(Busy));
        assert_eq!(
            secrets
                .verify("other", "a long machine secret", &hash)
                .await,
            Err(Busy)
        );
        let rotated = hash_password("a long machine secret", &mut OsRng);
        assert_eq!(
            secrets
                .verify("app", "a long machine secret", &rotated)
                .await,
            Err(Busy)
        );
    }
}
