//! `usher connectors test`: a connector author's first tool. It sends one realistic
//! request for a connector and step, exactly as a sign-up would, and shows what went
//! out (credentials masked), what came back, and how Usher reads it, every contract
//! warning included. The exit code says whether the outcome was the expected one.
//!
//! The connector is the one deployed, as the database holds it (with its secrets,
//! decrypted with the master key), whenever the configuration's database exists: what
//! `usher apply` or the admin API made of it is what sign-ups call. `--from-file`
//! tests the file's definition instead, before it is applied.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use usher_config::Config;
use usher_connectors::{probe_with_schema, ProbeSchema, TokenSigner};
use usher_domain::{ConnectorDefinition, ConnectorStep, Tenant};
use usher_tenant::TenantService;

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    /// The connector's id, as in the configuration.
    pub connector: String,
    /// The step to call it at.
    /// The step to call it at (an extension's event names work too:
    /// attributeCollectionSubmit, tokenIssuanceStart).
    #[arg(long, default_value = "postAttributeCollection", value_parser = ["postFederationSignup", "attributeCollectionStart", "postAttributeCollection", "attributeCollectionSubmit", "preTokenIssuance", "tokenIssuanceStart", "emailOtpSend", "preAccountRecovery", "onProfileUpdate"])]
    pub step: String,
    /// Claims to send, as a JSON object; they replace the built-in sample's keys.
    #[arg(long, conflicts_with = "claims_file")]
    pub claims: Option<String>,
    /// A file holding the claims as a JSON object.
    #[arg(long)]
    pub claims_file: Option<PathBuf>,
    /// The user flow whose attributes the answer may change (default: the first
    /// flow that uses the connector at that step).
    #[arg(long)]
    pub user_flow: Option<String>,
    /// The outcome that counts as success.
    #[arg(long, default_value = "continue", value_parser = ["continue", "block", "validationError", "failed"])]
    pub expect: String,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Test the connector as the database holds it (the default when the
    /// configuration's database exists).
    #[arg(long, conflicts_with = "from_file")]
    pub from_database: bool,
    /// Test the connector as the configuration file declares it (the default when
    /// there is no database yet).
    #[arg(long)]
    pub from_file: bool,
}

fn step(name: &str) -> ConnectorStep {
    ConnectorStep::ALL
        .into_iter()
        .find(|s| s.slot_name() == name)
        .or_else(|| ConnectorStep::from_extension_event(name))
        .unwrap_or(ConnectorStep::PostAttributeCollection)
}

/// What a typical sign-up sends at `step`, for the flow and application given.
pub fn sample_claims(
    tenant: &Tenant,
    step: ConnectorStep,
    user_flow_id: Option<&str>,
) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("email".into(), json!("test.user@example.com"));
    if step == ConnectorStep::PostFederationSignup {
        claims.insert(
            "identities".into(),
            json!([{"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "0123456789"}]),
        );
    }
    claims.insert("displayName".into(), json!("Test User"));
    claims.insert("givenName".into(), json!("Test"));
    claims.insert("surname".into(), json!("User"));
    claims.insert("ui_locales".into(), json!("en-US"));
    let client_id = tenant
        .applications
        .iter()
        .find(|a| user_flow_id.is_none_or(|f| a.user_flow_id.eq_ignore_ascii_case(f)))
        .map_or_else(|| "usher-connector-test".into(), |a| a.client_id.clone());
    claims.insert("client_id".into(), json!(client_id));
    claims
}

pub async fn run(config: &Config, args: TestArgs) -> anyhow::Result<ExitCode> {
    let from_database = args.from_database || (!args.from_file && crate::database_exists(config));
    if from_database {
        let store = crate::open_existing_store(config).await?;
        let master = Arc::new(crate::load_existing_master_key(&config.master_key)?);
        let snapshot = TenantService::new(store.clone(), master.clone())
            .current()
            .await
            .context("cannot read the tenant")?;
        // An extension's token is signed with the deployment's own keys, which its
        // API trusts through Usher's JWKS.
        let signer: Arc<dyn TokenSigner> = Arc::new(usher_signup::live::KeySigner {
            keys: Arc::new(crate::key_manager(
                config,
                store,
                master,
                Arc::new(usher_domain::SystemClock),
            )),
            issuer: config.issuer.trim_end_matches('/').to_owned(),
        });
        if snapshot.version == 0 {
            bail!(
                "{} holds no tenant yet (Usher stores the configuration's on its first start, \
                 `usher apply` stores a file's): test the file's connector with --from-file",
                crate::database_label(config)
            );
        }
        let source = format!(
            "{}, tenant version {}",
            crate::database_label(config),
            snapshot.version
        );
        run_with(
            config,
            (&snapshot.tenant, &snapshot.connectors),
            &source,
            args,
            Some(signer),
        )
        .await
    } else {
        let source = match &config.source {
            Some(path) => path.display().to_string(),
            None => "the built-in configuration".to_owned(),
        };
        run_with(
            config,
            (&config.tenant, &config.connectors),
            &source,
            args,
            None,
        )
        .await
    }
}

/// Tests a connector of `connectors`, with the user flows and attributes of
/// `tenant`; `source` says where they came from.
async fn run_with(
    config: &Config,
    (tenant, connectors): (&Tenant, &[ConnectorDefinition]),
    source: &str,
    args: TestArgs,
    signer: Option<Arc<dyn TokenSigner>>,
) -> anyhow::Result<ExitCode> {
    let Some(definition) = connectors
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(&args.connector))
    else {
        let known: Vec<_> = connectors.iter().map(|c| c.id.as_str()).collect();
        let hint = if args.from_file || !crate::database_exists(config) {
            ""
        } else {
            "; to test the configuration file's definition before it is applied, add --from-file"
        };
        bail!(
            "no connector {:?} in {source} (there: {}){hint}",
            args.connector,
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    };
    // On standard error, so that `--json` output stays one document.
    eprintln!(
        "Testing connector {} ({}) from {source}.",
        definition.id,
        definition.contract.name()
    );
    if signer.is_none()
        && matches!(
            definition.authentication,
            usher_domain::ConnectorAuthentication::IssuedToken { .. }
        )
    {
        eprintln!(
            "Its token is signed with the deployment's keys, which only its database holds: \
             this test will fail to authenticate. Test the deployed connector (without --from-file) once Usher has started."
        );
    }
    let step = step(&args.step);
    if !definition.contract.serves(step) {
        bail!(
            "{} speaks the {} contract, which has no call at {}",
            definition.id,
            definition.contract.name(),
            step.slot_name()
        );
    }
    let user_flow_id = args.user_flow.clone().or_else(|| {
        tenant
            .user_flows
            .iter()
            .find(|f| {
                f.connectors
                    .at(step)
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&definition.id))
            })
            .map(|f| f.id.clone())
    });
    if let Some(id) = &user_flow_id {
        if tenant.user_flow(id).is_none() {
            bail!("no user flow {id:?} in {source}");
        }
    }
    let mut claims = sample_claims(tenant, step, user_flow_id.as_deref());
    merge_given_claims(&args, &mut claims)?;
    let schema = ProbeSchema {
        tenant,
        user_flow_id: user_flow_id.as_deref(),
    };
    let report = probe_with_schema(
        definition,
        step,
        claims,
        &crate::runner_settings(config),
        Some(schema),
        signer,
    )
    .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    let outcome = report.interpretation.outcome.as_str();
    if outcome == args.expect {
        if !args.json {
            println!("\nOK: the outcome is {outcome}, as expected.");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        if !args.json {
            println!("\nNOT OK: expected {}, got {outcome}.", args.expect);
        }
        Ok(ExitCode::from(1))
    }
}

/// The claims given with `--claims` or `--claims-file` over the sample's (`null`
/// removes one).
fn merge_given_claims(args: &TestArgs, claims: &mut Map<String, Value>) -> anyhow::Result<()> {
    let given = match (&args.claims, &args.claims_file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        (None, None) => None,
    };
    if let Some(text) = given {
        let value: Value = serde_json::from_str(&text).context("the claims are not valid JSON")?;
        let Value::Object(map) = value else {
            bail!("the claims must be a JSON object, like {{\"email\": \"a@example.com\"}}");
        };
        for (k, v) in map {
            if v.is_null() {
                claims.remove(&k);
            } else {
                claims.insert(k, v);
            }
        }
    }
    Ok(())
}
