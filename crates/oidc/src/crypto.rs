//! Symmetric cryptography keyed by the deployment's master key: encryption of secrets
//! at rest (signing keys, connector secrets), HMAC keys derived per purpose (codes,
//! cookies, handles), and the SHA-256 helpers the protocol needs.
//!
//! The master key is never used directly: HKDF-SHA256 derives one key for AES-256-GCM
//! and one HMAC key per purpose, so no two uses ever share key material.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, digest, hkdf, hmac};

/// Leading byte of every ciphertext, so the format can change without guessing.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A fixed salt only separates Usher's derivations from any other use of the same
/// secret; the master key is already uniformly random.
const HKDF_SALT: &[u8] = b"usher master key v1";
const AEAD_INFO: &[u8] = b"usher/aes-256-gcm";
const HMAC_INFO_PREFIX: &[u8] = b"usher/hmac-sha256/";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured master key could not be used. The message never includes the
    /// key text itself.
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),
    #[error("encrypted data is too short or truncated")]
    Truncated,
    #[error("encrypted data has unknown format version {0}")]
    UnsupportedVersion(u8),
    /// Wrong master key, wrong purpose, or the data was altered.
    #[error("encrypted data could not be decrypted (wrong key or purpose, or corrupted data)")]
    Decrypt,
}

/// The 32-byte secret from which every at-rest encryption key and HMAC key derives.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses base64 (standard or URL-safe alphabet, padded or not) or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            decode_hex(text).ok_or_else(|| invalid("not valid hex"))?
        } else {
            let unpadded = text
                .strip_suffix("==")
                .or_else(|| text.strip_suffix('='))
                .unwrap_or(text);
            let engine = if unpadded.contains(['-', '_']) {
                &URL_SAFE_NO_PAD
            } else {
                &STANDARD_NO_PAD
            };
            engine
                .decode(unpadded)
                .map_err(|_| invalid("expected base64 or 64 hex digits"))?
        };
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            invalid(&format!(
                "must decode to exactly 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self(key))
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        fill_random(&mut key);
        Self(key)
    }

    /// Standard padded base64, the form `parse` reads back.
    pub fn encode(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// AES-256-GCM under a random nonce, with `purpose` as associated data so that a
    /// ciphertext made for one purpose is refused for another.
    /// Output: version byte || 96-bit nonce || ciphertext || tag.
    pub fn encrypt(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = self.aead_key();
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut in_out = plaintext.to_vec();
        // Sealing only fails for inputs beyond GCM's ~64 GiB limit.
        if key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(purpose.as_bytes()),
                &mut in_out,
            )
            .is_err()
        {
            panic!("AES-GCM refused to seal {} bytes", plaintext.len());
        }
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        out
    }

    pub fn decrypt(&self, purpose: &str, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (&version, rest) = data.split_first().ok_or(CryptoError::Truncated)?;
        if version != FORMAT_V1 {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce =
            aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)?;
        let mut in_out = sealed.to_vec();
        let plain_len = self
            .aead_key()
            .open_in_place(nonce, aead::Aad::from(purpose.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }

    /// The HMAC-SHA256 key for `purpose` (e.g. "email-code").
    pub fn hmac_key(&self, purpose: &str) -> HmacKey {
        let prk = self.prk();
        let info = [HMAC_INFO_PREFIX, purpose.as_bytes()];
        match prk.expand(&info, hmac::HMAC_SHA256) {
            Ok(okm) => HmacKey(hmac::Key::from(okm)),
            // expand only fails when asked for more than 255 hash lengths.
            Err(_) => unreachable!("HKDF refused a 32-byte output"),
        }
    }

    fn prk(&self) -> hkdf::Prk {
        hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.0)
    }

    fn aead_key(&self) -> aead::LessSafeKey {
        let prk = self.prk();
        match prk.expand(&[AEAD_INFO], &aead::AES_256_GCM) {
            Ok(okm) => aead::LessSafeKey::new(aead::UnboundKey::from(okm)),
            Err(_) => unreachable!("HKDF refused a 32-byte output"),
        }
    }
}

/// An HMAC-SHA256 key derived from the master key for one purpose.
#[derive(Clone)]
pub struct HmacKey(hmac::Key);

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

impl HmacKey {
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.0, data).as_ref().to_vec()
    }

    /// Lower-case hex of the tag, e.g. to look up a hashed secret in the database.
    pub fn sign_hex(&self, data: &[u8]) -> String {
        usher_domain::id::hex(hmac::sign(&self.0, data).as_ref())
    }

    /// Constant-time check of a tag made by `sign`.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.0, data, tag).is_ok()
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    usher_domain::id::hex(&sha256(data))
}

/// Base64url without padding of SHA-256, the form PKCE and JOSE use.
pub fn sha256_b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha256(data))
}

/// Equality whose running time depends only on the lengths, for comparing secrets.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Fills `buf` from the operating system's CSPRNG. Without one nothing secret can be
/// produced safely, so its absence is a fatal environment error, not a recoverable one.
pub(crate) fn fill_random(buf: &mut [u8]) {
    assert!(
        SystemRandom::new().fill(buf).is_ok(),
        "the operating system's random number generator is unavailable"
    );
}

fn invalid(reason: &str) -> CryptoError {
    CryptoError::InvalidMasterKey(reason.to_owned())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    pairs
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn sample() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn parses_hex_and_every_base64_form() {
        let bytes = sample();
        let forms = [
            HEX.to_owned(),
            HEX.to_uppercase(),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            base64::engine::general_purpose::URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            format!("  {}\n", STANDARD.encode(bytes)),
        ];
        for form in forms {
            let key = MasterKey::parse(&form).unwrap_or_else(|e| panic!("{form:?}: {e}"));
            assert_eq!(key.0, bytes, "{form:?}");
        }
    }

    #[test]
    fn parses_url_safe_alphabet() {
        // 0xfb 0xff… encodes with '-' and '_' in the URL-safe alphabet.
        let bytes = [0xfb; 32];
        let url = URL_SAFE_NO_PAD.encode(bytes);
        assert!(url.contains('-') || url.contains('_'));
        assert_eq!(MasterKey::parse(&url).unwrap().0, bytes);
        assert_eq!(MasterKey::parse(&STANDARD.encode(bytes)).unwrap().0, bytes);
    }

    #[test]
    fn rejects_wrong_lengths_and_garbage() {
        for bad in [
            "",
            "   ",
            &STANDARD.encode([0u8; 16]),
            &STANDARD.encode([0u8; 33]),
            &HEX[..62],
            &format!("{HEX}00"),
            "not base64 at all!",
            "+/-_+/-_+/-_+/-_+/-_+/-_+/-_+/-_+/-_+/-",
            "ÿÿÿÿ",
        ] {
            let err = MasterKey::parse(bad).expect_err(bad);
            assert!(matches!(err, CryptoError::InvalidMasterKey(_)), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_errors_do_not_reveal_the_key() {
        let key = MasterKey::parse(HEX).unwrap();
        let debug = format!("{key:?} {:?}", key.hmac_key("x"));
        assert!(!debug.contains("0102"), "{debug}");
        let err = MasterKey::parse(&HEX[..60]).unwrap_err().to_string();
        assert!(!err.contains(&HEX[..60]), "{err}");
    }

    #[test]
    fn encode_round_trips_and_generate_is_random() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.0, b.0);
        assert_eq!(MasterKey::parse(&a.encode()).unwrap().0, a.0);
    }

    #[test]
    fn encryption_round_trips_and_uses_fresh_nonces() {
        let key = MasterKey::generate();
        for plain in [&b""[..], b"x", &[7u8; 1000]] {
            let sealed = key.encrypt("signing-key", plain);
            assert_eq!(sealed[0], FORMAT_V1);
            assert_eq!(sealed.len(), 1 + NONCE_LEN + plain.len() + TAG_LEN);
            assert_eq!(key.decrypt("signing-key", &sealed).unwrap(), plain);
        }
        assert_ne!(key.encrypt("p", b"same"), key.encrypt("p", b"same"));
    }

    #[test]
    fn wrong_purpose_wrong_key_and_tampering_fail() {
        let key = MasterKey::generate();
        let sealed = key.encrypt("signing-key", b"secret");
        assert!(matches!(
            key.decrypt("connector-secret", &sealed),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            MasterKey::generate().decrypt("signing-key", &sealed),
            Err(CryptoError::Decrypt)
        ));
        for i in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(matches!(
                key.decrypt("signing-key", &tampered),
                Err(CryptoError::Decrypt)
            ));
        }
        let mut versioned = sealed.clone();
        versioned[0] = 9;
        assert!(matches!(
            key.decrypt("signing-key", &versioned),
            Err(CryptoError::UnsupportedVersion(9))
        ));
        for len in 0..(1 + NONCE_LEN + TAG_LEN) {
            assert!(key.decrypt("signing-key", &sealed[..len]).is_err());
        }
    }

    #[test]
    fn hmac_keys_differ_per_purpose_and_verify() {
        let master = MasterKey::generate();
        let a = master.hmac_key("email-code");
        let b = master.hmac_key("session");
        assert_ne!(a.sign(b"data"), b.sign(b"data"));
        assert_eq!(a.sign(b"data"), master.hmac_key("email-code").sign(b"data"));
        assert_ne!(
            a.sign(b"data"),
            MasterKey::generate().hmac_key("email-code").sign(b"data")
        );
        let tag = a.sign(b"data");
        assert_eq!(tag.len(), 32);
        assert_eq!(a.sign_hex(b"data"), usher_domain::id::hex(&tag));
        assert!(a.verify(b"data", &tag));
        assert!(!a.verify(b"datb", &tag));
        assert!(!b.verify(b"data", &tag));
        assert!(!a.verify(b"data", &tag[..31]));
    }

    #[test]
    fn hmac_matches_a_direct_hkdf_derivation() {
        // Pins the derivation so stored HMACs survive refactoring.
        let master = MasterKey::parse(HEX).unwrap();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"usher master key v1").extract(&sample());
        let okm = prk
            .expand(&[b"usher/hmac-sha256/email-code"], hmac::HMAC_SHA256)
            .unwrap();
        let direct = hmac::Key::from(okm);
        assert_eq!(
            master.hmac_key("email-code").sign(b"m"),
            hmac::sign(&direct, b"m").as_ref()
        );
    }

    #[test]
    fn sha256_helpers_match_known_digest() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        assert_eq!(usher_domain::id::hex(&sha256(b"abc")), abc);
        assert_eq!(
            sha256_b64url(b"abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
