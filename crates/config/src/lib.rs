//! Usher's configuration: one TOML file (optional), environment overrides, defaults,
//! and their validation into the server's settings and the [`usher_domain::Tenant`] it
//! serves.
//!
//! [`load`] reports every problem it finds at once, each with where it was written, so
//! that a configuration is fixed in one round. See `docs/CONFIGURATION.md` for the
//! settings themselves.

mod demo;
mod env;
mod error;
mod raw;
mod resolve;
pub mod rules;
mod secret;
mod settings;
mod tree;

use std::path::Path;

pub use demo::{DEMO_CLIENT_ID, DEMO_USER_FLOW_ID};
pub use env::OVERRIDES as ENVIRONMENT_VARIABLES;
pub use error::{ConfigError, ConfigErrors};
pub use secret::Secret;
pub use settings::{
    Config, ConnectorSettings, DatabaseKind, EmailDelivery, EmailSettings, MasterKeySource,
    SigningAlgorithm, SigningSettings, SmtpSettings, SmtpTls, TokenSettings,
};

/// Loads the file (if any), applies environment overrides read through `env` (so tests
/// can pass a closure over a map instead of the real environment), validates
/// everything, and returns all errors found, not just the first.
///
/// Reads the files the configuration names (secrets) and checks that the master key
/// file and templates directory exist; confidential clients' plaintext secrets are
/// hashed here, which takes a moment each: call it off any async runtime.
pub fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    match path {
        None => load_text(None, "", env),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => load_text(Some(path), &text, env),
            Err(e) => Err(ConfigErrors(vec![ConfigError::new(
                path.display().to_string(),
                format!("cannot read the configuration file: {e}"),
            )])),
        },
    }
}

/// [`load`] with the file's text already read. `path` names the file in locations.
fn load_text(
    path: Option<&Path>,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let label = path.map(|p| p.display().to_string());
    let mut errors = Vec::new();
    let mut raw = raw::RawConfig::default();
    if let Some(label) = &label {
        let mut reader = raw::Reader::new(label, text);
        match tree::parse(text) {
            Ok(root) => {
                raw = reader.read(&root);
                errors = reader.into_errors();
            }
            Err(e) => {
                // Nothing after a syntax error can be read reliably; the environment
                // still can, so its errors come too.
                errors.push(ConfigError::new(
                    reader.position(e.span().as_ref()),
                    format!("invalid TOML: {}", e.message().trim()),
                ));
                env::apply(&mut raw, env, &mut errors);
                return Err(ConfigErrors(errors));
            }
        }
    }
    env::apply(&mut raw, env, &mut errors);
    let mut resolver = resolve::Resolver::new(env, label.as_deref(), errors);
    match resolver.resolve(raw, path.map(Path::to_path_buf)) {
        Some(config) if resolver.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(resolver.errors)),
    }
}

#[cfg(test)]
mod tests;
