//! Assembles Usher from its configuration: opens and migrates the database, loads the
//! master key and signing keys, builds the web state, and serves it. The `usher`
//! binary and the end-to-end tests both start Usher through here.

pub mod connectors_test;
pub mod tenant_files;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration as StdDuration};

use anyhow::{bail, Context};
use chrono::Duration;
use usher_config::{Config, EmailDelivery, MasterKeySource, SigningAlgorithm, SmtpTls};
use usher_connectors::{Metrics, RunnerSettings};
use usher_domain::{Clock, SystemClock};
use usher_oidc::{
    crypto::MasterKey,
    jose::Algorithm,
    keys::{KeyManager, RotationPolicy},
};
use usher_storage::Store;
use usher_tenant::{TenantService, TenantSnapshot};
use usher_web::{
    hasher::PasswordHasher,
    i18n::Catalogue,
    mail::{self, Mailer},
    state::Compiled,
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

/// Builds the web state for `config`.
pub async fn build(config: &Config, overrides: Overrides) -> anyhow::Result<AppState> {
    let store = open_store(config).await?;
    let master = load_master_key(&config.master_key)?;
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let code_key = master.hmac_key("email-code");
    let cookie_key = master.hmac_key("cookie");
    let master = Arc::new(master);
    let keys = key_manager(config, store.clone(), master.clone(), clock.clone());
    keys.ensure_keys()
        .await
        .context("cannot load or create the signing keys")?;

    let catalogue = Arc::new(Catalogue::load()?);
    let templates = Templates::new(catalogue, config.templates_dir.as_deref())?;
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
    let mailer = Mailer::new(&config.email.from, transport, config.email.log_codes)?;
    let t = &config.tokens;
    let settings = Settings {
        issuer: config.issuer.trim_end_matches('/').to_owned(),
        lifetimes: Lifetimes {
            authorization_code: Duration::seconds(t.authorization_code_seconds as i64),
            access_token: Duration::seconds(t.access_token_seconds as i64),
            id_token: Duration::seconds(t.id_token_seconds as i64),
            refresh_token: Duration::days(t.refresh_token_days.into()),
            session: Duration::hours(t.session_hours.into()),
        },
        demo_client_id: config.demo.then(|| usher_config::DEMO_CLIENT_ID.to_owned()),
    };
    // The configuration file seeds the tenant; after that the database is the truth
    // (the admin API and `usher apply` change it).
    let tenants = Arc::new(TenantService::new(store.clone(), master.clone()));
    let (snapshot, differs) = tenants
        .seed(&desired_tenant(config))
        .await
        .context("cannot read or store the tenant")?;
    if differs {
        tracing::warn!(
            "the configuration file differs from the tenant in the database, which is what \
             is served; `usher apply --dry-run` shows the difference and `usher apply` applies it"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let runner_settings = runner_settings(config);
    let compiled = Compiled::build(
        snapshot,
        &store,
        &clock,
        &metrics,
        &runner_settings,
        &config.federation,
    )
    .context("the identity providers are misconfigured")?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(AppState(Arc::new(Inner {
        store,
        tenants,
        compiled: std::sync::RwLock::new(Arc::new(compiled)),
        runner_settings,
        federation_settings: config.federation.clone(),
        keys: Arc::new(keys),
        clock: clock.clone(),
        rng: usher_web::state::rng(overrides.rng_seed),
        templates: Arc::new(templates),
        mailer: Arc::new(mailer),
        hasher: PasswordHasher::new(cores),
        metrics,
        settings,
        code_key,
        cookie_key,
    })))
}

/// The tenant a configuration file declares.
pub fn desired_tenant(config: &Config) -> TenantSnapshot {
    TenantSnapshot::new(
        config.tenant.clone(),
        config.connectors.clone(),
        config.identity_providers.clone(),
    )
}

/// What the connector client may do, from the operator's settings.
pub fn runner_settings(config: &Config) -> RunnerSettings {
    RunnerSettings {
        allow_insecure_targets: config.connector_settings.allow_insecure_targets,
        record_bodies: config.connector_settings.record_bodies,
        ..RunnerSettings::default()
    }
}

/// Periodic housekeeping: expired rows go, keys rotate on schedule.
pub fn spawn_maintenance(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(StdDuration::from_secs(600));
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
    let app = usher_web::router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    maintenance.abort();
    result.context("the server stopped with an error")
}

/// Refuses configurations that cannot start, with what to do about it.
pub fn check_startable(config: &Config) -> anyhow::Result<()> {
    if config.tenant.applications.is_empty() {
        bail!("no applications are configured and the demo is off: add an [[applications]] entry or set demo = true");
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
