//! `usher export` and `usher apply`: the tenant in the database as a configuration
//! file, and back. Export writes only the tenant (attributes, user flows,
//! applications, connectors, identity providers); apply brings a running tenant to
//! what a file declares, showing the difference first, field by field. Both work on
//! an existing database only (`usher migrate` creates one), and neither removes the
//! built-in console application.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::Context;
use usher_config::{Config, ExportInput, SecretExport};
use usher_tenant::{TenantService, TenantSnapshot};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// How to write secrets: `env` names an environment variable for each (the file
    /// holds none), `values` writes them (protect the file like the database and
    /// master key together).
    #[arg(long, default_value = "env", value_parser = ["env", "values"])]
    pub secrets: String,
}

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The file declaring the tenant (a full configuration file is fine: only its
    /// tenant is used).
    pub file: PathBuf,
    /// Show what would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

async fn service(config: &Config) -> anyhow::Result<TenantService> {
    let store = crate::open_existing_store(config).await?;
    let master = crate::load_existing_master_key(&config.master_key)?;
    Ok(TenantService::new(store, Arc::new(master)))
}

pub async fn export(config: &Config, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let tenants = service(config).await?;
    let snapshot = tenants.current().await.context("cannot read the tenant")?;
    let secrets = if args.secrets == "values" {
        SecretExport::Values
    } else {
        SecretExport::EnvReferences
    };
    let input = ExportInput {
        tenant: &snapshot.tenant,
        connectors: &snapshot.connectors,
        identity_providers: &snapshot.identity_providers,
        event_listeners: &snapshot.event_listeners,
        issuer: &config.issuer,
    };
    let export = usher_config::export_toml(&input, secrets).map_err(|errors| {
        anyhow::anyhow!(
            "the tenant cannot be written as a configuration file:\n  {}",
            errors
                .iter()
                .map(std::string::ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        )
    })?;
    match &args.output {
        Some(path) => {
            write_private(path, &export.toml)?;
            eprintln!(
                "Wrote the tenant (version {}) to {}.",
                snapshot.version,
                path.display()
            );
        }
        None => print!("{}", export.toml),
    }
    if !export.required_env.is_empty() {
        eprintln!("Applying this file needs these environment variables, each set to its secret:");
        for name in &export.required_env {
            eprintln!("  {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The file may hold secrets: readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn apply(config: &Config, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let declared = match usher_config::load_tenant(&args.file, config, &|k| std::env::var(k).ok()) {
        Ok(d) => d,
        Err(errors) => {
            eprintln!("{} has {} error(s):", args.file.display(), errors.0.len());
            for e in &errors {
                eprintln!("  {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let tenants = service(config).await?;
    let current = tenants.current().await.context("cannot read the tenant")?;
    let mut tenant = declared.tenant;
    // Built in, so no file need declare it, and never removed by applying one.
    crate::with_console_application(&mut tenant, Some(&current), &config.issuer);
    let mut desired = TenantSnapshot::new(tenant, declared.connectors, declared.identity_providers)
        .with_listeners(declared.event_listeners);
    crate::keep_unchanged_secret_hashes(&mut desired, &current, &declared.client_secrets).await;
    let changes = if args.dry_run {
        tenants.diff(&desired).await
    } else {
        tenants.apply(&desired).await
    }
    .context("cannot bring the tenant to the file's state")?;
    if changes.is_empty() {
        println!("The tenant already matches {}.", args.file.display());
        return Ok(ExitCode::SUCCESS);
    }
    for change in &changes {
        println!("{}", change.detailed());
    }
    if args.dry_run {
        println!(
            "{} change(s) would be applied (dry run: nothing changed).",
            changes.len()
        );
    } else {
        println!(
            "Applied {} change(s); every instance serves them from its next request.",
            changes.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
