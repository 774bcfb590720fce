//! Turns the settings as written (file and environment) into a [`Config`]: applies the
//! defaults, checks what every value means, resolves references between them (an
//! application's user flow, a page's attributes, a flow's connectors) and collects every
//! problem.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    path::{Path, PathBuf},
};

use usher_domain::{
    password::hash_password,
    rules::{MAX_DESCRIPTION, MAX_LABEL},
    Application, AttributeAssignment, AttributeDefinition, AttributeOption, BuiltInAttribute,
    ClientType, ConnectorSlots, DataType, LocalizedText, Tenant, UserFlow, UserInputType,
};

mod connectors;
mod providers;
mod rate_limits;

use crate::{
    demo::{self, DEMO_CLIENT_ID, DEMO_USER_FLOW_ID},
    env,
    error::ConfigError,
    raw::{
        List, Place, RawApplication, RawAssignment, RawAttribute, RawConfig, RawEmail, RawOption,
        RawUserFlow, Val,
    },
    rules,
    secret::Secret,
    settings::{
        Config, DatabaseKind, EmailDelivery, EmailSettings, MasterKeySource, SigningSettings,
        SmtpSettings, SmtpTls, TokenSettings,
    },
};

pub(crate) struct Resolver<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The file's name as locations show it, when there is a file.
    file: Option<&'a str>,
    pub errors: Vec<ConfigError>,
}

/// A confidential application whose plaintext secret is hashed once everything else
/// is known to be valid (hashing is deliberately slow).
struct PendingSecret {
    /// Index into the tenant's applications.
    application: usize,
    loc: String,
    secret: Secret,
}

/// The longest drain on shutdown an operator may ask for: beyond it, orchestrators
/// kill the process anyway.
const MAX_SHUTDOWN_DRAIN_SECONDS: i64 = 300;
/// The shortest `USHER_METRICS_TOKEN`, in characters.
const MIN_METRICS_TOKEN: usize = 16;

impl<'a> Resolver<'a> {
    pub fn new(
        env: &'a dyn Fn(&str) -> Option<String>,
        file: Option<&'a str>,
        errors: Vec<ConfigError>,
    ) -> Self {
        Resolver { env, file, errors }
    }

    fn err(&mut self, loc: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(loc, message));
    }

    /// Applies a rule to a value, reporting its error at the value's location.
    fn check<T, R>(&mut self, v: &Val<T>, rule: impl FnOnce(&T) -> Result<R, String>) -> Option<R> {
        match rule(&v.value) {
            Ok(r) => Some(r),
            Err(m) => {
                self.err(v.loc.clone(), m);
                None
            }
        }
    }

    /// Where a setting that is missing should be given: in its table if the file has
    /// that table, else in the file, else (no file at all) in the environment.
    fn missing(&self, table: Option<&Place>, key: &str, path: &str, var: Option<&str>) -> String {
        match (table, self.file, var) {
            (Some(place), _, _) => place.key(key),
            (None, Some(file), _) => format!("{file}: {path}"),
            (None, None, Some(var)) => env::location(var),
            (None, None, None) => path.to_owned(),
        }
    }

    /// An integer setting within `min..=max`, or its default.
    fn number<T: TryFrom<i64>>(
        &mut self,
        v: &Option<Val<i64>>,
        default: T,
        min: i64,
        max: i64,
        unit: &str,
    ) -> T {
        let Some(v) = v else {
            return default;
        };
        if !(min..=max).contains(&v.value) {
            self.err(
                v.loc.clone(),
                format!("must be between {min} and {max}{unit}"),
            );
            return default;
        }
        T::try_from(v.value).unwrap_or(default)
    }

    fn text(&mut self, v: &Val<LocalizedText>, max: usize) {
        let texts: Vec<&str> = match &v.value {
            LocalizedText::Plain(s) => vec![s.as_str()],
            LocalizedText::PerLocale(map) => map.values().map(String::as_str).collect(),
        };
        for t in texts {
            if let Err(m) = rules::check_display_text(t, max) {
                self.err(v.loc.clone(), m);
            }
        }
    }

    fn file_exists(&mut self, v: &Val<String>) -> PathBuf {
        let path = PathBuf::from(&v.value);
        if !path.is_file() {
            let why = if path.exists() {
                "is not a regular file"
            } else {
                "does not exist"
            };
            self.err(v.loc.clone(), format!("{} {why}", path.display()));
        }
        path
    }

    pub fn resolve(&mut self, raw: RawConfig, source: Option<PathBuf>) -> Option<Config> {
        let listen = self.listen(&raw);
        let issuer = self.issuer(&raw, listen);
        let data_dir = self.data_dir(&raw);
        let (database_url, database_kind) = self.database(&raw, &data_dir);
        let master_key = self.master_key(&raw, database_kind, &data_dir);
        let templates_dir = self.templates_dir(&raw);

        let signing = self.signing(&raw);
        let tokens = self.tokens(&raw);
        let email = self.email(&raw.email, &data_dir);

        let mut tenant = Tenant {
            extensions_app_id: self.extensions_app_id(&raw, &issuer),
            custom_attributes: Vec::new(),
            user_flows: Vec::new(),
            applications: Vec::new(),
        };
        let demo = raw.demo.as_ref().map_or(self.file.is_none(), |v| v.value);
        let shutdown_drain = std::time::Duration::from_secs(self.number(
            &raw.shutdown_drain_seconds,
            0,
            0,
            MAX_SHUTDOWN_DRAIN_SECONDS,
            " seconds",
        ));
        let metrics_token = self.metrics_token(&raw);
        let untyped = self.attributes(&raw.attributes, &mut tenant);
        let connector_settings = self.connector_settings(&raw.connector_settings);
        let rate_limits = self.rate_limits(&raw.rate_limits);
        let (connectors, declared) = self.connectors(&raw.connectors, &connector_settings);
        let federation = self.federation_settings(&raw.federation);
        let (identity_providers, declared_providers) =
            self.identity_providers(&raw.identity_providers, &federation, &tenant);
        self.user_flows(
            &raw.user_flows,
            &mut tenant,
            &untyped,
            demo,
            &declared,
            &declared_providers,
        );
        if demo {
            tenant.user_flows.push(demo::user_flow());
        }
        let event_listeners = self.event_listeners(&raw.event_listeners, &connectors);
        let pending = self.applications(&raw.applications, &mut tenant, demo);
        if demo {
            tenant.applications.push(demo::application(&issuer));
        }

        if !self.errors.is_empty() {
            return None;
        }
        let client_secrets = self.hash_client_secrets(pending, &mut tenant)?;

        Some(Config {
            source,
            listen,
            issuer,
            data_dir,
            database_url,
            master_key,
            templates_dir,
            signing,
            tokens,
            email,
            demo,
            shutdown_drain,
            metrics_token,
            tenant,
            connectors,
            connector_settings,
            identity_providers,
            event_listeners,
            federation,
            rate_limits,
            client_secrets,
        })
    }

    /// The address to listen on: `127.0.0.1:8080` unless another is given.
    fn listen(&mut self, raw: &RawConfig) -> SocketAddr {
        let default_listen = SocketAddr::from(([127, 0, 0, 1], 8080));
        match &raw.listen {
            Some(v) => self
                .check(v, |s| rules::parse_listen(s))
                .unwrap_or(default_listen),
            None => default_listen,
        }
    }

    /// The issuer tokens are signed as: the one given, else one derived from the
    /// address listened on.
    fn issuer(&mut self, raw: &RawConfig, listen: SocketAddr) -> String {
        match &raw.issuer {
            Some(v) => {
                self.check(v, |s| rules::check_issuer(s));
                v.value.clone()
            }
            None => {
                if listen.port() == 0 {
                    let loc = raw
                        .listen
                        .as_ref()
                        .map(|v| v.loc.clone())
                        .unwrap_or_default();
                    self.err(
                        loc,
                        "port 0 picks a free port at start, so the issuer cannot be derived from it: set issuer",
                    );
                }
                rules::default_issuer(listen)
            }
        }
    }

    /// Where Usher keeps what it writes itself (by default the database, the master
    /// key and the outbox).
    fn data_dir(&mut self, raw: &RawConfig) -> PathBuf {
        match &raw.data_dir {
            Some(v) if v.value.trim().is_empty() => {
                self.err(v.loc.clone(), "must not be empty");
                PathBuf::from("./usher-data")
            }
            Some(v) => PathBuf::from(&v.value),
            None => PathBuf::from("./usher-data"),
        }
    }

    /// The database's URL, and its kind (`None`: the URL was written wrong). Without
    /// a URL, an SQLite file in the data directory.
    fn database(&mut self, raw: &RawConfig, data_dir: &Path) -> (String, Option<DatabaseKind>) {
        match &raw.database_url {
            Some(v) => (v.value.clone(), self.check(v, |s| rules::database_kind(s))),
            None => (
                format!("sqlite://{}/usher.db", data_dir.display()),
                Some(DatabaseKind::Sqlite),
            ),
        }
    }

    /// Where the master key comes from: the environment, a file, or (SQLite only) one
    /// generated in the data directory on first start.
    /// `USHER_METRICS_TOKEN`: the bearer token `/metrics` asks for. Long enough not
    /// to be guessed, since it is all that stands between the metrics and anyone.
    fn metrics_token(&mut self, raw: &RawConfig) -> Option<Secret> {
        let v = raw.metrics_token.as_ref()?;
        let token = v.value.trim();
        if token.chars().count() < MIN_METRICS_TOKEN
            || token.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            self.err(
                v.loc.clone(),
                format!(
                    "must be at least {MIN_METRICS_TOKEN} characters without spaces (try `usher generate-master-key` for one)"
                ),
            );
            return None;
        }
        Some(Secret::new(token))
    }

    fn master_key(
        &mut self,
        raw: &RawConfig,
        database_kind: Option<DatabaseKind>,
        data_dir: &Path,
    ) -> MasterKeySource {
        if let Some(v) = &raw.master_key {
            MasterKeySource::Env {
                var: "USHER_MASTER_KEY".to_owned(),
                value: v.value.clone(),
            }
        } else if let Some(v) = &raw.master_key_file {
            MasterKeySource::File(self.file_exists(v))
        } else {
            if database_kind == Some(DatabaseKind::Postgres) {
                let loc = self.missing(
                    None,
                    "master_key_file",
                    "secrets.master_key_file",
                    Some("USHER_MASTER_KEY"),
                );
                self.err(
                    loc,
                    "a master key is required with PostgreSQL: every instance sharing the database must use the same key, so none can generate its own. Create one with `usher generate-master-key` and give it in USHER_MASTER_KEY, or in a file named by USHER_MASTER_KEY_FILE or secrets.master_key_file",
                );
            }
            MasterKeySource::GenerateInDataDir(data_dir.join("master.key"))
        }
    }

    /// The operator's own page templates, if a directory of them is given.
    fn templates_dir(&mut self, raw: &RawConfig) -> Option<PathBuf> {
        raw.templates_dir.as_ref().map(|v| {
            let path = PathBuf::from(&v.value);
            if !path.is_dir() {
                self.err(
                    v.loc.clone(),
                    format!("{} is not a directory", path.display()),
                );
            }
            path
        })
    }

    /// The application id custom attributes are named after (`extension_<id>_<name>`):
    /// the one given, else one derived from the issuer, so that it stays the same from
    /// start to start.
    fn extensions_app_id(&mut self, raw: &RawConfig, issuer: &str) -> String {
        raw.extensions_app_id
            .as_ref()
            .and_then(|v| self.check(v, |s| rules::normalize_extensions_app_id(s)))
            .unwrap_or_else(|| rules::default_extensions_app_id(issuer))
    }

    /// Hashes the confidential applications' secrets into the tenant, and keeps each
    /// plaintext by lower-cased client id. `None`: one could not be hashed.
    fn hash_client_secrets(
        &mut self,
        pending: Vec<PendingSecret>,
        tenant: &mut Tenant,
    ) -> Option<BTreeMap<String, Secret>> {
        let mut client_secrets = BTreeMap::new();
        for p in pending {
            let hash = hash_password(p.secret.expose(), &mut rand::rngs::OsRng);
            if hash.is_empty() {
                self.err(p.loc, "the client secret could not be hashed");
                return None;
            }
            if let Some(app) = tenant.applications.get_mut(p.application) {
                app.client_type = ClientType::Confidential { secret_hash: hash };
                client_secrets.insert(app.client_id.to_ascii_lowercase(), p.secret);
            }
        }
        Some(client_secrets)
    }

    fn signing(&mut self, raw: &RawConfig) -> SigningSettings {
        let s = &raw.signing;
        let defaults = SigningSettings::default();
        let algorithm = s
            .algorithm
            .as_ref()
            .and_then(|v| self.check(v, |a| rules::parse_signing_algorithm(a)))
            .unwrap_or(defaults.algorithm);
        let rotation_days: u32 =
            self.number(&s.rotation_days, defaults.rotation_days, 1, 3650, " days");
        let publish_ahead_hours: u32 = self.number(
            &s.publish_ahead_hours,
            defaults.publish_ahead_hours,
            1,
            8760,
            " hours",
        );
        // A key published a whole rotation period ahead would be announced before its
        // predecessor even started signing.
        if u64::from(publish_ahead_hours) >= u64::from(rotation_days) * 24 {
            if let Some(loc) = s
                .publish_ahead_hours
                .as_ref()
                .or(s.rotation_days.as_ref())
                .map(|v| v.loc.clone())
            {
                self.err(
                    loc,
                    format!("publish_ahead_hours ({publish_ahead_hours}) must be shorter than the rotation period ({rotation_days} days)"),
                );
            }
        }
        SigningSettings {
            algorithm,
            rotation_days,
            publish_ahead_hours,
        }
    }

    fn tokens(&mut self, raw: &RawConfig) -> TokenSettings {
        let t = &raw.tokens;
        let d = TokenSettings::default();
        TokenSettings {
            // RFC 6749 §4.1.2: a code lives 10 minutes at most.
            authorization_code_seconds: self.number(
                &t.authorization_code_seconds,
                d.authorization_code_seconds,
                1,
                600,
                " seconds",
            ),
            access_token_seconds: self.number(
                &t.access_token_seconds,
                d.access_token_seconds,
                1,
                86_400,
                " seconds",
            ),
            id_token_seconds: self.number(
                &t.id_token_seconds,
                d.id_token_seconds,
                1,
                86_400,
                " seconds",
            ),
            refresh_token_days: self.number(
                &t.refresh_token_days,
                d.refresh_token_days,
                1,
                365,
                " days",
            ),
            session_hours: self.number(&t.session_hours, d.session_hours, 1, 8760, " hours"),
        }
    }

    fn email(&mut self, e: &RawEmail, data_dir: &Path) -> EmailSettings {
        let from = match &e.from {
            Some(v) => {
                self.check(v, |s| rules::check_mailbox(s));
                v.value.clone()
            }
            None => "Usher <no-reply@localhost>".to_owned(),
        };
        let smtp = e
            .delivery
            .as_ref()
            .and_then(|v| self.check(v, |s| rules::parse_delivery_is_smtp(s)))
            .unwrap_or(false);
        // Settings for the other delivery are ignored rather than refused, so that
        // USHER_EMAIL_DELIVERY can switch delivery without editing the file.
        let delivery = if smtp {
            EmailDelivery::Smtp(self.smtp(e))
        } else {
            let outbox_dir = match &e.outbox_dir {
                Some(v) if v.value.trim().is_empty() => {
                    self.err(v.loc.clone(), "must not be empty");
                    data_dir.join("outbox")
                }
                Some(v) => PathBuf::from(&v.value),
                None => data_dir.join("outbox"),
            };
            EmailDelivery::File { outbox_dir }
        };
        EmailSettings {
            from,
            delivery,
            // Codes in the log are what makes file delivery usable in development; with
            // real mail they would only leak.
            log_codes: e.log_codes.as_ref().map_or(!smtp, |v| v.value),
        }
    }

    fn smtp(&mut self, e: &RawEmail) -> SmtpSettings {
        let s = &e.smtp;
        let host = match &s.host {
            Some(v) => {
                self.check(v, |h| rules::check_smtp_host(h));
                v.value.clone()
            }
            None => {
                let loc = self.missing(
                    s.place.as_ref(),
                    "host",
                    "email.smtp.host",
                    Some("USHER_SMTP_HOST"),
                );
                self.err(loc, "an SMTP host is required when delivery is smtp");
                String::new()
            }
        };
        let tls = s
            .tls
            .as_ref()
            .and_then(|v| self.check(v, |t| rules::parse_smtp_tls(t)))
            .unwrap_or_default();
        let port: u16 = self.number(&s.port, rules::default_smtp_port(tls), 1, 65_535, "");
        let username = s.username.as_ref().map(|v| {
            self.check(v, |u| {
                if u.trim().is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    rules::check_display_text(u, MAX_DESCRIPTION)
                }
            });
            v.value.clone()
        });

        let configured =
            s.password.is_some() || s.password_env.is_some() || s.password_file.is_some();
        let password = if let Some(v) = &s.password {
            Some(Secret::new(v.value.clone()))
        } else {
            match (&s.password_env, &s.password_file) {
                (Some(_), Some(f)) => {
                    self.err(
                        f.loc.clone(),
                        "set either password_env or password_file, not both",
                    );
                    None
                }
                (Some(v), None) => match (self.env)(&v.value) {
                    Some(p) if !p.is_empty() => Some(Secret::new(p)),
                    _ => {
                        self.err(
                            v.loc.clone(),
                            format!("environment variable {} is not set", v.value),
                        );
                        None
                    }
                },
                (None, Some(v)) => self
                    .check(v, |p| rules::read_secret_file(Path::new(p)))
                    .map(Secret::new),
                (None, None) => None,
            }
        };
        match (&s.username, configured) {
            (Some(u), false) => self.err(
                u.loc.clone(),
                "a username needs a password: set password_env or password_file (or USHER_SMTP_PASSWORD)",
            ),
            (None, true) => {
                let loc = self.missing(s.place.as_ref(), "username", "email.smtp.username", Some("USHER_SMTP_USERNAME"));
                self.err(loc, "a password is set, so a username is needed too");
            }
            _ => {}
        }
        if tls == SmtpTls::None && configured && !host.is_empty() && !rules::is_loopback_name(&host)
        {
            if let Some(v) = &s.tls {
                self.err(
                    v.loc.clone(),
                    "would send the SMTP password unencrypted to another host: use starttls or tls",
                );
            }
        }
        SmtpSettings {
            host,
            port,
            tls,
            username,
            password,
        }
    }

    /// Adds the custom attributes to the tenant. Returns the ids of those whose data
    /// type was wrong: they still exist (so pages using them do not get a second,
    /// misleading error) but nothing about their type can be checked.
    fn attributes(&mut self, raws: &[RawAttribute], tenant: &mut Tenant) -> HashSet<String> {
        let mut untyped = HashSet::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for a in raws {
            let Some(name) = &a.name else {
                self.err(a.place.key("name"), "is required");
                continue;
            };
            if self
                .check(name, |n| rules::check_attribute_name(n))
                .is_none()
            {
                continue;
            }
            if let Some(first) = seen.get(&name.value.to_ascii_lowercase()) {
                let message = format!("`{}` is defined twice (first at {first})", name.value);
                self.err(name.loc.clone(), message);
                continue;
            }
            seen.insert(name.value.to_ascii_lowercase(), name.loc.clone());
            let data_type = match &a.data_type {
                Some(v) => self.check(v, |t| rules::parse_data_type(t)),
                None => {
                    self.err(
                        a.place.key("data_type"),
                        "is required: string, boolean or int",
                    );
                    None
                }
            };
            let id = format!("extension_{}_{}", tenant.extensions_app_id, name.value);
            if data_type.is_none() {
                untyped.insert(id.clone());
            }
            let display_name = match &a.display_name {
                Some(v) => {
                    self.check(v, |d| rules::check_display_text(d, MAX_LABEL));
                    v.value.clone()
                }
                None => name.value.clone(),
            };
            let description = match &a.description {
                Some(v) => {
                    self.check(v, |d| rules::check_display_text(d, MAX_DESCRIPTION));
                    v.value.clone()
                }
                None => String::new(),
            };
            tenant.custom_attributes.push(AttributeDefinition {
                id,
                display_name,
                description,
                data_type: data_type.unwrap_or(DataType::String),
                built_in: false,
            });
        }
        untyped
    }

    /// Finds the attribute an id written in the file means.
    fn attribute_ref(&mut self, v: &Val<String>, tenant: &Tenant) -> Option<AttributeDefinition> {
        if let Some(def) = tenant.attribute(&v.value) {
            return Some(def);
        }
        let custom = tenant.custom_attributes.iter().any(|a| {
            a.id.rsplit_once('_')
                .is_some_and(|(_, n)| n.eq_ignore_ascii_case(&v.value))
        });
        let hint = if custom {
            format!(
                "; custom attributes are referred to as extension_{}",
                v.value
            )
        } else {
            "; use a built-in attribute (displayName, givenName, surname, jobTitle, streetAddress, city, postalCode, state, country) or extension_<Name> of one defined under [[attributes]]".to_owned()
        };
        self.err(
            v.loc.clone(),
            format!("unknown attribute `{}`{hint}", v.value),
        );
        None
    }

    fn user_flows(
        &mut self,
        raws: &[RawUserFlow],
        tenant: &mut Tenant,
        untyped: &HashSet<String>,
        demo: bool,
        connectors: &connectors::Declared,
        providers: &[String],
    ) {
        let mut seen: HashMap<String, String> = HashMap::new();
        for f in raws {
            let id = match &f.id {
                Some(v) => self.check(v, |s| rules::normalize_user_flow_id(s)).and_then(|id| {
                    let key = id.to_ascii_lowercase();
                    if demo && id.eq_ignore_ascii_case(DEMO_USER_FLOW_ID) {
                        self.err(
                            v.loc.clone(),
                            format!("{DEMO_USER_FLOW_ID} is the demo's user flow; set demo = false to define it here"),
                        );
                        None
                    } else if let Some(first) = seen.get(&key) {
                        let message = format!("user flow {id} is defined twice (ids ignore case; first at {first})");
                        self.err(v.loc.clone(), message);
                        None
                    } else {
                        seen.insert(key, v.loc.clone());
                        Some(id)
                    }
                }),
                None => {
                    self.err(f.place.key("id"), "is required");
                    None
                }
            };

            let identity_providers = self.flow_identity_providers(f, providers);

            let mut attributes: Vec<AttributeAssignment> = Vec::new();
            let mut on_page: HashMap<String, String> = HashMap::new();
            for a in &f.attributes {
                if let Some(assignment) = self.assignment(a, tenant, untyped) {
                    let id_loc = a.id.as_ref().map(|v| v.loc.clone()).unwrap_or_default();
                    if let Some(first) = on_page.get(&assignment.attribute_id) {
                        let message = format!(
                            "{} is on the page twice (first at {first})",
                            assignment.attribute_id
                        );
                        self.err(id_loc, message);
                        continue;
                    }
                    on_page.insert(assignment.attribute_id.clone(), id_loc);
                    attributes.push(assignment);
                }
            }

            let extra_claims = match &f.claims {
                None => vec![BuiltInAttribute::Email.id().to_owned()],
                Some(list) => {
                    let mut claims: Vec<String> = Vec::new();
                    for c in &list.value {
                        let Some(def) = self.attribute_ref(c, tenant) else {
                            continue;
                        };
                        if on_page.contains_key(&def.id) {
                            self.err(
                                c.loc.clone(),
                                format!("{} is on the page: whether it is a claim is set there, with `claim`", def.id),
                            );
                        } else if claims.contains(&def.id) {
                            self.err(c.loc.clone(), format!("{} is listed twice", def.id));
                        } else {
                            claims.push(def.id);
                        }
                    }
                    claims
                }
            };

            let mut slots = ConnectorSlots::default();
            for (step, list) in &f.slots {
                *slots.at_mut(*step) = self.connector_slot(&Some(list.clone()), connectors, *step);
            }

            // Kept even when parts of it are wrong, so that applications naming it are
            // not reported as well.
            if let Some(id) = id {
                tenant.user_flows.push(UserFlow {
                    id,
                    identity_providers,
                    attributes,
                    extra_claims,
                    connectors: slots,
                    requires_approval: f.requires_approval.as_ref().is_some_and(|v| v.value),
                });
            }
        }
    }

    /// A user flow's identity providers: built-in ones and those `declared` under
    /// `[[identity_providers]]`, as they are spelt there.
    fn flow_identity_providers(&mut self, f: &RawUserFlow, declared: &[String]) -> Vec<String> {
        const NEEDED: &str =
            "at least one identity provider is required, such as [\"EmailPassword-OAUTH\"]";
        let Some(list) = &f.identity_providers else {
            self.err(f.place.key("identity_providers"), NEEDED);
            return Vec::new();
        };
        if list.value.is_empty() {
            self.err(list.loc.clone(), NEEDED);
        }
        let declared: Vec<&str> = declared.iter().map(String::as_str).collect();
        let mut providers: Vec<String> = Vec::new();
        for p in &list.value {
            if let Some(canonical) = self.check(p, |s| rules::parse_identity_provider(s, &declared))
            {
                if providers.contains(&canonical) {
                    self.err(p.loc.clone(), format!("{canonical} is listed twice"));
                } else {
                    providers.push(canonical);
                }
            }
        }
        providers
    }

    fn assignment(
        &mut self,
        a: &RawAssignment,
        tenant: &Tenant,
        untyped: &HashSet<String>,
    ) -> Option<AttributeAssignment> {
        let Some(id) = &a.id else {
            self.err(a.place.key("id"), "is required");
            return None;
        };
        let def = self.attribute_ref(id, tenant)?;
        if def.id == BuiltInAttribute::Email.id() {
            self.err(
                id.loc.clone(),
                "email cannot be on the attribute page: it is collected, and verified, before it; list it in the flow's `claims` to return it",
            );
            return None;
        }
        let data_type = (!untyped.contains(&def.id)).then_some(def.data_type);

        // `None` when the input was written wrong: what depends on it is not checked.
        let input = self.assignment_input(a, data_type);
        if let Some(label) = &a.label {
            self.text(label, MAX_LABEL);
        }
        let options = match input {
            Some(input) => self.assignment_options(
                a,
                input,
                data_type.unwrap_or(DataType::String),
                def.max_length(),
            ),
            None => Vec::new(),
        };

        Some(AttributeAssignment {
            attribute_id: def.id,
            label: a.label.as_ref().map(|l| l.value.clone()),
            is_optional: !a.required.as_ref().is_some_and(|r| r.value),
            input_type: input.unwrap_or_else(|| {
                UserInputType::default_for(data_type.unwrap_or(DataType::String))
            }),
            options,
            is_claim: a.claim.as_ref().is_none_or(|c| c.value),
        })
    }

    /// The input a page's attribute is collected with: the one written, if it can
    /// hold the attribute's data type (`None` when it is unknown), else the data
    /// type's default. `None`: the input was written wrong.
    fn assignment_input(
        &mut self,
        a: &RawAssignment,
        data_type: Option<DataType>,
    ) -> Option<UserInputType> {
        match &a.input {
            Some(v) => self
                .check(v, |s| rules::parse_input_type(s))
                .and_then(|input| match data_type {
                    Some(dt) if !input.accepts(dt) => {
                        self.err(v.loc.clone(), input_mismatch(input, dt));
                        None
                    }
                    _ => Some(input),
                }),
            None => Some(UserInputType::default_for(
                data_type.unwrap_or(DataType::String),
            )),
        }
    }

    /// The options a page's attribute offers: the select inputs need at least one,
    /// the others take none. Values are checked against the attribute's `data_type`
    /// and `max_length`.
    fn assignment_options(
        &mut self,
        a: &RawAssignment,
        input: UserInputType,
        data_type: DataType,
        max_length: usize,
    ) -> Vec<AttributeOption> {
        let name = rules::input_type_name(input);
        if input.has_options() && a.options.is_empty() {
            let loc = a
                .options_loc
                .clone()
                .unwrap_or_else(|| a.place.key("options"));
            self.err(
                loc,
                format!("{name} needs at least one option ([[…options]] with a value)"),
            );
        }
        if !input.has_options() && !a.options.is_empty() {
            let loc = a
                .options_loc
                .clone()
                .unwrap_or_else(|| a.place.key("options"));
            self.err(
                loc,
                format!("{name} has no options; they are only for radioSingleSelect, dropdownSingleSelect and checkboxMultiSelect"),
            );
        }
        if input.has_options() {
            self.select_options(&a.options, input, data_type, max_length)
        } else {
            Vec::new()
        }
    }

    /// The options of a select input, each value once. A single select may have one
    /// default at most.
    fn select_options(
        &mut self,
        raws: &[RawOption],
        input: UserInputType,
        data_type: DataType,
        max_length: usize,
    ) -> Vec<AttributeOption> {
        let name = rules::input_type_name(input);
        let single = input != UserInputType::CheckboxMultiSelect;
        let mut options: Vec<AttributeOption> = Vec::new();
        let mut defaults = 0;
        for o in raws {
            let Some(value) = &o.value else {
                self.err(o.place.key("value"), "is required");
                continue;
            };
            if self
                .check(value, |s| {
                    rules::check_option_value(s, data_type, max_length)
                })
                .is_none()
            {
                continue;
            }
            if options.iter().any(|x| x.value == value.value) {
                self.err(
                    value.loc.clone(),
                    format!("`{}` is an option twice", value.value),
                );
                continue;
            }
            if let Some(label) = &o.label {
                self.text(label, MAX_LABEL);
            }
            let is_default = o.default.as_ref().is_some_and(|d| d.value);
            if is_default {
                defaults += 1;
                if single && defaults > 1 {
                    if let Some(d) = &o.default {
                        self.err(
                            d.loc.clone(),
                            format!("a {name} can have only one default option"),
                        );
                    }
                }
            }
            options.push(AttributeOption {
                name: o.label.as_ref().map_or_else(
                    || LocalizedText::Plain(value.value.clone()),
                    |l| l.value.clone(),
                ),
                value: value.value.clone(),
                is_default,
            });
        }
        options
    }

    fn applications(
        &mut self,
        raws: &[RawApplication],
        tenant: &mut Tenant,
        demo: bool,
    ) -> Vec<PendingSecret> {
        let mut pending = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for a in raws {
            let client_id = self.client_id(a, demo, &mut seen);
            let name = self.application_name(a, client_id.as_deref());
            // `None`: the type was written wrong, so rules that depend on it are skipped.
            let public = self.client_type(a);
            let (secret, secret_hash) = self.client_secret(a, public);
            let redirect_uris = self.redirect_uris(a, public);
            let post_logout_redirect_uris = self.uris(&a.post_logout_redirect_uris, public);
            let user_flow_id = self.application_user_flow(a, tenant);
            let roles = self.roles(a, public);

            let (Some(client_id), Some(user_flow_id), Some(public)) =
                (client_id, user_flow_id, public)
            else {
                continue;
            };
            if let Some(secret) = secret {
                pending.push(PendingSecret {
                    application: tenant.applications.len(),
                    loc: a.place.here(),
                    secret,
                });
            }
            tenant.applications.push(Application {
                client_id,
                name,
                redirect_uris,
                post_logout_redirect_uris,
                client_type: if public {
                    ClientType::Public
                } else {
                    ClientType::Confidential { secret_hash }
                },
                user_flow_id,
                roles,
            });
        }
        pending
    }

    /// An application's client id, unless it is written wrong, is the demo's, or is
    /// one `seen` already (ids ignore case; `seen` maps each to where it was first).
    fn client_id(
        &mut self,
        a: &RawApplication,
        demo: bool,
        seen: &mut HashMap<String, String>,
    ) -> Option<String> {
        match &a.client_id {
            Some(v) => self.check(v, |s| rules::check_client_id(s)).and_then(|()| {
                let key = v.value.to_ascii_lowercase();
                if demo && v.value.eq_ignore_ascii_case(DEMO_CLIENT_ID) {
                    self.err(
                        v.loc.clone(),
                        format!("{DEMO_CLIENT_ID} is the demo application; set demo = false to define it here"),
                    );
                    None
                } else if let Some(first) = seen.get(&key) {
                    let message = format!("client id {} is used twice (ids ignore case; first at {first})", v.value);
                    self.err(v.loc.clone(), message);
                    None
                } else {
                    seen.insert(key, v.loc.clone());
                    Some(v.value.clone())
                }
            }),
            None => {
                self.err(a.place.key("client_id"), "is required");
                None
            }
        }
    }

    /// The name an application is shown by: as written, else its client id.
    fn application_name(&mut self, a: &RawApplication, client_id: Option<&str>) -> String {
        match &a.name {
            Some(v) => {
                self.check(v, |s| {
                    if s.trim().is_empty() {
                        Err("must not be empty".to_owned())
                    } else {
                        rules::check_display_text(s, MAX_LABEL)
                    }
                });
                v.value.clone()
            }
            None => client_id.unwrap_or_default().to_owned(),
        }
    }

    /// Whether the application is a public client (`true`) or a confidential one.
    /// `None`: the type is missing or written wrong.
    fn client_type(&mut self, a: &RawApplication) -> Option<bool> {
        match &a.client_type {
            Some(v) => self.check(v, |t| match t.to_ascii_lowercase().as_str() {
                "public" => Ok(true),
                "confidential" => Ok(false),
                _ => Err("must be public or confidential".to_owned()),
            }),
            None => {
                self.err(a.place.key("type"), "is required: public or confidential");
                None
            }
        }
    }

    /// A confidential client's secret: the plaintext (from the environment or a file),
    /// to be hashed once the whole configuration is known to be valid, or the hash
    /// itself (empty unless given). A public client must have none.
    fn client_secret(
        &mut self,
        a: &RawApplication,
        public: Option<bool>,
    ) -> (Option<Secret>, String) {
        let mut secret = None;
        let mut secret_hash = String::new();
        let given: Vec<(&str, &Val<String>)> = [
            ("client_secret_env", &a.client_secret_env),
            ("client_secret_file", &a.client_secret_file),
            ("client_secret_hash", &a.client_secret_hash),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect();
        match (public, given.as_slice()) {
            (Some(true), given) => {
                for (_, v) in given {
                    self.err(
                        v.loc.clone(),
                        "a public client cannot keep a secret, so has none: remove it, or make the client confidential",
                    );
                }
            }
            (Some(false), []) => self.err(
                a.place.key("client_secret_env"),
                "a confidential client needs one of client_secret_env, client_secret_file or client_secret_hash",
            ),
            (Some(false), [(kind, v)]) => match *kind {
                "client_secret_env" => match (self.env)(&v.value) {
                    Some(s) if !s.is_empty() => {
                        secret = self.check(v, |_| rules::check_client_secret(&s)).map(|()| Secret::new(s));
                    }
                    _ => self.err(v.loc.clone(), format!("environment variable {} is not set", v.value)),
                },
                "client_secret_file" => {
                    secret = self
                        .check(v, |p| rules::read_secret_file(Path::new(p)).and_then(|s| rules::check_client_secret(&s).map(|()| s)))
                        .map(Secret::new);
                }
                _ => {
                    if self.check(v, |h| rules::check_secret_hash(h)).is_some() {
                        secret_hash.clone_from(&v.value);
                    }
                }
            },
            (Some(false), [_, rest @ ..]) => {
                for (_, v) in rest {
                    self.err(
                        v.loc.clone(),
                        "give only one of client_secret_env, client_secret_file and client_secret_hash",
                    );
                }
            }
            (None, _) => {}
        }
        (secret, secret_hash)
    }

    /// Where sign-in may send back to; a public client needs at least one.
    fn redirect_uris(&mut self, a: &RawApplication, public: Option<bool>) -> Vec<String> {
        let redirect_uris = self.uris(&a.redirect_uris, public);
        if public == Some(true) && redirect_uris.is_empty() {
            let loc = a
                .redirect_uris
                .as_ref()
                .map_or_else(|| a.place.key("redirect_uris"), |l| l.loc.clone());
            self.err(loc, "a public client needs at least one redirect URI");
        }
        redirect_uris
    }

    /// The user flow an application's users sign up and sign in with, as the tenant
    /// spells its id.
    fn application_user_flow(&mut self, a: &RawApplication, tenant: &Tenant) -> Option<String> {
        match &a.user_flow {
            Some(v) => self.check(v, |s| {
                let id = rules::normalize_user_flow_id(s)?;
                match tenant.user_flow(&id) {
                    Some(flow) => Ok(flow.id.clone()),
                    None if id.eq_ignore_ascii_case(DEMO_USER_FLOW_ID) => {
                        Err(format!("{DEMO_USER_FLOW_ID} exists only while demo = true"))
                    }
                    None => Err(format!("no user flow {id} is defined under [[user_flows]]")),
                }
            }),
            None => {
                self.err(
                    a.place.key("user_flow"),
                    "is required: the user flow people sign up and sign in with",
                );
                None
            }
        }
    }

    /// The roles an application is granted: only a confidential client can use them.
    fn roles(&mut self, a: &RawApplication, public: Option<bool>) -> Vec<String> {
        let mut roles: Vec<String> = Vec::new();
        if let Some(list) = &a.roles {
            if public == Some(true) && !list.value.is_empty() {
                self.err(
                    list.loc.clone(),
                    "roles are granted through the client-credentials grant, which only confidential clients can use",
                );
            }
            for r in &list.value {
                if let Some(role) = self.check(r, |s| rules::parse_role(s)) {
                    if roles.iter().any(|x| x == role) {
                        self.err(r.loc.clone(), format!("{role} is listed twice"));
                    } else {
                        roles.push(role.to_owned());
                    }
                }
            }
        }
        roles
    }

    fn uris(&mut self, list: &Option<List>, public: Option<bool>) -> Vec<String> {
        let Some(list) = list else {
            return Vec::new();
        };
        let mut uris: Vec<String> = Vec::new();
        for u in &list.value {
            // An unknown client type gets the lenient rule: its own error says enough.
            if self
                .check(u, |s| rules::check_redirect_uri(s, public.unwrap_or(true)))
                .is_none()
            {
                continue;
            }
            if uris.contains(&u.value) {
                self.err(u.loc.clone(), "is listed twice");
            } else {
                uris.push(u.value.clone());
            }
        }
        uris
    }
}

fn input_mismatch(input: UserInputType, data_type: DataType) -> String {
    let accepted: Vec<&str> = [
        UserInputType::TextBox,
        UserInputType::EmailBox,
        UserInputType::NumericTextBox,
        UserInputType::CheckboxSingleSelect,
        UserInputType::RadioSingleSelect,
        UserInputType::DropdownSingleSelect,
        UserInputType::CheckboxMultiSelect,
    ]
    .into_iter()
    .filter(|i| i.accepts(data_type))
    .map(rules::input_type_name)
    .collect();
    let article = if data_type == DataType::Int {
        "an"
    } else {
        "a"
    };
    format!(
        "{} cannot collect {article} {} attribute; use one of {}",
        rules::input_type_name(input),
        rules::data_type_name(data_type),
        accepted.join(", ")
    )
}
