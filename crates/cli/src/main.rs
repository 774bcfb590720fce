//! The `usher` command.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "usher",
    version,
    about = "Identity service for self-service sign-up with API connectors"
)]
struct Cli {
    /// Configuration file (TOML). Without one, Usher serves the demo tenant.
    #[arg(long, short, global = true, env = "USHER_CONFIG")]
    config: Option<PathBuf>,
    /// How log lines are written: `text` for a person, `json` for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "USHER_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: usher_cli::logging::LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Work with the token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write the tenant in the database as a configuration file.
    Export(usher_cli::tenant_files::ExportArgs),
    /// Bring the tenant in the database to what a file declares.
    Apply(usher_cli::tenant_files::ApplyArgs),
    /// Work with API connectors.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// Give or take away the role that lets a user into the admin console (/console).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print a new random master key.
    GenerateMasterKey,
    /// Read a client secret from standard input and print its Argon2id hash, for
    /// `client_secret_hash`.
    HashSecret,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check the configuration and report every error with where it came from.
    Check,
}

#[derive(Subcommand)]
enum ConnectorsCommand {
    /// Send one realistic request to a connector, print the exact request
    /// (credentials masked), the response and how Usher reads it, and exit non-zero
    /// unless the outcome is the expected one.
    Test(usher_cli::connectors_test::TestArgs),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make the user(s) with this email address administrators (role Usher.Admin).
    Grant {
        /// The user's verified email address.
        email: String,
    },
    /// Take the administrator role away from the user(s) with this email address;
    /// their console sessions stop working at their next request.
    Revoke {
        /// The user's verified email address.
        email: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the next signing key now; it is published at once and used after the
    /// publish-ahead period.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    usher_cli::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&std::path::Path>) -> Result<usher_config::Config, ExitCode> {
    let config = usher_config::load(path, &|k| std::env::var(k).ok()).map_err(|errors| {
        eprintln!("The configuration has {} error(s):", errors.0.len());
        for e in &errors {
            eprintln!("  {e}");
        }
        ExitCode::from(2)
    })?;
    // Deprecated settings still work; every command that reads the file says so.
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve);
    // The commands that need no configuration.
    match command {
        Command::GenerateMasterKey => {
            println!("{}", usher_oidc::crypto::MasterKey::generate().encode());
            return Ok(ExitCode::SUCCESS);
        }
        Command::HashSecret => return hash_secret(),
        _ => {}
    }
    let config = match load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    match command {
        Command::Serve => serve(&config).await,
        Command::Migrate => {
            usher_cli::open_store(&config).await?;
            println!(
                "{} is up to date.",
                capitalized(&usher_cli::database_label(&config))
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => Ok(config_check(&config)),
        Command::Keys {
            command: KeysCommand::Rotate,
        } => rotate_keys(&config).await,
        Command::Connectors {
            command: ConnectorsCommand::Test(args),
        } => usher_cli::connectors_test::run(&config, args).await,
        Command::Export(args) => usher_cli::tenant_files::export(&config, args).await,
        Command::Apply(args) => usher_cli::tenant_files::apply(&config, args).await,
        Command::Admin { command } => admin(&config, command).await,
        Command::GenerateMasterKey | Command::HashSecret => unreachable!("answered above"),
    }
}

/// `usher serve`: until a shutdown signal.
async fn serve(config: &usher_config::Config) -> anyhow::Result<ExitCode> {
    let state = usher_cli::build(config, usher_cli::Overrides::default()).await?;
    let issuer = config.issuer.clone();
    let demo = config.demo;
    let backend = state.store.backend_name();
    usher_cli::serve(
        state,
        config.listen,
        |addr| {
            tracing::info!(%addr, database = backend, "listening");
            println!("Usher is running at {issuer} (listening on {addr}, database: {backend}).");
            if demo {
                println!("Open {issuer}/try to sign up with the demo user flow and see your ID token.");
            }
            println!("The admin console is at {issuer}/console (make a user an administrator with `usher admin grant EMAIL`).");
        },
        shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// `usher config check`: the configuration loaded; the master key too.
fn config_check(config: &usher_config::Config) -> ExitCode {
    if let Err(e) = usher_cli::load_master_key_check(config) {
        eprintln!("The configuration has 1 error(s):\n  master key: {e:#}");
        return ExitCode::from(2);
    }
    println!(
        "The configuration is valid{}: issuer {}, {} application(s), {} user flow(s), {} custom attribute(s).",
        config
            .source
            .as_ref()
            .map(|p| format!(" ({})", p.display()))
            .unwrap_or_default(),
        config.issuer,
        config.tenant.applications.len(),
        config.tenant.user_flows.len(),
        config.tenant.custom_attributes.len()
    );
    ExitCode::SUCCESS
}

/// `usher keys rotate`.
async fn rotate_keys(config: &usher_config::Config) -> anyhow::Result<ExitCode> {
    let store = usher_cli::open_existing_store(config).await?;
    let master = usher_cli::load_existing_master_key(&config.master_key)?;
    let keys = usher_cli::key_manager(
        config,
        store,
        master,
        std::sync::Arc::new(usher_domain::SystemClock),
    );
    keys.ensure_keys().await?;
    let kid = keys.rotate().await?;
    println!("Created signing key {kid}; it is published now and will be used after the publish-ahead period.");
    Ok(ExitCode::SUCCESS)
}

/// `usher admin grant|revoke EMAIL`.
async fn admin(config: &usher_config::Config, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let (email, grant) = match command {
        AdminCommand::Grant { email } => (email, true),
        AdminCommand::Revoke { email } => (email, false),
    };
    let store = usher_cli::open_existing_store(config).await?;
    let changed = usher_cli::set_admin_role(store.as_ref(), &email, grant).await?;
    let role = usher_web::console::ADMIN_ROLE;
    for user in &changed {
        if grant {
            println!("User {user} ({email}) now has the role {role}.");
        } else {
            println!("User {user} ({email}) no longer has the role {role}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `usher hash-secret`: an Argon2id hash of the secret on standard input.
fn hash_secret() -> anyhow::Result<ExitCode> {
    let mut secret = String::new();
    std::io::stdin().read_line(&mut secret)?;
    let secret = secret.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        anyhow::bail!("give the secret on standard input");
    }
    println!(
        "{}",
        usher_domain::password::hash_password(secret, &mut rand::rngs::OsRng)
    );
    Ok(ExitCode::SUCCESS)
}

/// "the SQLite database …" at the start of a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
