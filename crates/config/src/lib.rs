//! Usher's configuration: one TOML file (optional), environment overrides, defaults,
//! and their validation into the server's settings and the [`usher_domain::Tenant`] it
//! serves.
//!
//! [`load`] reports every problem it finds at once, each with where it was written, so
//! that a configuration is fixed in one round. See `docs/CONFIGURATION.md` for the
//! settings themselves.
//!
//! [`export_toml`] writes a tenant (as the database holds it) as a configuration file
//! (`usher export`), and [`load_tenant`] reads the tenant a file declares with the
//! running server's settings (`usher apply`); one undoes the other.

mod demo;
mod env;
mod error;
mod export;
mod raw;
mod resolve;
pub mod rules;
mod secret;
mod settings;
mod tree;

use std::path::Path;

use usher_domain::identity_provider::ProviderConfig;
use usher_domain::{ConnectorDefinition, Tenant};

pub use demo::{DEMO_CLIENT_ID, DEMO_USER_FLOW_ID};
pub use env::OVERRIDES as ENVIRONMENT_VARIABLES;
pub use error::{ConfigError, ConfigErrors};
pub use export::{export_toml, Export, ExportInput, SecretExport, SECRET_ENV_PREFIX};
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

/// The tenant a file declares: what `usher apply` brings the database to.
pub struct DeclaredTenant {
    /// The extensions app id, custom attributes, user flows and applications (the
    /// demo's included when the file says `demo = true`).
    pub tenant: Tenant,
    pub connectors: Vec<ConnectorDefinition>,
    pub identity_providers: Vec<ProviderConfig>,
    pub event_listeners: Vec<usher_domain::EventListener>,
    /// As `Config::client_secrets`: the plaintext client secrets the file gives, by
    /// client id in lower case.
    pub client_secrets: std::collections::BTreeMap<String, Secret>,
}

/// Like `Config`'s: secrets as `******`, no certificate bytes, URL queries hidden.
impl std::fmt::Debug for DeclaredTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeclaredTenant")
            .field("tenant", &self.tenant)
            .field("connectors", &settings::ConnectorsDebug(&self.connectors))
            .field(
                "identity_providers",
                &self
                    .identity_providers
                    .iter()
                    .map(settings::ProviderDebug)
                    .collect::<Vec<_>>(),
            )
            .field("event_listeners", &self.event_listeners)
            .field("client_secrets", &self.client_secrets)
            .finish()
    }
}

/// Loads the tenant a file declares, for `usher apply`: a file written by
/// `usher export`, or a full configuration file, of which only the tenant parts are
/// used.
///
/// The whole file is read, so unknown keys and values of the wrong TOML type are
/// errors wherever they are; but server settings (issuer, listen, `data_dir`,
/// `database_url`, `templates_dir`, secrets, signing, tokens, email, `connector_settings`,
/// federation) are otherwise ignored, and the running `server`'s are used instead:
/// its issuer builds the demo's redirect URIs and is what `extensions_app_id`
/// defaults from, and its `connector_settings.allow_http_targets`,
/// `allow_loopback_targets`, `allow_private_network_targets` and
/// `federation.allow_insecure_endpoints` decide which addresses connectors and
/// identity providers may use. `USHER_*` environment overrides are not read (they are
/// the server's); `env` is read for the file's `{ env = "…" }` secret references and
/// `client_secret_env`. `demo` is the file's: absent, false.
///
/// Like [`load`], it hashes plaintext client secrets: call it off any async runtime.
pub fn load_tenant(
    path: &Path,
    server: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DeclaredTenant, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_tenant_text(path, &text, server, env),
        Err(e) => Err(ConfigErrors(vec![ConfigError::new(
            path.display().to_string(),
            format!("cannot read the file: {e}"),
        )])),
    }
}

/// [`load_tenant`] with the file's text already read.
fn load_tenant_text(
    path: &Path,
    text: &str,
    server: &Config,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DeclaredTenant, ConfigErrors> {
    let label = path.display().to_string();
    let mut reader = raw::Reader::new(&label, text);
    let root = match tree::parse(text) {
        Ok(root) => root,
        Err(e) => {
            return Err(ConfigErrors(vec![ConfigError::new(
                reader.position(e.span().as_ref()),
                format!("invalid TOML: {}", e.message().trim()),
            )]))
        }
    };
    let file = reader.read(&root);
    let errors = reader.into_errors();
    let from = "the running server's configuration";
    let raw = raw::RawConfig {
        issuer: Some(raw::Val::new(server.issuer.clone(), from)),
        demo: file.demo,
        extensions_app_id: file.extensions_app_id,
        attributes: file.attributes,
        user_flows: file.user_flows,
        applications: file.applications,
        connector_settings: raw::RawConnectorSettings {
            allow_http_targets: Some(raw::Val::new(
                server.connector_settings.allow_http_targets,
                from,
            )),
            allow_loopback_targets: Some(raw::Val::new(
                server.connector_settings.allow_loopback_targets,
                from,
            )),
            allow_private_network_targets: Some(raw::Val::new(
                server.connector_settings.allow_private_network_targets,
                from,
            )),
            ..raw::RawConnectorSettings::default()
        },
        connectors: file.connectors,
        federation: raw::RawFederation {
            allow_insecure_endpoints: Some(raw::Val::new(
                server.federation.allow_insecure_endpoints,
                from,
            )),
            timeout_ms: None,
        },
        identity_providers: file.identity_providers,
        event_listeners: file.event_listeners,
        ..raw::RawConfig::default()
    };
    let mut resolver = resolve::Resolver::new(env, Some(&label), errors);
    match resolver.resolve(raw, Some(path.to_path_buf())) {
        Some(config) if resolver.errors.is_empty() => Ok(DeclaredTenant {
            tenant: config.tenant,
            connectors: config.connectors,
            identity_providers: config.identity_providers,
            event_listeners: config.event_listeners,
            client_secrets: config.client_secrets,
        }),
        _ => Err(ConfigErrors(resolver.errors)),
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
#[allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]
mod tests;
