//! Environment overrides. They take precedence over the file so that a container can
//! be configured, or a secret supplied, without editing it.

use crate::{
    error::ConfigError,
    raw::{RawConfig, Val},
    rules,
};

/// Every variable read, for documentation and for tests.
pub const OVERRIDES: [&str; 21] = [
    "USHER_ISSUER",
    "USHER_LISTEN",
    "USHER_DATA_DIR",
    "USHER_DATABASE_URL",
    "USHER_TEMPLATES_DIR",
    "USHER_DEMO",
    "USHER_SHUTDOWN_DRAIN_SECONDS",
    "USHER_METRICS_TOKEN",
    "USHER_MASTER_KEY",
    "USHER_MASTER_KEY_FILE",
    "USHER_SIGNING_ALGORITHM",
    "USHER_EMAIL_DELIVERY",
    "USHER_EMAIL_FROM",
    "USHER_SMTP_HOST",
    "USHER_SMTP_PORT",
    "USHER_SMTP_USERNAME",
    "USHER_SMTP_PASSWORD",
    "USHER_LOG_CODES",
    "USHER_CONNECTORS_ALLOW_INSECURE_TARGETS",
    "USHER_CONNECTORS_RECORD_BODIES",
    "USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS",
];

pub(crate) fn location(var: &str) -> String {
    format!("environment variable {var}")
}

/// Replaces file settings with the environment's. Values are only parsed as far as
/// their type; what they mean is checked with the file's.
pub(crate) fn apply(
    raw: &mut RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    let mut get = |var: &str| -> Option<Val<String>> {
        let value = env(var)?;
        // An empty variable is most often an unset one interpolated by a deployment
        // tool; silently falling back to the file would hide that.
        if value.is_empty() {
            errors.push(ConfigError::new(
                location(var),
                "is set but empty; unset it to use the file's setting or the default",
            ));
            return None;
        }
        Some(Val::new(value, location(var)))
    };
    let mut strings: [(&str, &mut Option<Val<String>>); 12] = [
        ("USHER_ISSUER", &mut raw.issuer),
        ("USHER_LISTEN", &mut raw.listen),
        ("USHER_DATA_DIR", &mut raw.data_dir),
        ("USHER_DATABASE_URL", &mut raw.database_url),
        ("USHER_TEMPLATES_DIR", &mut raw.templates_dir),
        ("USHER_MASTER_KEY", &mut raw.master_key),
        ("USHER_MASTER_KEY_FILE", &mut raw.master_key_file),
        ("USHER_SIGNING_ALGORITHM", &mut raw.signing.algorithm),
        ("USHER_EMAIL_DELIVERY", &mut raw.email.delivery),
        ("USHER_EMAIL_FROM", &mut raw.email.from),
        ("USHER_SMTP_HOST", &mut raw.email.smtp.host),
        ("USHER_SMTP_USERNAME", &mut raw.email.smtp.username),
    ];
    for (var, slot) in &mut strings {
        if let Some(v) = get(var) {
            **slot = Some(v);
        }
    }
    if let Some(v) = get("USHER_SMTP_PASSWORD") {
        raw.email.smtp.password = Some(v);
    }
    if let Some(v) = get("USHER_METRICS_TOKEN") {
        raw.metrics_token = Some(v);
    }
    let mut typed = Vec::new();
    if let Some(v) = get("USHER_DEMO") {
        match rules::parse_bool(&v.value) {
            Ok(b) => raw.demo = Some(Val::new(b, v.loc)),
            Err(m) => typed.push(ConfigError::new(v.loc, m)),
        }
    }
    if let Some(v) = get("USHER_LOG_CODES") {
        match rules::parse_bool(&v.value) {
            Ok(b) => raw.email.log_codes = Some(Val::new(b, v.loc)),
            Err(m) => typed.push(ConfigError::new(v.loc, m)),
        }
    }
    let settings = &mut raw.connector_settings;
    for (var, slot) in [
        (
            "USHER_CONNECTORS_ALLOW_INSECURE_TARGETS",
            &mut settings.allow_insecure_targets,
        ),
        (
            "USHER_CONNECTORS_ALLOW_HTTP_TARGETS",
            &mut settings.allow_http_targets,
        ),
        (
            "USHER_CONNECTORS_ALLOW_LOOPBACK_TARGETS",
            &mut settings.allow_loopback_targets,
        ),
        (
            "USHER_CONNECTORS_ALLOW_PRIVATE_NETWORK_TARGETS",
            &mut settings.allow_private_network_targets,
        ),
        (
            "USHER_CONNECTORS_RECORD_BODIES",
            &mut settings.record_bodies,
        ),
        (
            "USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS",
            &mut raw.federation.allow_insecure_endpoints,
        ),
    ] {
        if let Some(v) = get(var) {
            match rules::parse_bool(&v.value) {
                Ok(b) => *slot = Some(Val::new(b, v.loc)),
                Err(m) => typed.push(ConfigError::new(v.loc, m)),
            }
        }
    }
    if let Some(v) = get("USHER_SHUTDOWN_DRAIN_SECONDS") {
        match v.value.trim().parse::<i64>() {
            Ok(n) => raw.shutdown_drain_seconds = Some(Val::new(n, v.loc)),
            Err(_) => typed.push(ConfigError::new(v.loc, "must be a whole number of seconds")),
        }
    }
    if let Some(v) = get("USHER_SMTP_PORT") {
        match v.value.trim().parse::<i64>() {
            Ok(p) => raw.email.smtp.port = Some(Val::new(p, v.loc)),
            Err(_) => typed.push(ConfigError::new(v.loc, "must be a port number")),
        }
    }
    errors.extend(typed);
}
