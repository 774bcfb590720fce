//! Assembles Usher from its configuration: opens and migrates the database, loads the
//! master key and signing keys, builds the web state, and serves it. The `usher`
//! binary and the end-to-end tests both start Usher through here.

pub mod connectors_test;
pub mod logging;
pub mod tenant_files;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration as StdDuration};

use anyhow::{bail, Context};
use chrono::Duration;
use usher_config::{Config, EmailDelivery, MasterKeySource, SigningAlgorithm, SmtpTls};
use usher_connectors::{Metrics, RunnerSettings};
use usher_domain::{Application, ClientType, Clock, SystemClock, Tenant};
use usher_oidc::{
    crypto::MasterKey,
    jose::Algorithm,
    keys::{KeyManager, RotationPolicy},
};
use usher_signup::{live::RunnerCompiler, Engine, Live, Parts, Random};
use usher_storage::Store;
use usher_tenant::{TenantService, TenantSnapshot};
use usher_web::{
    hasher::PasswordHasher,
    i18n::Catalogue,
    mail::{self, Mailer},
    templates::Templates,
    AppState, Inner, Lifetimes, Settings,
};

/// Reads the master key from where the configuration says; creates it in the data
/// directory on first start when that is allowed (SQLite only).
pub fn load_master_key(source: &MasterKeySource) -> anyhow::Result<MasterKey> {
    let parse = |text: &str, origin: &str| {
        MasterKey::parse(text).with_context(|| format!("the master key from {origin} is not valid"))
    };
    match source {
        MasterKeySource::Env { var, value } => parse(value, &format!("environment variable {var}")),
        MasterKeySource::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the master key file {}", path.display()))?;
            parse(&text, &path.display().to_string())
        }
        MasterKeySource::GenerateInDataDir(path) => {
            if path.exists() {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the master key file {}", path.display())
                })?;
                return parse(&text, &path.display().to_string());
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the data directory {}", dir.display())
                })?;
            }
            let key = MasterKey::generate();
            write_secret_file(path, &key.encode())?;
            tracing::info!(path = %path.display(), "generated a new master key");
            Ok(key)
        }
    }
}

/// The master key for a command other than `serve` and `migrate`: it must exist
/// already, as a new one could decrypt nothing the database holds.
pub fn load_existing_master_key(source: &MasterKeySource) -> anyhow::Result<MasterKey> {
    if let MasterKeySource::GenerateInDataDir(path) = source {
        if !path.exists() {
            bail!(
                "there is no master key at {}: give the one the database was created with \
                 (USHER_MASTER_KEY, USHER_MASTER_KEY_FILE or secrets.master_key_file)",
                path.display()
            );
        }
    }
    load_master_key(source)
}

/// Creates `path` readable by its owner only; fails if it exists, so two processes
/// starting together cannot both write a key.
fn write_secret_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(format!("{contents}\n").as_bytes())?;
    Ok(())
}

/// What tests may change about an instance; production uses the defaults.
#[derive(Default)]
pub struct Overrides {
    pub clock: Option<Arc<dyn Clock>>,
    pub rng_seed: Option<u64>,
}

/// Opens the database named by the configuration and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = config.database_url.strip_prefix("sqlite://") {
        if let Some(dir) = Path::new(path.split('?').next().unwrap_or(path)).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the database directory {}", dir.display())
                })?;
            }
        }
    }
    let store = usher_storage::connect(&config.database_url)
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// The database the configuration names, as messages show it: a SQLite file by its
/// absolute path, a PostgreSQL URL without its password.
pub fn database_label(config: &Config) -> String {
    match sqlite_path(&config.database_url) {
        Some(path) => {
            let shown = std::path::absolute(&path).unwrap_or(path);
            format!("the SQLite database {}", shown.display())
        }
        None => format!(
            "the PostgreSQL database {}",
            usher_config::rules::redact_url_password(&config.database_url)
        ),
    }
}

/// The file of a SQLite URL (`sqlite://path?…`, `sqlite:path`); `None` for
/// PostgreSQL and for an in-memory database.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

/// Whether the database the configuration names is there to open: a SQLite file
/// that exists, or any PostgreSQL database (whether it exists only connecting tells).
pub fn database_exists(config: &Config) -> bool {
    sqlite_path(&config.database_url).is_none_or(|p| p.exists())
}

/// Opens the database for a command other than `serve` and `migrate`: one that
/// already holds Usher's tables, never a new one (run in the wrong directory, a
/// command must not quietly create an empty `./usher-data`). Pending migrations of an
/// existing database are applied, as `serve` would. Says on standard error which
/// database it opened.
pub async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let label = database_label(config);
    let hint = "run the command with the server's configuration (--config or USHER_CONFIG), \
                or create the database with `usher migrate`";
    if !database_exists(config) {
        bail!("there is no database: {label} does not exist; {hint}");
    }
    let store = usher_storage::connect(&config.database_url)
        .await
        .with_context(|| format!("cannot open {label}"))?;
    // Every Usher database has the tenant's version; an empty or foreign one has not.
    if let Err(e) = store.tenant_version().await {
        bail!("{label} holds no Usher data ({e}); {hint}");
    }
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate {label}"))?;
    eprintln!("Using {label}.");
    Ok(store)
}

pub fn signing_algorithm(config: &Config) -> Algorithm {
    match config.signing.algorithm {
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::RS256 => Algorithm::RS256,
    }
}

pub fn key_manager(
    config: &Config,
    store: Arc<dyn Store>,
    master: impl Into<Arc<MasterKey>>,
    clock: Arc<dyn Clock>,
) -> KeyManager {
    let policy = RotationPolicy {
        rotate_after: Duration::days(config.signing.rotation_days.into()),
        publish_ahead: Duration::hours(config.signing.publish_ahead_hours.into()),
        ..RotationPolicy::default()
    };
    KeyManager::new(store, master, signing_algorithm(config), policy, clock)
}

/// The mail transport the configuration names.
fn mailer(config: &Config) -> anyhow::Result<Mailer> {
    let transport = match &config.email.delivery {
        EmailDelivery::File { outbox_dir } => mail::Transport::File {
            dir: outbox_dir.clone(),
        },
        EmailDelivery::Smtp(smtp) => Mailer::smtp(mail::SmtpOptions {
            host: smtp.host.clone(),
            port: smtp.port,
            tls: match smtp.tls {
                SmtpTls::StartTls => mail::SmtpTls::StartTls,
                SmtpTls::Tls => mail::SmtpTls::Tls,
                SmtpTls::None => mail::SmtpTls::None,
            },
            username: smtp.username.clone(),
            password: smtp.password.as_ref().map(|p| p.expose().to_owned()),
        })?,
    };
    Ok(Mailer::new(
        &config.email.from,
        transport,
        config.email.log_codes,
    )?)
}

/// What the web layer knows of the deployment: issuer, lifetimes, demo, drain.
fn web_settings(config: &Config) -> Settings {
    let t = &config.tokens;
    Settings {
        issuer: config.issuer.trim_end_matches('/').to_owned(),
        lifetimes: Lifetimes {
            authorization_code: Duration::seconds(t.authorization_code_seconds as i64),
            access_token: Duration::seconds(t.access_token_seconds as i64),
            id_token: Duration::seconds(t.id_token_seconds as i64),
            refresh_token: Duration::days(t.refresh_token_days.into()),
            session: Duration::hours(t.session_hours.into()),
        },
        demo_client_id: config.demo.then(|| usher_config::DEMO_CLIENT_ID.to_owned()),
        shutdown_drain: config.shutdown_drain,
        metrics_token: config.metrics_token.clone().map(Into::into),
    }
}

/// Seeds the database with the configuration file's tenant on first start; after
/// that the database is the truth (the admin API and `usher apply` change it), and a
/// file that differs is only reported.
async fn seed_tenant(config: &Config, tenants: &TenantService) -> anyhow::Result<()> {
    let stored = tenants.current().await.context("cannot read the tenant")?;
    check_startable(config, &stored)?;
    let mut desired = desired_tenant(config, Some(&stored));
    keep_unchanged_secret_hashes(&mut desired, &stored, &config.client_secrets).await;
    let (_, differs) = tenants
        .seed(&desired)
        .await
        .context("cannot read or store the tenant")?;
    if differs && declares_tenant(config) {
        let changes = tenants.diff(&desired).await.unwrap_or_default();
        let changed: Vec<String> = changes
            .iter()
            .map(|c| format!("{} {}", c.kind, c.id))
            .collect();
        tracing::warn!(
            objects = %changed.join(", "),
            "the configuration file differs from the tenant in the database, which is what \
             is served; `usher apply --dry-run` shows the difference and `usher apply` applies it"
        );
    }
    // A database seeded before the console existed, or whose issuer moved, gets the
    // console's application now.
    if let Err(e) = ensure_console_application(tenants, config).await {
        tracing::warn!(error = %e, "could not set up the admin console's application");
    }
    Ok(())
}

/// Builds the web state for `config`.
pub async fn build(config: &Config, overrides: Overrides) -> anyhow::Result<AppState> {
    let store = open_store(config).await?;
    let master = load_master_key(&config.master_key)?;
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let code_key = master.hmac_key("email-code");
    let cookie_key = master.hmac_key("cookie");
    let master = Arc::new(master);
    let keys = Arc::new(key_manager(
        config,
        store.clone(),
        master.clone(),
        clock.clone(),
    ));
    keys.ensure_keys()
        .await
        .context("cannot load or create the signing keys")?;

    let catalogue = Arc::new(Catalogue::load()?);
    let templates = Templates::new(catalogue, config.templates_dir.as_deref())?;
    let mailer = mailer(config)?;
    let settings = web_settings(config);
    let tenants = Arc::new(TenantService::new(store.clone(), master.clone()));
    seed_tenant(config, &tenants).await?;
    let snapshot = tenants.current().await.context("cannot read the tenant")?;
    let metrics = Arc::new(Metrics::new());
    let runner_settings = runner_settings(config);
    let compiler = Arc::new(RunnerCompiler {
        store: store.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        runner_settings: runner_settings.clone(),
        federation_settings: config.federation.clone(),
        signer: Some(Arc::new(usher_signup::live::KeySigner {
            keys: keys.clone(),
            issuer: settings.issuer.clone(),
        })),
    });
    let live = Live::start(tenants.clone(), store.clone(), compiler, snapshot)
        .await
        .context("the identity providers are misconfigured")?;
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let templates = Arc::new(templates);
    let engine = Engine::new(Parts {
        store: store.clone(),
        live: Arc::new(live),
        clock: clock.clone(),
        random: Arc::new(Random::new(overrides.rng_seed)),
        hasher: PasswordHasher::new(cores),
        throttle: Arc::new(usher_web::throttle::Throttle::new(
            config.rate_limits.clone(),
            master.hmac_key("rate-limit"),
        )),
        postman: Arc::new(usher_web::mail::Postman {
            templates: templates.clone(),
            mailer: Arc::new(mailer),
        }),
        messages: templates.clone(),
        code_key,
        settings: usher_signup::Settings {
            issuer: settings.issuer.clone(),
            session: settings.lifetimes.session,
            authorization_code: settings.lifetimes.authorization_code,
        },
    });
    Ok(AppState(Arc::new(Inner {
        engine: Arc::new(engine),
        store,
        tenants,
        runner_settings,
        federation_settings: config.federation.clone(),
        keys,
        clock,
        templates,
        client_secrets: usher_web::hasher::ClientSecrets::new(
            master.hmac_key("client-secrets"),
            cores,
        ),
        metrics,
        settings,
        cookie_key,
        draining: std::sync::atomic::AtomicBool::new(false),
    })))
}

/// The tenant a configuration file declares, with the admin console's built-in
/// application unless the file declares its own (so the stored tenant, which has it,
/// does not differ from the file for that alone; see [`with_console_application`]).
pub fn desired_tenant(config: &Config, current: Option<&TenantSnapshot>) -> TenantSnapshot {
    let mut tenant = config.tenant.clone();
    with_console_application(&mut tenant, current, &config.issuer);
    TenantSnapshot::new(
        tenant,
        config.connectors.clone(),
        config.identity_providers.clone(),
    )
    .with_listeners(config.event_listeners.clone())
}

/// Adds the console's application to a declared tenant that lacks it, because it is
/// built in: no file needs to declare it, and `usher apply` never removes it. The
/// stored one is kept as it is while its user flow is still there to sign in with;
/// otherwise it is made anew for the declared tenant (if it has a flow for it).
pub fn with_console_application(
    tenant: &mut Tenant,
    current: Option<&TenantSnapshot>,
    issuer: &str,
) {
    if tenant.application(usher_web::console::CLIENT_ID).is_some() {
        return;
    }
    let stored = current
        .and_then(|c| c.tenant.application(usher_web::console::CLIENT_ID))
        .filter(|app| {
            tenant
                .user_flow(&app.user_flow_id)
                .is_some_and(usher_domain::UserFlow::allows_local_accounts)
        })
        .cloned();
    if let Some(app) = stored.or_else(|| console_application(tenant, issuer)) {
        tenant.applications.push(app);
    }
}

/// Every load of a configuration hashes a plaintext client secret with a new salt,
/// so its hash never equals the stored one: where the stored hash verifies the
/// file's secret, the declared application takes the stored hash, and an unchanged
/// secret is no change.
pub async fn keep_unchanged_secret_hashes(
    desired: &mut TenantSnapshot,
    current: &TenantSnapshot,
    secrets: &std::collections::BTreeMap<String, usher_config::Secret>,
) {
    for app in &mut desired.tenant.applications {
        let Some(secret) = secrets.get(&app.client_id.to_ascii_lowercase()) else {
            continue;
        };
        let Some(ClientType::Confidential { secret_hash }) = current
            .tenant
            .application(&app.client_id)
            .map(|a| a.client_type.clone())
        else {
            continue;
        };
        let plain = secret.expose().to_owned();
        let stored = secret_hash.clone();
        // Argon2id is deliberately slow: off the async workers.
        let same = tokio::task::spawn_blocking(move || {
            usher_domain::password::verify_password(&plain, &stored)
        })
        .await
        .unwrap_or(false);
        if same {
            app.client_type = ClientType::Confidential { secret_hash };
        }
    }
}

/// Whether the configuration declares a tenant at all. A file of server settings
/// alone (a database restored with `usher apply`, then served) declares none, and
/// then the stored tenant is not something it "differs" from.
pub fn declares_tenant(config: &Config) -> bool {
    let t = &config.tenant;
    config.demo
        || !t.applications.is_empty()
        || !t.user_flows.is_empty()
        || !t.custom_attributes.is_empty()
        || !config.connectors.is_empty()
        || !config.identity_providers.is_empty()
}

/// The admin console's application (`usher-console`): a public client (PKCE) that
/// comes back to `{issuer}/console/callback`, signing in with the demo user flow when
/// there is one, else the first user flow that allows local accounts. `None` when no
/// user flow does: administrators sign in with an email and password.
pub fn console_application(tenant: &Tenant, issuer: &str) -> Option<Application> {
    let local = |f: &&usher_domain::UserFlow| f.allows_local_accounts();
    let flow = tenant
        .user_flows
        .iter()
        .filter(local)
        .find(|f| f.id.eq_ignore_ascii_case(usher_config::DEMO_USER_FLOW_ID))
        .or_else(|| tenant.user_flows.iter().find(local))?;
    let issuer = issuer.trim_end_matches('/');
    Some(Application {
        client_id: usher_web::console::CLIENT_ID.to_owned(),
        name: "Usher console".to_owned(),
        redirect_uris: vec![format!("{issuer}/console/callback")],
        post_logout_redirect_uris: vec![format!("{issuer}/console")],
        client_type: ClientType::Public,
        user_flow_id: flow.id.clone(),
        roles: Vec::new(),
    })
}

/// Makes sure the stored tenant has the console's application: created when missing,
/// and its addresses moved along when the issuer changed (unless the configuration
/// file declares the application itself, which then is the operator's to keep).
async fn ensure_console_application(
    tenants: &TenantService,
    config: &Config,
) -> anyhow::Result<()> {
    let current = tenants.current().await?;
    let declared = config
        .tenant
        .application(usher_web::console::CLIENT_ID)
        .is_some();
    let wanted = console_application(&current.tenant, &config.issuer);
    match (
        current.tenant.application(usher_web::console::CLIENT_ID),
        wanted,
    ) {
        (None, None) => tracing::warn!(
            "no user flow allows local accounts, so the admin console (/console) cannot sign \
             anyone in"
        ),
        (None, Some(app)) => {
            tenants.put_application(&app).await?;
            tracing::info!(user_flow = %app.user_flow_id, "created the admin console's application usher-console");
        }
        (Some(existing), Some(wanted))
            if !declared && !existing.has_redirect_uri(&wanted.redirect_uris[0]) =>
        {
            let mut app = existing.clone();
            app.redirect_uris = wanted.redirect_uris;
            app.post_logout_redirect_uris = wanted.post_logout_redirect_uris;
            tenants.put_application(&app).await?;
            tracing::info!(user_flow = %app.user_flow_id, "moved the admin console's application to the issuer's address");
        }
        (Some(existing), _) => {
            tracing::info!(user_flow = %existing.user_flow_id, "the admin console (/console) signs in with this user flow");
        }
    }
    Ok(())
}

/// What the connector client may do, from the operator's settings.
pub fn runner_settings(config: &Config) -> RunnerSettings {
    RunnerSettings {
        targets: config.connector_settings.target_policy(),
        record_bodies: config.connector_settings.record_bodies,
        extra_root_certificates: config.connector_settings.extra_root_certificates.clone(),
        issuer: config.issuer.trim_end_matches('/').to_owned(),
    }
}

/// Periodic housekeeping: expired rows go, keys rotate on schedule.
pub fn spawn_maintenance(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(StdDuration::from_mins(10));
        loop {
            tick.tick().await;
            // A day's grace, so a flow that just expired can still say so.
            let cutoff = state.clock.now() - Duration::days(1);
            match state.store.delete_expired(cutoff).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "deleted expired records"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not delete expired records"),
            }
            if let Err(e) = state.keys.ensure_keys().await {
                tracing::warn!(error = %e, "could not check the signing keys");
            }
        }
    })
}

/// Binds `addr` and serves until `shutdown` completes, telling `on_bound` the address.
pub async fn serve(
    state: AppState,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    on_bound(listener.local_addr()?);
    serve_on(state, listener, shutdown).await
}

/// Serves on a listener that is already bound.
pub async fn serve_on(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let maintenance = spawn_maintenance(state.clone());
    // On shutdown, first drain: not ready, still serving, for the configured period;
    // then stop accepting connections and finish the requests in flight.
    let drain = state.settings.shutdown_drain;
    let draining = state.clone();
    let shutdown = async move {
        shutdown.await;
        draining.start_draining();
        if !drain.is_zero() {
            tracing::info!(
                seconds = drain.as_secs(),
                "draining: /health/ready fails, requests are still served"
            );
            tokio::time::sleep(drain).await;
        }
    };
    let app = usher_web::router(state);
    // The peer's address is what rate limits count by (or, behind trusted proxies,
    // where X-Forwarded-For starts).
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    maintenance.abort();
    result.context("the server stopped with an error")
}

/// Gives (`grant`) or takes away the console's administrator role to every user
/// whose verified email is `email`; returns their ids. An error when nobody has
/// that email: a typo must not look like success.
pub async fn set_admin_role(
    store: &dyn Store,
    email: &str,
    grant: bool,
) -> anyhow::Result<Vec<String>> {
    let role = usher_web::console::ADMIN_ROLE;
    let normalized = usher_domain::attribute::normalize_email(email);
    let users = store
        .users_by_email(&normalized)
        .await
        .context("cannot look the user up")?;
    if users.is_empty() {
        bail!("no user has the email address {normalized}");
    }
    let mut changed = Vec::new();
    for user in users {
        let mut roles = store.user_roles(&user.id).await?;
        let had = roles.iter().any(|r| r == role);
        if grant && !had {
            roles.push(role.to_owned());
        } else if !grant && had {
            roles.retain(|r| r != role);
        }
        if had != grant {
            store
                .set_user_roles(&user.id, &roles, SystemClock.now())
                .await?;
        }
        changed.push(user.id);
    }
    Ok(changed)
}

/// Refuses to seed a database with a tenant that has no application to serve, with
/// what to do about it. Once the database holds a tenant (`stored.version > 0`) that
/// is what is served, whatever the file declares (a file of settings alone, say, after
/// a restore with `usher apply`), and it is never refused: the admin API that could
/// add an application runs only while Usher does.
pub fn check_startable(config: &Config, stored: &TenantSnapshot) -> anyhow::Result<()> {
    if stored.version == 0 && config.tenant.applications.is_empty() {
        bail!(
            "{} holds no tenant yet and the configuration declares no applications (and the demo \
             is off): add an [[applications]] entry or set demo = true, or restore a tenant with \
             `usher apply`",
            database_label(config)
        );
    }
    Ok(())
}

/// For `config check`: the master key is readable and valid (a key that would be
/// generated on start counts as fine).
pub fn load_master_key_check(config: &Config) -> anyhow::Result<()> {
    match &config.master_key {
        MasterKeySource::GenerateInDataDir(p) if !p.exists() => Ok(()),
        source => load_master_key(source).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use usher_domain::{user_flow, UserFlow};

    use super::*;

    fn flow(id: &str, providers: &[&str]) -> UserFlow {
        UserFlow {
            id: id.to_owned(),
            identity_providers: providers.iter().map(|p| (*p).to_owned()).collect(),
            attributes: Vec::new(),
            extra_claims: Vec::new(),
            connectors: usher_domain::ConnectorSlots::default(),
            requires_approval: false,
        }
    }

    fn tenant(flows: Vec<UserFlow>) -> Tenant {
        Tenant {
            extensions_app_id: String::new(),
            custom_attributes: Vec::new(),
            user_flows: flows,
            applications: Vec::new(),
        }
    }

    #[test]
    fn the_console_signs_in_with_the_demo_flow_else_the_first_local_one() {
        let local = [user_flow::EMAIL_PASSWORD_PROVIDER];
        let t = tenant(vec![
            flow("B2X_1_otp", &[user_flow::EMAIL_OTP_PROVIDER]),
            flow("B2X_1_first", &local),
            flow("B2X_1_demo", &local),
        ]);
        let app = console_application(&t, "https://login.example/").unwrap();
        assert_eq!(app.client_id, "usher-console");
        assert_eq!(app.user_flow_id, "B2X_1_demo");
        assert!(app.is_public());
        assert_eq!(
            app.redirect_uris,
            ["https://login.example/console/callback"]
        );
        assert_eq!(
            app.post_logout_redirect_uris,
            ["https://login.example/console"]
        );
        let t = tenant(vec![
            flow("B2X_1_otp", &[user_flow::EMAIL_OTP_PROVIDER]),
            flow("B2X_1_first", &local),
        ]);
        assert_eq!(
            console_application(&t, "https://x").unwrap().user_flow_id,
            "B2X_1_first"
        );
        let t = tenant(vec![flow("B2X_1_otp", &[user_flow::EMAIL_OTP_PROVIDER])]);
        assert!(console_application(&t, "https://x").is_none());
    }

    /// The first `code` span of a Markdown table cell.
    fn code(cell: &str) -> &str {
        cell.split('`').nth(1).unwrap_or_default()
    }

    /// docs/CONFIGURATION.md's table of the three spellings says what tokens really
    /// carry, and that Graph and connectors use the full id.
    #[test]
    fn the_documented_spellings_are_the_real_ones() {
        let docs = include_str!("../../../docs/CONFIGURATION.md");
        let table = docs
            .split("#### How attributes are spelled")
            .nth(1)
            .expect("the section");
        let app = "0123456789abcdef0123456789abcdef";
        let mut t = tenant(Vec::new());
        t.extensions_app_id = app.to_owned();
        let mut checked = 0;
        for row in table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
        {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let first = code(cells[0]);
            if first.is_empty() || cells[0].contains('…') {
                continue;
            }
            let id = if cells[0].starts_with("custom") {
                format!("extension_{app}_{first}")
            } else {
                first.to_owned()
            };
            assert!(
                t.attribute(&id).is_some() || id.starts_with("extension_"),
                "{id}"
            );
            if id.starts_with("extension_") {
                assert_eq!(code(cells[1]), id, "Graph: {row}");
                assert_eq!(code(cells[2]), id, "connector request: {row}");
            }
            assert_eq!(
                code(cells[3]),
                usher_web::oauth::claim_name(&t, &id),
                "token: {row}"
            );
            checked += 1;
        }
        assert_eq!(checked, 5, "{table}");
    }
}
