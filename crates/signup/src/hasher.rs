//! Password hashing off the async runtime. Argon2id costs tens of milliseconds of CPU
//! and 19 MiB of memory per hash, so hashes run on the blocking pool with at most one
//! per core at a time. Sign-in (verifying) and sign-up (hashing a new password) wait
//! in separate queues, each bounded: a burst of one never delays the other, and a
//! full queue answers [`Busy`] at once (the caller says "try again shortly", with
//! `Retry-After`) instead of letting requests pile up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::rngs::OsRng;
use tokio::sync::Semaphore;
use usher_domain::password::{hash_password, verify_password};

/// How long a hash waits for a core before giving up.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Requests that may wait for a core, per core, before the queue counts as full.
const WAITING_PER_CORE: usize = 8;
/// What `Retry-After` says when a queue is full, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Every core is busy hashing and the queue is full, or the wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// One bounded queue for the cores.
struct Queue {
    permits: Semaphore,
    /// Requests holding or waiting for a permit.
    queued: AtomicUsize,
    max_queued: usize,
    wait: std::time::Duration,
}

/// Counts a request out of its queue when it leaves, however it leaves.
struct InQueue<'a>(&'a AtomicUsize);

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Queue {
    fn new(cores: usize) -> Self {
        let cores = cores.max(1);
        Self {
            permits: Semaphore::new(cores),
            queued: AtomicUsize::new(0),
            max_queued: cores * (1 + WAITING_PER_CORE),
            wait: QUEUE_WAIT,
        }
    }

    /// Runs `work` on the blocking pool once a core is free; [`Busy`] at once when
    /// the queue is full, or when no core came free in time.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let _in_queue = InQueue(&self.queued);
        let _permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| Busy)?;
        tokio::task::spawn_blocking(work).await.map_err(|_| Busy)
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    sign_in: Arc<Queue>,
    sign_up: Arc<Queue>,
    /// Verified against when the account does not exist, so an unknown email takes
    /// as long as a wrong password.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    pub fn new(cores: usize) -> Self {
        let dummy = hash_password("usher dummy password for timing", &mut OsRng);
        Self {
            sign_in: Arc::new(Queue::new(cores)),
            sign_up: Arc::new(Queue::new(cores)),
            dummy_hash: dummy.into(),
        }
    }

    /// Hashes a new password (sign-up, an administrator setting one, a generated
    /// client secret), in the sign-up queue.
    pub async fn hash(&self, password: String) -> Result<String, Busy> {
        self.sign_up
            .run(move || hash_password(&password, &mut OsRng))
            .await
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there is none,
    /// so both cases cost the same; in the sign-in queue.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Busy> {
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let ok = self
            .sign_in
            .run(move || verify_password(&password, &hash))
            .await?;
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
        let hasher = PasswordHasher::new(1);
        let hash = hasher.hash("correct horse battery".into()).await.unwrap();
        assert_eq!(
            hasher
                .verify("correct horse battery".into(), Some(hash.clone()))
                .await,
            Ok(true)
        );
        assert_eq!(hasher.verify("wrong".into(), None).await, Ok(false));

        // The sign-in queue full (a burst of guesses in progress): the next
        // verification is refused at once...
        let full = hasher.sign_in.max_queued;
        hasher.sign_in.queued.store(full, Ordering::SeqCst);
        assert_eq!(
            hasher
                .verify("correct horse battery".into(), Some(hash.clone()))
                .await,
            Err(Busy)
        );
        assert_eq!(hasher.sign_in.queued.load(Ordering::SeqCst), full);
        // ...while sign-up, in its own queue, goes on.
        assert!(hasher.hash("another long pass phrase".into()).await.is_ok());
        hasher.sign_in.queued.store(0, Ordering::SeqCst);
        assert_eq!(
            hasher
                .verify("correct horse battery".into(), Some(hash))
                .await,
            Ok(true)
        );
        assert_eq!(hasher.sign_in.queued.load(Ordering::SeqCst), 0);
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
