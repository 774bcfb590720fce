//! A secret read from the configuration. It prints as `******` so that logging a
//! configuration (or panicking with one in scope) never leaks it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that has to hand it on (an SMTP login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Connector credentials go into the domain's own secret type, which prints as
/// `******` too.
impl From<Secret> for usher_domain::Secret {
    fn from(secret: Secret) -> Self {
        usher_domain::Secret::new(secret.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2hunter2");
        assert_eq!(format!("{s}"), "******");
        assert_eq!(format!("{s:?}"), "******");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(******)");
        assert_eq!(s.expose(), "hunter2hunter2");
        let domain = usher_domain::Secret::from(s);
        assert_eq!(format!("{domain:?}"), "******");
        assert_eq!(domain.expose(), "hunter2hunter2");
    }
}
