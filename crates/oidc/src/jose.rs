//! The small part of JOSE an OpenID Provider needs: compact JWS with ES256 or RS256,
//! public keys as JWKs, and verification of our own tokens (e.g. `id_token_hint`)
//! against a JWK set.
//!
//! Verification trusts the JWK, never the token header: the key is chosen by `kid`,
//! the algorithm must agree with the key, and `none` or algorithms outside the
//! caller's list are refused, which closes the classic algorithm-confusion attacks.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::crypto;

#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("no key with kid {0:?} in the key set")]
    UnknownKey(String),
    #[error("algorithm {0:?} is not allowed here")]
    AlgorithmNotAllowed(String),
    #[error("unsupported algorithm {0:?}: expected ES256 or RS256")]
    UnsupportedAlgorithm(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

/// A JWS signing algorithm Usher can sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256 (the default: small keys and signatures).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (what OIDC clients assume when unconfigured).
    RS256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    fn kty(self) -> &'static str {
        match self {
            Algorithm::ES256 => "EC",
            Algorithm::RS256 => "RSA",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = JoseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ES256" => Ok(Algorithm::ES256),
            "RS256" => Ok(Algorithm::RS256),
            other => Err(JoseError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

enum KeyPair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its `kid`.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    pkcs8: Vec<u8>,
    pair: KeyPair,
    jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key. RS256 generation takes a noticeable fraction of a second;
    /// call it off the async executor.
    pub fn generate(alg: Algorithm, kid: String) -> Result<Self, JoseError> {
        let der = match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| JoseError::Crypto("generating a P-256 key failed"))?
            .as_ref()
            .to_vec(),
            // ring cannot generate RSA keys, so `rsa` makes one and ring uses it.
            Algorithm::RS256 => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .map_err(|_| JoseError::Crypto("generating an RSA key failed"))?;
                key.to_pkcs8_der()
                    .map_err(|_| JoseError::Crypto("encoding the RSA key failed"))?
                    .as_bytes()
                    .to_vec()
            }
        };
        Self::from_pkcs8(alg, kid, &der)
    }

    pub fn from_pkcs8(alg: Algorithm, kid: String, der: &[u8]) -> Result<Self, JoseError> {
        let (pair, mut jwk) = match alg {
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|e| JoseError::InvalidKey(format!("not a P-256 PKCS#8 key: {e}")))?;
                let point = pair.public_key().as_ref();
                // ring yields the uncompressed SEC1 point: 0x04 || x || y.
                if point.len() != 65 || point[0] != 0x04 {
                    return Err(JoseError::InvalidKey("unexpected P-256 point".into()));
                }
                let jwk = json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64(&point[1..33]),
                    "y": b64(&point[33..65]),
                });
                (KeyPair::Ec(pair), jwk)
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| JoseError::InvalidKey(format!("not an RSA PKCS#8 key: {e}")))?;
                let public: signature::RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(&public.n),
                    "e": b64(&public.e),
                });
                (KeyPair::Rsa(pair), jwk)
            }
        };
        if let Value::Object(map) = &mut jwk {
            map.insert("kid".into(), Value::String(kid.clone()));
            map.insert("use".into(), "sig".into());
            map.insert("alg".into(), alg.as_str().into());
        }
        Ok(Self {
            kid,
            alg,
            pkcs8: der.to_vec(),
            pair,
            jwk,
        })
    }

    /// The private key as unencrypted PKCS#8 DER; encrypt it before storing.
    pub fn to_pkcs8(&self) -> Vec<u8> {
        self.pkcs8.clone()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as published in the JWKS (with `kid`, `use` and `alg`).
    pub fn public_jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// Compact JWS over `claims` (which must be a JSON object) with header
    /// `{"alg", "kid", "typ"}`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> Result<String, JoseError> {
        if !claims.is_object() {
            return Err(JoseError::Malformed("claims must be a JSON object"));
        }
        let header = json!({ "alg": self.alg.as_str(), "kid": self.kid, "typ": typ });
        let mut input = b64(&to_json(&header)?);
        input.push('.');
        input.push_str(&b64(&to_json(claims)?));
        let sig = self.sign(input.as_bytes())?;
        input.push('.');
        input.push_str(&b64(&sig));
        Ok(input)
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.pair {
            KeyPair::Ec(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| JoseError::Crypto("ECDSA signing failed")),
            KeyPair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| JoseError::Crypto("RSA signing failed"))?;
                Ok(sig)
            }
        }
    }
}

/// Verifies the signature of a compact JWS against `jwks` and returns its claims.
/// Checks no claim (`exp`, `iss`, `aud` … are the caller's).
pub fn verify_jwt(
    token: &str,
    jwks: &[Value],
    allowed: &[Algorithm],
) -> Result<Map<String, Value>, JoseError> {
    let parts = split(token)?;
    let header = decode_object(parts[0], "header is not a base64url JSON object")?;
    if header.contains_key("crit") {
        // We understand no extension, and RFC 7515 §4.1.11 says to refuse then.
        return Err(JoseError::Malformed("header has unsupported \"crit\""));
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JoseError::Malformed("header has no \"alg\""))?;
    let alg = alg_name
        .parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| JoseError::AlgorithmNotAllowed(alg_name.to_owned()))?;
    let jwk = select_key(jwks, header.get("kid").and_then(Value::as_str), alg)?;

    // The key decides the algorithm; a header that claims another is an attack or a bug.
    let key_alg = jwk_algorithm(jwk)?;
    if key_alg != alg {
        return Err(JoseError::AlgorithmNotAllowed(alg_name.to_owned()));
    }
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return Err(JoseError::InvalidKey("key is not for signatures".into()));
    }

    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|_| JoseError::Malformed("signature is not base64url"))?;
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    verify_signature(jwk, key_alg, signing_input.as_bytes(), &sig)?;

    decode_object(parts[1], "payload is not a base64url JSON object")
}

/// The key that must have signed a token with this `kid` (if any) and algorithm.
///
/// `kid` is optional on both sides (RFC 7515 §4.1.4, RFC 7517 §4.5), and many
/// providers publish a single key without one. So: the key with the token's `kid`;
/// failing that, the only signature key for the algorithm that has no `kid`; for a
/// token without `kid`, the only signature key for the algorithm. Where several keys
/// could fit nothing is guessed.
fn select_key<'a>(
    jwks: &'a [Value],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a Value, JoseError> {
    fn key_kid(k: &Value) -> Option<&str> {
        k.get("kid").and_then(Value::as_str)
    }
    if let Some(kid) = kid {
        if let Some(key) = jwks.iter().find(|k| key_kid(k) == Some(kid)) {
            return Ok(key);
        }
    }
    let fits = |k: &&Value| {
        jwk_algorithm(k).is_ok_and(|a| a == alg) && k.get("use").is_none_or(|u| u == "sig")
    };
    let mut candidates = jwks
        .iter()
        .filter(fits)
        .filter(|k| kid.is_none() || key_kid(k).is_none());
    match (candidates.next(), candidates.next(), kid) {
        (Some(key), None, _) => Ok(key),
        (_, _, Some(kid)) => Err(JoseError::UnknownKey(kid.to_owned())),
        (None, _, None) => Err(JoseError::UnknownKey(String::new())),
        (Some(_), Some(_), None) => Err(JoseError::Malformed(
            "header has no \"kid\" and several keys fit",
        )),
    }
}

/// Header and claims without any verification: for display and tests only.
pub fn decode_unverified(token: &str) -> Result<(Value, Map<String, Value>), JoseError> {
    let parts = split(token)?;
    let header = decode_object(parts[0], "header is not a base64url JSON object")?;
    let claims = decode_object(parts[1], "payload is not a base64url JSON object")?;
    Ok((Value::Object(header), claims))
}

/// `at_hash` / `c_hash` (OIDC Core §3.1.3.6, §3.3.2.11): base64url of the left half
/// of SHA-256 of the ASCII value; SHA-256 because both ES256 and RS256 use it.
pub fn half_hash(value: &str) -> String {
    let digest = crypto::sha256(value.as_bytes());
    b64(&digest[..16])
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn to_json(value: &Value) -> Result<Vec<u8>, JoseError> {
    serde_json::to_vec(value).map_err(|_| JoseError::Malformed("value cannot be serialised"))
}

fn split(token: &str) -> Result<[&str; 3], JoseError> {
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) => Ok([h, p, s]),
        _ => Err(JoseError::Malformed("expected three dot-separated parts")),
    }
}

fn decode_object(part: &str, what: &'static str) -> Result<Map<String, Value>, JoseError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JoseError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JoseError::Malformed(what)),
    }
}

/// The algorithm a JWK is for: its `alg` if present (which must match its `kty`),
/// otherwise implied by `kty`/`crv`.
fn jwk_algorithm(jwk: &Value) -> Result<Algorithm, JoseError> {
    let kty = jwk
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| JoseError::InvalidKey("JWK has no \"kty\"".into()))?;
    let implied = match kty {
        "EC" if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => Algorithm::ES256,
        "RSA" => Algorithm::RS256,
        _ => {
            return Err(JoseError::InvalidKey(format!(
                "unsupported JWK type {kty:?}"
            )))
        }
    };
    match jwk.get("alg") {
        None => Ok(implied),
        Some(Value::String(name)) => match name.parse::<Algorithm>() {
            Ok(alg) if alg.kty() == kty => Ok(alg),
            _ => Err(JoseError::InvalidKey(format!(
                "JWK alg {name:?} does not fit kty {kty:?}"
            ))),
        },
        Some(_) => Err(JoseError::InvalidKey("JWK \"alg\" is not a string".into())),
    }
}

fn jwk_bytes(jwk: &Value, member: &str) -> Result<Vec<u8>, JoseError> {
    jwk.get(member)
        .and_then(Value::as_str)
        .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        .ok_or_else(|| {
            JoseError::InvalidKey(format!("JWK member {member:?} is missing or not base64url"))
        })
}

fn verify_signature(jwk: &Value, alg: Algorithm, msg: &[u8], sig: &[u8]) -> Result<(), JoseError> {
    match alg {
        Algorithm::ES256 => {
            let x = jwk_bytes(jwk, "x")?;
            let y = jwk_bytes(jwk, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err(JoseError::InvalidKey(
                    "P-256 coordinates must be 32 bytes".into(),
                ));
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .map_err(|_| JoseError::BadSignature)
        }
        Algorithm::RS256 => {
            let n = jwk_bytes(jwk, "n")?;
            let e = jwk_bytes(jwk, "e")?;
            // Some encoders prefix a zero octet; the number is the same without it.
            let strip = |v: &[u8]| -> Vec<u8> {
                let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
                v[start..].to_vec()
            };
            signature::RsaPublicKeyComponents {
                n: strip(&n),
                e: strip(&e),
            }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            .map_err(|_| JoseError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    /// RSA generation is slow, so the tests share one key.
    fn rsa_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate(Algorithm::RS256, "rsa-1".into()).unwrap())
    }

    fn ec_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate(Algorithm::ES256, "ec-1".into()).unwrap())
    }

    const BOTH: &[Algorithm] = &[Algorithm::ES256, Algorithm::RS256];

    fn claims() -> Value {
        json!({ "iss": "https://id.example", "sub": "u1", "n": 1 })
    }

    fn jwks() -> Vec<Value> {
        vec![ec_key().public_jwk(), rsa_key().public_jwk()]
    }

    /// Replaces one part of a compact token.
    fn with_part(token: &str, index: usize, value: &str) -> String {
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[index] = value;
        parts.join(".")
    }

    fn encode_json(v: &Value) -> String {
        b64(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn algorithm_text_forms() {
        for alg in BOTH {
            assert_eq!(alg.to_string().parse::<Algorithm>().unwrap(), *alg);
            assert_eq!(serde_json::to_value(alg).unwrap(), json!(alg.to_string()));
        }
        assert!(matches!(
            "HS256".parse::<Algorithm>(),
            Err(JoseError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn sign_and_verify_round_trip_for_both_algorithms() {
        for key in [ec_key(), rsa_key()] {
            let token = key.sign_jwt("JWT", &claims()).unwrap();
            let got = verify_jwt(&token, &jwks(), BOTH).unwrap();
            assert_eq!(Value::Object(got), claims());
            let (header, payload) = decode_unverified(&token).unwrap();
            assert_eq!(
                header,
                json!({ "alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "JWT" })
            );
            assert_eq!(Value::Object(payload), claims());
        }
        let at = ec_key().sign_jwt("at+jwt", &claims()).unwrap();
        assert_eq!(decode_unverified(&at).unwrap().0["typ"], "at+jwt");
    }

    #[test]
    fn public_jwks_have_the_published_shape() {
        let ec = ec_key().public_jwk();
        let mut members: Vec<_> = ec.as_object().unwrap().keys().cloned().collect();
        members.sort();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(ec["kty"], "EC");
        assert_eq!(ec["crv"], "P-256");
        assert_eq!(ec["alg"], "ES256");
        assert_eq!(ec["use"], "sig");
        assert_eq!(ec["kid"], "ec-1");

        let rsa = rsa_key().public_jwk();
        let mut members: Vec<_> = rsa.as_object().unwrap().keys().cloned().collect();
        members.sort();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(rsa["kty"], "RSA");
        assert_eq!(rsa["alg"], "RS256");
        assert_eq!(rsa["e"], "AQAB");
        let n = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
    }

    #[test]
    fn es256_signature_verifies_independently_from_the_jwk_coordinates() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        let jwk = ec_key().public_jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let point = [&[0x04][..], &x, &y].concat();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(sig.len(), 64, "JWS ES256 signatures are r || s, not DER");
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
            .verify(input.as_bytes(), &sig)
            .expect("the JWK coordinates are the signing key's public point");
    }

    #[test]
    fn rs256_signature_verifies_independently_from_the_jwk_modulus() {
        let token = rsa_key().sign_jwt("JWT", &claims()).unwrap();
        let jwk = rsa_key().public_jwk();
        let (input, sig) = token.rsplit_once('.').unwrap();
        signature::RsaPublicKeyComponents {
            n: URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(),
            e: URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap(),
        }
        .verify(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(sig).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn pkcs8_round_trips() {
        for key in [ec_key(), rsa_key()] {
            let again =
                SigningKey::from_pkcs8(key.algorithm(), key.kid().into(), &key.to_pkcs8()).unwrap();
            assert_eq!(again.public_jwk(), key.public_jwk());
            let token = again.sign_jwt("JWT", &claims()).unwrap();
            verify_jwt(&token, &[key.public_jwk()], BOTH).unwrap();
        }
        // A key of one kind is not accepted as the other.
        assert!(matches!(
            SigningKey::from_pkcs8(Algorithm::RS256, "x".into(), &ec_key().to_pkcs8()),
            Err(JoseError::InvalidKey(_))
        ));
        assert!(matches!(
            SigningKey::from_pkcs8(Algorithm::ES256, "x".into(), &rsa_key().to_pkcs8()),
            Err(JoseError::InvalidKey(_))
        ));
        assert!(SigningKey::from_pkcs8(Algorithm::ES256, "x".into(), b"junk").is_err());
    }

    #[test]
    fn debug_hides_private_material() {
        let debug = format!("{:?}", ec_key());
        assert!(debug.contains("ec-1"));
        assert!(!debug.contains("pkcs8"));
        assert!(debug.len() < 80, "{debug}");
    }

    #[test]
    fn claims_must_be_an_object() {
        assert!(matches!(
            ec_key().sign_jwt("JWT", &json!([1, 2])),
            Err(JoseError::Malformed(_))
        ));
    }

    #[test]
    fn tampered_payload_or_signature_fails() {
        for key in [ec_key(), rsa_key()] {
            let token = key.sign_jwt("JWT", &claims()).unwrap();
            let forged = with_part(&token, 1, &encode_json(&json!({ "sub": "admin" })));
            assert!(matches!(
                verify_jwt(&forged, &jwks(), BOTH),
                Err(JoseError::BadSignature)
            ));

            let sig = token.rsplit('.').next().unwrap();
            let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
            raw[5] ^= 1;
            let bad_sig = with_part(&token, 2, &b64(&raw));
            assert!(matches!(
                verify_jwt(&bad_sig, &jwks(), BOTH),
                Err(JoseError::BadSignature)
            ));
            let empty_sig = with_part(&token, 2, "");
            assert!(matches!(
                verify_jwt(&empty_sig, &jwks(), BOTH),
                Err(JoseError::BadSignature)
            ));
        }
    }

    #[test]
    fn unknown_kid_and_missing_kid_fail() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        assert!(matches!(
            verify_jwt(&token, &[rsa_key().public_jwk()], BOTH),
            Err(JoseError::UnknownKey(kid)) if kid == "ec-1"
        ));
        assert!(matches!(
            verify_jwt(&token, &[], BOTH),
            Err(JoseError::UnknownKey(_))
        ));
        let no_kid = with_part(&token, 0, &encode_json(&json!({ "alg": "ES256" })));
        let second_ec = SigningKey::generate(Algorithm::ES256, "ec-2".into()).unwrap();
        assert!(matches!(
            verify_jwt(
                &no_kid,
                &[ec_key().public_jwk(), second_ec.public_jwk()],
                BOTH
            ),
            Err(JoseError::Malformed(_))
        ));
    }

    fn without_kid(jwk: Value) -> Value {
        let mut jwk = jwk;
        if let Some(map) = jwk.as_object_mut() {
            map.remove("kid");
        }
        jwk
    }

    /// A token signed by `key` whose header has no `kid`.
    fn signed_without_kid(key: &SigningKey) -> String {
        let mut input = encode_json(&json!({ "alg": key.alg.as_str(), "typ": "JWT" }));
        input.push('.');
        input.push_str(&encode_json(&claims()));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&sig))
    }

    #[test]
    fn keys_without_kid_are_used_when_only_one_fits() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        let no_kid = signed_without_kid(ec_key());
        let lone = without_kid(ec_key().public_jwk());
        // A token with a kid, a set whose one key has none.
        assert!(verify_jwt(&token, std::slice::from_ref(&lone), BOTH).is_ok());
        // A token without kid: the one key for its algorithm, named or not.
        assert!(verify_jwt(&no_kid, std::slice::from_ref(&lone), BOTH).is_ok());
        assert!(verify_jwt(&no_kid, &jwks(), BOTH).is_ok());
        // The wrong lone key is a bad signature, not a pass.
        let other = SigningKey::generate(Algorithm::ES256, "ec-2".into()).unwrap();
        assert!(matches!(
            verify_jwt(&token, &[without_kid(other.public_jwk())], BOTH),
            Err(JoseError::BadSignature)
        ));
        // Two keys without kid for the algorithm: nothing is guessed.
        let two = [lone.clone(), without_kid(other.public_jwk())];
        assert!(matches!(
            verify_jwt(&token, &two, BOTH),
            Err(JoseError::UnknownKey(kid)) if kid == "ec-1"
        ));
        assert!(matches!(
            verify_jwt(&no_kid, &two, BOTH),
            Err(JoseError::Malformed(_))
        ));
        // A key of another algorithm or use does not count.
        let mut enc = lone.clone();
        enc["use"] = json!("enc");
        assert!(matches!(
            verify_jwt(&token, &[enc, without_kid(rsa_key().public_jwk())], BOTH),
            Err(JoseError::UnknownKey(_))
        ));
    }

    #[test]
    fn alg_none_and_disallowed_algorithms_are_refused() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        for alg in ["none", "None", "HS256", ""] {
            let header = encode_json(&json!({ "alg": alg, "kid": "ec-1" }));
            let unsigned = format!("{header}.{}.", token.split('.').nth(1).unwrap());
            assert!(
                matches!(
                    verify_jwt(&unsigned, &jwks(), BOTH),
                    Err(JoseError::AlgorithmNotAllowed(a)) if a == alg
                ),
                "{alg}"
            );
        }
        assert!(matches!(
            verify_jwt(&token, &jwks(), &[Algorithm::RS256]),
            Err(JoseError::AlgorithmNotAllowed(_))
        ));
        assert!(matches!(
            verify_jwt(&token, &jwks(), &[]),
            Err(JoseError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn algorithm_confusion_is_refused() {
        // An RS256 header naming the EC key, and an ES256 header naming the RSA key.
        let ec_token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        let rs_header = encode_json(&json!({ "alg": "RS256", "kid": "ec-1", "typ": "JWT" }));
        let confused = with_part(&ec_token, 0, &rs_header);
        assert!(matches!(
            verify_jwt(&confused, &jwks(), BOTH),
            Err(JoseError::AlgorithmNotAllowed(a)) if a == "RS256"
        ));

        let rsa_token = rsa_key().sign_jwt("JWT", &claims()).unwrap();
        let es_header = encode_json(&json!({ "alg": "ES256", "kid": "rsa-1", "typ": "JWT" }));
        let confused = with_part(&rsa_token, 0, &es_header);
        assert!(matches!(
            verify_jwt(&confused, &jwks(), BOTH),
            Err(JoseError::AlgorithmNotAllowed(a)) if a == "ES256"
        ));

        // A JWK whose alg contradicts its kty is not trusted either.
        let mut lying = ec_key().public_jwk();
        lying["alg"] = json!("RS256");
        let rs_claim = with_part(&ec_token, 0, &rs_header);
        assert!(matches!(
            verify_jwt(&rs_claim, &[lying], BOTH),
            Err(JoseError::InvalidKey(_))
        ));
        // HS256 with the public key as the HMAC secret is the classic one.
        let hs = encode_json(&json!({ "alg": "HS256", "kid": "rsa-1" }));
        assert!(matches!(
            verify_jwt(&with_part(&rsa_token, 0, &hs), &jwks(), BOTH),
            Err(JoseError::AlgorithmNotAllowed(_))
        ));
    }

    #[test]
    fn crit_headers_and_non_sig_keys_are_refused() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        let crit = encode_json(&json!({ "alg": "ES256", "kid": "ec-1", "crit": ["exp"] }));
        assert!(matches!(
            verify_jwt(&with_part(&token, 0, &crit), &jwks(), BOTH),
            Err(JoseError::Malformed(_))
        ));
        let mut enc = ec_key().public_jwk();
        enc["use"] = json!("enc");
        assert!(matches!(
            verify_jwt(&token, &[enc], BOTH),
            Err(JoseError::InvalidKey(_))
        ));
    }

    #[test]
    fn malformed_tokens_are_errors() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        let cases = [
            String::new(),
            "a".into(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{token}.x"),
            with_part(&token, 0, "!!!"),
            with_part(&token, 0, &b64(b"not json")),
            with_part(&token, 0, &b64(b"[1]")),
            with_part(&token, 0, &encode_json(&json!({ "alg": 5, "kid": "ec-1" }))),
            with_part(&token, 2, "%%%"),
            with_part(&token, 1, "=="),
        ];
        for case in &cases {
            assert!(verify_jwt(case, &jwks(), BOTH).is_err(), "{case:?}");
        }
        assert!(decode_unverified("a.b").is_err());
        assert!(decode_unverified(&with_part(&token, 1, &b64(b"\"str\""))).is_err());
    }

    #[test]
    fn malformed_jwks_are_errors() {
        let token = ec_key().sign_jwt("JWT", &claims()).unwrap();
        let mut short_x = ec_key().public_jwk();
        short_x["x"] = json!("AAAA");
        let mut no_y = ec_key().public_jwk();
        no_y.as_object_mut().unwrap().remove("y");
        let mut bad_kty = ec_key().public_jwk();
        bad_kty["kty"] = json!("oct");
        let mut other_curve = ec_key().public_jwk();
        other_curve["crv"] = json!("P-384");
        other_curve.as_object_mut().unwrap().remove("alg");
        for jwk in [
            short_x,
            no_y,
            bad_kty,
            other_curve,
            json!({ "kid": "ec-1" }),
        ] {
            assert!(
                verify_jwt(&token, std::slice::from_ref(&jwk), BOTH).is_err(),
                "{jwk}"
            );
        }
        // Without "alg" the key type decides, and a leading zero in n is tolerated.
        let mut implied = ec_key().public_jwk();
        implied.as_object_mut().unwrap().remove("alg");
        verify_jwt(&token, &[implied], BOTH).unwrap();
        let rsa_token = rsa_key().sign_jwt("JWT", &claims()).unwrap();
        let mut padded = rsa_key().public_jwk();
        let n = URL_SAFE_NO_PAD
            .decode(padded["n"].as_str().unwrap())
            .unwrap();
        padded["n"] = json!(b64(&[&[0u8][..], &n].concat()));
        verify_jwt(&rsa_token, &[padded], BOTH).unwrap();
    }

    #[test]
    fn half_hash_matches_the_oidc_example() {
        // OIDC Core Appendix A.3/A.4 uses RS256 and this access token.
        assert_eq!(
            half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(half_hash("x").len(), 22);
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = verify_jwt(&s, &jwks(), BOTH);
            let _ = decode_unverified(&s);
        }

        #[test]
        fn arbitrary_three_part_tokens_never_panic(
            h in "[A-Za-z0-9_=-]{0,40}",
            p in "[A-Za-z0-9_=-]{0,40}",
            s in "[A-Za-z0-9_=-]{0,100}",
        ) {
            let token = format!("{h}.{p}.{s}");
            prop_assert!(verify_jwt(&token, &jwks(), BOTH).is_err());
        }

        #[test]
        fn arbitrary_headers_with_a_real_payload_never_verify(
            alg in prop_oneof![
                Just("ES256".to_owned()),
                Just("RS256".to_owned()),
                Just("none".to_owned()),
                ".{0,8}",
            ],
            kid in prop_oneof![Just("ec-1".to_owned()), Just("rsa-1".to_owned()), ".{0,8}"],
            sig in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let header = encode_json(&json!({ "alg": alg, "kid": kid }));
            let token = format!("{header}.{}.{}", encode_json(&claims()), b64(&sig));
            prop_assert!(verify_jwt(&token, &jwks(), BOTH).is_err());
        }
    }
}
