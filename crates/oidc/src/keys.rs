//! The signing-key lifecycle: keys live in the database encrypted with the master key;
//! the first is created on first start, the next is created (and published) ahead of
//! use by the rotation policy, and retired keys stay in the JWKS long enough for the
//! tokens they signed to expire.
//!
//! Several Usher instances may share one database and run this concurrently, so every
//! decision is made from what the database holds: the signing key is the usable key
//! with the latest `(activates_at, kid)`, which all instances agree on, and a race that
//! creates two keys only leaves one extra, valid and published, key.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use usher_domain::Clock;
use usher_storage::{SigningKeyRepository, StorageError, StoredSigningKey};

use crate::crypto::{self, CryptoError, MasterKey};
use crate::jose::{Algorithm, JoseError, SigningKey};

/// Associated data of encrypted private keys, so no other secret can stand in for one.
const PURPOSE: &str = "signing-key";

/// How long a keyring is served from memory before the database is read again.
pub const DEFAULT_REFRESH_SECONDS: i64 = 30;

/// When keys are replaced and how long their public halves stay published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Age (since activation) at which the signing key gets a successor.
    pub rotate_after: Duration,
    /// How long a successor is published before it signs, so that relying parties
    /// with a cached JWKS already know it.
    pub publish_ahead: Duration,
    /// How long a retired key stays published: at least the lifetime of the tokens
    /// it signed.
    pub keep_retired: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            rotate_after: Duration::days(90),
            publish_ahead: Duration::hours(24),
            keep_retired: Duration::days(7),
        }
    }
}

/// The keys in use: one to sign with, and every key to publish in the JWKS.
#[derive(Debug)]
pub struct Keyring {
    pub signing: Arc<SigningKey>,
    pub published: Vec<Value>,
}

impl Keyring {
    /// The JWK Set document: `{"keys": [...]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("signing key storage: {0}")]
    Storage(#[from] StorageError),
    #[error(
        "signing key {kid:?} cannot be decrypted: the master key does not match the one \
         the keys were encrypted with"
    )]
    Decrypt { kid: String },
    /// A stored key is unreadable for another reason than the master key.
    #[error("stored signing key {kid:?} is unusable: {reason}")]
    Corrupt { kid: String, reason: String },
    #[error("no usable signing key in the database")]
    NoUsableKey,
    #[error(transparent)]
    Jose(#[from] JoseError),
}

struct Cached {
    keyring: Arc<Keyring>,
    loaded_at: DateTime<Utc>,
}

/// Loads, creates and rotates signing keys, and caches the current keyring.
pub struct KeyManager {
    store: Arc<dyn SigningKeyRepository>,
    master: Arc<MasterKey>,
    algorithm: Algorithm,
    policy: RotationPolicy,
    clock: Arc<dyn Clock>,
    refresh: Duration,
    cache: Mutex<Option<Cached>>,
    /// One reload at a time per instance; the database arbitrates between instances.
    reload: tokio::sync::Mutex<()>,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("algorithm", &self.algorithm)
            .field("policy", &self.policy)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// `store` may be any repository handle, e.g. `Arc<dyn Store>` or
    /// `Arc<dyn SigningKeyRepository>`; `master` a `MasterKey` or `Arc<MasterKey>`.
    /// New keys use `algorithm`; keys of another algorithm are rotated out.
    pub fn new<S>(
        store: Arc<S>,
        master: impl Into<Arc<MasterKey>>,
        algorithm: Algorithm,
        policy: RotationPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self
    where
        S: SigningKeyRepository + ?Sized + 'static,
    {
        Self {
            store: Arc::new(Shared(store)),
            master: master.into(),
            algorithm,
            policy,
            clock,
            refresh: Duration::seconds(DEFAULT_REFRESH_SECONDS),
            cache: Mutex::new(None),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    /// Changes how long a keyring is served from memory (default 30 s).
    pub fn with_refresh(mut self, refresh: Duration) -> Self {
        self.refresh = refresh;
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The current keyring, from memory unless older than the refresh interval.
    /// A reload also applies the rotation policy, so keys stay current even if
    /// `ensure_keys` is never scheduled.
    pub async fn keyring(&self) -> Result<Arc<Keyring>, KeyError> {
        if let Some(keyring) = self.fresh() {
            return Ok(keyring);
        }
        let _reloading = self.reload.lock().await;
        // Another task may have reloaded while this one waited.
        if let Some(keyring) = self.fresh() {
            return Ok(keyring);
        }
        self.reload_locked().await
    }

    /// Creates the first key if there is none and applies the rotation policy now.
    pub async fn ensure_keys(&self) -> Result<(), KeyError> {
        let _reloading = self.reload.lock().await;
        self.reload_locked().await.map(drop)
    }

    /// Creates the next key now; it signs once `publish_ahead` has passed.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let _reloading = self.reload.lock().await;
        let now = self.clock.now();
        let kid = self.create(now, now + self.policy.publish_ahead).await?;
        self.reload_locked().await?;
        Ok(kid)
    }

    fn fresh(&self) -> Option<Arc<Keyring>> {
        let now = self.clock.now();
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.as_ref().and_then(|c| {
            // A clock that went backwards also counts as stale.
            let age = now - c.loaded_at;
            (age >= Duration::zero() && age < self.refresh).then(|| c.keyring.clone())
        })
    }

    async fn reload_locked(&self) -> Result<Arc<Keyring>, KeyError> {
        let now = self.clock.now();
        let mut keys = self.store.signing_keys().await?;
        if self.apply_policy(&keys, now).await? {
            keys = self.store.signing_keys().await?;
        }
        let keyring = Arc::new(self.build(&keys, now)?);
        *self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Cached {
            keyring: keyring.clone(),
            loaded_at: now,
        });
        Ok(keyring)
    }

    /// Writes what the policy requires given `keys`; true if anything was written.
    async fn apply_policy(
        &self,
        keys: &[StoredSigningKey],
        now: DateTime<Utc>,
    ) -> Result<bool, KeyError> {
        let Some(signer) = select_signer(keys, now) else {
            self.create(now, now).await?;
            return Ok(true);
        };
        let mut changed = false;
        for key in keys
            .iter()
            .filter(|k| usable(k, now) && k.kid != signer.kid)
        {
            // The successor's activation time, not `now`, so that instances retiring
            // the same key concurrently write the same value.
            self.store
                .retire_signing_key(&key.kid, signer.activates_at)
                .await?;
            tracing::info!(kid = %key.kid, successor = %signer.kid, "retired signing key");
            changed = true;
        }
        let pending = keys
            .iter()
            .any(|k| k.retired_at.is_none() && k.activates_at > now);
        let outdated = now - signer.activates_at >= self.policy.rotate_after
            || signer.algorithm != self.algorithm.as_str();
        if outdated && !pending {
            self.create(now, now + self.policy.publish_ahead).await?;
            changed = true;
        }
        Ok(changed)
    }

    async fn create(
        &self,
        now: DateTime<Utc>,
        activates_at: DateTime<Utc>,
    ) -> Result<String, KeyError> {
        let kid = new_kid(now);
        let key = generate(self.algorithm, kid.clone()).await?;
        let stored = StoredSigningKey {
            kid: kid.clone(),
            algorithm: self.algorithm.to_string(),
            encrypted_private_key: self.master.encrypt(PURPOSE, &key.to_pkcs8()),
            public_jwk: key.public_jwk(),
            created_at: now,
            activates_at,
            retired_at: None,
        };
        self.store.insert_signing_key(&stored).await?;
        tracing::info!(%kid, alg = %self.algorithm, %activates_at, "created signing key");
        Ok(kid)
    }

    fn build(&self, keys: &[StoredSigningKey], now: DateTime<Utc>) -> Result<Keyring, KeyError> {
        let signer = select_signer(keys, now).ok_or(KeyError::NoUsableKey)?;
        let previous = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|c| c.keyring.signing.clone())
            .filter(|k| k.kid() == signer.kid);
        let signing = match previous {
            Some(key) => key,
            None => Arc::new(self.open(signer)?),
        };
        let published = keys
            .iter()
            .filter(|k| {
                k.retired_at
                    .is_none_or(|at| now - at < self.policy.keep_retired)
            })
            .map(|k| k.public_jwk.clone())
            .collect();
        Ok(Keyring { signing, published })
    }

    fn open(&self, stored: &StoredSigningKey) -> Result<SigningKey, KeyError> {
        let corrupt = |reason: String| KeyError::Corrupt {
            kid: stored.kid.clone(),
            reason,
        };
        let der = self
            .master
            .decrypt(PURPOSE, &stored.encrypted_private_key)
            .map_err(|e| match e {
                CryptoError::Decrypt => KeyError::Decrypt {
                    kid: stored.kid.clone(),
                },
                other => corrupt(other.to_string()),
            })?;
        let alg = stored
            .algorithm
            .parse::<Algorithm>()
            .map_err(|e| corrupt(e.to_string()))?;
        let key = SigningKey::from_pkcs8(alg, stored.kid.clone(), &der)
            .map_err(|e| corrupt(e.to_string()))?;
        // Relying parties verify with the stored JWK; signing with anything else
        // would produce tokens nobody accepts.
        if key.public_jwk() != stored.public_jwk {
            return Err(corrupt(
                "the published JWK does not match the private key".into(),
            ));
        }
        Ok(key)
    }
}

fn usable(key: &StoredSigningKey, now: DateTime<Utc>) -> bool {
    key.activates_at <= now && key.retired_at.is_none_or(|at| at > now)
}

/// The key to sign with: every instance reading the same rows picks the same one.
fn select_signer(keys: &[StoredSigningKey], now: DateTime<Utc>) -> Option<&StoredSigningKey> {
    keys.iter()
        .filter(|k| usable(k, now))
        .max_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)))
}

/// Date-prefixed so operators can tell keys apart; random so instances never collide.
fn new_kid(now: DateTime<Utc>) -> String {
    let mut random = [0u8; 8];
    crypto::fill_random(&mut random);
    format!(
        "{}-{}",
        now.format("%Y%m%d"),
        usher_domain::id::hex(&random)
    )
}

/// RSA generation blocks for a while, so it runs on the blocking pool when there is one.
async fn generate(alg: Algorithm, kid: String) -> Result<SigningKey, KeyError> {
    if alg == Algorithm::RS256 {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            return runtime
                .spawn_blocking(move || SigningKey::generate(alg, kid))
                .await
                .map_err(|_| KeyError::Jose(JoseError::Crypto("key generation task failed")))?
                .map_err(KeyError::from);
        }
    }
    Ok(SigningKey::generate(alg, kid)?)
}

/// Lets `new` take any repository handle (including `Arc<dyn Store>`) without relying
/// on trait-object upcasting, which is newer than the workspace's minimum Rust.
struct Shared<S: ?Sized>(Arc<S>);

#[async_trait]
impl<S> SigningKeyRepository for Shared<S>
where
    S: SigningKeyRepository + ?Sized + 'static,
{
    async fn signing_keys(&self) -> usher_storage::Result<Vec<StoredSigningKey>> {
        self.0.signing_keys().await
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> usher_storage::Result<()> {
        self.0.insert_signing_key(key).await
    }

    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> usher_storage::Result<()> {
        self.0.retire_signing_key(kid, at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::verify_jwt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use usher_domain::MockClock;

    /// The repository contract, in memory. With `yield_after_read`, a read returns its
    /// snapshot only after yielding, so two managers can be made to race.
    #[derive(Default)]
    struct MemoryKeys {
        keys: Mutex<Vec<StoredSigningKey>>,
        reads: AtomicUsize,
        yield_after_read: bool,
    }

    impl MemoryKeys {
        fn all(&self) -> Vec<StoredSigningKey> {
            self.keys.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl SigningKeyRepository for MemoryKeys {
        async fn signing_keys(&self) -> usher_storage::Result<Vec<StoredSigningKey>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let snapshot = self.all();
            if self.yield_after_read {
                tokio::task::yield_now().await;
            }
            Ok(snapshot)
        }

        async fn insert_signing_key(&self, key: &StoredSigningKey) -> usher_storage::Result<()> {
            let mut keys = self.keys.lock().unwrap();
            if keys.iter().any(|k| k.kid == key.kid) {
                return Err(StorageError::AlreadyExists);
            }
            keys.push(key.clone());
            Ok(())
        }

        async fn retire_signing_key(
            &self,
            kid: &str,
            at: DateTime<Utc>,
        ) -> usher_storage::Result<()> {
            if let Some(key) = self.keys.lock().unwrap().iter_mut().find(|k| k.kid == kid) {
                key.retired_at = Some(at);
            }
            Ok(())
        }
    }

    fn manager(store: &Arc<MemoryKeys>, master: &MasterKey, clock: &MockClock) -> KeyManager {
        KeyManager::new(
            store.clone(),
            master.clone(),
            Algorithm::ES256,
            RotationPolicy::default(),
            Arc::new(clock.clone()),
        )
    }

    fn kids(jwks: &[Value]) -> Vec<String> {
        jwks.iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn first_start_creates_exactly_one_key() {
        let store = Arc::new(MemoryKeys::default());
        let clock = MockClock::default();
        let keys = manager(&store, &MasterKey::generate(), &clock);

        let ring = keys.keyring().await.unwrap();
        let stored = store.all();
        assert_eq!(stored.len(), 1);
        assert_eq!(ring.signing.kid(), stored[0].kid);
        assert_eq!(ring.signing.algorithm(), Algorithm::ES256);
        assert_eq!(stored[0].activates_at, clock.now());
        assert_eq!(stored[0].algorithm, "ES256");
        assert_eq!(ring.published, vec![ring.signing.public_jwk()]);
        assert_eq!(ring.jwks(), json!({ "keys": [ring.signing.public_jwk()] }));

        keys.ensure_keys().await.unwrap();
        keys.ensure_keys().await.unwrap();
        clock.advance(Duration::days(1));
        keys.ensure_keys().await.unwrap();
        assert_eq!(store.all().len(), 1);
        assert_eq!(keys.keyring().await.unwrap().signing.kid(), stored[0].kid);
    }

    #[tokio::test]
    async fn keyring_is_cached_for_the_refresh_interval() {
        let store = Arc::new(MemoryKeys::default());
        let clock = MockClock::default();
        let keys = manager(&store, &MasterKey::generate(), &clock);
        let first = keys.keyring().await.unwrap();
        let reads = store.reads.load(Ordering::SeqCst);

        clock.advance(Duration::seconds(29));
        let again = keys.keyring().await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(store.reads.load(Ordering::SeqCst), reads);

        clock.advance(Duration::seconds(1));
        let reloaded = keys.keyring().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &reloaded));
        assert_eq!(store.reads.load(Ordering::SeqCst), reads + 1);
        // The decrypted key is reused rather than decrypted again.
        assert!(Arc::ptr_eq(&first.signing, &reloaded.signing));
    }

    #[tokio::test]
    async fn rotation_publishes_ahead_then_signs_then_drops_the_old_key() {
        let store = Arc::new(MemoryKeys::default());
        let clock = MockClock::default();
        let policy = RotationPolicy::default();
        // Reload on every call so each step sees the clock exactly.
        let keys = manager(&store, &MasterKey::generate(), &clock).with_refresh(Duration::zero());
        keys.ensure_keys().await.unwrap();
        let old = keys.keyring().await.unwrap().signing.clone();
        let old_token = old.sign_jwt("JWT", &json!({ "sub": "u" })).unwrap();

        clock.advance(policy.rotate_after - Duration::seconds(1));
        keys.ensure_keys().await.unwrap();
        assert_eq!(store.all().len(), 1, "not due yet");

        clock.advance(Duration::seconds(1));
        let rotated_at = clock.now();
        keys.ensure_keys().await.unwrap();
        let stored = store.all();
        assert_eq!(stored.len(), 2);
        let new = &stored[1];
        assert_eq!(new.activates_at, rotated_at + policy.publish_ahead);
        let ring = keys.keyring().await.unwrap();
        assert_eq!(ring.signing.kid(), old.kid(), "the new key is not used yet");
        assert_eq!(kids(&ring.published), [old.kid(), new.kid.as_str()]);
        keys.ensure_keys().await.unwrap();
        assert_eq!(store.all().len(), 2, "a pending key is not duplicated");

        clock.advance(policy.publish_ahead - Duration::seconds(1));
        assert_eq!(keys.keyring().await.unwrap().signing.kid(), old.kid());

        clock.advance(Duration::seconds(1));
        let ring = keys.keyring().await.unwrap();
        assert_eq!(ring.signing.kid(), new.kid);
        assert_eq!(kids(&ring.published), [old.kid(), new.kid.as_str()]);
        assert_eq!(store.all()[0].retired_at, Some(new.activates_at));
        // Tokens from before the switch still verify, and so do new ones.
        verify_jwt(&old_token, &ring.published, &[Algorithm::ES256]).unwrap();
        let new_token = ring
            .signing
            .sign_jwt("JWT", &json!({ "sub": "u" }))
            .unwrap();
        verify_jwt(&new_token, &ring.published, &[Algorithm::ES256]).unwrap();

        clock.advance(policy.keep_retired - Duration::seconds(1));
        let ring = keys.keyring().await.unwrap();
        assert_eq!(kids(&ring.published), [old.kid(), new.kid.as_str()]);

        clock.advance(Duration::seconds(1));
        let ring = keys.keyring().await.unwrap();
        assert_eq!(kids(&ring.published), [new.kid.as_str()]);
        assert!(verify_jwt(&old_token, &ring.published, &[Algorithm::ES256]).is_err());
        assert_eq!(store.all().len(), 2, "no further key before rotate_after");
    }

    #[tokio::test]
    async fn operator_rotation_creates_a_pending_key() {
        let store = Arc::new(MemoryKeys::default());
        let clock = MockClock::default();
        let keys = manager(&store, &MasterKey::generate(), &clock);
        let first = keys.keyring().await.unwrap().signing.kid().to_owned();

        let next = keys.rotate().await.unwrap();
        assert_ne!(next, first);
        let ring = keys.keyring().await.unwrap();
        assert_eq!(ring.signing.kid(), first);
        assert_eq!(kids(&ring.published), [first.clone(), next.clone()]);

        clock.advance(Duration::hours(24));
        assert_eq!(keys.keyring().await.unwrap().signing.kid(), next);
    }

    #[tokio::test]
    async fn a_different_master_key_is_reported_as_such() {
        let store = Arc::new(MemoryKeys::default());
        let clock = MockClock::default();
        manager(&store, &MasterKey::generate(), &clock)
            .ensure_keys()
            .await
            .unwrap();

        let other = manager(&store, &MasterKey::generate(), &clock);
        let err = other.keyring().await.unwrap_err();
        assert!(matches!(err, KeyError::Decrypt { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("the master key does not match the one the keys were encrypted with"),
            "{err}"
        );
        assert!(matches!(
            other.ensure_keys().await,
            Err(KeyError::Decrypt { .. })
        ));
        assert_eq!(store.all().len(), 1, "nothing is created to paper over it");
    }

    #[tokio::test]
    async fn private_keys_are_stored_encrypted() {
        let store = Arc::new(MemoryKeys::default());
        let master = MasterKey::generate();
        let keys = manager(&store, &master, &MockClock::default());
        let ring = keys.keyring().await.unwrap();
        let stored = &store.all()[0];
        let pkcs8 = ring.signing.to_pkcs8();
        assert_ne!(stored.encrypted_private_key, pkcs8);
        assert!(!stored
            .encrypted_private_key
            .windows(pkcs8.len())
            .any(|w| w == pkcs8.as_slice()));
        assert_eq!(
            master
                .decrypt(PURPOSE, &stored.encrypted_private_key)
                .unwrap(),
            pkcs8
        );
        assert!(master
            .decrypt("other", &stored.encrypted_private_key)
            .is_err());
        assert_eq!(stored.public_jwk, ring.signing.public_jwk());
    }

    #[tokio::test]
    async fn tampered_public_jwk_is_detected() {
        let store = Arc::new(MemoryKeys::default());
        let master = MasterKey::generate();
        let clock = MockClock::default();
        manager(&store, &master, &clock)
            .ensure_keys()
            .await
            .unwrap();
        let impostor = SigningKey::generate(Algorithm::ES256, store.all()[0].kid.clone()).unwrap();
        store.keys.lock().unwrap()[0].public_jwk = impostor.public_jwk();
        let err = manager(&store, &master, &clock)
            .keyring()
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn instances_racing_on_first_start_agree_on_one_signer() {
        let store = Arc::new(MemoryKeys {
            yield_after_read: true,
            ..MemoryKeys::default()
        });
        let master = MasterKey::generate();
        let clock = MockClock::default();
        let a = manager(&store, &master, &clock);
        let b = manager(&store, &master, &clock);

        let (ra, rb) = tokio::join!(a.ensure_keys(), b.ensure_keys());
        ra.unwrap();
        rb.unwrap();
        let stored = store.all();
        assert_eq!(stored.len(), 2, "both instances created a key");

        clock.advance(Duration::seconds(DEFAULT_REFRESH_SECONDS));
        let (ra, rb) = tokio::join!(a.keyring(), b.keyring());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let winner = stored.iter().map(|k| &k.kid).max().unwrap();
        assert_eq!(ra.signing.kid(), winner);
        assert_eq!(rb.signing.kid(), winner);
        // The loser is retired but still published, so whatever it signed verifies.
        assert_eq!(ra.published.len(), 2);
        assert_eq!(
            store
                .all()
                .iter()
                .filter(|k| k.retired_at.is_some())
                .count(),
            1
        );
        assert_eq!(store.all().len(), 2);
    }

    #[tokio::test]
    async fn changing_the_algorithm_rotates_to_an_rs256_key() {
        let store = Arc::new(MemoryKeys::default());
        let master = MasterKey::generate();
        let clock = MockClock::default();
        let es = manager(&store, &master, &clock);
        let es_kid = es.keyring().await.unwrap().signing.kid().to_owned();

        let rs = KeyManager::new(
            store.clone(),
            Arc::new(master.clone()),
            Algorithm::RS256,
            RotationPolicy::default(),
            Arc::new(clock.clone()),
        );
        let ring = rs.keyring().await.unwrap();
        assert_eq!(ring.signing.kid(), es_kid, "the new key is published first");
        assert_eq!(ring.published.len(), 2);
        assert_eq!(store.all()[1].algorithm, "RS256");

        clock.advance(RotationPolicy::default().publish_ahead);
        let ring = rs.keyring().await.unwrap();
        assert_eq!(ring.signing.algorithm(), Algorithm::RS256);
        let token = ring
            .signing
            .sign_jwt("JWT", &json!({ "sub": "u" }))
            .unwrap();
        verify_jwt(&token, &ring.published, &[Algorithm::RS256]).unwrap();
        assert_eq!(store.all().len(), 2);
    }

    #[tokio::test]
    async fn works_through_a_trait_object() {
        let store: Arc<dyn SigningKeyRepository> = Arc::new(MemoryKeys::default());
        let keys = KeyManager::new(
            store,
            MasterKey::generate(),
            Algorithm::ES256,
            RotationPolicy::default(),
            Arc::new(MockClock::default()),
        )
        .with_refresh(Duration::zero());
        let a = keys.keyring().await.unwrap();
        let b = keys.keyring().await.unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "a zero refresh always reloads");
        assert_eq!(a.signing.kid(), b.signing.kid());
    }
}
