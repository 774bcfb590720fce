//! The crate as the web layer uses it: keys from the manager sign an ID token that
//! verifies against the published JWKS, with the hashes and metadata a client checks.

#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use usher_domain::MockClock;
use usher_oidc::{discovery, jose, pkce, Algorithm, KeyManager, MasterKey, RotationPolicy};
use usher_storage::{SigningKeyRepository, StoredSigningKey};

#[derive(Default)]
struct MemoryKeys(Mutex<Vec<StoredSigningKey>>);

#[async_trait]
impl SigningKeyRepository for MemoryKeys {
    async fn signing_keys(&self) -> usher_storage::Result<Vec<StoredSigningKey>> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> usher_storage::Result<()> {
        self.0.lock().unwrap().push(key.clone());
        Ok(())
    }

    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> usher_storage::Result<()> {
        for key in self.0.lock().unwrap().iter_mut().filter(|k| k.kid == kid) {
            key.retired_at = Some(at);
        }
        Ok(())
    }
}

#[tokio::test]
async fn id_token_round_trip_through_the_published_jwks() {
    let master = MasterKey::parse(&MasterKey::generate().encode()).unwrap();
    let store: Arc<dyn SigningKeyRepository> = Arc::new(MemoryKeys::default());
    let keys = KeyManager::new(
        store,
        Arc::new(master),
        Algorithm::ES256,
        RotationPolicy::default(),
        Arc::new(MockClock::default()),
    );
    keys.ensure_keys().await.unwrap();
    let ring = keys.keyring().await.unwrap();

    let issuer = "https://id.example";
    let access_token = "an-opaque-access-token";
    let id_token = ring
        .signing
        .sign_jwt(
            "JWT",
            &json!({
                "iss": issuer,
                "sub": "user-1",
                "aud": "client-1",
                "at_hash": jose::half_hash(access_token),
            }),
        )
        .unwrap();

    // A client fetches the JWKS document and discovery metadata, then verifies.
    let jwks = ring.jwks();
    let published = jwks["keys"].as_array().unwrap();
    let meta = discovery::document(issuer, ring.signing.algorithm(), &[], &["en"]);
    let allowed: Vec<Algorithm> = meta["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    let claims = jose::verify_jwt(&id_token, published, &allowed).unwrap();
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["at_hash"], jose::half_hash(access_token));

    let (header, _) = jose::decode_unverified(&id_token).unwrap();
    assert_eq!(header["kid"], ring.signing.kid());
    assert_eq!(header["alg"], "ES256");

    // A relying party that only accepts RS256 refuses it.
    assert!(matches!(
        jose::verify_jwt(&id_token, published, &[Algorithm::RS256]),
        Err(jose::JoseError::AlgorithmNotAllowed(_))
    ));
}

#[test]
fn pkce_challenge_made_by_a_client_verifies() {
    let verifier = "x".repeat(64);
    let challenge = pkce::challenge_s256(&verifier);
    assert!(pkce::is_valid_challenge(&challenge));
    assert!(pkce::verify_s256(&verifier, &challenge));
    assert!(!pkce::verify_s256(&"y".repeat(64), &challenge));
}
