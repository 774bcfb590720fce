//! PKCE (RFC 7636) with the S256 method only: `plain` would let anyone who sees the
//! authorization request redeem the code, so it is not offered.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::crypto;

/// Whether `verifier` is a well-formed code verifier whose S256 transform is
/// `challenge`. The comparison takes the same time wherever the strings differ.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) || !is_valid_challenge(challenge) {
        return false;
    }
    crypto::constant_time_eq(challenge_s256(verifier).as_bytes(), challenge.as_bytes())
}

/// `BASE64URL(SHA256(ASCII(verifier)))`.
pub fn challenge_s256(verifier: &str) -> String {
    crypto::sha256_b64url(verifier.as_bytes())
}

/// A possible S256 challenge: the unpadded base64url of 32 bytes (43 characters).
pub fn is_valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32)
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // As printed in RFC 7636 Appendix B (and recomputed independently).
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(challenge_s256(VERIFIER), CHALLENGE);
        assert!(is_valid_challenge(CHALLENGE));
        assert!(verify_s256(VERIFIER, CHALLENGE));
    }

    #[test]
    fn wrong_verifier_or_challenge_fails() {
        let other = format!("{}A", &VERIFIER[..42]);
        assert!(!verify_s256(&other, CHALLENGE));
        let mut challenge = CHALLENGE.to_owned();
        challenge.replace_range(0..1, "F");
        assert!(!verify_s256(VERIFIER, &challenge));
        assert!(!verify_s256(VERIFIER, &format!("{CHALLENGE}=")));
        assert!(!verify_s256(VERIFIER, ""));
    }

    #[test]
    fn verifier_length_and_alphabet_are_enforced() {
        let short = "a".repeat(42);
        assert!(!verify_s256(&short, &challenge_s256(&short)));
        let min = "a".repeat(43);
        assert!(verify_s256(&min, &challenge_s256(&min)));
        let max = "~._-".repeat(32);
        assert!(verify_s256(&max, &challenge_s256(&max)));
        let long = "a".repeat(129);
        assert!(!verify_s256(&long, &challenge_s256(&long)));
        let spaced = format!("{} ", &VERIFIER[..43]);
        assert!(!verify_s256(&spaced, &challenge_s256(&spaced)));
        let plus = format!("{}+", &VERIFIER[..43]);
        assert!(!is_valid_verifier(&plus));
        let accented = format!("{}é", "a".repeat(42));
        assert!(!is_valid_verifier(&accented));
    }

    #[test]
    fn challenges_must_be_43_base64url_characters() {
        assert!(!is_valid_challenge(&CHALLENGE[..42]));
        assert!(!is_valid_challenge(&format!("{CHALLENGE}A")));
        assert!(!is_valid_challenge(&CHALLENGE.replace('-', "+")));
        // The final character carries 2 spare bits that must be zero.
        assert!(!is_valid_challenge(&format!("{}N", &CHALLENGE[..42])));
    }

    proptest! {
        #[test]
        fn any_valid_verifier_matches_its_own_challenge(v in "[A-Za-z0-9._~-]{43,128}") {
            let c = challenge_s256(&v);
            prop_assert!(is_valid_challenge(&c));
            prop_assert!(verify_s256(&v, &c));
        }

        #[test]
        fn arbitrary_input_never_panics(v in ".*", c in ".*") {
            let _ = verify_s256(&v, &c);
            let _ = is_valid_challenge(&c);
        }
    }
}
