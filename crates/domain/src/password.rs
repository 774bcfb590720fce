//! The password policy (NIST SP 800-63B): at least 8 characters, at least 64 allowed,
//! no composition rules, and the most common passwords refused.

use std::{collections::HashSet, sync::OnceLock};

pub const MIN_LENGTH: usize = 8;
/// Longer than NIST's 64 minimum; the cap keeps hashing cost bounded.
pub const MAX_LENGTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is shorter than {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password is longer than {MAX_LENGTH} characters")]
    TooLong,
    #[error("the password is one of the most common passwords")]
    TooCommon,
    #[error("the password is the email address")]
    SameAsEmail,
}

impl PasswordError {
    pub fn message_key(self) -> &'static str {
        match self {
            PasswordError::TooShort => "error.password_too_short",
            PasswordError::TooLong => "error.password_too_long",
            PasswordError::TooCommon => "error.password_too_common",
            PasswordError::SameAsEmail => "error.password_same_as_email",
        }
    }
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../data/common-passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// Checks a new password against the policy. Length counts characters, not bytes.
pub fn check_new_password(password: &str, email: &str) -> Result<(), PasswordError> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if len > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    let lower = password.to_lowercase();
    if common_passwords().contains(lower.as_str()) {
        return Err(PasswordError::TooCommon);
    }
    if !email.is_empty() && lower == email.to_lowercase() {
        return Err(PasswordError::SameAsEmail);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(
            check_new_password("short", ""),
            Err(PasswordError::TooShort)
        );
        assert_eq!(
            check_new_password("password", ""),
            Err(PasswordError::TooCommon)
        );
        assert_eq!(
            check_new_password("PassWord1", ""),
            Err(PasswordError::TooCommon)
        );
        assert_eq!(
            check_new_password("a@example.com", "A@example.com"),
            Err(PasswordError::SameAsEmail)
        );
        assert!(check_new_password("correct horse battery", "").is_ok());
        let sixty_four = "é".repeat(64);
        assert!(check_new_password(&sixty_four, "").is_ok());
        assert_eq!(
            check_new_password(&"x".repeat(257), ""),
            Err(PasswordError::TooLong)
        );
        // Counting characters, not bytes: 7 two-byte characters are too short.
        assert_eq!(
            check_new_password(&"é".repeat(7), ""),
            Err(PasswordError::TooShort)
        );
    }

    #[test]
    fn list_is_loaded() {
        assert!(common_passwords().len() > 10_000);
    }
}

/// Argon2id with OWASP's recommended minimum: m = 19456 KiB, t = 2, p = 1.
fn argon2() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(19_456, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a password (or client secret) into a PHC string. CPU- and memory-heavy:
/// call it off the async runtime.
pub fn hash_password(password: &str, rng: &mut (impl rand::RngCore + rand::CryptoRng)) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(rng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Checks a password against a PHC string. A malformed hash never verifies. Takes the
/// same time for a wrong password as for a right one.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod hash_tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn hash_and_verify() {
        let mut rng = StdRng::seed_from_u64(3);
        let h = hash_password("correct horse battery", &mut rng);
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong horse battery", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
