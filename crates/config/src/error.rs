//! Configuration errors. Each one names where the offending setting came from (the
//! file, line and key path, or the environment variable) so an operator can go straight
//! to it, and loading returns all of them at once so a broken file is fixed in one
//! round rather than one error per restart.

use std::fmt;

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// `usher.toml:12:9: user_flows[0].attributes[2].input`,
    /// `environment variable USHER_LISTEN`, or a bare key path when there is no file.
    pub location: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
        }
    }
}

/// Every problem found while loading, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_error_per_line() {
        let errors = ConfigErrors(vec![
            ConfigError::new("usher.toml:1:1: issuer", "bad"),
            ConfigError::new("environment variable USHER_LISTEN", "worse"),
        ]);
        assert_eq!(
            errors.to_string(),
            "usher.toml:1:1: issuer: bad\nenvironment variable USHER_LISTEN: worse"
        );
    }
}
