//! Tests of loading whole configurations: defaults, the example file, environment
//! overrides, and that each rule reports its error where the value was written.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use usher_domain::{
    password::verify_password, Application, AttributeAssignment, AttributeDefinition,
    AttributeOption, ClientType, ConnectorSlots, DataType, LocalizedText, Tenant, UserFlow,
    UserInputType,
};

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    load_text(Some(Path::new("usher.toml")), text, &env_of(env))
}

fn errors(text: &str, env: &[(&str, &str)]) -> Vec<ConfigError> {
    match load_str(text, env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// The error reported for `path` (a key path, or an environment variable location).
fn error_at<'a>(errors: &'a [ConfigError], path: &str) -> &'a ConfigError {
    errors
        .iter()
        .find(|e| e.location == path || e.location.ends_with(&format!(": {path}")))
        .unwrap_or_else(|| {
            panic!(
                "no error at {path}; got:\n{}",
                ConfigErrors(errors.to_vec())
            )
        })
}

fn assert_error(text: &str, path: &str, message: &str) -> ConfigError {
    let errs = errors(text, &[]);
    let e = error_at(&errs, path);
    assert!(
        e.message.contains(message),
        "error at {path} is {:?}, expected it to contain {message:?}",
        e.message
    );
    e.clone()
}

/// A scratch directory for tests that need real files.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("usher-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A flow and an attribute for tests of applications and pages to build on.
const BASE: &str = r#"
[[attributes]]
name = "ShoeSize"
data_type = "int"

[[user_flows]]
id = "partner"
identity_providers = ["EmailPassword-OAUTH"]
"#;

#[test]
fn defaults_without_a_file_serve_the_demo() {
    let config = load(None, &|_| None).unwrap();
    assert_eq!(config.source, None);
    assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.issuer, "http://127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("./usher-data"));
    assert_eq!(config.database_url, "sqlite://./usher-data/usher.db");
    assert_eq!(config.database_kind(), DatabaseKind::Sqlite);
    assert_eq!(
        config.master_key,
        MasterKeySource::GenerateInDataDir(PathBuf::from("./usher-data/master.key"))
    );
    assert_eq!(config.templates_dir, None);
    assert_eq!(config.signing, SigningSettings::default());
    assert_eq!(config.signing.algorithm, SigningAlgorithm::ES256);
    assert_eq!(config.tokens, TokenSettings::default());
    assert_eq!(
        config.email,
        EmailSettings {
            from: "Usher <no-reply@localhost>".into(),
            delivery: EmailDelivery::File {
                outbox_dir: PathBuf::from("./usher-data/outbox")
            },
            log_codes: true,
        }
    );
    assert!(config.demo);
    assert_eq!(
        config.tenant.extensions_app_id,
        rules::default_extensions_app_id("http://127.0.0.1:8080")
    );

    let flow = config.tenant.user_flow(DEMO_USER_FLOW_ID).unwrap();
    assert_eq!(flow.identity_providers, ["EmailPassword-OAUTH"]);
    let page: Vec<_> = flow
        .attributes
        .iter()
        .map(|a| {
            (
                a.attribute_id.as_str(),
                a.is_optional,
                a.input_type,
                a.is_claim,
            )
        })
        .collect();
    assert_eq!(
        page,
        [
            ("displayName", false, UserInputType::TextBox, true),
            ("givenName", true, UserInputType::TextBox, true),
            ("surname", true, UserInputType::TextBox, true),
        ]
    );
    assert_eq!(flow.extra_claims, ["email"]);

    let app = config.tenant.application(DEMO_CLIENT_ID).unwrap();
    assert_eq!(app.name, "Usher demo");
    assert!(app.is_public());
    assert_eq!(app.redirect_uris, ["http://127.0.0.1:8080/try/callback"]);
    assert_eq!(app.post_logout_redirect_uris, ["http://127.0.0.1:8080/try"]);
    assert_eq!(app.user_flow_id, DEMO_USER_FLOW_ID);
}

#[test]
fn an_empty_file_means_defaults_without_the_demo() {
    let config = load_str("", &[]).unwrap();
    assert!(!config.demo);
    assert!(config.tenant.user_flows.is_empty());
    assert!(config.tenant.applications.is_empty());
    assert_eq!(config.source, Some(PathBuf::from("usher.toml")));
}

fn example_env() -> impl Fn(&str) -> Option<String> {
    env_of(&[
        ("USHER_MASTER_KEY", "the-master-key-text"),
        ("CONTOSO_WEB_SECRET", "contoso-web-secret-value"),
        ("USHER_SMTP_PASSWORD", "smtp-password-value"),
    ])
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../usher.example.toml")
}

#[test]
fn the_example_file_loads_into_the_expected_tenant() {
    let path = example_path();
    let config = match load(Some(&path), &example_env()) {
        Ok(c) => c,
        Err(e) => panic!("the example does not load:\n{e}"),
    };
    assert_eq!(config.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(config.issuer, "https://login.contoso.com");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/usher"));
    assert_eq!(config.database_kind(), DatabaseKind::Postgres);
    assert_eq!(
        config.master_key,
        MasterKeySource::Env {
            var: "USHER_MASTER_KEY".into(),
            value: "the-master-key-text".into()
        }
    );
    assert!(!config.demo);
    assert_eq!(
        config.email,
        EmailSettings {
            from: "Contoso <no-reply@contoso.com>".into(),
            delivery: EmailDelivery::Smtp(SmtpSettings {
                host: "smtp.contoso.com".into(),
                port: 587,
                tls: SmtpTls::StartTls,
                username: Some("usher".into()),
                password: Some(Secret::new("smtp-password-value")),
            }),
            log_codes: false,
        }
    );

    let app_id = "d09380e2b4c642b9a203fb816a04a7ad";
    let ext = |name: &str| format!("extension_{app_id}_{name}");
    let option = |value: &str, name: LocalizedText, is_default: bool| AttributeOption {
        name,
        value: value.into(),
        is_default,
    };
    let per_locale = |en: &str, nb: &str| {
        LocalizedText::PerLocale([("en".into(), en.into()), ("nb".into(), nb.into())].into())
    };
    let plain = |s: &str| LocalizedText::Plain(s.into());

    let mut tenant = config.tenant.clone();
    // The hash of a plaintext secret is salted at random: check it, then compare the rest.
    let ClientType::Confidential { secret_hash } = &tenant.applications[0].client_type else {
        panic!("contoso-web is confidential")
    };
    assert!(verify_password("contoso-web-secret-value", secret_hash));
    tenant.applications[0].client_type = ClientType::Confidential {
        secret_hash: "checked".into(),
    };

    let expected = Tenant {
        extensions_app_id: app_id.into(),
        custom_attributes: vec![
            AttributeDefinition {
                id: ext("ShoeSize"),
                display_name: "Shoe size".into(),
                description: "EU shoe size, for fitting recommendations.".into(),
                data_type: DataType::Int,
                built_in: false,
            },
            AttributeDefinition {
                id: ext("Newsletter"),
                display_name: "Newsletter".into(),
                description: "Whether the person wants the monthly newsletter.".into(),
                data_type: DataType::Boolean,
                built_in: false,
            },
            AttributeDefinition {
                id: ext("Interests"),
                display_name: "Interests".into(),
                description: String::new(),
                data_type: DataType::String,
                built_in: false,
            },
        ],
        user_flows: vec![UserFlow {
            id: "B2X_1_partner".into(),
            identity_providers: vec!["EmailPassword-OAUTH".into()],
            attributes: vec![
                AttributeAssignment {
                    attribute_id: "displayName".into(),
                    label: Some(per_locale("Display name", "Visningsnavn")),
                    is_optional: false,
                    input_type: UserInputType::TextBox,
                    options: vec![],
                    is_claim: true,
                },
                AttributeAssignment {
                    attribute_id: "givenName".into(),
                    label: None,
                    is_optional: true,
                    input_type: UserInputType::TextBox,
                    options: vec![],
                    is_claim: true,
                },
                AttributeAssignment {
                    attribute_id: ext("ShoeSize"),
                    label: Some(plain("Shoe size")),
                    is_optional: true,
                    input_type: UserInputType::DropdownSingleSelect,
                    options: vec![
                        option("42", plain("42"), false),
                        option("43", plain("43"), false),
                        option("44", plain("44"), false),
                    ],
                    is_claim: true,
                },
                AttributeAssignment {
                    attribute_id: ext("Interests"),
                    label: Some(per_locale("Interests", "Interesser")),
                    is_optional: true,
                    input_type: UserInputType::CheckboxMultiSelect,
                    options: vec![
                        option("running", per_locale("Running", "Løping"), false),
                        option("hiking", per_locale("Hiking", "Fotturer"), true),
                    ],
                    is_claim: true,
                },
                AttributeAssignment {
                    attribute_id: ext("Newsletter"),
                    label: Some(plain("Send me the monthly newsletter")),
                    is_optional: true,
                    input_type: UserInputType::CheckboxSingleSelect,
                    options: vec![],
                    is_claim: false,
                },
            ],
            extra_claims: vec!["email".into(), "jobTitle".into()],
            connectors: ConnectorSlots::default(),
        }],
        applications: vec![
            Application {
                client_id: "contoso-web".into(),
                name: "Contoso".into(),
                redirect_uris: vec!["https://contoso.com/callback".into()],
                post_logout_redirect_uris: vec!["https://contoso.com/".into()],
                client_type: ClientType::Confidential {
                    secret_hash: "checked".into(),
                },
                user_flow_id: "B2X_1_partner".into(),
                roles: vec![],
            },
            Application {
                client_id: "contoso-app".into(),
                name: "Contoso for phones".into(),
                redirect_uris: vec![
                    "com.contoso.app:/callback".into(),
                    "http://127.0.0.1/callback".into(),
                ],
                post_logout_redirect_uris: vec![],
                client_type: ClientType::Public,
                user_flow_id: "B2X_1_partner".into(),
                roles: vec![],
            },
            Application {
                client_id: "contoso-provisioning".into(),
                name: "Contoso provisioning".into(),
                redirect_uris: vec![],
                post_logout_redirect_uris: vec![],
                client_type: ClientType::Confidential {
                    secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$XpERQa0nKKdvPBWpNK0uTQ$DrSERN57ScnoPEuTIKgN526zDPDsPySYsYRiow7IfsQ".into(),
                },
                user_flow_id: "B2X_1_partner".into(),
                roles: vec!["User.ReadWrite.All".into(), "IdentityUserFlow.Read.All".into()],
            },
        ],
    };
    assert_eq!(tenant, expected);
    // The example's sample hash is real, so the comment beside it is true.
    let ClientType::Confidential { secret_hash } = &tenant.applications[2].client_type else {
        panic!()
    };
    assert!(verify_password("example-secret-do-not-use", secret_hash));
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = load(Some(&example_path()), &example_env()).unwrap();
    let debug = format!("{config:?}");
    for secret in [
        "contoso-web-secret-value",
        "smtp-password-value",
        "the-master-key-text",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }

    let text = format!(
        "database_url = \"postgres://usher:db-password-value@db/usher\"\n{BASE}\n[[applications]]\nclient_id = \"c\"\ntype = \"confidential\"\nclient_secret_env = \"S\"\nuser_flow = \"partner\"\n"
    );
    let config = load_str(
        &text,
        &[("S", "client-secret-plaintext"), ("USHER_MASTER_KEY", "k")],
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("client-secret-plaintext"));
    assert!(!debug.contains("db-password-value"));
    assert!(debug.contains("postgres://usher:******@db/usher"));
}

#[test]
fn environment_overrides_win_over_the_file() {
    let text = r#"
issuer = "https://file.example.com"
listen = "0.0.0.0:9000"
data_dir = "/file/data"
demo = false
[signing]
algorithm = "ES256"
[email]
from = "File <file@example.com>"
delivery = "file"
log_codes = false
"#;
    let config = load_str(
        text,
        &[
            ("USHER_ISSUER", "https://env.example.com"),
            ("USHER_LISTEN", "127.0.0.1:7000"),
            ("USHER_DATA_DIR", "/env/data"),
            ("USHER_DEMO", "true"),
            ("USHER_SIGNING_ALGORITHM", "RS256"),
            ("USHER_EMAIL_FROM", "Env <env@example.com>"),
            ("USHER_EMAIL_DELIVERY", "smtp"),
            ("USHER_SMTP_HOST", "mail.example.com"),
            ("USHER_SMTP_PORT", "2525"),
            ("USHER_SMTP_USERNAME", "u"),
            ("USHER_SMTP_PASSWORD", "p"),
            ("USHER_LOG_CODES", "true"),
        ],
    )
    .unwrap();
    assert_eq!(config.issuer, "https://env.example.com");
    assert_eq!(config.listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(config.data_dir, PathBuf::from("/env/data"));
    assert_eq!(config.database_url, "sqlite:///env/data/usher.db");
    assert!(config.demo);
    assert_eq!(
        config
            .tenant
            .application(DEMO_CLIENT_ID)
            .unwrap()
            .redirect_uris,
        ["https://env.example.com/try/callback"]
    );
    assert_eq!(config.signing.algorithm, SigningAlgorithm::RS256);
    assert_eq!(config.email.from, "Env <env@example.com>");
    assert!(config.email.log_codes);
    let EmailDelivery::Smtp(smtp) = &config.email.delivery else {
        panic!("delivery is smtp")
    };
    assert_eq!(smtp.host, "mail.example.com");
    assert_eq!(smtp.port, 2525);
    assert_eq!(smtp.username.as_deref(), Some("u"));
    assert_eq!(smtp.password.as_ref().map(Secret::expose), Some("p"));

    let config = load_str(
        "database_url = \"sqlite://file.db\"\ntemplates_dir = \"/nonexistent/file\"\n",
        &[
            ("USHER_DATABASE_URL", "postgres://db/usher"),
            ("USHER_MASTER_KEY", "key"),
            ("USHER_TEMPLATES_DIR", env!("CARGO_MANIFEST_DIR")),
        ],
    )
    .unwrap();
    assert_eq!(config.database_url, "postgres://db/usher");
    assert_eq!(
        config.templates_dir,
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")))
    );
}

#[test]
fn errors_in_overrides_name_the_variable() {
    let errs = errors(
        "",
        &[
            ("USHER_LISTEN", "nowhere"),
            ("USHER_ISSUER", "http://login.example.com"),
            ("USHER_DEMO", "perhaps"),
            ("USHER_SMTP_PORT", "lots"),
            ("USHER_LOG_CODES", ""),
        ],
    );
    assert_eq!(errs.len(), 5, "{}", ConfigErrors(errs.clone()));
    assert!(error_at(&errs, "environment variable USHER_LISTEN")
        .message
        .contains("IP address and port"));
    assert!(error_at(&errs, "environment variable USHER_ISSUER")
        .message
        .contains("https"));
    assert!(error_at(&errs, "environment variable USHER_DEMO")
        .message
        .contains("true or false"));
    assert!(error_at(&errs, "environment variable USHER_SMTP_PORT")
        .message
        .contains("port"));
    assert!(error_at(&errs, "environment variable USHER_LOG_CODES")
        .message
        .contains("empty"));
}

#[test]
fn without_a_file_errors_name_keys_or_variables() {
    let e = load(
        None,
        &env_of(&[
            ("USHER_DATABASE_URL", "postgres://db/usher"),
            ("USHER_EMAIL_DELIVERY", "smtp"),
        ]),
    )
    .unwrap_err();
    let errs = e.0;
    assert!(error_at(&errs, "environment variable USHER_MASTER_KEY")
        .message
        .contains("usher generate-master-key"));
    error_at(&errs, "environment variable USHER_SMTP_HOST");
}

#[test]
fn postgres_needs_a_master_key() {
    let e = assert_error(
        "database_url = \"postgres://usher@db/usher\"\n",
        "secrets.master_key_file",
        "usher generate-master-key",
    );
    assert_eq!(e.location, "usher.toml: secrets.master_key_file");

    let scratch = Scratch::new("master-key");
    let key = scratch.file("master.key", "key text");
    let text = format!(
        "database_url = \"postgres://usher@db/usher\"\n[secrets]\nmaster_key_file = {:?}\n",
        key.display().to_string()
    );
    let config = load_str(&text, &[]).unwrap();
    assert_eq!(config.master_key, MasterKeySource::File(key.clone()));

    let config = load_str(
        "database_url = \"postgres://usher@db/usher\"\n",
        &[("USHER_MASTER_KEY_FILE", key.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(config.master_key, MasterKeySource::File(key));
}

#[test]
fn a_master_key_file_must_exist() {
    assert_error(
        "[secrets]\nmaster_key_file = \"/nonexistent/usher/master.key\"\n",
        "secrets.master_key_file",
        "does not exist",
    );
    // The key itself wins, so the missing file does not matter.
    let config = load_str(
        "[secrets]\nmaster_key_file = \"/nonexistent/usher/master.key\"\n",
        &[("USHER_MASTER_KEY", "k")],
    )
    .unwrap();
    assert!(matches!(config.master_key, MasterKeySource::Env { .. }));
    // SQLite with nothing configured: generated in the data directory.
    let config = load_str("data_dir = \"/srv/usher\"\n", &[]).unwrap();
    assert_eq!(
        config.master_key,
        MasterKeySource::GenerateInDataDir(PathBuf::from("/srv/usher/master.key"))
    );
}

#[test]
fn syntax_errors_report_line_and_column() {
    let errs = errors("issuer = \"https://a.example.com\"\nlisten = \n", &[]);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].location.starts_with("usher.toml:2:"),
        "{:?}",
        errs[0]
    );
    assert!(errs[0].message.starts_with("invalid TOML"));

    let errs = errors("a = 1\na = 2\n", &[]);
    assert!(
        errs[0].location.starts_with("usher.toml:2:"),
        "{:?}",
        errs[0]
    );
}

#[test]
fn unknown_keys_report_line_and_column() {
    let text = "issuer = \"https://a.example.com\"\n\n[email]\nfrom = \"a@b.c\"\nfrum = \"x\"\n";
    let e = assert_error(text, "email.frum", "did you mean `from`");
    assert_eq!(e.location, "usher.toml:5:8: email.frum");
    let e = assert_error(
        "[[applications]]\ncolour = 1\n",
        "applications[0].colour",
        "unknown key",
    );
    assert_eq!(e.location, "usher.toml:2:10: applications[0].colour");
}

#[test]
fn every_error_is_reported_in_one_pass() {
    let text = r#"
listen = "everywhere"
colour = "red"
[tokens]
access_token_seconds = 0
[[attributes]]
name = "1bad"
data_type = "string"
[[user_flows]]
id = "a b"
identity_providers = []
[[applications]]
client_id = "bad id"
type = "public"
user_flow = "missing"
"#;
    let errs = errors(text, &[("USHER_DEMO", "maybe")]);
    for path in [
        "listen",
        "colour",
        "tokens.access_token_seconds",
        "attributes[0].name",
        "user_flows[0].id",
        "user_flows[0].identity_providers",
        "applications[0].client_id",
        "applications[0].redirect_uris",
        "applications[0].user_flow",
        "environment variable USHER_DEMO",
    ] {
        error_at(&errs, path);
    }
    assert_eq!(errs.len(), 10, "{}", ConfigErrors(errs.clone()));
    // Values carry their line.
    assert_eq!(
        error_at(&errs, "listen").location,
        "usher.toml:2:10: listen"
    );
    assert_eq!(
        error_at(&errs, "applications[0].user_flow").location,
        "usher.toml:15:13: applications[0].user_flow"
    );
}

#[test]
fn wrong_types_are_errors() {
    assert_error(
        "demo = \"yes\"\n",
        "demo",
        "expected true or false, found a string",
    );
    assert_error(
        "[tokens]\nsession_hours = \"24\"\n",
        "tokens.session_hours",
        "expected an integer",
    );
    assert_error("signing = 3\n", "signing", "expected a table");
    assert_error(
        "[[user_flows]]\nclaims = \"email\"\n",
        "user_flows[0].claims",
        "array of strings",
    );
}

#[test]
fn issuer_rules() {
    assert_error("issuer = \"http://login.example.com\"\n", "issuer", "https");
    assert_error(
        "issuer = \"https://login.example.com/\"\n",
        "issuer",
        "slash",
    );
    assert_error("issuer = \"login.example.com\"\n", "issuer", "absolute URL");
    let config = load_str("issuer = \"http://localhost:8080\"\n", &[]).unwrap();
    assert_eq!(config.issuer, "http://localhost:8080");
    // Listening everywhere: the default issuer uses the loopback address.
    let config = load_str("listen = \"0.0.0.0:9000\"\n", &[]).unwrap();
    assert_eq!(config.issuer, "http://127.0.0.1:9000");
    assert_error("listen = \"127.0.0.1:0\"\n", "listen", "set issuer");
    load_str(
        "listen = \"127.0.0.1:0\"\nissuer = \"http://127.0.0.1:8080\"\n",
        &[],
    )
    .unwrap();
}

#[test]
fn database_rules() {
    assert_error(
        "database_url = \"mysql://db/usher\"\n",
        "database_url",
        "sqlite:// or postgres://",
    );
    assert_error("data_dir = \"\"\n", "data_dir", "empty");
}

#[test]
fn templates_dir_must_be_a_directory() {
    assert_error(
        "templates_dir = \"/nonexistent/branding\"\n",
        "templates_dir",
        "not a directory",
    );
    let config = load_str(
        &format!("templates_dir = {:?}\n", env!("CARGO_MANIFEST_DIR")),
        &[],
    )
    .unwrap();
    assert!(config.templates_dir.is_some());
}

#[test]
fn signing_and_token_rules() {
    assert_error(
        "[signing]\nalgorithm = \"HS256\"\n",
        "signing.algorithm",
        "ES256 or RS256",
    );
    assert_error(
        "[signing]\nrotation_days = 0\n",
        "signing.rotation_days",
        "between 1 and 3650",
    );
    assert_error(
        "[signing]\nrotation_days = 1\npublish_ahead_hours = 24\n",
        "signing.publish_ahead_hours",
        "shorter than the rotation period",
    );
    assert_error(
        "[tokens]\nauthorization_code_seconds = 601\n",
        "tokens.authorization_code_seconds",
        "between 1 and 600",
    );
    assert_error(
        "[tokens]\nrefresh_token_days = -1\n",
        "tokens.refresh_token_days",
        "between",
    );
    assert_error(
        "[tokens]\nid_token_seconds = 0\n",
        "tokens.id_token_seconds",
        "between",
    );
    let config = load_str(
        "[signing]\nalgorithm = \"RS256\"\nrotation_days = 30\npublish_ahead_hours = 48\n[tokens]\nauthorization_code_seconds = 120\naccess_token_seconds = 600\nid_token_seconds = 300\nrefresh_token_days = 30\nsession_hours = 8\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        config.signing,
        SigningSettings {
            algorithm: SigningAlgorithm::RS256,
            rotation_days: 30,
            publish_ahead_hours: 48
        }
    );
    assert_eq!(
        config.tokens,
        TokenSettings {
            authorization_code_seconds: 120,
            access_token_seconds: 600,
            id_token_seconds: 300,
            refresh_token_days: 30,
            session_hours: 8
        }
    );
}

#[test]
fn email_rules() {
    assert_error("[email]\nfrom = \"Contoso\"\n", "email.from", "address");
    assert_error(
        "[email]\ndelivery = \"pigeon\"\n",
        "email.delivery",
        "file or smtp",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n",
        "email.smtp.host",
        "required",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nport = 587\n",
        "email.smtp.host",
        "required",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"smtp.example.com:587\"\n",
        "email.smtp.host",
        "host name only",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"h\"\nport = 70000\n",
        "email.smtp.port",
        "between 1 and 65535",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"h\"\ntls = \"ssl\"\n",
        "email.smtp.tls",
        "starttls, tls or none",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"h\"\nusername = \"u\"\n",
        "email.smtp.username",
        "needs a password",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"h\"\nusername = \"u\"\npassword_env = \"NOT_SET_ANYWHERE\"\n",
        "email.smtp.password_env",
        "NOT_SET_ANYWHERE is not set",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"h\"\nusername = \"u\"\npassword_env = \"A\"\npassword_file = \"/x\"\n",
        "email.smtp.password_file",
        "not both",
    );
    assert_error(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"smtp.example.com\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"/nonexistent/p\"\n",
        "email.smtp.tls",
        "unencrypted",
    );

    let scratch = Scratch::new("smtp");
    let password = scratch.file("smtp", "from-a-file\n");
    let config = load_str(
        &format!(
            "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"localhost\"\ntls = \"none\"\nusername = \"u\"\npassword_file = {:?}\n",
            password.to_str().unwrap()
        ),
        &[],
    )
    .unwrap();
    let EmailDelivery::Smtp(smtp) = config.email.delivery else {
        panic!()
    };
    assert_eq!(smtp.password.unwrap().expose(), "from-a-file");
    assert_eq!(smtp.port, 587);
    assert!(!config.email.log_codes);

    let config = load_str(
        "[email]\ndelivery = \"smtp\"\n[email.smtp]\nhost = \"smtp.example.com\"\ntls = \"tls\"\n",
        &[],
    )
    .unwrap();
    let EmailDelivery::Smtp(smtp) = config.email.delivery else {
        panic!()
    };
    assert_eq!(
        (smtp.port, smtp.tls, smtp.username, smtp.password),
        (465, SmtpTls::Tls, None, None)
    );

    let config = load_str("[email]\noutbox_dir = \"/tmp/outbox\"\n", &[]).unwrap();
    assert_eq!(
        config.email.delivery,
        EmailDelivery::File {
            outbox_dir: PathBuf::from("/tmp/outbox")
        }
    );
}

#[test]
fn extensions_app_id_rules() {
    let config = load_str(
        "[tenant]\nextensions_app_id = \"D09380E2-B4C6-42B9-A203-FB816A04A7AD\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        config.tenant.extensions_app_id,
        "d09380e2b4c642b9a203fb816a04a7ad"
    );
    assert_error(
        "[tenant]\nextensions_app_id = \"not-hex\"\n",
        "tenant.extensions_app_id",
        "32 hexadecimal digits",
    );
    let config = load_str("issuer = \"https://login.example.com\"\n", &[]).unwrap();
    assert_eq!(
        config.tenant.extensions_app_id,
        rules::default_extensions_app_id("https://login.example.com")
    );
}

#[test]
fn attribute_rules() {
    assert_error(
        "[[attributes]]\nname = \"shoe_size\"\ndata_type = \"int\"\n",
        "attributes[0].name",
        "letters and digits",
    );
    assert_error(
        "[[attributes]]\ndata_type = \"int\"\n",
        "attributes[0].name",
        "required",
    );
    assert_error(
        "[[attributes]]\nname = \"A\"\n",
        "attributes[0].data_type",
        "required",
    );
    assert_error(
        "[[attributes]]\nname = \"A\"\ndata_type = \"float\"\n",
        "attributes[0].data_type",
        "string, boolean, int",
    );
    assert_error(
        "[[attributes]]\nname = \"A\"\ndata_type = \"int\"\n[[attributes]]\nname = \"a\"\ndata_type = \"int\"\n",
        "attributes[1].name",
        "defined twice",
    );
    let config = load_str(
        "[tenant]\nextensions_app_id = \"0123456789abcdef0123456789abcdef\"\n[[attributes]]\nname = \"Size\"\ndata_type = \"string\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        config.tenant.custom_attributes,
        [AttributeDefinition {
            id: "extension_0123456789abcdef0123456789abcdef_Size".into(),
            display_name: "Size".into(),
            description: String::new(),
            data_type: DataType::String,
            built_in: false,
        }]
    );
}

#[test]
fn user_flow_rules() {
    assert_error(
        "[[user_flows]]\nidentity_providers = [\"EmailPassword-OAUTH\"]\n",
        "user_flows[0].id",
        "required",
    );
    assert_error(
        "[[user_flows]]\nid = \"B2X_1_\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n",
        "user_flows[0].id",
        "name of 1 to 64",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[[user_flows]]\nid = \"B2X_1_A\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n",
        "user_flows[1].id",
        "defined twice",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\n",
        "user_flows[0].identity_providers",
        "at least one",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = []\n",
        "user_flows[0].identity_providers",
        "at least one",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"Google-OAUTH\"]\n",
        "user_flows[0].identity_providers[0]",
        "not configured",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\nclaims = [\"shoeSize\"]\n",
        "user_flows[0].claims[0]",
        "unknown attribute",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\nclaims = [\"email\", \"EMAIL\"]\n",
        "user_flows[0].claims[1]",
        "twice",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\nclaims = [\"city\"]\n[[user_flows.attributes]]\nid = \"city\"\n",
        "user_flows[0].claims[0]",
        "on the page",
    );
    assert_error(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[user_flows.connectors]\npre_token = []\n",
        "user_flows[0].connectors.pre_token",
        "did you mean `pre_token_issuance`",
    );

    let config = load_str(
        "[[user_flows]]\nid = \"b2x_1_Partner\"\nidentity_providers = [\"emailpassword-oauth\"]\nclaims = [\"Email\", \"City\"]\n[user_flows.connectors]\npre_token_issuance = [\"enrich\", \"audit\"]\n",
        &[],
    )
    .unwrap();
    let flow = &config.tenant.user_flows[0];
    assert_eq!(flow.id, "B2X_1_Partner");
    assert_eq!(flow.identity_providers, ["EmailPassword-OAUTH"]);
    assert_eq!(flow.extra_claims, ["email", "city"]);
    assert_eq!(flow.connectors.pre_token_issuance, ["enrich", "audit"]);
    assert!(flow.connectors.post_federation_signup.is_empty());
}

fn page(attributes: &str) -> String {
    format!("{BASE}{attributes}")
}

#[test]
fn page_attribute_rules() {
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"email\"\n"),
        "user_flows[0].attributes[0].id",
        "claims",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"shoeSize\"\n"),
        "user_flows[0].attributes[0].id",
        "extension_shoeSize",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"extension_Height\"\n"),
        "user_flows[0].attributes[0].id",
        "unknown attribute",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nlabel = \"x\"\n"),
        "user_flows[0].attributes[0].id",
        "required",
    );
    assert_error(
        &page(
            "[[user_flows.attributes]]\nid = \"city\"\n[[user_flows.attributes]]\nid = \"City\"\n",
        ),
        "user_flows[0].attributes[1].id",
        "twice",
    );
    let e = assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\n[[user_flows.attributes]]\nid = \"givenName\"\n[[user_flows.attributes]]\nid = \"extension_ShoeSize\"\ninput = \"textBox\"\n"),
        "user_flows[0].attributes[2].input",
        "numericTextBox, radioSingleSelect, dropdownSingleSelect",
    );
    assert_eq!(
        e.location,
        "usher.toml:15:9: user_flows[0].attributes[2].input"
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\ninput = \"slider\"\n"),
        "user_flows[0].attributes[0].input",
        "must be one of",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\nlabel = \"a\\nb\"\n"),
        "user_flows[0].attributes[0].label",
        "control",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\nlabel = {}\n"),
        "user_flows[0].attributes[0].label",
        "at least one language",
    );
}

#[test]
fn option_rules() {
    let radio = |options: &str| {
        page(&format!(
            "[[user_flows.attributes]]\nid = \"extension_ShoeSize\"\ninput = \"radioSingleSelect\"\n{options}"
        ))
    };
    assert_error(
        &radio(""),
        "user_flows[0].attributes[0].options",
        "at least one option",
    );
    assert_error(
        &radio("options = []\n"),
        "user_flows[0].attributes[0].options",
        "at least one option",
    );
    assert_error(
        &radio("[[user_flows.attributes.options]]\nvalue = \"big\"\n"),
        "user_flows[0].attributes[0].options[0].value",
        "whole number",
    );
    assert_error(
        &radio("[[user_flows.attributes.options]]\nlabel = \"x\"\n"),
        "user_flows[0].attributes[0].options[0].value",
        "required",
    );
    assert_error(
        &radio("[[user_flows.attributes.options]]\nvalue = \"1\"\n[[user_flows.attributes.options]]\nvalue = \"1\"\n"),
        "user_flows[0].attributes[0].options[1].value",
        "twice",
    );
    assert_error(
        &radio("[[user_flows.attributes.options]]\nvalue = \"1\"\ndefault = true\n[[user_flows.attributes.options]]\nvalue = \"2\"\ndefault = true\n"),
        "user_flows[0].attributes[0].options[1].default",
        "only one default",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\ninput = \"checkboxMultiSelect\"\noptions = [{ value = \"a,b\" }]\n"),
        "user_flows[0].attributes[0].options[0].value",
        "commas",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\noptions = [{ value = \"Oslo\" }]\n"),
        "user_flows[0].attributes[0].options",
        "has no options",
    );
    assert_error(
        &page("[[user_flows.attributes]]\nid = \"city\"\ninput = \"dropdownSingleSelect\"\noptions = [{ value = \"Oslo\", label = { \"no_NO\" = \"Oslo\" } }]\n"),
        "user_flows[0].attributes[0].options[0].label.no_NO",
        "language tag",
    );
    // A multi-select may have several defaults.
    let config = load_str(
        &page("[[user_flows.attributes]]\nid = \"city\"\ninput = \"checkboxMultiSelect\"\nrequired = true\nclaim = false\noptions = [{ value = \"Oslo\", default = true }, { value = \"Bergen\", default = true }]\n"),
        &[],
    )
    .unwrap();
    let a = &config.tenant.user_flows[0].attributes[0];
    assert_eq!(a.attribute_id, "city");
    assert!(!a.is_optional);
    assert!(!a.is_claim);
    assert_eq!(a.options.len(), 2);
    assert_eq!(a.options[1].name, LocalizedText::Plain("Bergen".into()));
}

fn app(fields: &str) -> String {
    format!("{BASE}[[applications]]\nclient_id = \"app\"\nuser_flow = \"partner\"\n{fields}")
}

#[test]
fn application_rules() {
    assert_error(&format!("{BASE}[[applications]]\nclient_id = \"a b\"\ntype = \"public\"\nuser_flow = \"partner\"\nredirect_uris = [\"https://a.example.com/cb\"]\n"), "applications[0].client_id", "1 to 128");
    assert_error(
        &format!("{BASE}[[applications]]\ntype = \"public\"\n"),
        "applications[0].client_id",
        "required",
    );
    assert_error(
        &format!("{BASE}[[applications]]\nclient_id = \"a\"\ntype = \"public\"\nuser_flow = \"partner\"\nredirect_uris = [\"https://a.example.com/cb\"]\n[[applications]]\nclient_id = \"A\"\ntype = \"public\"\nuser_flow = \"partner\"\nredirect_uris = [\"https://a.example.com/cb\"]\n"),
        "applications[1].client_id",
        "used twice",
    );
    assert_error(
        &app("redirect_uris = [\"https://a.example.com/cb\"]\n"),
        "applications[0].type",
        "required",
    );
    assert_error(
        &app("type = \"spa\"\n"),
        "applications[0].type",
        "public or confidential",
    );
    assert_error(
        &app("type = \"public\"\n"),
        "applications[0].redirect_uris",
        "at least one redirect URI",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"http://app.example.com/cb\"]\n"),
        "applications[0].redirect_uris[0]",
        "https",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"https://app.example.com/cb#top\"]\n"),
        "applications[0].redirect_uris[0]",
        "fragment",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"/cb\"]\n"),
        "applications[0].redirect_uris[0]",
        "absolute",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"https://a.example.com/cb\", \"https://a.example.com/cb\"]\n"),
        "applications[0].redirect_uris[1]",
        "twice",
    );
    assert_error(
        &app("type = \"confidential\"\nclient_secret_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\"\nredirect_uris = [\"com.example.app:/cb\"]\n"),
        "applications[0].redirect_uris[0]",
        "only for public clients",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\npost_logout_redirect_uris = [\"http://a.example.com/\"]\n"),
        "applications[0].post_logout_redirect_uris[0]",
        "https",
    );
    assert_error(&format!("{BASE}[[applications]]\nclient_id = \"a\"\ntype = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\n"), "applications[0].user_flow", "required");
    assert_error(&format!("{BASE}[[applications]]\nclient_id = \"a\"\ntype = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\nuser_flow = \"B2X_1_other\"\n"), "applications[0].user_flow", "no user flow B2X_1_other");
    assert_error(
        &app("type = \"confidential\"\nclient_secret_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA\"\nroles = [\"Directory.ReadWrite.All\"]\n"),
        "applications[0].roles[0]",
        "not a known permission",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\nroles = [\"User.Read.All\"]\n"),
        "applications[0].roles",
        "only confidential clients",
    );
}

#[test]
fn client_secret_rules() {
    assert_error(
        &app("type = \"confidential\"\n"),
        "applications[0].client_secret_env",
        "needs one of",
    );
    assert_error(
        &app("type = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\nclient_secret_env = \"S\"\n"),
        "applications[0].client_secret_env",
        "public client",
    );
    assert_error(
        &app("type = \"confidential\"\nclient_secret_env = \"S\"\nclient_secret_file = \"/f\"\n"),
        "applications[0].client_secret_file",
        "only one of",
    );
    assert_error(
        &app("type = \"confidential\"\nclient_secret_env = \"UNSET_SECRET\"\n"),
        "applications[0].client_secret_env",
        "UNSET_SECRET is not set",
    );
    let errs = errors(
        &app("type = \"confidential\"\nclient_secret_env = \"S\"\n"),
        &[("S", "short")],
    );
    assert!(error_at(&errs, "applications[0].client_secret_env")
        .message
        .contains("shorter than 16"));
    assert_error(
        &app("type = \"confidential\"\nclient_secret_hash = \"hunter2\"\n"),
        "applications[0].client_secret_hash",
        "Argon2id",
    );
    assert_error(
        &app("type = \"confidential\"\nclient_secret_file = \"/nonexistent/secret\"\n"),
        "applications[0].client_secret_file",
        "cannot read",
    );

    let scratch = Scratch::new("client-secret");
    let file = scratch.file("secret", "a-secret-from-a-file\r\n");
    let config = load_str(
        &app(&format!(
            "type = \"confidential\"\nclient_secret_file = {:?}\nroles = [\"user.read.all\"]\n",
            file.to_str().unwrap()
        )),
        &[],
    )
    .unwrap();
    let a = &config.tenant.applications[0];
    assert_eq!(a.name, "app");
    assert_eq!(a.user_flow_id, "B2X_1_partner");
    assert_eq!(a.roles, ["User.Read.All"]);
    let ClientType::Confidential { secret_hash } = &a.client_type else {
        panic!()
    };
    assert!(verify_password("a-secret-from-a-file", secret_hash));
    assert!(!format!("{config:?}").contains("a-secret-from-a-file"));
}

#[test]
fn the_demo_ids_are_reserved_while_the_demo_runs() {
    let text = "demo = true\n[[user_flows]]\nid = \"demo\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[[applications]]\nclient_id = \"usher-demo\"\ntype = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\nuser_flow = \"demo\"\n";
    let errs = errors(text, &[]);
    assert!(error_at(&errs, "user_flows[0].id")
        .message
        .contains("demo = false"));
    assert!(error_at(&errs, "applications[0].client_id")
        .message
        .contains("demo = false"));
    // With the demo off, the ids are free.
    let config = load_str(&text.replace("demo = true", "demo = false"), &[]).unwrap();
    assert_eq!(config.tenant.user_flows.len(), 1);
    assert_eq!(
        config.tenant.applications[0].user_flow_id,
        DEMO_USER_FLOW_ID
    );
    // An application may use the demo flow while the demo runs, and not after.
    let uses_demo = "[[applications]]\nclient_id = \"a\"\ntype = \"public\"\nredirect_uris = [\"https://a.example.com/cb\"]\nuser_flow = \"B2X_1_demo\"\n";
    load_str(&format!("demo = true\n{uses_demo}"), &[]).unwrap();
    assert_error(uses_demo, "applications[0].user_flow", "demo = true");
}

#[test]
fn a_missing_file_is_an_error() {
    let e = load(Some(Path::new("/nonexistent/usher.toml")), &|_| None).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].location, "/nonexistent/usher.toml");
}

#[test]
fn every_override_is_documented() {
    let doc = include_str!("../../../docs/CONFIGURATION.md");
    let example = include_str!("../../../usher.example.toml");
    for var in ENVIRONMENT_VARIABLES {
        assert!(doc.contains(var), "{var} is not in docs/CONFIGURATION.md");
        assert!(example.contains(var), "{var} is not in usher.example.toml");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = load_str(&text, &[]);
    }

    /// Text made of the file's own keys and plausible values reaches much deeper
    /// than random characters do.
    #[test]
    fn arbitrary_configurations_never_panic(lines in proptest::collection::vec(
        proptest::sample::select(vec![
            "issuer = \"https://a.example.com\"", "issuer = \"http://x\"", "listen = \"0.0.0.0:0\"",
            "demo = true", "demo = 1", "database_url = \"postgres://\"", "data_dir = \"\"",
            "[secrets]", "master_key_file = \"/\"", "[signing]", "rotation_days = 0",
            "publish_ahead_hours = 99999999999", "algorithm = \"RS256\"", "[tokens]",
            "session_hours = -5", "[email]", "delivery = \"smtp\"", "from = \"<@>\"",
            "[email.smtp]", "host = \"[::1]\"", "tls = \"none\"", "port = 0", "username = \"\"",
            "password_env = \"\"", "[tenant]", "extensions_app_id = \"-\"",
            "[[attributes]]", "name = \"A\"", "name = \"é\"", "data_type = \"int\"",
            "data_type = \"boolean\"", "[[user_flows]]", "id = \"x\"", "id = \"B2X_1_demo\"",
            "identity_providers = [\"EmailPassword-OAUTH\", 1]", "claims = [\"extension_A\", \"email\"]",
            "[user_flows.connectors]", "pre_token_issuance = [\"a\"]",
            "[[user_flows.attributes]]", "id = \"extension_A\"", "id = \"extension_\"",
            "input = \"radioSingleSelect\"", "input = \"checkboxSingleSelect\"",
            "label = { en = \"a\", \"\" = 1 }", "[[user_flows.attributes.options]]",
            "value = \"1\"", "value = \",\"", "default = true", "options = [1, {}]",
            "[[applications]]", "client_id = \"usher-demo\"", "type = \"public\"",
            "type = \"confidential\"", "client_secret_hash = \"$argon2id$\"",
            "redirect_uris = [\"x:\", \"http://[::1]\"]", "user_flow = \"x\"",
            "roles = [\"User.Read.All\"]", "when = 1979-05-27T07:32:00Z", "a.b.c = 1",
        ]),
        0..40,
    )) {
        let _ = load_str(&lines.join("\n"), &[("USHER_DEMO", "true")]);
    }
}
