//! `usher export`: the tenant (as the database holds it) written as a configuration
//! file, such that loading the file gives the same tenant back. `usher export`
//! followed by `usher apply` on a fresh database reproduces the tenant.
//!
//! The file holds the tenant only: `[tenant]`, `[[attributes]]`, `[[connectors]]`,
//! `[[identity_providers]]`, `[[user_flows]]`, `[[applications]]` and `demo`. Server
//! settings (issuer, listen, database, master key, signing, tokens, email,
//! `[connector_settings]`, `[federation]`) are never written: `apply` changes only the
//! tenant, and reads any file through [`crate::load_tenant`], which takes the running
//! server's settings whatever the file says (so a full configuration file is accepted
//! too, and only its tenant parts are used).
//!
//! Every setting is written explicitly, defaults included, so that the file means the
//! same tenant even if a later version changes a default; the only exceptions are
//! settings whose absence is the only way to say what the tenant holds (no label, the
//! kind's default scopes, no endpoint override, no OAuth scope, an empty PKCS#12
//! password, an empty description). The output depends on nothing but the input, so
//! two exports can be compared with `diff`.

use std::{collections::HashSet, fmt, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use chrono::SecondsFormat;
use usher_domain::identity_provider::{
    ClaimMapping, ClientAuthMethod, EndpointOverrides, ProviderConfig, ProviderKind,
};
use usher_domain::{
    Application, AttributeAssignment, AttributeDefinition, CertificateSource, ClientCertificate,
    ClientType, ConnectorAuthentication, ConnectorContract, ConnectorDefinition, ConnectorStep,
    EventListener, FailurePolicy, LocalizedText, Tenant, UserFlow,
};

use crate::{
    demo,
    error::{ConfigError, ConfigErrors},
    rules,
    settings::Config,
};

/// What to export: the parts of a tenant, as `usher_tenant::TenantSnapshot` holds
/// them, and the issuer of the server it belongs to.
#[derive(Clone, Copy)]
pub struct ExportInput<'a> {
    /// The extensions app id, custom attributes, user flows and applications.
    pub tenant: &'a Tenant,
    pub connectors: &'a [ConnectorDefinition],
    pub identity_providers: &'a [ProviderConfig],
    pub event_listeners: &'a [EventListener],
    /// The server's issuer. The demo application's redirect URIs are built from it,
    /// so it decides whether the tenant's demo objects are exactly the demo's.
    pub issuer: &'a str,
}

impl<'a> ExportInput<'a> {
    /// The tenant a loaded configuration declares.
    pub fn from_config(config: &'a Config) -> Self {
        ExportInput {
            tenant: &config.tenant,
            connectors: &config.connectors,
            identity_providers: &config.identity_providers,
            event_listeners: &config.event_listeners,
            issuer: &config.issuer,
        }
    }
}

/// How secrets (connector credentials and signing secrets, certificates' keys and
/// passwords, identity providers' client secrets) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretExport {
    /// Each secret itself, `{ value = "…" }`: the file is then as sensitive as the
    /// database and its master key together.
    Values,
    /// `{ env = "USHER_SECRET_<KIND>_<ID>_<FIELD>" }`: `<KIND>` is `CONNECTOR` or
    /// `IDENTITY_PROVIDER`, `<FIELD>` the secret's key path in its entry; upper-cased,
    /// every character other than A-Z and 0-9 written `_`, and `_2`, `_3`, … added
    /// should two names meet. For example
    /// `USHER_SECRET_CONNECTOR_APPROVAL_CHECK_AUTHENTICATION_PASSWORD`.
    /// [`Export::required_env`] lists them.
    EnvReferences,
}

/// An exported tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct Export {
    /// The configuration file.
    pub toml: String,
    /// With [`SecretExport::EnvReferences`], the environment variables the file reads
    /// its secrets from, in the order they appear; each must be set (to the secret; a
    /// `…_PKCS12_BASE64` one to the PKCS#12 file in base64) when the file is loaded.
    /// Empty with [`SecretExport::Values`].
    pub required_env: Vec<String>,
}

/// The text may hold secrets: it is not printed.
impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("toml", &format_args!("<{} bytes>", self.toml.len()))
            .field("required_env", &self.required_env)
            .finish()
    }
}

/// The prefix of every environment variable [`SecretExport::EnvReferences`] names.
pub const SECRET_ENV_PREFIX: &str = "USHER_SECRET_";

const CONNECTOR: &str = "CONNECTOR";
const IDENTITY_PROVIDER: &str = "IDENTITY_PROVIDER";

/// Writes the tenant `input` describes as a configuration file.
///
/// Fails, listing every problem, when part of the tenant cannot be written so that
/// loading the file gives it back (a custom attribute whose id is not
/// `extension_<extensions app id>_<Name>`, a claim mapping without one of its kind's
/// default entries, a duration the file cannot express, a confidential application
/// without a secret hash). A tenant stored from a configuration file, or through
/// the same rules, has none of these.
///
/// Whether the file then loads depends on the tenant following the configuration's
/// rules, which everything stored through them does.
pub fn export_toml(input: &ExportInput<'_>, secrets: SecretExport) -> Result<Export, ConfigErrors> {
    let tenant = input.tenant;
    let demo_flow = demo::user_flow();
    let demo_app = demo::application(input.issuer);
    let demo = tenant.user_flows.contains(&demo_flow) && tenant.applications.contains(&demo_app);

    let mut w = Writer {
        text: String::new(),
        secrets,
        required_env: Vec::new(),
        env_names: HashSet::new(),
        errors: Vec::new(),
    };
    w.preamble(demo);
    w.value("demo", demo.to_string());
    if !tenant.extensions_app_id.is_empty() {
        w.table("tenant");
        w.string("extensions_app_id", &tenant.extensions_app_id);
    }
    for a in &tenant.custom_attributes {
        w.attribute(tenant, a);
    }
    for c in input.connectors {
        w.connector(c);
    }
    for p in input.identity_providers {
        w.provider(tenant, p);
    }
    for f in &tenant.user_flows {
        if !(demo && *f == demo_flow) {
            w.user_flow(tenant, f);
        }
    }
    for a in &tenant.applications {
        if !(demo && *a == demo_app) {
            w.application(a);
        }
    }
    for l in input.event_listeners {
        w.event_listener(l);
    }
    if w.errors.is_empty() {
        Ok(Export {
            toml: w.text,
            required_env: w.required_env,
        })
    } else {
        Err(ConfigErrors(w.errors))
    }
}

struct Writer {
    text: String,
    secrets: SecretExport,
    required_env: Vec<String>,
    env_names: HashSet<String>,
    errors: Vec<ConfigError>,
}

impl Writer {
    fn comment(&mut self, lines: &str) {
        for line in lines.lines() {
            if line.is_empty() {
                self.text.push_str("#\n");
            } else {
                self.text.push_str("# ");
                self.text.push_str(line);
                self.text.push('\n');
            }
        }
    }

    fn preamble(&mut self, demo: bool) {
        self.comment(
            "An Usher tenant, written by `usher export`.

It declares the tenant only: the extensions app id, custom attributes, API connectors,
identity providers, user flows and applications. `usher apply FILE` brings the tenant
in the database to what FILE declares and changes nothing else. apply accepts a full
configuration file too, and uses only its tenant parts: server settings (issuer,
listen, database, master key, signing, tokens, email, connector_settings, federation)
are the running server's, whatever the file says, so none are written here.
",
        );
        match self.secrets {
            SecretExport::Values => self.comment(
                "
Secrets are written as they are, { value = \"…\" }: protect this file as you protect
the database and its master key. Confidential applications' secrets are their
Argon2id hashes (client_secret_hash).
",
            ),
            SecretExport::EnvReferences => self.comment(
                "
Secrets are read from the environment variables named by { env = \"…\" }, which must
be set when the file is loaded; a …_PKCS12_BASE64 one holds a PKCS#12 file in base64.
Confidential applications' secrets are their Argon2id hashes (client_secret_hash).
",
            ),
        }
        self.text.push('\n');
        if demo {
            self.comment(
                "The tenant has the demo's user flow B2X_1_demo and application usher-demo, as the
demo adds them: `demo = true` adds them back when this file is loaded.",
            );
        } else {
            self.comment(
                "The tenant does not have the demo's user flow and application as the demo adds them
(objects below with their ids are ordinary ones).",
            );
        }
    }

    fn error(&mut self, location: String, message: impl Into<String>) {
        self.errors.push(ConfigError::new(location, message));
    }

    fn table(&mut self, name: &str) {
        self.text.push_str(&format!("\n[{name}]\n"));
    }

    fn array_table(&mut self, name: &str) {
        self.text.push_str(&format!("\n[[{name}]]\n"));
    }

    /// `key = value`, the value already in TOML.
    fn value(&mut self, key: &str, value: impl AsRef<str>) {
        self.text.push_str(&toml_key(key));
        self.text.push_str(" = ");
        self.text.push_str(value.as_ref());
        self.text.push('\n');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.value(key, quote(value));
    }

    fn strings<S: AsRef<str>>(&mut self, key: &str, values: &[S]) {
        self.value(key, string_array(values));
    }

    /// A secret reference to `value`, the secret of `field` (its path in the object,
    /// dotted) of object `id` of `kind`.
    fn secret(&mut self, kind: &str, id: &str, field: &str, value: &str) -> String {
        match self.secrets {
            SecretExport::Values => format!("{{ value = {} }}", quote(value)),
            SecretExport::EnvReferences => {
                let base = env_name(kind, id, field);
                let mut name = base.clone();
                let mut n = 2;
                while self.env_names.contains(&name) {
                    name = format!("{base}_{n}");
                    n += 1;
                }
                self.env_names.insert(name.clone());
                self.required_env.push(name.clone());
                format!("{{ env = {} }}", quote(&name))
            }
        }
    }

    /// A duration as a whole number of `unit`s, if it is one.
    fn whole(&mut self, location: String, d: Duration, unit: Duration, what: &str) -> String {
        let (n, unit_n) = (d.as_nanos(), unit.as_nanos());
        if n % unit_n != 0 {
            self.error(
                location,
                format!("{d:?} cannot be written: the file gives it in {what}"),
            );
        }
        (n / unit_n).to_string()
    }

    fn attribute(&mut self, tenant: &Tenant, a: &AttributeDefinition) {
        let prefix = format!("extension_{}_", tenant.extensions_app_id);
        let name =
            a.id.strip_prefix(&prefix)
                .filter(|name| rules::check_attribute_name(name).is_ok());
        let Some(name) = name.filter(|_| !a.built_in && !tenant.extensions_app_id.is_empty())
        else {
            self.error(
                format!("attribute {}", a.id),
                format!("cannot be written: the file declares custom attributes by name, as {prefix}<Name>, and never built-in ones"),
            );
            return;
        };
        self.array_table("attributes");
        self.string("name", name);
        self.string("data_type", rules::data_type_name(a.data_type));
        self.string("display_name", &a.display_name);
        if !a.description.is_empty() {
            self.string("description", &a.description);
        }
    }

    fn connector(&mut self, c: &ConnectorDefinition) {
        let at = |path: &str| format!("connector {}: {path}", c.id);
        self.array_table("connectors");
        self.string("id", &c.id);
        self.contract(&c.contract);
        self.string("display_name", &c.display_name);
        if !c.description.is_empty() {
            self.string("description", &c.description);
        }
        self.string("target_url", &c.target_url);
        let ms = Duration::from_millis(1);
        let timeout = self.whole(at("timeout"), c.timeout, ms, "whole milliseconds");
        self.value("timeout_ms", timeout);
        self.value("retries", c.retries.to_string());
        let budget = self.whole(at("budget"), c.budget, ms, "whole milliseconds");
        self.value("budget_ms", budget);
        self.string(
            "failure_policy",
            match c.failure_policy {
                FailurePolicy::Block => "block",
                FailurePolicy::Continue => "continue",
            },
        );
        self.value("lenient", c.lenient.to_string());
        let signing: Vec<String> = c
            .signing_secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                self.secret(
                    CONNECTOR,
                    &c.id,
                    &format!("signing_secrets.{i}"),
                    s.expose(),
                )
            })
            .collect();
        self.value("signing_secrets", format!("[{}]", signing.join(", ")));
        if !c.extra_root_certificates.is_empty() {
            // Public: written out, one bundle, as `cat` of the CA files would give.
            self.value(
                "extra_root_certificates",
                multiline(&c.extra_root_certificates.concat()),
            );
        }

        self.table("connectors.breaker");
        self.value("failure_threshold", c.breaker.failure_threshold.to_string());
        let open = self.whole(
            at("breaker.open_for"),
            c.breaker.open_for,
            Duration::from_secs(1),
            "whole seconds",
        );
        self.value("open_seconds", open);

        self.authentication(c);
    }

    /// `[connectors.authentication]`, secrets as references.
    fn authentication(&mut self, c: &ConnectorDefinition) {
        self.table("connectors.authentication");
        match &c.authentication {
            ConnectorAuthentication::None => self.string("type", "none"),
            ConnectorAuthentication::Basic { username, password } => {
                self.string("type", "basic");
                self.string("username", username);
                let password = self.secret(
                    CONNECTOR,
                    &c.id,
                    "authentication.password",
                    password.expose(),
                );
                self.value("password", password);
            }
            ConnectorAuthentication::ApiKey { header, value } => {
                self.string("type", "apiKey");
                self.string("header", header);
                let value = self.secret(CONNECTOR, &c.id, "authentication.value", value.expose());
                self.value("value", value);
            }
            ConnectorAuthentication::OAuthClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                self.string("type", "oauthClientCredentials");
                self.string("token_url", token_url);
                self.string("client_id", client_id);
                let secret = self.secret(
                    CONNECTOR,
                    &c.id,
                    "authentication.client_secret",
                    client_secret.expose(),
                );
                self.value("client_secret", secret);
                if let Some(scope) = scope {
                    self.string("scope", scope);
                }
            }
            ConnectorAuthentication::ClientCertificate { certificates } => {
                self.string("type", "clientCertificate");
                for (i, cert) in certificates.iter().enumerate() {
                    self.certificate(&c.id, i, cert);
                }
            }
            ConnectorAuthentication::IssuedToken {
                resource_id,
                caller_id,
            } => {
                self.string("type", "issuedToken");
                self.string("resource_id", resource_id);
                self.string("caller_id", caller_id);
            }
        }
    }

    fn event_listener(&mut self, l: &EventListener) {
        self.array_table("event_listeners");
        self.string("id", &l.id);
        self.string("event", l.step.extension_event().unwrap_or_default());
        self.string("extension", &l.extension_id);
        self.strings("applications", &l.applications);
        self.value("priority", l.priority.to_string());
        if l.fall_back_to_mailer {
            self.value("fall_back_to_mailer", "true");
        }
    }

    /// An extension's `contract`, `event` and `claims_for_token`; nothing for a 1.0.0
    /// connector, so its export reads as it always did.
    fn contract(&mut self, contract: &ConnectorContract) {
        if let ConnectorContract::CustomAuthenticationExtension {
            claims_for_token,
            event,
        } = contract
        {
            self.string("contract", contract.name());
            if let Some(event) = event.and_then(ConnectorStep::extension_event) {
                self.string("event", event);
            }
            if !claims_for_token.is_empty() {
                self.strings("claims_for_token", claims_for_token);
            }
        }
    }

    fn certificate(&mut self, connector: &str, i: usize, cert: &ClientCertificate) {
        let field = |name: &str| format!("authentication.certificates.{i}.{name}");
        self.array_table("connectors.authentication.certificates");
        match &cert.source {
            CertificateSource::Pkcs12 { der, password } => {
                let der = self.secret(
                    CONNECTOR,
                    connector,
                    &field("pkcs12_base64"),
                    &STANDARD.encode(der),
                );
                self.value("pkcs12_base64", der);
                // Without one, the password is empty; an empty one cannot be written.
                if !password.expose().is_empty() {
                    let password =
                        self.secret(CONNECTOR, connector, &field("password"), password.expose());
                    self.value("password", password);
                }
            }
            CertificateSource::Pem { chain, key } => {
                self.value("pem", multiline(chain));
                let key = self.secret(CONNECTOR, connector, &field("key"), key.expose());
                self.value("key", key);
            }
        }
        // Always written: without it, the upload time would come from the position.
        self.string(
            "uploaded_at",
            &cert
                .uploaded_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        );
    }

    fn provider(&mut self, tenant: &Tenant, p: &ProviderConfig) {
        self.array_table("identity_providers");
        self.string("id", &p.id);
        let kind = match &p.kind {
            ProviderKind::Oidc { .. } => "oidc",
            ProviderKind::Google => "google",
            ProviderKind::Microsoft { .. } => "microsoft",
            ProviderKind::Facebook => "facebook",
            ProviderKind::GitHub => "github",
            ProviderKind::OAuth2 { .. } => "oauth2",
        };
        self.string("type", kind);
        self.string("display_name", &p.display_name);
        self.string("client_id", &p.client_id);
        let secret = self.secret(
            IDENTITY_PROVIDER,
            &p.id,
            "client_secret",
            p.client_secret.expose(),
        );
        self.value("client_secret", secret);
        // None are the kind's defaults, which only leaving scopes out says.
        if !p.scopes.is_empty() {
            self.strings("scopes", &p.scopes);
        }
        if let Some(method) = p.client_auth {
            self.string(
                "client_auth",
                match method {
                    ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
                    ClientAuthMethod::ClientSecretPost => "client_secret_post",
                },
            );
        }
        match &p.kind {
            ProviderKind::Oidc { issuer } => self.string("issuer", issuer),
            ProviderKind::Microsoft { tenant } => self.string("tenant", tenant),
            ProviderKind::OAuth2 {
                authorization_endpoint,
                token_endpoint,
                userinfo_endpoint,
                subject_claim,
                identity_issuer,
            } => {
                self.string("authorization_endpoint", authorization_endpoint);
                self.string("token_endpoint", token_endpoint);
                self.string("userinfo_endpoint", userinfo_endpoint);
                self.string("subject_claim", subject_claim);
                self.string("identity_issuer", identity_issuer);
            }
            ProviderKind::Google | ProviderKind::Facebook | ProviderKind::GitHub => {}
        }

        // The file's entries are merged over the kind's defaults, so a mapping can be
        // written only if it keeps every default attribute. An empty one means the
        // defaults, which is what leaving the table out gives.
        let mapping = &p.claim_mapping.0;
        if !mapping.is_empty() {
            let defaults = ClaimMapping::defaults_for(&p.kind);
            for attribute in defaults.0.keys() {
                if !mapping.contains_key(attribute) {
                    self.error(
                        format!("identity provider {}: claim mapping", p.id),
                        format!("cannot be written: it does not map {attribute}, which the file would map to {kind}'s default claim"),
                    );
                }
            }
            self.table("identity_providers.claims");
            for (attribute, claim) in mapping {
                self.string(&attribute_ref(tenant, attribute), claim);
            }
        }

        let EndpointOverrides {
            issuer,
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            emails_endpoint,
            jwks_uri,
        } = &p.endpoints;
        let endpoints = [
            ("issuer", issuer),
            ("authorization_endpoint", authorization_endpoint),
            ("token_endpoint", token_endpoint),
            ("userinfo_endpoint", userinfo_endpoint),
            ("emails_endpoint", emails_endpoint),
            ("jwks_uri", jwks_uri),
        ];
        if endpoints.iter().any(|(_, v)| v.is_some()) {
            self.table("identity_providers.endpoints");
            for (key, value) in endpoints {
                if let Some(url) = value {
                    self.string(key, url);
                }
            }
        }
    }

    fn user_flow(&mut self, tenant: &Tenant, f: &UserFlow) {
        self.array_table("user_flows");
        self.string("id", &f.id);
        self.strings("identity_providers", &f.identity_providers);
        let claims: Vec<String> = f
            .extra_claims
            .iter()
            .map(|c| attribute_ref(tenant, c))
            .collect();
        self.strings("claims", &claims);
        self.value("requires_approval", f.requires_approval.to_string());
        self.table("user_flows.connectors");
        let slots = &f.connectors;
        for (step, ids) in slots.iter() {
            // Steps without connectors that older files never had stay out, so an
            // export of a 1.0.0-only tenant reads as it always did.
            if ids.is_empty()
                && matches!(
                    step,
                    ConnectorStep::AttributeCollectionStart
                        | ConnectorStep::EmailOtpSend
                        | ConnectorStep::PreAccountRecovery
                        | ConnectorStep::OnProfileUpdate
                )
            {
                continue;
            }
            self.strings(step.config_name(), ids);
        }
        for a in &f.attributes {
            self.assignment(tenant, a);
        }
    }

    fn assignment(&mut self, tenant: &Tenant, a: &AttributeAssignment) {
        self.array_table("user_flows.attributes");
        self.string("id", &attribute_ref(tenant, &a.attribute_id));
        if let Some(label) = &a.label {
            self.value("label", text(label));
        }
        self.value("required", (!a.is_optional).to_string());
        self.string("input", rules::input_type_name(a.input_type));
        self.value("claim", a.is_claim.to_string());
        if !a.options.is_empty() {
            let mut options = String::from("[\n");
            for o in &a.options {
                options.push_str(&format!(
                    "    {{ value = {}, label = {}, default = {} }},\n",
                    quote(&o.value),
                    text(&o.name),
                    o.is_default
                ));
            }
            options.push(']');
            self.value("options", options);
        }
    }

    fn application(&mut self, a: &Application) {
        self.array_table("applications");
        self.string("client_id", &a.client_id);
        self.string("name", &a.name);
        self.strings("redirect_uris", &a.redirect_uris);
        self.strings("post_logout_redirect_uris", &a.post_logout_redirect_uris);
        match &a.client_type {
            ClientType::Public => self.string("type", "public"),
            ClientType::Confidential { secret_hash } => {
                self.string("type", "confidential");
                if secret_hash.is_empty() {
                    self.error(
                        format!("application {}", a.client_id),
                        "cannot be written: a confidential application needs a secret, and it has no secret hash",
                    );
                }
                self.string("client_secret_hash", secret_hash);
            }
        }
        self.string("user_flow", &a.user_flow_id);
        self.strings("roles", &a.roles);
    }
}

/// The environment variable [`SecretExport::EnvReferences`] names for a secret,
/// before any suffix making it unique.
pub(crate) fn env_name(kind: &str, id: &str, field: &str) -> String {
    format!("{SECRET_ENV_PREFIX}{kind}_{id}_{field}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// An attribute as the file names it: custom ones in the short form
/// `extension_<Name>`, the others by their id.
fn attribute_ref(tenant: &Tenant, id: &str) -> String {
    if tenant.extensions_app_id.is_empty() {
        return id.to_owned();
    }
    let prefix = format!("extension_{}_", tenant.extensions_app_id);
    match id.strip_prefix(&prefix) {
        Some(name) => format!("extension_{name}"),
        None => id.to_owned(),
    }
}

/// A key, bare when TOML allows it.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        quote(key)
    }
}

fn escape(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        // Every control character is below U+00A0, so four digits do.
        c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
        c => out.push(c),
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        escape(c, &mut out);
    }
    out.push('"');
    out
}

/// Text of several lines (a PEM chain) as a multi-line basic string, one line of the
/// file per line of text; other text as a basic string.
fn multiline(s: &str) -> String {
    if !s.contains('\n') {
        return quote(s);
    }
    // The newline right after the opening quotes is not part of the string.
    let mut out = String::from("\"\"\"\n");
    for c in s.chars() {
        if c == '\n' {
            out.push('\n');
        } else {
            escape(c, &mut out);
        }
    }
    out.push_str("\"\"\"");
    out
}

fn string_array<S: AsRef<str>>(values: &[S]) -> String {
    let items: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// A label: one string, or an inline table of language → string.
fn text(t: &LocalizedText) -> String {
    match t {
        LocalizedText::Plain(s) => quote(s),
        LocalizedText::PerLocale(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(locale, s)| format!("{} = {}", toml_key(locale), quote(s)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]
mod tests;
