//! Reads the TOML tree into the file's settings, as written: every key checked against
//! the schema and every value against its TOML type, with all problems collected.
//! What the values mean is checked later, in `resolve`.

use std::{collections::BTreeMap, ops::Range};

use usher_domain::LocalizedText;

use crate::{
    error::ConfigError,
    rules,
    secret::Secret,
    tree::{line_col, Kind, Node},
};

/// A value and where it came from (file, line and key path, or environment variable).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Val<T> {
    pub value: T,
    pub loc: String,
}

impl<T> Val<T> {
    pub fn new(value: T, loc: impl Into<String>) -> Self {
        Val {
            value,
            loc: loc.into(),
        }
    }
}

/// A table of the file, to say where a key that is missing from it should have been.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Place {
    /// `usher.toml:12:1`, or just `usher.toml` when the table has no known line.
    prefix: String,
    path: String,
}

impl Place {
    pub fn here(&self) -> String {
        if self.path.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}: {}", self.prefix, self.path)
        }
    }

    pub fn key(&self, key: &str) -> String {
        format!("{}: {}", self.prefix, join(&self.path, key))
    }
}

pub(crate) type List = Val<Vec<Val<String>>>;

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub issuer: Option<Val<String>>,
    pub listen: Option<Val<String>>,
    pub data_dir: Option<Val<String>>,
    pub database_url: Option<Val<String>>,
    pub templates_dir: Option<Val<String>>,
    pub demo: Option<Val<bool>>,
    pub shutdown_drain_seconds: Option<Val<i64>>,
    /// Only from the environment, like the master key.
    pub metrics_token: Option<Val<String>>,
    /// Only from the environment: a key in a file that may be shared is no secret.
    pub master_key: Option<Val<String>>,
    pub master_key_file: Option<Val<String>>,
    pub signing: RawSigning,
    pub tokens: RawTokens,
    pub email: RawEmail,
    pub extensions_app_id: Option<Val<String>>,
    pub attributes: Vec<RawAttribute>,
    pub user_flows: Vec<RawUserFlow>,
    pub applications: Vec<RawApplication>,
    pub connector_settings: RawConnectorSettings,
    pub connectors: Vec<RawConnector>,
    pub federation: RawFederation,
    pub identity_providers: Vec<RawIdentityProvider>,
    pub event_listeners: Vec<RawEventListener>,
    pub rate_limits: RawRateLimits,
}

/// `[[event_listeners]]`: an extension run for some applications.
#[derive(Debug)]
pub(crate) struct RawEventListener {
    pub place: Place,
    pub id: Option<Val<String>>,
    pub event: Option<Val<String>>,
    pub extension: Option<Val<String>>,
    pub applications: Option<List>,
    pub priority: Option<Val<i64>>,
    pub fall_back_to_mailer: Option<Val<bool>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawSigning {
    pub algorithm: Option<Val<String>>,
    pub rotation_days: Option<Val<i64>>,
    pub publish_ahead_hours: Option<Val<i64>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawTokens {
    pub authorization_code_seconds: Option<Val<i64>>,
    pub access_token_seconds: Option<Val<i64>>,
    pub id_token_seconds: Option<Val<i64>>,
    pub refresh_token_days: Option<Val<i64>>,
    pub session_hours: Option<Val<i64>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawEmail {
    pub from: Option<Val<String>>,
    pub delivery: Option<Val<String>>,
    pub outbox_dir: Option<Val<String>>,
    pub log_codes: Option<Val<bool>>,
    pub smtp: RawSmtp,
}

#[derive(Debug, Default)]
pub(crate) struct RawSmtp {
    pub place: Option<Place>,
    pub host: Option<Val<String>>,
    pub port: Option<Val<i64>>,
    pub tls: Option<Val<String>>,
    pub username: Option<Val<String>>,
    pub password_env: Option<Val<String>>,
    pub password_file: Option<Val<String>>,
    /// Only from the environment (`USHER_SMTP_PASSWORD`).
    pub password: Option<Val<String>>,
}

#[derive(Debug)]
pub(crate) struct RawAttribute {
    pub place: Place,
    pub name: Option<Val<String>>,
    pub data_type: Option<Val<String>>,
    pub display_name: Option<Val<String>>,
    pub description: Option<Val<String>>,
}

#[derive(Debug)]
pub(crate) struct RawUserFlow {
    pub place: Place,
    pub id: Option<Val<String>>,
    pub identity_providers: Option<List>,
    pub claims: Option<List>,
    /// `[user_flows.connectors]`: each step's list, by step.
    pub slots: Vec<(usher_domain::ConnectorStep, List)>,
    pub requires_approval: Option<Val<bool>>,
    pub attributes: Vec<RawAssignment>,
}

#[derive(Debug)]
pub(crate) struct RawAssignment {
    pub place: Place,
    pub id: Option<Val<String>>,
    pub label: Option<Val<LocalizedText>>,
    pub required: Option<Val<bool>>,
    pub input: Option<Val<String>>,
    pub claim: Option<Val<bool>>,
    /// Where `options` was written, if it was.
    pub options_loc: Option<String>,
    pub options: Vec<RawOption>,
}

#[derive(Debug)]
pub(crate) struct RawOption {
    pub place: Place,
    pub value: Option<Val<String>>,
    pub label: Option<Val<LocalizedText>>,
    pub default: Option<Val<bool>>,
}

#[derive(Debug)]
pub(crate) struct RawApplication {
    pub place: Place,
    pub client_id: Option<Val<String>>,
    pub name: Option<Val<String>>,
    pub redirect_uris: Option<List>,
    pub post_logout_redirect_uris: Option<List>,
    pub client_type: Option<Val<String>>,
    pub client_secret_env: Option<Val<String>>,
    pub client_secret_file: Option<Val<String>>,
    pub client_secret_hash: Option<Val<String>>,
    pub user_flow: Option<Val<String>>,
    pub roles: Option<List>,
}

#[derive(Debug, Default)]
pub(crate) struct RawConnectorSettings {
    /// Deprecated: all three of the settings below at once.
    pub allow_insecure_targets: Option<Val<bool>>,
    pub allow_http_targets: Option<Val<bool>>,
    pub allow_loopback_targets: Option<Val<bool>>,
    pub allow_private_network_targets: Option<Val<bool>>,
    pub record_bodies: Option<Val<bool>>,
    pub extra_root_certificates: Option<Val<String>>,
    pub extra_root_certificates_file: Option<Val<String>>,
}

/// `[rate_limits]`: per limit `{ max, window_seconds }`, and the trusted proxies.
#[derive(Debug, Default)]
pub(crate) struct RawRateLimits {
    pub limits: Vec<(usher_domain::Limit, RawLimitRule)>,
    pub trusted_proxies: Option<List>,
}

#[derive(Debug)]
pub(crate) struct RawLimitRule {
    pub max: Option<Val<i64>>,
    pub window_seconds: Option<Val<i64>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawFederation {
    pub allow_insecure_endpoints: Option<Val<bool>>,
    pub timeout_ms: Option<Val<i64>>,
}

#[derive(Debug)]
pub(crate) struct RawIdentityProvider {
    pub place: Place,
    pub id: Option<Val<String>>,
    pub kind: Option<Val<String>>,
    /// Every key written, so that a setting written wrong (already reported) is not
    /// reported as missing as well.
    pub keys: Vec<String>,
    /// Every type-specific setting written, with where, so that those of another type
    /// can be refused.
    pub given: Vec<(String, String)>,
    pub display_name: Option<Val<String>>,
    pub client_id: Option<Val<String>>,
    pub client_secret: Option<RawSecretRef>,
    pub scopes: Option<List>,
    pub client_auth: Option<Val<String>>,
    pub issuer: Option<Val<String>>,
    pub tenant: Option<Val<String>>,
    pub authorization_endpoint: Option<Val<String>>,
    pub token_endpoint: Option<Val<String>>,
    pub userinfo_endpoint: Option<Val<String>>,
    pub subject_claim: Option<Val<String>>,
    pub identity_issuer: Option<Val<String>>,
    /// `[identity_providers.claims]`: the attribute id as written, and the claim
    /// (whose location names the attribute id too).
    pub claims: Vec<(String, Val<String>)>,
    /// `[identity_providers.endpoints]`, in the order of [`rules::PROVIDER_ENDPOINTS`].
    pub endpoints: Vec<(&'static str, Val<String>)>,
}

/// Where a secret is to be found: `{ env = "…" }`, `{ file = "…" }` or
/// `{ value = "…" }`. Which one, and whether only one, is checked later.
#[derive(Debug)]
pub(crate) struct RawSecretRef {
    pub place: Place,
    pub env: Option<Val<String>>,
    pub file: Option<Val<String>>,
    pub value: Option<Val<Secret>>,
}

#[derive(Debug)]
pub(crate) struct RawConnector {
    pub place: Place,
    pub id: Option<Val<String>>,
    pub contract: Option<Val<String>>,
    pub event: Option<Val<String>>,
    pub description: Option<Val<String>>,
    pub claims_for_token: Option<List>,
    pub display_name: Option<Val<String>>,
    pub target_url: Option<Val<String>>,
    pub timeout_ms: Option<Val<i64>>,
    pub retries: Option<Val<i64>>,
    pub budget_ms: Option<Val<i64>>,
    pub failure_policy: Option<Val<String>>,
    pub lenient: Option<Val<bool>>,
    pub signing_secrets: Option<Val<Vec<RawSecretRef>>>,
    pub failure_threshold: Option<Val<i64>>,
    pub open_seconds: Option<Val<i64>>,
    pub authentication: Option<RawAuthentication>,
    pub extra_root_certificates: Option<Val<String>>,
    pub extra_root_certificates_file: Option<Val<String>>,
}

#[derive(Debug)]
pub(crate) struct RawAuthentication {
    pub place: Place,
    pub kind: Option<Val<String>>,
    /// Every setting written besides `type`, with where, so that those of another
    /// type can be refused.
    pub given: Vec<(String, String)>,
    pub username: Option<Val<String>>,
    pub password: Option<RawSecretRef>,
    pub header: Option<Val<String>>,
    pub value: Option<RawSecretRef>,
    pub token_url: Option<Val<String>>,
    pub client_id: Option<Val<String>>,
    pub client_secret: Option<RawSecretRef>,
    pub scope: Option<Val<String>>,
    pub resource_id: Option<Val<String>>,
    pub caller_id: Option<Val<String>>,
    /// Where `certificates` was written, and its entries.
    pub certificates: Option<(String, Vec<RawCertificate>)>,
}

#[derive(Debug)]
pub(crate) struct RawCertificate {
    pub place: Place,
    pub pkcs12_file: Option<Val<String>>,
    /// The PKCS#12 file's bytes in base64, by secret reference (what `usher export`
    /// writes, as it has no file to name).
    pub pkcs12_base64: Option<RawSecretRef>,
    pub password: Option<RawSecretRef>,
    pub pem_file: Option<Val<String>>,
    /// The PEM chain itself, instead of `pem_file`.
    pub pem: Option<Val<String>>,
    pub key_file: Option<Val<String>>,
    /// The PEM key by secret reference, instead of `key_file`.
    pub key: Option<RawSecretRef>,
    /// As written: a TOML date-time or a string.
    pub uploaded_at: Option<Val<String>>,
}

fn join(path: &str, key: &str) -> String {
    // Keys that are not bare TOML keys are quoted so the path stays unambiguous.
    let key = if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// A table being read: its place, and its entries.
struct Table<'n> {
    place: Place,
    path: String,
    entries: &'n [(String, Node)],
}

impl<'n> Table<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

pub(crate) struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    /// With the offset they were found at, to report them in file order.
    errors: Vec<(usize, ConfigError)>,
}

const ROOT_KEYS: &[&str] = &[
    "issuer",
    "listen",
    "data_dir",
    "database_url",
    "templates_dir",
    "demo",
    "shutdown_drain_seconds",
    "secrets",
    "signing",
    "tokens",
    "email",
    "tenant",
    "attributes",
    "user_flows",
    "applications",
    "connector_settings",
    "connectors",
    "federation",
    "identity_providers",
    "event_listeners",
    "rate_limits",
];

const CONNECTOR_KEYS: &[&str] = &[
    "id",
    "contract",
    "event",
    "description",
    "claims_for_token",
    "display_name",
    "target_url",
    "timeout_ms",
    "retries",
    "budget_ms",
    "failure_policy",
    "lenient",
    "signing_secrets",
    "breaker",
    "authentication",
    "extra_root_certificates",
    "extra_root_certificates_file",
];

const CERTIFICATE_KEYS: &[&str] = &[
    "pkcs12_file",
    "pkcs12_base64",
    "password",
    "uploaded_at",
    "pem_file",
    "pem",
    "key_file",
    "key",
];

/// How a secret reference is written, for messages.
const SECRET_REF: &str =
    "a secret reference: { env = \"NAME\" }, { file = \"PATH\" } or { value = \"…\" }";

impl<'a> Reader<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Reader {
            file,
            text,
            errors: Vec::new(),
        }
    }

    /// `file:line:col` for a span.
    pub fn position(&self, span: Option<&Range<usize>>) -> String {
        match span {
            Some(span) => {
                let (line, col) = line_col(self.text, span.start);
                format!("{}:{line}:{col}", self.file)
            }
            None => self.file.to_owned(),
        }
    }

    fn loc(&self, path: &str, span: Option<&Range<usize>>) -> String {
        Place {
            prefix: self.position(span),
            path: path.to_owned(),
        }
        .here()
    }

    fn error(&mut self, path: &str, span: Option<&Range<usize>>, message: impl Into<String>) {
        let loc = self.loc(path, span);
        let offset = span.map_or(usize::MAX, |s| s.start);
        self.errors.push((offset, ConfigError::new(loc, message)));
    }

    /// The errors found, in the order of the file.
    pub fn into_errors(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|(offset, _)| *offset);
        self.errors.into_iter().map(|(_, e)| e).collect()
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.error(
            path,
            node.span.as_ref(),
            format!("expected {expected}, found {}", node.kind.describe()),
        );
    }

    /// Checks that `node` is a table holding only `allowed` keys.
    fn table<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Table<'n>> {
        let Kind::Table(entries) = &node.kind else {
            self.wrong_type(node, path, "a table");
            return None;
        };
        for (key, value) in entries {
            if !allowed.contains(&key.as_str()) {
                let hint = match rules::closest(key, allowed) {
                    Some(near) => format!("; did you mean `{near}`?"),
                    None => format!("; expected one of: {}", allowed.join(", ")),
                };
                self.error(
                    &join(path, key),
                    value.span.as_ref(),
                    format!("unknown key `{key}`{hint}"),
                );
            }
        }
        // The root's span is the empty one at the start: not worth a line number.
        let span = if path.is_empty() {
            None
        } else {
            node.span.as_ref()
        };
        Some(Table {
            place: Place {
                prefix: self.position(span),
                path: path.to_owned(),
            },
            path: path.to_owned(),
            entries,
        })
    }

    fn sub<'n>(&mut self, t: &Table<'n>, key: &str, allowed: &[&str]) -> Option<Table<'n>> {
        let node = t.get(key)?;
        self.table(node, &join(&t.path, key), allowed)
    }

    fn string(&mut self, t: &Table<'_>, key: &str) -> Option<Val<String>> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        match &node.kind {
            Kind::String(s) => Some(Val::new(s.clone(), self.loc(&path, node.span.as_ref()))),
            _ => {
                self.wrong_type(node, &path, "a string");
                None
            }
        }
    }

    fn integer(&mut self, t: &Table<'_>, key: &str) -> Option<Val<i64>> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        match &node.kind {
            Kind::Integer(i) => Some(Val::new(*i, self.loc(&path, node.span.as_ref()))),
            _ => {
                self.wrong_type(node, &path, "an integer");
                None
            }
        }
    }

    fn boolean(&mut self, t: &Table<'_>, key: &str) -> Option<Val<bool>> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        match &node.kind {
            Kind::Boolean(b) => Some(Val::new(*b, self.loc(&path, node.span.as_ref()))),
            _ => {
                self.wrong_type(node, &path, "true or false");
                None
            }
        }
    }

    fn strings(&mut self, t: &Table<'_>, key: &str) -> Option<List> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        let Kind::Array(items) = &node.kind else {
            self.wrong_type(node, &path, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match &item.kind {
                Kind::String(s) => out.push(Val::new(
                    s.clone(),
                    self.loc(&item_path, item.span.as_ref()),
                )),
                _ => self.wrong_type(item, &item_path, "a string"),
            }
        }
        Some(Val::new(out, self.loc(&path, node.span.as_ref())))
    }

    /// A label: one string for every language, or a table of language tag → string.
    fn text(&mut self, t: &Table<'_>, key: &str) -> Option<Val<LocalizedText>> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        let loc = self.loc(&path, node.span.as_ref());
        match &node.kind {
            Kind::String(s) => Some(Val::new(LocalizedText::Plain(s.clone()), loc)),
            Kind::Table(entries) => {
                let mut map = BTreeMap::new();
                for (locale, value) in entries {
                    let value_path = join(&path, locale);
                    if let Err(m) = rules::check_locale(locale) {
                        self.error(&value_path, value.span.as_ref(), m);
                    }
                    match &value.kind {
                        Kind::String(s) => {
                            map.insert(locale.clone(), s.clone());
                        }
                        _ => self.wrong_type(value, &value_path, "a string"),
                    }
                }
                if entries.is_empty() {
                    self.error(
                        &path,
                        node.span.as_ref(),
                        "must give the text for at least one language",
                    );
                }
                Some(Val::new(LocalizedText::PerLocale(map), loc))
            }
            _ => {
                self.wrong_type(node, &path, "a string or a table of language → string");
                None
            }
        }
    }

    /// An array of tables (`[[key]]` or `key = [{…}]`), each checked against `allowed`.
    fn tables<'n>(
        &mut self,
        t: &Table<'n>,
        key: &str,
        allowed: &[&str],
    ) -> Option<(String, Vec<Table<'n>>)> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        let Kind::Array(items) = &node.kind else {
            self.wrong_type(node, &path, "an array of tables");
            return None;
        };
        let loc = self.loc(&path, node.span.as_ref());
        let tables = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.table(item, &format!("{path}[{i}]"), allowed))
            .collect();
        Some((loc, tables))
    }

    /// A date and time: a TOML one (`2026-01-15T00:00:00Z`) or a string, kept as
    /// text to be checked later.
    fn datetime(&mut self, t: &Table<'_>, key: &str) -> Option<Val<String>> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        match &node.kind {
            Kind::String(s) | Kind::Datetime(s) => {
                Some(Val::new(s.clone(), self.loc(&path, node.span.as_ref())))
            }
            _ => {
                self.wrong_type(node, &path, "a date and time such as 2026-01-15T00:00:00Z");
                None
            }
        }
    }

    fn secret_ref(&mut self, node: &Node, path: &str) -> Option<RawSecretRef> {
        if !matches!(node.kind, Kind::Table(_)) {
            // The value itself is not quoted back: it may be the secret.
            self.wrong_type(node, path, SECRET_REF);
            return None;
        }
        let t = self.table(node, path, &["env", "file", "value"])?;
        Some(RawSecretRef {
            place: t.place.clone(),
            env: self.string(&t, "env"),
            file: self.string(&t, "file"),
            value: self
                .string(&t, "value")
                .map(|v| Val::new(Secret::new(v.value), v.loc)),
        })
    }

    /// A table of strings under any keys (an attribute id → claim mapping).
    fn string_table(&mut self, t: &Table<'_>, key: &str) -> Vec<(String, Val<String>)> {
        let Some(node) = t.get(key) else {
            return Vec::new();
        };
        let path = join(&t.path, key);
        let Kind::Table(entries) = &node.kind else {
            self.wrong_type(node, &path, "a table of attribute id = \"claim\"");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let entry_path = join(&path, k);
            match &v.kind {
                Kind::String(s) => {
                    out.push((
                        k.clone(),
                        Val::new(s.clone(), self.loc(&entry_path, v.span.as_ref())),
                    ));
                }
                _ => self.wrong_type(v, &entry_path, "a claim name (a string)"),
            }
        }
        out
    }

    fn secret(&mut self, t: &Table<'_>, key: &str) -> Option<RawSecretRef> {
        let node = t.get(key)?;
        self.secret_ref(node, &join(&t.path, key))
    }

    fn secrets(&mut self, t: &Table<'_>, key: &str) -> Option<Val<Vec<RawSecretRef>>> {
        let node = t.get(key)?;
        let path = join(&t.path, key);
        let Kind::Array(items) = &node.kind else {
            self.wrong_type(node, &path, "an array of secret references");
            return None;
        };
        let refs = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.secret_ref(item, &format!("{path}[{i}]")))
            .collect();
        Some(Val::new(refs, self.loc(&path, node.span.as_ref())))
    }

    pub fn read(&mut self, root: &Node) -> RawConfig {
        let mut raw = RawConfig::default();
        let Some(t) = self.table(root, "", ROOT_KEYS) else {
            return raw;
        };
        raw.issuer = self.string(&t, "issuer");
        raw.listen = self.string(&t, "listen");
        raw.data_dir = self.string(&t, "data_dir");
        raw.database_url = self.string(&t, "database_url");
        raw.templates_dir = self.string(&t, "templates_dir");
        raw.demo = self.boolean(&t, "demo");
        raw.shutdown_drain_seconds = self.integer(&t, "shutdown_drain_seconds");
        if let Some(s) = self.sub(&t, "secrets", &["master_key_file"]) {
            raw.master_key_file = self.string(&s, "master_key_file");
        }
        raw.signing = self.signing(&t);
        raw.tokens = self.tokens(&t);
        raw.email = self.email(&t);
        if let Some(s) = self.sub(&t, "tenant", &["extensions_app_id"]) {
            raw.extensions_app_id = self.string(&s, "extensions_app_id");
        }
        raw.attributes = self.attributes(&t);
        raw.user_flows = self.user_flows(&t);
        raw.applications = self.applications(&t);
        raw.connector_settings = self.connector_settings(&t);
        raw.rate_limits = self.rate_limits(&t);
        raw.connectors = self.connectors(&t);
        raw.federation = self.federation(&t);
        raw.identity_providers = self.identity_providers(&t);
        raw.event_listeners = self.event_listeners(&t);
        raw
    }

    /// `[[event_listeners]]`.
    fn event_listeners(&mut self, t: &Table<'_>) -> Vec<RawEventListener> {
        let Some((_, tables)) = self.tables(
            t,
            "event_listeners",
            &[
                "id",
                "event",
                "extension",
                "applications",
                "priority",
                "fall_back_to_mailer",
            ],
        ) else {
            return Vec::new();
        };
        tables
            .iter()
            .map(|l| RawEventListener {
                place: l.place.clone(),
                id: self.string(l, "id"),
                event: self.string(l, "event"),
                extension: self.string(l, "extension"),
                applications: self.strings(l, "applications"),
                priority: self.integer(l, "priority"),
                fall_back_to_mailer: self.boolean(l, "fall_back_to_mailer"),
            })
            .collect()
    }

    /// `[signing]`: the algorithm of the signing keys and how they rotate.
    fn signing(&mut self, t: &Table<'_>) -> RawSigning {
        let Some(s) = self.sub(
            t,
            "signing",
            &["algorithm", "rotation_days", "publish_ahead_hours"],
        ) else {
            return RawSigning::default();
        };
        RawSigning {
            algorithm: self.string(&s, "algorithm"),
            rotation_days: self.integer(&s, "rotation_days"),
            publish_ahead_hours: self.integer(&s, "publish_ahead_hours"),
        }
    }

    /// `[tokens]`: how long codes, tokens and sessions live.
    fn tokens(&mut self, t: &Table<'_>) -> RawTokens {
        const TOKEN_KEYS: [&str; 5] = [
            "authorization_code_seconds",
            "access_token_seconds",
            "id_token_seconds",
            "refresh_token_days",
            "session_hours",
        ];
        let Some(s) = self.sub(t, "tokens", &TOKEN_KEYS) else {
            return RawTokens::default();
        };
        RawTokens {
            authorization_code_seconds: self.integer(&s, TOKEN_KEYS[0]),
            access_token_seconds: self.integer(&s, TOKEN_KEYS[1]),
            id_token_seconds: self.integer(&s, TOKEN_KEYS[2]),
            refresh_token_days: self.integer(&s, TOKEN_KEYS[3]),
            session_hours: self.integer(&s, TOKEN_KEYS[4]),
        }
    }

    /// `[email]`: the sender, and how mail is delivered.
    fn email(&mut self, t: &Table<'_>) -> RawEmail {
        let Some(e) = self.sub(
            t,
            "email",
            &["from", "delivery", "outbox_dir", "log_codes", "smtp"],
        ) else {
            return RawEmail::default();
        };
        RawEmail {
            from: self.string(&e, "from"),
            delivery: self.string(&e, "delivery"),
            outbox_dir: self.string(&e, "outbox_dir"),
            log_codes: self.boolean(&e, "log_codes"),
            smtp: self.smtp(&e),
        }
    }

    /// `[email.smtp]`: the mail server. Its password is only ever taken from the
    /// environment or a file.
    fn smtp(&mut self, e: &Table<'_>) -> RawSmtp {
        let Some(s) = self.sub(
            e,
            "smtp",
            &[
                "host",
                "port",
                "tls",
                "username",
                "password_env",
                "password_file",
            ],
        ) else {
            return RawSmtp::default();
        };
        RawSmtp {
            place: Some(s.place.clone()),
            host: self.string(&s, "host"),
            port: self.integer(&s, "port"),
            tls: self.string(&s, "tls"),
            username: self.string(&s, "username"),
            password_env: self.string(&s, "password_env"),
            password_file: self.string(&s, "password_file"),
            password: None,
        }
    }

    /// `[[attributes]]`: the tenant's custom attributes.
    fn attributes(&mut self, t: &Table<'_>) -> Vec<RawAttribute> {
        let Some((_, tables)) = self.tables(
            t,
            "attributes",
            &["name", "data_type", "display_name", "description"],
        ) else {
            return Vec::new();
        };
        tables.iter().map(|a| self.attribute(a)).collect()
    }

    /// `[[user_flows]]`.
    fn user_flows(&mut self, t: &Table<'_>) -> Vec<RawUserFlow> {
        let Some((_, tables)) = self.tables(
            t,
            "user_flows",
            &[
                "id",
                "identity_providers",
                "claims",
                "requires_approval",
                "connectors",
                "attributes",
            ],
        ) else {
            return Vec::new();
        };
        tables.iter().map(|f| self.user_flow(f)).collect()
    }

    /// `[[applications]]`: the OAuth clients.
    fn applications(&mut self, t: &Table<'_>) -> Vec<RawApplication> {
        let Some((_, tables)) = self.tables(
            t,
            "applications",
            &[
                "client_id",
                "name",
                "redirect_uris",
                "post_logout_redirect_uris",
                "type",
                "client_secret_env",
                "client_secret_file",
                "client_secret_hash",
                "user_flow",
                "roles",
            ],
        ) else {
            return Vec::new();
        };
        tables.iter().map(|a| self.application(a)).collect()
    }

    /// `[connector_settings]`: what every connector may call, and what is trusted.
    fn connector_settings(&mut self, t: &Table<'_>) -> RawConnectorSettings {
        let Some(s) = self.sub(
            t,
            "connector_settings",
            &[
                "allow_insecure_targets",
                "allow_http_targets",
                "allow_loopback_targets",
                "allow_private_network_targets",
                "record_bodies",
                "extra_root_certificates",
                "extra_root_certificates_file",
            ],
        ) else {
            return RawConnectorSettings::default();
        };
        RawConnectorSettings {
            allow_insecure_targets: self.boolean(&s, "allow_insecure_targets"),
            allow_http_targets: self.boolean(&s, "allow_http_targets"),
            allow_loopback_targets: self.boolean(&s, "allow_loopback_targets"),
            allow_private_network_targets: self.boolean(&s, "allow_private_network_targets"),
            record_bodies: self.boolean(&s, "record_bodies"),
            extra_root_certificates: self.string(&s, "extra_root_certificates"),
            extra_root_certificates_file: self.string(&s, "extra_root_certificates_file"),
        }
    }

    /// `[rate_limits]`: one table per limit, and the trusted proxies.
    fn rate_limits(&mut self, t: &Table<'_>) -> RawRateLimits {
        let mut rate_limits = RawRateLimits::default();
        let limit_keys: Vec<&str> = usher_domain::Limit::ALL
            .iter()
            .map(|l| l.name())
            .chain(["trusted_proxies"])
            .collect();
        let Some(s) = self.sub(t, "rate_limits", &limit_keys) else {
            return rate_limits;
        };
        for limit in usher_domain::Limit::ALL {
            if let Some(r) = self.sub(&s, limit.name(), &["max", "window_seconds"]) {
                let rule = RawLimitRule {
                    max: self.integer(&r, "max"),
                    window_seconds: self.integer(&r, "window_seconds"),
                };
                rate_limits.limits.push((limit, rule));
            }
        }
        rate_limits.trusted_proxies = self.strings(&s, "trusted_proxies");
        rate_limits
    }

    /// `[[connectors]]`: the API connectors user flows call.
    fn connectors(&mut self, t: &Table<'_>) -> Vec<RawConnector> {
        let Some((_, tables)) = self.tables(t, "connectors", CONNECTOR_KEYS) else {
            return Vec::new();
        };
        tables.iter().map(|c| self.connector(c)).collect()
    }

    /// `[federation]`: what calls to upstream identity providers may do.
    fn federation(&mut self, t: &Table<'_>) -> RawFederation {
        let Some(s) = self.sub(t, "federation", &["allow_insecure_endpoints", "timeout_ms"]) else {
            return RawFederation::default();
        };
        RawFederation {
            allow_insecure_endpoints: self.boolean(&s, "allow_insecure_endpoints"),
            timeout_ms: self.integer(&s, "timeout_ms"),
        }
    }

    /// `[[identity_providers]]`: every key any provider type takes is allowed here;
    /// which belong to which type is checked later.
    fn identity_providers(&mut self, t: &Table<'_>) -> Vec<RawIdentityProvider> {
        let mut keys = rules::PROVIDER_COMMON_KEYS.to_vec();
        for (_, fields) in rules::PROVIDER_TYPES {
            keys.extend_from_slice(fields);
        }
        let Some((_, tables)) = self.tables(t, "identity_providers", &keys) else {
            return Vec::new();
        };
        tables.iter().map(|p| self.identity_provider(p)).collect()
    }

    fn identity_provider(&mut self, t: &Table<'_>) -> RawIdentityProvider {
        let given = t
            .entries
            .iter()
            .filter(|(k, _)| rules::provider_type_of(k).is_some())
            .map(|(k, v)| (k.clone(), self.loc(&join(&t.path, k), v.span.as_ref())))
            .collect();
        let endpoint_keys: Vec<&str> = rules::PROVIDER_ENDPOINTS.iter().map(|(k, _)| *k).collect();
        let mut endpoints = Vec::new();
        if let Some(e) = self.sub(t, "endpoints", &endpoint_keys) {
            for key in &endpoint_keys {
                if let Some(v) = self.string(&e, key) {
                    endpoints.push((*key, v));
                }
            }
        }
        RawIdentityProvider {
            place: t.place.clone(),
            id: self.string(t, "id"),
            kind: self.string(t, "type"),
            keys: t.entries.iter().map(|(k, _)| k.clone()).collect(),
            given,
            display_name: self.string(t, "display_name"),
            client_id: self.string(t, "client_id"),
            client_secret: self.secret(t, "client_secret"),
            scopes: self.strings(t, "scopes"),
            client_auth: self.string(t, "client_auth"),
            issuer: self.string(t, "issuer"),
            tenant: self.string(t, "tenant"),
            authorization_endpoint: self.string(t, "authorization_endpoint"),
            token_endpoint: self.string(t, "token_endpoint"),
            userinfo_endpoint: self.string(t, "userinfo_endpoint"),
            subject_claim: self.string(t, "subject_claim"),
            identity_issuer: self.string(t, "identity_issuer"),
            claims: self.string_table(t, "claims"),
            endpoints,
        }
    }

    fn connector(&mut self, t: &Table<'_>) -> RawConnector {
        let mut c = RawConnector {
            place: t.place.clone(),
            id: self.string(t, "id"),
            contract: self.string(t, "contract"),
            event: self.string(t, "event"),
            description: self.string(t, "description"),
            claims_for_token: self.strings(t, "claims_for_token"),
            display_name: self.string(t, "display_name"),
            target_url: self.string(t, "target_url"),
            timeout_ms: self.integer(t, "timeout_ms"),
            retries: self.integer(t, "retries"),
            budget_ms: self.integer(t, "budget_ms"),
            failure_policy: self.string(t, "failure_policy"),
            lenient: self.boolean(t, "lenient"),
            signing_secrets: self.secrets(t, "signing_secrets"),
            failure_threshold: None,
            open_seconds: None,
            authentication: None,
            extra_root_certificates: self.string(t, "extra_root_certificates"),
            extra_root_certificates_file: self.string(t, "extra_root_certificates_file"),
        };
        if let Some(b) = self.sub(t, "breaker", &["failure_threshold", "open_seconds"]) {
            c.failure_threshold = self.integer(&b, "failure_threshold");
            c.open_seconds = self.integer(&b, "open_seconds");
        }
        let mut keys = vec!["type"];
        for (_, fields) in rules::AUTHENTICATION_TYPES {
            keys.extend_from_slice(fields);
        }
        if let Some(a) = self.sub(t, "authentication", &keys) {
            let given = a
                .entries
                .iter()
                .filter(|(k, _)| k != "type" && keys.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), self.loc(&join(&a.path, k), v.span.as_ref())))
                .collect();
            let certificates =
                self.tables(&a, "certificates", CERTIFICATE_KEYS)
                    .map(|(loc, tables)| {
                        let list = tables.iter().map(|c| self.certificate(c)).collect();
                        (loc, list)
                    });
            c.authentication = Some(RawAuthentication {
                place: a.place.clone(),
                kind: self.string(&a, "type"),
                given,
                username: self.string(&a, "username"),
                password: self.secret(&a, "password"),
                header: self.string(&a, "header"),
                value: self.secret(&a, "value"),
                token_url: self.string(&a, "token_url"),
                client_id: self.string(&a, "client_id"),
                client_secret: self.secret(&a, "client_secret"),
                scope: self.string(&a, "scope"),
                resource_id: self.string(&a, "resource_id"),
                caller_id: self.string(&a, "caller_id"),
                certificates,
            });
        }
        c
    }

    fn certificate(&mut self, t: &Table<'_>) -> RawCertificate {
        RawCertificate {
            place: t.place.clone(),
            pkcs12_file: self.string(t, "pkcs12_file"),
            pkcs12_base64: self.secret(t, "pkcs12_base64"),
            password: self.secret(t, "password"),
            pem_file: self.string(t, "pem_file"),
            pem: self.string(t, "pem"),
            key_file: self.string(t, "key_file"),
            key: self.secret(t, "key"),
            uploaded_at: self.datetime(t, "uploaded_at"),
        }
    }

    fn attribute(&mut self, t: &Table<'_>) -> RawAttribute {
        RawAttribute {
            place: t.place.clone(),
            name: self.string(t, "name"),
            data_type: self.string(t, "data_type"),
            display_name: self.string(t, "display_name"),
            description: self.string(t, "description"),
        }
    }

    fn user_flow(&mut self, t: &Table<'_>) -> RawUserFlow {
        let mut flow = RawUserFlow {
            place: t.place.clone(),
            id: self.string(t, "id"),
            identity_providers: self.strings(t, "identity_providers"),
            claims: self.strings(t, "claims"),
            slots: Vec::new(),
            requires_approval: self.boolean(t, "requires_approval"),
            attributes: Vec::new(),
        };
        let steps = usher_domain::ConnectorStep::ALL.map(usher_domain::ConnectorStep::config_name);
        if let Some(c) = self.sub(t, "connectors", &steps) {
            for step in usher_domain::ConnectorStep::ALL {
                if let Some(list) = self.strings(&c, step.config_name()) {
                    flow.slots.push((step, list));
                }
            }
        }
        if let Some((_, tables)) = self.tables(
            t,
            "attributes",
            &["id", "label", "required", "input", "claim", "options"],
        ) {
            flow.attributes = tables.iter().map(|a| self.assignment(a)).collect();
        }
        flow
    }

    fn assignment(&mut self, t: &Table<'_>) -> RawAssignment {
        let mut a = RawAssignment {
            place: t.place.clone(),
            id: self.string(t, "id"),
            label: self.text(t, "label"),
            required: self.boolean(t, "required"),
            input: self.string(t, "input"),
            claim: self.boolean(t, "claim"),
            options_loc: None,
            options: Vec::new(),
        };
        if let Some((loc, tables)) = self.tables(t, "options", &["value", "label", "default"]) {
            a.options_loc = Some(loc);
            a.options = tables
                .iter()
                .map(|o| RawOption {
                    place: o.place.clone(),
                    value: self.string(o, "value"),
                    label: self.text(o, "label"),
                    default: self.boolean(o, "default"),
                })
                .collect();
        }
        a
    }

    fn application(&mut self, t: &Table<'_>) -> RawApplication {
        RawApplication {
            place: t.place.clone(),
            client_id: self.string(t, "client_id"),
            name: self.string(t, "name"),
            redirect_uris: self.strings(t, "redirect_uris"),
            post_logout_redirect_uris: self.strings(t, "post_logout_redirect_uris"),
            client_type: self.string(t, "type"),
            client_secret_env: self.string(t, "client_secret_env"),
            client_secret_file: self.string(t, "client_secret_file"),
            client_secret_hash: self.string(t, "client_secret_hash"),
            user_flow: self.string(t, "user_flow"),
            roles: self.strings(t, "roles"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse;

    fn read(text: &str) -> (RawConfig, Vec<ConfigError>) {
        let root = parse(text).unwrap();
        let mut r = Reader::new("u.toml", text);
        let raw = r.read(&root);
        (raw, r.into_errors())
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_all_reported_in_file_order() {
        let text = "issuer = 5\nlisten = \"x\"\ncolour = \"red\"\n[email]\nlog_code = true\n[[user_flows]]\nid = \"a\"\n[[user_flows.attributes]]\nid = \"x\"\nrequired = \"yes\"\n";
        let (raw, errors) = read(text);
        let locs: Vec<_> = errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locs,
            [
                "u.toml:1:10: issuer",
                "u.toml:3:10: colour",
                "u.toml:5:12: email.log_code",
                "u.toml:10:12: user_flows[0].attributes[0].required",
            ]
        );
        assert!(errors[0]
            .message
            .contains("expected a string, found an integer"));
        assert!(errors[1].message.contains("unknown key `colour`"));
        assert!(errors[2].message.contains("did you mean `log_codes`"));
        assert_eq!(raw.listen.unwrap().loc, "u.toml:2:10: listen");
        assert_eq!(
            raw.user_flows[0].attributes[0].place.here(),
            "u.toml:8:1: user_flows[0].attributes[0]"
        );
    }

    #[test]
    fn labels_are_plain_or_per_locale() {
        let text = "[[user_flows]]\n[[user_flows.attributes]]\nlabel = { en = \"Size\", nb = \"Størrelse\", \"en US\" = \"x\" }\n[[user_flows.attributes.options]]\nvalue = \"S\"\nlabel = \"Small\"\n";
        let (raw, errors) = read(text);
        let a = &raw.user_flows[0].attributes[0];
        let LocalizedText::PerLocale(map) = &a.label.as_ref().unwrap().value else {
            panic!()
        };
        assert_eq!(map["nb"], "Størrelse");
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .location
            .ends_with("user_flows[0].attributes[0].label.\"en US\""));
        assert_eq!(
            a.options[0].label.as_ref().unwrap().value,
            LocalizedText::Plain("Small".into())
        );
    }

    #[test]
    fn inline_arrays_of_tables_work_too() {
        let text = "applications = [{ client_id = \"a\", roles = [\"User.Read.All\", 3] }]\n";
        let (raw, errors) = read(text);
        assert_eq!(raw.applications[0].client_id.as_ref().unwrap().value, "a");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].location.ends_with("applications[0].roles[1]"));
    }
}
