//! Identifiers and secrets drawn from an injected random source.

use rand::RngCore;

/// A random UUID (version 4) formatted in the usual hyphenated form.
pub fn new_uuid(rng: &mut dyn RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// An unguessable token: 32 random bytes, base64url without padding (43 characters).
pub fn new_secret_token(rng: &mut dyn RngCore) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    base64url(&b)
}

/// A numeric one-time code of `digits` digits, uniformly distributed.
pub fn new_numeric_code(rng: &mut dyn RngCore, digits: u32) -> String {
    let modulus = 10u64.pow(digits);
    // Rejection sampling keeps the distribution uniform.
    let zone = u64::MAX - (u64::MAX % modulus);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return format!("{:0width$}", v % modulus, width = digits as usize);
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Base64url without padding (RFC 4648 §5), the encoding of tokens and JOSE.
pub fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn uuid_has_version_and_variant() {
        let mut rng = StdRng::seed_from_u64(1);
        let id = new_uuid(&mut rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn codes_have_fixed_width() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let c = new_numeric_code(&mut rng, 6);
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn base64url_matches_rfc4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
