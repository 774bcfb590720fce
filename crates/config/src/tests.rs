//! Tests of loading whole configurations: defaults, the example file, environment
//! overrides, and that each rule reports its error where the value was written.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive Usher from outside, with the real clock, their own HTTP clients and random names"
)]

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use usher_domain::{
    password::verify_password, Application, AttributeAssignment, AttributeDefinition,
    AttributeOption, CertificateSource, ClientType, ConnectorAuthentication, ConnectorDefinition,
    ConnectorSlots, DataType, FailurePolicy, LocalizedText, Tenant, UserFlow, UserInputType,
};

use super::*;

pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

pub(crate) fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    load_text(Some(Path::new("usher.toml")), text, &env_of(env))
}

pub(crate) fn errors(text: &str, env: &[(&str, &str)]) -> Vec<ConfigError> {
    match load_str(text, env) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// The error reported for `path` (a key path, or an environment variable location).
pub(crate) fn error_at<'a>(errors: &'a [ConfigError], path: &str) -> &'a ConfigError {
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

pub(crate) fn assert_error(text: &str, path: &str, message: &str) -> ConfigError {
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
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("usher-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub(crate) fn file(&self, name: &str, contents: &str) -> PathBuf {
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

pub(crate) fn example_env() -> impl Fn(&str) -> Option<String> {
    env_of(&[
        ("USHER_MASTER_KEY", "the-master-key-text"),
        ("CONTOSO_WEB_SECRET", "contoso-web-secret-value"),
        ("USHER_SMTP_PASSWORD", "smtp-password-value"),
        ("CONTOSO_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("CONTOSO_API_PASSWORD", "api-password-value"),
        ("CONTOSO_API_KEY", "api-key-value"),
        ("CONTOSO_CLAIMS_CLIENT_SECRET", "claims-client-secret-value"),
        ("GOOGLE_CLIENT_SECRET", "google-client-secret-value"),
        ("MICROSOFT_CLIENT_SECRET", "microsoft-client-secret-value"),
        ("FACEBOOK_APP_SECRET", "facebook-app-secret-value"),
        ("GITHUB_CLIENT_SECRET", "github-client-secret-value"),
        (
            "CONTOSO_PARTNERS_CLIENT_SECRET",
            "partners-client-secret-value",
        ),
        ("FABRIKAM_CLIENT_SECRET", "fabrikam-client-secret-value"),
    ])
}

/// A well-formed Standard Webhooks secret (24 bytes).
pub(crate) const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub(crate) fn example_path() -> PathBuf {
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
            identity_providers: vec![
                "EmailPassword-OAUTH".into(),
                "Google-OAUTH".into(),
                "MSASignup-OAUTH".into(),
            ],
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
            connectors: ConnectorSlots {
                post_federation_signup: vec![],
                post_attribute_collection: vec![
                    "approval-check".into(),
                    "request-approval".into(),
                ],
                pre_token_issuance: vec!["enrich-token".into()],
                ..ConnectorSlots::default()
            },
            requires_approval: false,
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

    assert_eq!(config.connector_settings, ConnectorSettings::default());
    assert_eq!(config.connectors, example_connectors());

    assert!(!config.federation.allow_insecure_endpoints);
    assert_eq!(
        config.federation.timeout,
        std::time::Duration::from_secs(10)
    );
    let expected = example_providers();
    assert_eq!(config.identity_providers.len(), expected.len());
    for (actual, expected) in config.identity_providers.iter().zip(&expected) {
        assert_provider(actual, expected);
    }
}

/// The identity providers the example declares.
pub(crate) fn example_providers() -> Vec<usher_domain::identity_provider::ProviderConfig> {
    use usher_domain::identity_provider::{ClientAuthMethod, ProviderConfig, ProviderKind};
    let mut google = ProviderConfig::new(
        "Google-OAUTH",
        ProviderKind::Google,
        "1234567890-abc123.apps.googleusercontent.com",
        secret("google-client-secret-value"),
    );
    google.scopes = vec!["openid".into(), "email".into(), "profile".into()];
    google.client_auth = Some(ClientAuthMethod::ClientSecretBasic);
    // The same as the default: the mapping is unchanged.
    google.claim_mapping.insert("givenName", "given_name");
    let mut microsoft = ProviderConfig::new(
        "MSASignup-OAUTH",
        ProviderKind::Microsoft {
            tenant: "common".into(),
        },
        "6f1c2e0a-1b2c-4d5e-8f90-0123456789ab",
        secret("microsoft-client-secret-value"),
    );
    microsoft.display_name = "Microsoft".into();
    let facebook = ProviderConfig::new(
        "Facebook-OAUTH",
        ProviderKind::Facebook,
        "1234567890123456",
        secret("facebook-app-secret-value"),
    );
    let mut github = ProviderConfig::new(
        "GitHub-OAUTH",
        ProviderKind::GitHub,
        "Iv1.0123456789abcdef",
        secret("github-client-secret-value"),
    );
    let url = |s: &str| Some(s.to_owned());
    github.endpoints.authorization_endpoint =
        url("https://github.contoso.com/login/oauth/authorize");
    github.endpoints.token_endpoint = url("https://github.contoso.com/login/oauth/access_token");
    github.endpoints.userinfo_endpoint = url("https://github.contoso.com/api/v3/user");
    github.endpoints.emails_endpoint = url("https://github.contoso.com/api/v3/user/emails");
    let mut partners = ProviderConfig::new(
        "contoso-partners",
        ProviderKind::Oidc {
            issuer: "https://partners.contoso.com".into(),
        },
        "usher",
        secret("partners-client-secret-value"),
    );
    partners.display_name = "Contoso partner account".into();
    let mut fabrikam = ProviderConfig::new(
        "fabrikam",
        ProviderKind::OAuth2 {
            authorization_endpoint: "https://id.fabrikam.com/oauth/authorize".into(),
            token_endpoint: "https://id.fabrikam.com/oauth/token".into(),
            userinfo_endpoint: "https://api.fabrikam.com/v1/me".into(),
            subject_claim: "data.id".into(),
            identity_issuer: "id.fabrikam.com".into(),
        },
        "usher-client",
        secret("fabrikam-client-secret-value"),
    );
    fabrikam.display_name = "Fabrikam".into();
    fabrikam.scopes = vec!["profile".into()];
    fabrikam.claim_mapping.insert("email", "data.email");
    fabrikam
        .claim_mapping
        .insert("emailVerified", "data.email_verified");
    fabrikam.claim_mapping.insert("displayName", "data.name");
    vec![google, microsoft, facebook, github, partners, fabrikam]
}

/// The connectors the example declares (the certificate one is commented out).
pub(crate) fn example_connectors() -> Vec<ConnectorDefinition> {
    let secret = usher_domain::Secret::new;
    let mut check =
        ConnectorDefinition::new("approval-check", "https://api.contoso.com/approval/check");
    check.display_name = "Check approval status".into();
    check.signing_secrets = vec![secret(WEBHOOK_SECRET)];
    check.authentication = ConnectorAuthentication::Basic {
        username: "usher".into(),
        password: secret("api-password-value"),
    };
    let mut request = ConnectorDefinition::new(
        "request-approval",
        "https://api.contoso.com/approval/request",
    );
    request.display_name = "Request approval".into();
    request.authentication = ConnectorAuthentication::ApiKey {
        header: "x-api-key".into(),
        value: secret("api-key-value"),
    };
    let mut enrich = ConnectorDefinition::new("enrich-token", "https://claims.contoso.com/enrich");
    enrich.display_name = "Add loyalty claims".into();
    enrich.failure_policy = FailurePolicy::Continue;
    enrich.authentication = ConnectorAuthentication::OAuthClientCredentials {
        token_url: "https://auth.contoso.com/oauth2/v2.0/token".into(),
        client_id: "6f1c2e0a-1b2c-4d5e-8f90-0123456789ab".into(),
        client_secret: secret("claims-client-secret-value"),
        scope: Some("api://contoso-claims/.default".into()),
    };
    vec![check, request, enrich]
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let config = load(Some(&example_path()), &example_env()).unwrap();
    let debug = format!("{config:?}");
    for secret in [
        "contoso-web-secret-value",
        "smtp-password-value",
        "the-master-key-text",
        WEBHOOK_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "api-password-value",
        "api-key-value",
        "claims-client-secret-value",
        "google-client-secret-value",
        "microsoft-client-secret-value",
        "facebook-app-secret-value",
        "github-client-secret-value",
        "partners-client-secret-value",
        "fabrikam-client-secret-value",
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
fn rate_limit_rules() {
    // On by default.
    let config = load_str("", &[]).unwrap();
    assert_eq!(config.rate_limits, usher_domain::RateLimitPolicy::default());
    assert_eq!(
        config
            .rate_limits
            .password_failures_per_account_and_address
            .max,
        10
    );
    assert_eq!(config.rate_limits.password_failures_per_account.max, 50);
    assert_error(
        "[rate_limits]\npassword_failures_per_account = { max = -1 }\n",
        "rate_limits.password_failures_per_account.max",
        "between 0 and",
    );
    assert_error(
        "[rate_limits]\ncodes_sent_per_email = { max = 3, window_seconds = 90000 }\n",
        "rate_limits.codes_sent_per_email.window_seconds",
        "between 1 and 86400",
    );
    assert_error(
        "[rate_limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.internal\"]\n",
        "rate_limits.trusted_proxies[1]",
        "not an IP address or network",
    );
    assert_error(
        "[rate_limits]\npasswords_per_account = { max = 3 }\n",
        "rate_limits.passwords_per_account",
        "",
    );
    let config = load_str(
        "[rate_limits]\nclient_secret_failures_per_address = { max = 0 }\ncode_failures_per_email = { max = 4, window_seconds = 60 }\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        &[],
    )
    .unwrap();
    let p = &config.rate_limits;
    assert!(p.client_secret_failures_per_address.is_off());
    assert_eq!(
        p.code_failures_per_email,
        usher_domain::LimitRule::new(4, 60)
    );
    // Unnamed limits keep their defaults.
    assert_eq!(
        p.codes_sent_per_email,
        usher_domain::RateLimitPolicy::default().codes_sent_per_email
    );
    assert_eq!(p.trusted_proxies.len(), 2);
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
        &format!("{}[[user_flows]]\nid = \"b2x_1_Partner\"\nidentity_providers = [\"emailpassword-oauth\"]\nclaims = [\"Email\", \"City\"]\n[user_flows.connectors]\npre_token_issuance = [\"enrich\", \"audit\"]\n", declare(&["enrich", "audit"])),
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

/// `[[connectors]]` tables declaring these ids, with no other settings.
fn declare(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            format!(
                "[[connectors]]\nid = \"{id}\"\ntarget_url = \"https://api.contoso.com/{id}\"\n"
            )
        })
        .collect()
}

/// A connector `c` with more settings (sub-tables included) after its required ones.
fn connector(fields: &str) -> String {
    format!("[[connectors]]\nid = \"c\"\ntarget_url = \"https://api.contoso.com/c\"\n{fields}")
}

/// A connector `c` with this authentication table.
fn authentication(fields: &str) -> String {
    connector(&format!("[connectors.authentication]\n{fields}"))
}

#[test]
fn a_connector_has_the_contract_defaults() {
    let config = load_str(&declare(&["approval-check"]), &[]).unwrap();
    assert_eq!(
        config.connectors,
        [ConnectorDefinition::new(
            "approval-check",
            "https://api.contoso.com/approval-check"
        )]
    );
    let c = &config.connectors[0];
    assert_eq!(c.display_name, "approval-check");
    assert_eq!(c.timeout, std::time::Duration::from_secs(10));
    assert_eq!(c.retries, 1);
    assert_eq!(c.budget, std::time::Duration::from_secs(20));
    assert_eq!(c.failure_policy, FailurePolicy::Block);
    assert!(!c.lenient);
    assert_eq!(c.breaker.failure_threshold, 5);
    assert_eq!(c.breaker.open_for, std::time::Duration::from_secs(30));
    assert_eq!(c.authentication, ConnectorAuthentication::None);
    assert!(c.signing_secrets.is_empty());
    assert_eq!(config.connector_settings, ConnectorSettings::default());
    // Without a file: none, and the defaults.
    let config = load(None, &|_| None).unwrap();
    assert!(config.connectors.is_empty());
    assert_eq!(config.connector_settings, ConnectorSettings::default());
}

#[test]
fn every_connector_setting_is_read() {
    let config = load_str(
        &connector(&format!(
            "display_name = \"Check\"\ntimeout_ms = 100\nretries = 0\nbudget_ms = 120000\nfailure_policy = \"Continue\"\nlenient = true\nsigning_secrets = [{{ value = \"{WEBHOOK_SECRET}\" }}, {{ env = \"NEXT\" }}]\n[connectors.breaker]\nfailure_threshold = 100\nopen_seconds = 3600\n[connectors.authentication]\ntype = \"none\"\n"
        )),
        &[("NEXT", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
    )
    .unwrap();
    let c = &config.connectors[0];
    assert_eq!(c.display_name, "Check");
    assert_eq!(c.timeout, std::time::Duration::from_millis(100));
    assert_eq!(c.retries, 0);
    assert_eq!(c.budget, std::time::Duration::from_mins(2));
    assert_eq!(c.failure_policy, FailurePolicy::Continue);
    assert!(c.lenient);
    assert_eq!(c.breaker.failure_threshold, 100);
    assert_eq!(c.breaker.open_for, std::time::Duration::from_hours(1));
    let secrets: Vec<&str> = c
        .signing_secrets
        .iter()
        .map(usher_domain::Secret::expose)
        .collect();
    assert_eq!(
        secrets,
        [WEBHOOK_SECRET, "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
    );
    assert_eq!(c.authentication, ConnectorAuthentication::None);
}

#[test]
fn connector_rules() {
    let e = assert_error(
        "[[connectors]]\nid = \"c\"\ntarget_url = \"http://api.contoso.com/c\"\n",
        "connectors[0].target_url",
        "allow_http_targets",
    );
    assert_eq!(e.location, "usher.toml:3:14: connectors[0].target_url");
    assert_error(
        "[[connectors]]\ntarget_url = \"https://a.example.com\"\n",
        "connectors[0].id",
        "required",
    );
    assert_error(
        "[[connectors]]\nid = \"a b\"\ntarget_url = \"https://a.example.com\"\n",
        "connectors[0].id",
        "1 to 64",
    );
    let e = assert_error(
        &declare(&["check", "other", "Check"]),
        "connectors[2].id",
        "used twice",
    );
    assert!(e.message.contains("first at usher.toml:2:6"), "{e:?}");
    assert_error(
        "[[connectors]]\nid = \"c\"\n",
        "connectors[0].target_url",
        "required",
    );
    for (url, message) in [
        ("https://10.1.2.3/c", "non-public"),
        ("https://localhost:8443/c", "non-public"),
        ("https://u:p@api.contoso.com/c", "user name"),
        ("https://api.contoso.com/c#x", "fragment"),
        ("api.contoso.com/c", "absolute"),
    ] {
        assert_error(
            &format!("[[connectors]]\nid = \"c\"\ntarget_url = \"{url}\"\n"),
            "connectors[0].target_url",
            message,
        );
    }
    assert_error(
        &connector("display_name = \" \"\n"),
        "connectors[0].display_name",
        "empty",
    );
    assert_error(
        &connector("timeout_ms = 99\n"),
        "connectors[0].timeout_ms",
        "between 100 and 60000 ms",
    );
    assert_error(
        &connector("retries = 6\n"),
        "connectors[0].retries",
        "between 0 and 5",
    );
    assert_error(
        &connector("budget_ms = 120001\n"),
        "connectors[0].budget_ms",
        "between 100 and 120000 ms",
    );
    assert_error(
        &connector("timeout_ms = 5000\nbudget_ms = 4000\n"),
        "connectors[0].budget_ms",
        "at least timeout_ms (5000)",
    );
    // Above the default budget, with no budget written: the timeout is at fault.
    assert_error(
        &connector("timeout_ms = 30000\n"),
        "connectors[0].timeout_ms",
        "budget_ms (20000) must be at least timeout_ms (30000)",
    );
    load_str(&connector("timeout_ms = 30000\nbudget_ms = 60000\n"), &[]).unwrap();
    assert_error(
        &connector("failure_policy = \"retry\"\n"),
        "connectors[0].failure_policy",
        "block or continue",
    );
    assert_error(
        &connector("lenient = \"yes\"\n"),
        "connectors[0].lenient",
        "expected true or false",
    );
    assert_error(
        &connector("[connectors.breaker]\nfailure_threshold = 0\n"),
        "connectors[0].breaker.failure_threshold",
        "between 1 and 100",
    );
    assert_error(
        &connector("[connectors.breaker]\nopen_seconds = 3601\n"),
        "connectors[0].breaker.open_seconds",
        "between 1 and 3600 seconds",
    );
    assert_error(
        &connector("[connectors.breaker]\nopen_second = 30\n"),
        "connectors[0].breaker.open_second",
        "did you mean `open_seconds`",
    );
    assert_error(
        &connector("timeout = 100\n"),
        "connectors[0].timeout",
        "did you mean `timeout_ms`",
    );
}

#[test]
fn signing_secret_rules() {
    assert_error(
        &connector("signing_secrets = [{ value = \"not-a-webhook-secret\" }]\n"),
        "connectors[0].signing_secrets[0]",
        "whsec_",
    );
    assert_error(
        &connector("signing_secrets = [{ value = \"whsec_c2hvcnQ=\" }]\n"),
        "connectors[0].signing_secrets[0]",
        "at least 24",
    );
    let errs = errors(
        &connector(&format!(
            "signing_secrets = [{{ value = \"{WEBHOOK_SECRET}\" }}, {{ env = \"SAME\" }}]\n"
        )),
        &[("SAME", WEBHOOK_SECRET)],
    );
    assert!(error_at(&errs, "connectors[0].signing_secrets[1]")
        .message
        .contains("same secret as the one at usher.toml:4:"));
    assert_error(
        &connector("signing_secrets = { env = \"S\" }\n"),
        "connectors[0].signing_secrets",
        "an array of secret references",
    );
    // An invalid secret is never quoted back.
    let errs = errors(
        &connector(
            "signing_secrets = [\"plain-secret-text\", { value = \"whsec_bad-secret-text\" }]\n",
        ),
        &[],
    );
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    assert!(error_at(&errs, "connectors[0].signing_secrets[0]")
        .message
        .contains("expected a secret reference"));
    let all = ConfigErrors(errs).to_string();
    assert!(!all.contains("plain-secret-text") && !all.contains("bad-secret-text"));
}

#[test]
fn secret_reference_rules() {
    let basic = |password: &str| {
        authentication(&format!(
            "type = \"basic\"\nusername = \"u\"\npassword = {password}\n"
        ))
    };
    let e = assert_error(
        &basic("\"hunter2hunter2\""),
        "connectors[0].authentication.password",
        "expected a secret reference: { env = \"NAME\" }, { file = \"PATH\" } or { value = \"…\" }, found a string",
    );
    assert!(!e.message.contains("hunter2"));
    assert_error(
        &basic("{}"),
        "connectors[0].authentication.password",
        "give one of env",
    );
    assert_error(
        &basic("{ env = \"A\", value = \"x\" }"),
        "connectors[0].authentication.password.value",
        "only one of env, file and value",
    );
    let errs = errors(&basic("{ file = \"/f\", value = \"x\" }"), &[]);
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    error_at(&errs, "connectors[0].authentication.password.value");
    let e = assert_error(
        &basic("{ env = \"CONTOSO_API_PASSWORD\" }"),
        "connectors[0].authentication.password.env",
        "environment variable CONTOSO_API_PASSWORD is not set",
    );
    assert_eq!(
        e.location,
        "usher.toml:7:20: connectors[0].authentication.password.env"
    );
    let errs = errors(&basic("{ env = \"EMPTY\" }"), &[("EMPTY", "")]);
    assert!(error_at(&errs, "connectors[0].authentication.password.env")
        .message
        .contains("environment variable EMPTY is empty"));
    assert_error(
        &basic("{ env = \"\" }"),
        "connectors[0].authentication.password.env",
        "must name an environment variable",
    );
    assert_error(
        &basic("{ file = \"/nonexistent/password\" }"),
        "connectors[0].authentication.password.file",
        "cannot read /nonexistent/password",
    );
    assert_error(
        &basic("{ value = \"\" }"),
        "connectors[0].authentication.password.value",
        "must not be empty",
    );
    assert_error(
        &basic("{ secret = \"x\" }"),
        "connectors[0].authentication.password.secret",
        "expected one of: env, file, value",
    );

    let scratch = Scratch::new("connector-secret");
    let file = scratch.file("password", "from-a-file\n");
    for (reference, env) in [
        (format!("{{ file = {:?} }}", file.to_str().unwrap()), vec![]),
        ("{ env = \"P\" }".to_owned(), vec![("P", "from-a-file")]),
        ("{ value = \"from-a-file\" }".to_owned(), vec![]),
    ] {
        let config = load_str(&basic(&reference), &env).unwrap();
        assert_eq!(
            config.connectors[0].authentication,
            ConnectorAuthentication::Basic {
                username: "u".into(),
                password: usher_domain::Secret::new("from-a-file"),
            },
            "{reference}"
        );
    }
}

#[test]
fn authentication_rules() {
    assert_error(
        &authentication("type = \"digest\"\n"),
        "connectors[0].authentication.type",
        "must be one of none, basic, clientCertificate, apiKey, oauthClientCredentials, issuedToken",
    );
    let errs = errors(&authentication("type = \"basic\"\n"), &[]);
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    assert!(error_at(&errs, "connectors[0].authentication.username")
        .message
        .contains("is required for basic authentication"));
    error_at(&errs, "connectors[0].authentication.password");
    assert_error(
        &authentication("type = \"basic\"\nusername = \"a:b\"\npassword = { value = \"p\" }\n"),
        "connectors[0].authentication.username",
        "`:`",
    );
    // Settings of another type are refused, and their secrets not even read.
    let errs = errors(
        &authentication("type = \"basic\"\nusername = \"u\"\npassword = { value = \"p\" }\nheader = \"x-api-key\"\nclient_secret = { env = \"UNSET\" }\n"),
        &[],
    );
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    assert!(error_at(&errs, "connectors[0].authentication.header")
        .message
        .contains("belongs to apiKey authentication, not basic"));
    assert!(
        error_at(&errs, "connectors[0].authentication.client_secret")
            .message
            .contains("belongs to oauthClientCredentials authentication, not basic")
    );
    assert_error(
        &authentication("username = \"u\"\n"),
        "connectors[0].authentication.username",
        "belongs to basic authentication, not none (type defaults to none",
    );
    assert_error(
        &authentication("type = \"basic\"\nusernme = \"u\"\n"),
        "connectors[0].authentication.usernme",
        "did you mean `username`",
    );

    // apiKey
    let errs = errors(&authentication("type = \"ApiKey\"\n"), &[]);
    error_at(&errs, "connectors[0].authentication.header");
    error_at(&errs, "connectors[0].authentication.value");
    for header in [
        "Authorization",
        "content-type",
        "usher-call-id",
        "webhook-id",
        "Host",
    ] {
        assert_error(
            &authentication(&format!(
                "type = \"apiKey\"\nheader = \"{header}\"\nvalue = {{ value = \"k\" }}\n"
            )),
            "connectors[0].authentication.header",
            "set by Usher",
        );
    }
    assert_error(
        &authentication("type = \"apiKey\"\nheader = \"x api key\"\nvalue = { value = \"k\" }\n"),
        "connectors[0].authentication.header",
        "HTTP header name",
    );
    let config = load_str(
        &authentication(
            "type = \"apiKey\"\nheader = \"Ocp-Apim-Subscription-Key\"\nvalue = { env = \"K\" }\n",
        ),
        &[("K", "the-key")],
    )
    .unwrap();
    assert_eq!(
        config.connectors[0].authentication,
        ConnectorAuthentication::ApiKey {
            header: "Ocp-Apim-Subscription-Key".into(),
            value: usher_domain::Secret::new("the-key"),
        }
    );

    // oauthClientCredentials
    let errs = errors(&authentication("type = \"oauthClientCredentials\"\n"), &[]);
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    for key in ["token_url", "client_id", "client_secret"] {
        assert!(
            error_at(&errs, &format!("connectors[0].authentication.{key}"))
                .message
                .contains("is required for oauthClientCredentials authentication")
        );
    }
    let oauth = |token_url: &str, extra: &str| {
        authentication(&format!(
            "type = \"oauthClientCredentials\"\ntoken_url = \"{token_url}\"\nclient_id = \"usher\"\nclient_secret = {{ value = \"s\" }}\n{extra}"
        ))
    };
    assert_error(
        &oauth("http://auth.contoso.com/token", ""),
        "connectors[0].authentication.token_url",
        "must use https",
    );
    assert_error(
        &oauth("https://192.168.0.10/token", ""),
        "connectors[0].authentication.token_url",
        "non-public",
    );
    assert_error(
        &oauth("https://auth.contoso.com/token", "scope = \"a  b\"\n"),
        "connectors[0].authentication.scope",
        "single spaces",
    );
    assert_error(
        &oauth("https://auth.contoso.com/token", "client_id = \"\"\n")
            .replace("client_id = \"usher\"\n", ""),
        "connectors[0].authentication.client_id",
        "1 to 256",
    );
    let config = load_str(&oauth("https://auth.contoso.com/token", ""), &[]).unwrap();
    assert_eq!(
        config.connectors[0].authentication,
        ConnectorAuthentication::OAuthClientCredentials {
            token_url: "https://auth.contoso.com/token".into(),
            client_id: "usher".into(),
            client_secret: usher_domain::Secret::new("s"),
            scope: None,
        }
    );
    // The target settings cover token endpoints too.
    load_str(
        &format!(
            "[connector_settings]\nallow_http_targets = true\nallow_loopback_targets = true\n{}",
            oauth("http://127.0.0.1:9000/token", "")
        ),
        &[],
    )
    .unwrap();
}

#[test]
fn client_certificate_rules() {
    let scratch = Scratch::new("certificates");
    let pfx = scratch.0.join("contoso.pfx");
    std::fs::write(&pfx, [0x30, 0x82, 0x01, 0x00, 0xff]).unwrap();
    let chain = scratch.file("chain.pem", "-----BEGIN CERTIFICATE-----\nleaf\n");
    let key = scratch.file("key.pem", "-----BEGIN PRIVATE KEY-----\nkey\n");
    let empty = scratch.file("empty.pem", "");
    let path = |p: &PathBuf| format!("{:?}", p.to_str().unwrap());
    let certificates =
        |tables: &str| authentication(&format!("type = \"clientCertificate\"\n{tables}"));
    let entry = |fields: &str| format!("[[connectors.authentication.certificates]]\n{fields}");

    assert_error(
        &certificates(""),
        "connectors[0].authentication.certificates",
        "at least one certificate",
    );
    assert_error(
        &certificates("certificates = []\n"),
        "connectors[0].authentication.certificates",
        "at least one certificate",
    );
    assert_error(
        &certificates(&entry("uploaded_at = \"2026-01-15T00:00:00Z\"\n")),
        "connectors[0].authentication.certificates[0].pkcs12_file",
        "needs pkcs12_file, or pem_file with key_file",
    );
    assert_error(
        &certificates(&entry(&format!(
            "pkcs12_file = {}\npem_file = {}\nkey_file = {}\n",
            path(&pfx),
            path(&chain),
            path(&key)
        ))),
        "connectors[0].authentication.certificates[0].pem_file",
        "not both",
    );
    assert_error(
        &certificates(&entry(&format!("pem_file = {}\n", path(&chain)))),
        "connectors[0].authentication.certificates[0].key_file",
        "pem_file needs key_file",
    );
    assert_error(
        &certificates(&entry(&format!(
            "pkcs12_file = {}\nkey_file = {}\n",
            path(&pfx),
            path(&key)
        ))),
        "connectors[0].authentication.certificates[0].key_file",
        "goes with pem_file",
    );
    assert_error(
        &certificates(&entry(&format!(
            "pem_file = {}\nkey_file = {}\npassword = {{ value = \"p\" }}\n",
            path(&chain),
            path(&key)
        ))),
        "connectors[0].authentication.certificates[0].password",
        "is for pkcs12_file",
    );
    assert_error(
        &certificates(&entry("pkcs12_file = \"/nonexistent/contoso.pfx\"\n")),
        "connectors[0].authentication.certificates[0].pkcs12_file",
        "cannot read /nonexistent/contoso.pfx",
    );
    assert_error(
        &certificates(&entry(&format!(
            "pem_file = {}\nkey_file = {}\n",
            path(&chain),
            path(&empty)
        ))),
        "connectors[0].authentication.certificates[0].key_file",
        "is empty",
    );
    assert_error(
        &certificates(&entry(&format!(
            "pem_file = {}\nkey_file = {}\n",
            path(&pfx),
            path(&key)
        ))),
        "connectors[0].authentication.certificates[0].pem_file",
        "not a text (PEM) file",
    );
    for bad in [
        "\"2026-01-15\"",
        "2026-01-15T00:00:00",
        "2026-01-15",
        "\"soon\"",
    ] {
        assert_error(
            &certificates(&entry(&format!(
                "pkcs12_file = {}\nuploaded_at = {bad}\n",
                path(&pfx)
            ))),
            "connectors[0].authentication.certificates[0].uploaded_at",
            "RFC 3339",
        );
    }
    assert_error(
        &certificates(&entry(&format!(
            "pkcs12_file = {}\nuploaded_at = 5\n",
            path(&pfx)
        ))),
        "connectors[0].authentication.certificates[0].uploaded_at",
        "expected a date and time",
    );
    assert_error(
        &certificates(&entry(&format!(
            "pkcs12_file = {}\npassword = {{ env = \"PFX_PASSWORD\" }}\n",
            path(&pfx)
        ))),
        "connectors[0].authentication.certificates[0].password.env",
        "PFX_PASSWORD is not set",
    );

    // Undated entries count as uploaded in list order, before any dated one.
    let config = load_str(
        &certificates(&format!(
            "{}{}{}",
            entry(&format!("pkcs12_file = {}\n", path(&pfx))),
            entry(&format!(
                "pkcs12_file = {}\npassword = {{ env = \"PFX_PASSWORD\" }}\nuploaded_at = 2026-01-15T01:00:00+01:00\n",
                path(&pfx)
            )),
            entry(&format!(
                "pem_file = {}\nkey_file = {}\n",
                path(&chain),
                path(&key)
            )),
        )),
        &[("PFX_PASSWORD", "pfx-password")],
    )
    .unwrap();
    let ConnectorAuthentication::ClientCertificate { certificates } =
        &config.connectors[0].authentication
    else {
        panic!("{:?}", config.connectors[0].authentication)
    };
    let times: Vec<i64> = certificates
        .iter()
        .map(|c| c.uploaded_at.timestamp())
        .collect();
    assert_eq!(times, [0, 1_768_435_200, 2]);
    assert_eq!(
        certificates[0].source,
        CertificateSource::Pkcs12 {
            der: vec![0x30, 0x82, 0x01, 0x00, 0xff],
            password: usher_domain::Secret::new(""),
        }
    );
    let CertificateSource::Pkcs12 { password, .. } = &certificates[1].source else {
        panic!()
    };
    assert_eq!(password.expose(), "pfx-password");
    assert_eq!(
        certificates[2].source,
        CertificateSource::Pem {
            chain: "-----BEGIN CERTIFICATE-----\nleaf\n".into(),
            key: usher_domain::Secret::new("-----BEGIN PRIVATE KEY-----\nkey\n"),
        }
    );
}

#[test]
fn the_commented_certificate_example_loads_once_its_files_exist() {
    let scratch = Scratch::new("example-certificates");
    let pfx = scratch.file("contoso.pfx", "pkcs12 bytes");
    let chain = scratch.file("chain.pem", "-----BEGIN CERTIFICATE-----\n");
    let key = scratch.file("key.pem", "-----BEGIN PRIVATE KEY-----\n");
    let example = std::fs::read_to_string(example_path()).unwrap();
    // Commented-out settings are the comment lines with no space after the `#`.
    let mut uncommented = 0;
    let text: String = example
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if !rest.is_empty() && !rest.starts_with([' ', '#']) => {
                uncommented += 1;
                format!("{rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(
        uncommented > 5,
        "the certificate example is no longer in the example file"
    );
    let text = text
        .replace("/etc/usher/contoso.pfx", pfx.to_str().unwrap())
        .replace("/etc/usher/contoso-chain.pem", chain.to_str().unwrap())
        .replace("/etc/usher/contoso-key.pem", key.to_str().unwrap());
    let env = example_env();
    let env = |k: &str| match k {
        "CONTOSO_PFX_PASSWORD" => Some("pfx-password".to_owned()),
        _ => env(k),
    };
    let config = match load_text(Some(Path::new("usher.toml")), &text, &env) {
        Ok(c) => c,
        Err(e) => panic!("the uncommented example does not load:\n{e}"),
    };
    let mut expected = example_connectors();
    let mut fraud = ConnectorDefinition::new("fraud-check", "https://fraud.contoso.com/check");
    fraud.authentication = ConnectorAuthentication::ClientCertificate {
        certificates: vec![
            usher_domain::ClientCertificate {
                source: CertificateSource::Pkcs12 {
                    der: b"pkcs12 bytes".to_vec(),
                    password: usher_domain::Secret::new("pfx-password"),
                },
                uploaded_at: rules::parse_uploaded_at("2026-01-15T00:00:00Z").unwrap(),
            },
            usher_domain::ClientCertificate {
                source: CertificateSource::Pem {
                    chain: "-----BEGIN CERTIFICATE-----\n".into(),
                    key: usher_domain::Secret::new("-----BEGIN PRIVATE KEY-----\n"),
                },
                uploaded_at: std::time::SystemTime::UNIX_EPOCH
                    .checked_add(std::time::Duration::from_secs(1))
                    .unwrap()
                    .into(),
            },
        ],
    };
    expected.push(fraud);
    let mut events = ConnectorDefinition::extension(
        "contoso-events",
        "https://ext.contoso.com/events",
        "api://ext.contoso.com/7f1c2e0a-1b2c-4d5e-8f90-0123456789ab",
    );
    events.contract = usher_domain::ConnectorContract::CustomAuthenticationExtension {
        claims_for_token: vec!["loyaltyTier".into(), "groups".into()],
        event: None,
    };
    expected.push(events);
    assert_eq!(config.connectors, expected);
}

#[test]
fn user_flows_name_declared_connectors() {
    let flows = |slots: &str| {
        format!(
            "{}[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[user_flows.connectors]\n{slots}",
            declare(&["check", "Enrich"])
        )
    };
    let e = assert_error(
        &flows("post_attribute_collection = [\"check\", \"missing\"]\n"),
        "user_flows[0].connectors.post_attribute_collection[1]",
        "no connector `missing` is declared under [[connectors]]",
    );
    assert_eq!(
        e.location,
        "usher.toml:11:39: user_flows[0].connectors.post_attribute_collection[1]"
    );
    assert_error(
        &flows("pre_token_issuance = [\"enrich\", \"check\", \"ENRICH\"]\n"),
        "user_flows[0].connectors.pre_token_issuance[2]",
        "Enrich is listed twice in this slot",
    );
    assert_error(
        &flows("post_federation_signup = [\"nope\"]\n"),
        "user_flows[0].connectors.post_federation_signup[0]",
        "no connector `nope`",
    );
    // A connector whose id is written wrong is still declared: only its id is reported.
    let errs = errors(
        "[[connectors]]\nid = \"bad id\"\ntarget_url = \"https://a.example.com\"\n[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[user_flows.connectors]\npre_token_issuance = [\"bad id\"]\n",
        &[],
    );
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    error_at(&errs, "connectors[0].id");

    // One connector in several slots and flows; ids match without regard to case and
    // come out as declared. Unused connectors are fine.
    let config = load_str(
        &format!(
            "{}[[user_flows]]\nid = \"b\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[user_flows.connectors]\npre_token_issuance = [\"Check\"]\n{}",
            flows("post_federation_signup = [\"check\"]\npost_attribute_collection = [\"CHECK\", \"enrich\"]\npre_token_issuance = [\"check\"]\n"),
            declare(&["unused"]),
        ),
        &[],
    )
    .unwrap();
    let a = &config.tenant.user_flows[0].connectors;
    assert_eq!(a.post_federation_signup, ["check"]);
    assert_eq!(a.post_attribute_collection, ["check", "Enrich"]);
    assert_eq!(a.pre_token_issuance, ["check"]);
    assert_eq!(
        config.tenant.user_flows[1].connectors.pre_token_issuance,
        ["check"]
    );
    assert_eq!(config.connectors.len(), 3);
}

#[test]
fn connector_settings_and_their_overrides() {
    let text = "[connector_settings]\nallow_insecure_targets = true\nrecord_bodies = true\n";
    let config = load_str(text, &[]).unwrap();
    // The deprecated key opens all three doors, and says so at start.
    assert_eq!(
        config.connector_settings,
        ConnectorSettings {
            allow_http_targets: true,
            allow_loopback_targets: true,
            allow_private_network_targets: true,
            record_bodies: true,
            extra_root_certificates: Vec::new(),
            deprecated_insecure_targets_at: Some(
                "usher.toml:2:26: connector_settings.allow_insecure_targets".into()
            ),
        }
    );
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("allow_insecure_targets is deprecated"));
    assert!(warnings[0].contains("allow_loopback_targets"));
    let config = load_str(
        text,
        &[
            ("USHER_CONNECTORS_ALLOW_INSECURE_TARGETS", "false"),
            ("USHER_CONNECTORS_RECORD_BODIES", "off"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.connector_settings.target_policy(),
        usher_domain::rules::TargetPolicy::default()
    );
    assert!(!config.connector_settings.record_bodies);
    let config = load_str(
        "",
        &[
            ("USHER_CONNECTORS_ALLOW_INSECURE_TARGETS", "1"),
            ("USHER_CONNECTORS_RECORD_BODIES", "yes"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.connector_settings.target_policy(),
        usher_domain::rules::TargetPolicy::ALL
    );
    assert!(config.connector_settings.record_bodies);
    assert_eq!(config.warnings().len(), 1);
    assert!(load_str("", &[]).unwrap().warnings().is_empty());

    // The override decides which targets are allowed.
    let insecure = "[[connectors]]\nid = \"local\"\ntarget_url = \"http://127.0.0.1:9000/hook\"\n";
    assert_error(insecure, "connectors[0].target_url", "must use https");
    let config = load_str(
        insecure,
        &[("USHER_CONNECTORS_ALLOW_INSECURE_TARGETS", "true")],
    )
    .unwrap();
    assert_eq!(
        config.connectors[0].target_url,
        "http://127.0.0.1:9000/hook"
    );
    let config = load_str(
        insecure,
        &[
            ("USHER_CONNECTORS_ALLOW_HTTP_TARGETS", "true"),
            ("USHER_CONNECTORS_ALLOW_LOOPBACK_TARGETS", "true"),
        ],
    )
    .unwrap();
    assert_eq!(
        config.connectors[0].target_url,
        "http://127.0.0.1:9000/hook"
    );
    let errs = errors(
        &format!("[connector_settings]\nallow_insecure_targets = true\n{insecure}"),
        &[("USHER_CONNECTORS_ALLOW_INSECURE_TARGETS", "false")],
    );
    error_at(&errs, "connectors[0].target_url");

    let errs = errors(
        "",
        &[
            ("USHER_CONNECTORS_ALLOW_INSECURE_TARGETS", "sometimes"),
            ("USHER_CONNECTORS_RECORD_BODIES", ""),
        ],
    );
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    assert!(error_at(
        &errs,
        "environment variable USHER_CONNECTORS_ALLOW_INSECURE_TARGETS"
    )
    .message
    .contains("true or false"));
    assert!(
        error_at(&errs, "environment variable USHER_CONNECTORS_RECORD_BODIES")
            .message
            .contains("empty")
    );
    assert_error(
        "[connector_settings]\nrecord_body = true\n",
        "connector_settings.record_body",
        "did you mean `record_bodies`",
    );
    assert_error(
        "[connector_settings]\nrecord_bodies = \"true\"\n",
        "connector_settings.record_bodies",
        "expected true or false",
    );
}

#[test]
fn connector_secrets_never_appear_in_debug_output() {
    let scratch = Scratch::new("connector-debug");
    let pfx = scratch.0.join("c.pfx");
    std::fs::write(&pfx, [0xde, 0xad, 0xbe, 0xef, 0x99]).unwrap();
    let chain = scratch.file("chain.pem", "public-chain-text");
    let key = scratch.file("key.pem", "private-key-text");
    let text = format!(
        "[[connectors]]\nid = \"basic\"\ntarget_url = \"https://f.azurewebsites.net/api/check?code=function-key-value\"\nsigning_secrets = [{{ value = \"{WEBHOOK_SECRET}\" }}]\n[connectors.authentication]\ntype = \"basic\"\nusername = \"u\"\npassword = {{ value = \"basic-password-value\" }}\n\
         [[connectors]]\nid = \"key\"\ntarget_url = \"https://api.contoso.com/k\"\n[connectors.authentication]\ntype = \"apiKey\"\nheader = \"x-api-key\"\nvalue = {{ env = \"K\" }}\n\
         [[connectors]]\nid = \"oauth\"\ntarget_url = \"https://api.contoso.com/o\"\n[connectors.authentication]\ntype = \"oauthClientCredentials\"\ntoken_url = \"https://auth.contoso.com/token?key=token-url-key\"\nclient_id = \"c\"\nclient_secret = {{ file = {:?} }}\n\
         [[connectors]]\nid = \"mtls\"\ntarget_url = \"https://api.contoso.com/m\"\n[connectors.authentication]\ntype = \"clientCertificate\"\n[[connectors.authentication.certificates]]\npkcs12_file = {:?}\npassword = {{ value = \"pfx-password-value\" }}\n[[connectors.authentication.certificates]]\npem_file = {:?}\nkey_file = {:?}\n",
        scratch.file("client-secret", "oauth-client-secret-value").to_str().unwrap(),
        pfx.to_str().unwrap(),
        chain.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let config = load_str(&text, &[("K", "api-key-value")]).unwrap();
    let debug = format!("{config:?}");
    for secret in [
        "function-key-value",
        WEBHOOK_SECRET,
        "basic-password-value",
        "api-key-value",
        "token-url-key",
        "oauth-client-secret-value",
        "pfx-password-value",
        "private-key-text",
        // The PKCS#12 file, byte by byte.
        "222, 173, 190, 239",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
    assert!(debug.contains("https://f.azurewebsites.net/api/check?code=******"));
    assert!(debug.contains("pkcs12: <5 bytes>"), "{debug}");
    assert!(debug.contains("client_id: \"c\""));
    // The pretty form shows no more.
    let pretty = format!("{config:#?}");
    assert!(!pretty.contains("basic-password-value") && !pretty.contains("private-key-text"));
}

#[test]
fn connector_errors_are_all_reported_in_one_pass() {
    let text = r#"
[[connectors]]
id = "a b"
target_url = "http://api.contoso.com"
timeout_ms = 0
signing_secrets = [{ value = "whsec_x" }]
[connectors.authentication]
type = "basic"
header = "x-api-key"
[[connectors]]
id = "ok"
target_url = "https://api.contoso.com/ok"
failure_policy = "maybe"
[[user_flows]]
id = "a"
identity_providers = ["EmailPassword-OAUTH"]
[user_flows.connectors]
pre_token_issuance = ["ok", "missing", "ok"]
"#;
    let errs = errors(text, &[("USHER_CONNECTORS_RECORD_BODIES", "maybe")]);
    for path in [
        "connectors[0].id",
        "connectors[0].target_url",
        "connectors[0].timeout_ms",
        "connectors[0].signing_secrets[0]",
        "connectors[0].authentication.header",
        "connectors[0].authentication.username",
        "connectors[0].authentication.password",
        "connectors[1].failure_policy",
        "user_flows[0].connectors.pre_token_issuance[1]",
        "user_flows[0].connectors.pre_token_issuance[2]",
        "environment variable USHER_CONNECTORS_RECORD_BODIES",
    ] {
        error_at(&errs, path);
    }
    assert_eq!(errs.len(), 11, "{}", ConfigErrors(errs.clone()));
}

/// A provider entry `p` of this type with its credentials (lines 1 to 5), then `fields`.
fn provider(kind: &str, fields: &str) -> String {
    format!(
        "[[identity_providers]]\nid = \"p\"\ntype = \"{kind}\"\nclient_id = \"client\"\nclient_secret = {{ value = \"provider-secret\" }}\n{fields}"
    )
}

/// An oidc provider `p`, whose issuer is on line 6, then `fields`.
fn oidc(fields: &str) -> String {
    provider(
        "oidc",
        &format!("issuer = \"https://login.contoso.com\"\n{fields}"),
    )
}

/// An oauth2 provider `p` with its required settings (lines 6 to 10), then `fields`.
fn oauth2(fields: &str) -> String {
    provider(
        "oauth2",
        &format!("authorization_endpoint = \"https://id.fabrikam.com/authorize\"\ntoken_endpoint = \"https://id.fabrikam.com/token\"\nuserinfo_endpoint = \"https://api.fabrikam.com/me\"\nsubject_claim = \"data.id\"\nidentity_issuer = \"id.fabrikam.com\"\n{fields}"),
    )
}

/// Compares every field, each on its own so that a failure says which.
pub(crate) fn assert_provider(
    actual: &usher_domain::identity_provider::ProviderConfig,
    expected: &usher_domain::identity_provider::ProviderConfig,
) {
    let id = &expected.id;
    assert_eq!(actual.id, expected.id);
    assert_eq!(actual.display_name, expected.display_name, "{id}");
    assert_eq!(actual.kind, expected.kind, "{id}");
    assert_eq!(actual.client_id, expected.client_id, "{id}");
    assert_eq!(
        actual.client_secret.expose(),
        expected.client_secret.expose(),
        "{id}"
    );
    assert_eq!(actual.scopes, expected.scopes, "{id}");
    assert_eq!(actual.claim_mapping, expected.claim_mapping, "{id}");
    assert_eq!(actual.endpoints, expected.endpoints, "{id}");
    assert_eq!(actual.client_auth, expected.client_auth, "{id}");
    // Also fails should a field be added that the lines above do not compare.
    assert!(settings::same_provider(actual, expected), "{id}");
}

fn secret(s: &str) -> usher_domain::Secret {
    usher_domain::Secret::new(s)
}

#[test]
fn providers_have_their_kinds_defaults() {
    use usher_domain::identity_provider::{
        ClaimMapping, EndpointOverrides, ProviderConfig, ProviderKind,
    };
    let text = [
        provider("google", ""),
        provider("microsoft", "").replace("\"p\"", "\"ms\""),
        provider("facebook", "").replace("\"p\"", "\"fb\""),
        provider("GitHub", "").replace("\"p\"", "\"gh\""),
        oidc("").replace("\"p\"", "\"oidc\""),
        oauth2("").replace("\"p\"", "\"oauth\""),
    ]
    .concat();
    let config = load_str(&text, &[]).unwrap();
    let new = |id: &str, kind| ProviderConfig::new(id, kind, "client", secret("provider-secret"));
    let expected = [
        new("p", ProviderKind::Google),
        new(
            "ms",
            ProviderKind::Microsoft {
                tenant: "common".into(),
            },
        ),
        new("fb", ProviderKind::Facebook),
        new("gh", ProviderKind::GitHub),
        new(
            "oidc",
            ProviderKind::Oidc {
                issuer: "https://login.contoso.com".into(),
            },
        ),
        new(
            "oauth",
            ProviderKind::OAuth2 {
                authorization_endpoint: "https://id.fabrikam.com/authorize".into(),
                token_endpoint: "https://id.fabrikam.com/token".into(),
                userinfo_endpoint: "https://api.fabrikam.com/me".into(),
                subject_claim: "data.id".into(),
                identity_issuer: "id.fabrikam.com".into(),
            },
        ),
    ];
    assert_eq!(config.identity_providers.len(), expected.len());
    for (actual, expected) in config.identity_providers.iter().zip(&expected) {
        assert_provider(actual, expected);
        // Spelt out, so that the test does not only restate `ProviderConfig::new`.
        assert!(actual.scopes.is_empty());
        assert_eq!(
            actual.claim_mapping,
            ClaimMapping::defaults_for(&actual.kind)
        );
        assert_eq!(actual.endpoints, EndpointOverrides::default());
        assert_eq!(actual.client_auth, None);
    }
    let names: Vec<&str> = config
        .identity_providers
        .iter()
        .map(|p| p.display_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Google",
            "Microsoft",
            "Facebook",
            "GitHub",
            "Sign in",
            "Sign in"
        ]
    );
    assert!(!config.federation.allow_insecure_endpoints);
    assert_eq!(
        config.federation.timeout,
        std::time::Duration::from_secs(10)
    );

    // Without a file: none, and the defaults.
    let config = load(None, &|_| None).unwrap();
    assert!(config.identity_providers.is_empty());
    assert!(!config.federation.allow_insecure_endpoints);
    assert_eq!(
        config.federation.timeout,
        std::time::Duration::from_secs(10)
    );
}

/// One provider of each type, every setting it takes written.
const EVERY_PROVIDER_SETTING: &str = r#"
[federation]
allow_insecure_endpoints = false
timeout_ms = 2500

[[attributes]]
name = "Tier"
data_type = "string"

[[identity_providers]]
id = "contoso-oidc"
type = "OIDC"
display_name = "Contoso staff"
client_id = "usher"
client_secret = { value = "oidc-secret-value" }
issuer = "https://login.contoso.com/"
scopes = ["openid", "email", "offline_access"]
client_auth = "client_secret_post"
[identity_providers.claims]
givenname = "first"
extension_Tier = "https://contoso.com/claims/tier"
emailVerified = "mail_verified"
[identity_providers.endpoints]
authorization_endpoint = "https://sso.contoso.com/authorize"
token_endpoint = "https://sso.contoso.com/token"
userinfo_endpoint = "https://sso.contoso.com/userinfo"
jwks_uri = "https://sso.contoso.com/keys"

[[identity_providers]]
id = "Google-OAUTH"
type = "google"
display_name = "Google account"
client_id = "1234-abc.apps.googleusercontent.com"
client_secret = { env = "GOOGLE_SECRET" }
scopes = ["openid", "email"]
client_auth = "client_secret_basic"
claims = { email = "email", surname = "family_name", jobTitle = "hd" }
[identity_providers.endpoints]
issuer = "https://accounts.google.test"
authorization_endpoint = "https://accounts.google.test/o/oauth2/v2/auth"
token_endpoint = "https://oauth2.google.test/token"
userinfo_endpoint = "https://openidconnect.google.test/v1/userinfo"
jwks_uri = "https://www.google.test/oauth2/v3/certs"

[[identity_providers]]
id = "AADSignup-OAUTH"
type = "microsoft"
client_id = "6f1c2e0a-1b2c-4d5e-8f90-0123456789ab"
client_secret = { value = "microsoft-secret-value" }
tenant = "organizations"
[identity_providers.endpoints]
issuer = "https://login.microsoftonline.test/organizations/v2.0"

[[identity_providers]]
id = "Facebook-OAUTH"
type = "facebook"
client_id = "1234567890"
client_secret = { value = "facebook-secret-value" }
scopes = ["public_profile"]
[identity_providers.claims]
displayName = "short_name"
[identity_providers.endpoints]
authorization_endpoint = "https://www.facebook.com/v24.0/dialog/oauth"
token_endpoint = "https://graph.facebook.com/v24.0/oauth/access_token"
userinfo_endpoint = "https://graph.facebook.com/v24.0/me"

[[identity_providers]]
id = "GitHub-OAUTH"
type = "github"
client_id = "Iv1.0123456789abcdef"
client_secret = { value = "github-secret-value" }
claims = { city = "location" }
[identity_providers.endpoints]
authorization_endpoint = "https://github.contoso.com/login/oauth/authorize"
token_endpoint = "https://github.contoso.com/login/oauth/access_token"
userinfo_endpoint = "https://github.contoso.com/api/v3/user"
emails_endpoint = "https://github.contoso.com/api/v3/user/emails"

[[identity_providers]]
id = "fabrikam"
type = "oauth2"
display_name = "Fabrikam"
client_id = "usher-client"
client_secret = { value = "fabrikam-secret-value" }
scopes = ["profile:read"]
authorization_endpoint = "https://id.fabrikam.com/oauth/authorize"
token_endpoint = "https://id.fabrikam.com/oauth/token"
userinfo_endpoint = "https://api.fabrikam.com/v1/me?fields=all"
subject_claim = "data.id"
identity_issuer = "id.fabrikam.com"
[identity_providers.claims]
email = "data.email"
emailVerified = "data.email_confirmed"
displayName = "data.name"
"#;

#[test]
fn every_provider_setting_is_read() {
    use usher_domain::identity_provider::{
        ClientAuthMethod, EndpointOverrides, ProviderConfig, ProviderKind,
    };
    let config = load_str(
        EVERY_PROVIDER_SETTING,
        &[("GOOGLE_SECRET", "google-secret-value")],
    )
    .unwrap();
    let app_id = &config.tenant.extensions_app_id;
    let url = |s: &str| Some(s.to_owned());

    let mut contoso = ProviderConfig::new(
        "contoso-oidc",
        ProviderKind::Oidc {
            issuer: "https://login.contoso.com/".into(),
        },
        "usher",
        secret("oidc-secret-value"),
    );
    contoso.display_name = "Contoso staff".into();
    contoso.scopes = vec!["openid".into(), "email".into(), "offline_access".into()];
    contoso.client_auth = Some(ClientAuthMethod::ClientSecretPost);
    // Merged over the defaults; attribute ids as stored.
    contoso.claim_mapping.insert("givenName", "first");
    contoso.claim_mapping.insert(
        format!("extension_{app_id}_Tier"),
        "https://contoso.com/claims/tier",
    );
    contoso
        .claim_mapping
        .insert("emailVerified", "mail_verified");
    contoso.endpoints = EndpointOverrides {
        issuer: None,
        authorization_endpoint: url("https://sso.contoso.com/authorize"),
        token_endpoint: url("https://sso.contoso.com/token"),
        userinfo_endpoint: url("https://sso.contoso.com/userinfo"),
        emails_endpoint: None,
        jwks_uri: url("https://sso.contoso.com/keys"),
    };
    assert_eq!(
        contoso.claim_mapping.0.len(),
        6,
        "email, displayName, givenName, surname, Tier and emailVerified"
    );

    let mut google = ProviderConfig::new(
        "Google-OAUTH",
        ProviderKind::Google,
        "1234-abc.apps.googleusercontent.com",
        secret("google-secret-value"),
    );
    google.display_name = "Google account".into();
    google.scopes = vec!["openid".into(), "email".into()];
    google.client_auth = Some(ClientAuthMethod::ClientSecretBasic);
    google.claim_mapping.insert("surname", "family_name");
    google.claim_mapping.insert("jobTitle", "hd");
    google.endpoints = EndpointOverrides {
        issuer: url("https://accounts.google.test"),
        authorization_endpoint: url("https://accounts.google.test/o/oauth2/v2/auth"),
        token_endpoint: url("https://oauth2.google.test/token"),
        userinfo_endpoint: url("https://openidconnect.google.test/v1/userinfo"),
        emails_endpoint: None,
        jwks_uri: url("https://www.google.test/oauth2/v3/certs"),
    };

    let mut microsoft = ProviderConfig::new(
        "AADSignup-OAUTH",
        ProviderKind::Microsoft {
            tenant: "organizations".into(),
        },
        "6f1c2e0a-1b2c-4d5e-8f90-0123456789ab",
        secret("microsoft-secret-value"),
    );
    microsoft.endpoints.issuer = url("https://login.microsoftonline.test/organizations/v2.0");

    let mut facebook = ProviderConfig::new(
        "Facebook-OAUTH",
        ProviderKind::Facebook,
        "1234567890",
        secret("facebook-secret-value"),
    );
    facebook.scopes = vec!["public_profile".into()];
    facebook.claim_mapping.insert("displayName", "short_name");
    facebook.endpoints = EndpointOverrides {
        authorization_endpoint: url("https://www.facebook.com/v24.0/dialog/oauth"),
        token_endpoint: url("https://graph.facebook.com/v24.0/oauth/access_token"),
        userinfo_endpoint: url("https://graph.facebook.com/v24.0/me"),
        ..EndpointOverrides::default()
    };

    let mut github = ProviderConfig::new(
        "GitHub-OAUTH",
        ProviderKind::GitHub,
        "Iv1.0123456789abcdef",
        secret("github-secret-value"),
    );
    github.claim_mapping.insert("city", "location");
    github.endpoints = EndpointOverrides {
        authorization_endpoint: url("https://github.contoso.com/login/oauth/authorize"),
        token_endpoint: url("https://github.contoso.com/login/oauth/access_token"),
        userinfo_endpoint: url("https://github.contoso.com/api/v3/user"),
        emails_endpoint: url("https://github.contoso.com/api/v3/user/emails"),
        ..EndpointOverrides::default()
    };

    let mut fabrikam = ProviderConfig::new(
        "fabrikam",
        ProviderKind::OAuth2 {
            authorization_endpoint: "https://id.fabrikam.com/oauth/authorize".into(),
            token_endpoint: "https://id.fabrikam.com/oauth/token".into(),
            userinfo_endpoint: "https://api.fabrikam.com/v1/me?fields=all".into(),
            subject_claim: "data.id".into(),
            identity_issuer: "id.fabrikam.com".into(),
        },
        "usher-client",
        secret("fabrikam-secret-value"),
    );
    fabrikam.display_name = "Fabrikam".into();
    fabrikam.scopes = vec!["profile:read".into()];
    fabrikam.claim_mapping.insert("email", "data.email");
    fabrikam
        .claim_mapping
        .insert("emailVerified", "data.email_confirmed");
    fabrikam.claim_mapping.insert("displayName", "data.name");

    let expected = [contoso, google, microsoft, facebook, github, fabrikam];
    assert_eq!(config.identity_providers.len(), expected.len());
    for (actual, expected) in config.identity_providers.iter().zip(&expected) {
        assert_provider(actual, expected);
    }
    assert!(!config.federation.allow_insecure_endpoints);
    assert_eq!(
        config.federation.timeout,
        std::time::Duration::from_millis(2500)
    );
}

#[test]
fn providers_sharing_an_issuer_are_refused() {
    let oidc = |id: &str, issuer: &str| {
        format!("[[identity_providers]]\nid = \"{id}\"\ntype = \"oidc\"\nclient_id = \"c\"\nclient_secret = {{ value = \"s\" }}\nissuer = \"{issuer}\"\n")
    };
    // The same issuer, typed twice: the second is refused, where it is declared.
    let text =
        oidc("first", "https://id.example:8443/t/") + &oidc("second", "https://ID.example:8443/t");
    let e = assert_error(
        &text,
        "identity_providers[1].id",
        "identity providers \"first\" and \"second\" have the same issuer",
    );
    assert!(e
        .message
        .contains("a user of one could sign in as a user of the other"));
    assert_eq!(errors(&text, &[]).len(), 1);
    // Google as itself and as a plain OIDC provider is the same issuer too.
    assert_error(
        &(provider("google", "") + &oidc("g2", "https://accounts.google.com")),
        "identity_providers[1].id",
        "\"https://accounts.google.com\"",
    );
    // One host, two ports or paths: two issuers, two populations of users.
    load_str(
        &(oidc("first", "https://id.example:8443") + &oidc("second", "https://ID.example:9443/t")),
        &[],
    )
    .unwrap();
    // Different hosts are fine.
    load_str(
        &(oidc("first", "https://a.example") + &oidc("second", "https://b.example")),
        &[],
    )
    .unwrap();
}

#[test]
fn shutdown_drain() {
    let config = load_str("shutdown_drain_seconds = 15\n", &[]).unwrap();
    assert_eq!(config.shutdown_drain, std::time::Duration::from_secs(15));
    assert_eq!(
        load_str("", &[]).unwrap().shutdown_drain,
        std::time::Duration::ZERO
    );
    assert_error(
        "shutdown_drain_seconds = 301\n",
        "shutdown_drain_seconds",
        "must be between 0 and 300 seconds",
    );
    let config = load_str("", &[("USHER_SHUTDOWN_DRAIN_SECONDS", "7")]).unwrap();
    assert_eq!(config.shutdown_drain, std::time::Duration::from_secs(7));
}

#[test]
fn metrics_token() {
    assert_eq!(load_str("", &[]).unwrap().metrics_token, None);
    let config = load_str("", &[("USHER_METRICS_TOKEN", " a-long-enough-token-42 ")]).unwrap();
    assert_eq!(
        config.metrics_token.as_ref().map(Secret::expose),
        Some("a-long-enough-token-42")
    );
    // The token never reaches a log through the configuration's Debug.
    assert!(!format!("{config:?}").contains("a-long-enough-token-42"));
    for weak in ["short", "sixteen chars ok"] {
        let errors = load_str("", &[("USHER_METRICS_TOKEN", weak)]).unwrap_err();
        assert!(
            errors.to_string().contains("USHER_METRICS_TOKEN")
                && errors.to_string().contains("at least 16 characters"),
            "{errors}"
        );
    }
}

#[test]
fn provider_rules() {
    let e = assert_error(
        "[[identity_providers]]\nid = \"p\"\nclient_id = \"c\"\nclient_secret = { value = \"s\" }\n",
        "identity_providers[0].type",
        "is required: one of oidc, google, microsoft, facebook, github, oauth2",
    );
    assert_eq!(e.location, "usher.toml:1:1: identity_providers[0].type");
    let e = assert_error(
        &provider("saml", ""),
        "identity_providers[0].type",
        "must be one of oidc, google",
    );
    assert_eq!(e.location, "usher.toml:3:8: identity_providers[0].type");
    assert_error(
        "[[identity_providers]]\ntype = \"google\"\nclient_id = \"c\"\nclient_secret = { value = \"s\" }\n",
        "identity_providers[0].id",
        "is required",
    );
    assert_error(
        &provider("google", "").replace("\"p\"", "\"a b\""),
        "identity_providers[0].id",
        "1 to 64 characters",
    );
    let e = assert_error(
        &provider("google", "").replace("\"p\"", "\"emailpassword-OAUTH\""),
        "identity_providers[0].id",
        "EmailPassword-OAUTH is a built-in identity provider",
    );
    assert_eq!(e.location, "usher.toml:2:6: identity_providers[0].id");
    let e = assert_error(
        &[
            provider("google", "").replace("\"p\"", "\"Google-OAUTH\""),
            provider("github", ""),
            provider("google", "").replace("\"p\"", "\"google-oauth\""),
        ]
        .concat(),
        "identity_providers[2].id",
        "identity provider id google-oauth is used twice (ids ignore case; first at usher.toml:2:6: identity_providers[0].id)",
    );
    assert_eq!(e.location, "usher.toml:12:6: identity_providers[2].id");
    assert_error(
        "[[identity_providers]]\nid = \"p\"\ntype = \"google\"\nclient_secret = { value = \"s\" }\n",
        "identity_providers[0].client_id",
        "is required",
    );
    assert_error(
        &provider("google", "").replace("\"client\"", "\"\""),
        "identity_providers[0].client_id",
        "1 to 256 visible ASCII",
    );
    assert_error(
        "[[identity_providers]]\nid = \"p\"\ntype = \"google\"\nclient_id = \"c\"\n",
        "identity_providers[0].client_secret",
        "is required: a secret reference",
    );
    assert_error(
        &provider("google", "display_name = \" \"\n"),
        "identity_providers[0].display_name",
        "must not be empty",
    );
    let e = assert_error(
        &provider("google", "client_auth = \"private_key_jwt\"\n"),
        "identity_providers[0].client_auth",
        "client_secret_basic or client_secret_post",
    );
    assert_eq!(
        e.location,
        "usher.toml:6:15: identity_providers[0].client_auth"
    );
    assert_error(
        &provider("google", "clientid = \"c\"\n"),
        "identity_providers[0].clientid",
        "did you mean `client_id`",
    );
    assert_error(
        &provider("google", "secret = \"x\"\n"),
        "identity_providers[0].secret",
        "unknown key `secret`",
    );
}

#[test]
fn provider_secret_references_follow_the_connector_rules() {
    let with = |reference: &str| {
        provider("google", "").replace("{ value = \"provider-secret\" }", reference)
    };
    let e = assert_error(
        &with("\"plain-secret-text\""),
        "identity_providers[0].client_secret",
        "expected a secret reference: { env = \"NAME\" }, { file = \"PATH\" } or { value = \"…\" }, found a string",
    );
    assert!(!e.message.contains("plain-secret-text"));
    assert_eq!(
        e.location,
        "usher.toml:5:17: identity_providers[0].client_secret"
    );
    assert_error(
        &with("{}"),
        "identity_providers[0].client_secret",
        "give one of env",
    );
    assert_error(
        &with("{ env = \"A\", value = \"x\" }"),
        "identity_providers[0].client_secret.value",
        "only one of env, file and value",
    );
    let e = assert_error(
        &with("{ env = \"GOOGLE_CLIENT_SECRET\" }"),
        "identity_providers[0].client_secret.env",
        "environment variable GOOGLE_CLIENT_SECRET is not set",
    );
    assert_eq!(
        e.location,
        "usher.toml:5:25: identity_providers[0].client_secret.env"
    );
    assert_error(
        &with("{ file = \"/nonexistent/secret\" }"),
        "identity_providers[0].client_secret.file",
        "cannot read /nonexistent/secret",
    );
    assert_error(
        &with("{ value = \"\" }"),
        "identity_providers[0].client_secret.value",
        "must not be empty",
    );
    let scratch = Scratch::new("provider-secret");
    let file = scratch.file("secret", "from-a-file\n");
    for (reference, env) in [
        (format!("{{ file = {:?} }}", file.to_str().unwrap()), vec![]),
        ("{ env = \"S\" }".to_owned(), vec![("S", "from-a-file")]),
        ("{ value = \"from-a-file\" }".to_owned(), vec![]),
    ] {
        let config = load_str(&with(&reference), &env).unwrap();
        assert_eq!(
            config.identity_providers[0].client_secret.expose(),
            "from-a-file",
            "{reference}"
        );
    }
}

#[test]
fn settings_of_another_type_are_errors() {
    let e = assert_error(
        &provider("google", "issuer = \"https://accounts.google.com\"\n"),
        "identity_providers[0].issuer",
        "belongs to type oidc, not google; google's issuer is built in: to read another discovery document (tests), set endpoints.issuer",
    );
    assert_eq!(e.location, "usher.toml:6:10: identity_providers[0].issuer");
    assert_error(
        &provider("facebook", "tenant = \"common\"\n"),
        "identity_providers[0].tenant",
        "belongs to type microsoft, not facebook",
    );
    assert_error(
        &provider("github", "subject_claim = \"id\"\n"),
        "identity_providers[0].subject_claim",
        "belongs to type oauth2, not github",
    );
    assert_error(
        &oidc("token_endpoint = \"https://login.contoso.com/token\"\n"),
        "identity_providers[0].token_endpoint",
        "belongs to type oauth2, not oidc; to override oidc's token_endpoint, set it under [identity_providers.endpoints]",
    );
    assert_error(
        &oauth2("tenant = \"common\"\n"),
        "identity_providers[0].tenant",
        "belongs to type microsoft, not oauth2",
    );
    // Every foreign setting is reported, each once, and nothing else.
    let errs = errors(
        &provider(
            "facebook",
            "issuer = \"https://a.example.com\"\ntenant = \"common\"\nidentity_issuer = \"x\"\n",
        ),
        &[],
    );
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    // An unknown type: only the type is reported.
    let errs = errors(
        &provider("saml", "issuer = \"https://a.example.com\"\n"),
        &[],
    );
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    error_at(&errs, "identity_providers[0].type");
}

#[test]
fn type_specific_rules() {
    let e = assert_error(
        &provider("oidc", ""),
        "identity_providers[0].issuer",
        "is required for type oidc",
    );
    assert_eq!(e.location, "usher.toml:1:1: identity_providers[0].issuer");
    let e = assert_error(
        &provider("oidc", "issuer = \"http://login.contoso.com\"\n"),
        "identity_providers[0].issuer",
        "federation.allow_insecure_endpoints",
    );
    assert_eq!(e.location, "usher.toml:6:10: identity_providers[0].issuer");
    assert_error(
        &provider("oidc", "issuer = \"https://127.0.0.1:8443\"\n"),
        "identity_providers[0].issuer",
        "loopback",
    );
    assert_error(
        &provider("oidc", "issuer = \"https://login.contoso.com?tenant=x\"\n"),
        "identity_providers[0].issuer",
        "must not have a query",
    );
    assert_error(
        &provider("oidc", "issuer = \"login.contoso.com\"\n"),
        "identity_providers[0].issuer",
        "absolute URL",
    );
    assert_error(
        &provider("microsoft", "tenant = \"contoso/v2.0\"\n"),
        "identity_providers[0].tenant",
        "common, organizations, consumers, a tenant id",
    );
    let config = load_str(
        &provider(
            "Microsoft",
            "tenant = \"9188040d-6c67-4c5b-b112-36a304b66dad\"\n",
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        config.identity_providers[0].kind,
        usher_domain::identity_provider::ProviderKind::Microsoft {
            tenant: "9188040d-6c67-4c5b-b112-36a304b66dad".into()
        }
    );

    // oauth2: all five are required, each reported where the entry is.
    let errs = errors(&provider("oauth2", ""), &[]);
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "subject_claim",
        "identity_issuer",
    ] {
        let e = error_at(&errs, &format!("identity_providers[0].{key}"));
        assert!(e.message.contains("is required for type oauth2"), "{e:?}");
        assert!(e.location.starts_with("usher.toml:1:1: "), "{e:?}");
    }
    assert_eq!(errs.len(), 5, "{}", ConfigErrors(errs.clone()));
    assert_error(
        &oauth2("").replace(
            "https://id.fabrikam.com/token",
            "http://id.fabrikam.com/token",
        ),
        "identity_providers[0].token_endpoint",
        "must use https",
    );
    assert_error(
        &oauth2("").replace("\"data.id\"", "\"data..id\""),
        "identity_providers[0].subject_claim",
        "empty segment",
    );
    let e = assert_error(
        &oauth2("").replace("\"id.fabrikam.com\"", "\"Google.com\""),
        "identity_providers[0].identity_issuer",
        "google.com is the identity issuer of a preset provider",
    );
    assert_eq!(
        e.location,
        "usher.toml:10:19: identity_providers[0].identity_issuer"
    );
}

#[test]
fn scope_rules() {
    let e = assert_error(
        &provider("google", "scopes = []\n"),
        "identity_providers[0].scopes",
        "leave scopes out for the type's defaults (openid, email, profile)",
    );
    assert_eq!(e.location, "usher.toml:6:10: identity_providers[0].scopes");
    // A generic OAuth 2.0 provider has no default scopes: none is what it gets anyway.
    let config = load_str(&oauth2("scopes = []\n"), &[]).unwrap();
    assert!(config.identity_providers[0].scopes.is_empty());
    assert_error(
        &provider("microsoft", "scopes = [\"email\", \"profile\"]\n"),
        "identity_providers[0].scopes",
        "must include openid",
    );
    assert_error(
        &oidc("scopes = [\"email\"]\n"),
        "identity_providers[0].scopes",
        "must include openid",
    );
    // OAuth-only kinds have no openid.
    load_str(&provider("github", "scopes = [\"read:user\"]\n"), &[]).unwrap();
    let e = assert_error(
        &provider("google", "scopes = [\"openid\", \"email profile\"]\n"),
        "identity_providers[0].scopes[1]",
        "list each scope as its own item",
    );
    assert_eq!(
        e.location,
        "usher.toml:6:21: identity_providers[0].scopes[1]"
    );
    assert_error(
        &provider("google", "scopes = [\"openid\", \"email\", \"openid\"]\n"),
        "identity_providers[0].scopes[2]",
        "openid is listed twice",
    );
    assert_error(
        &provider("google", "scopes = \"openid email\"\n"),
        "identity_providers[0].scopes",
        "expected an array of strings",
    );
}

#[test]
fn endpoint_rules() {
    let e = assert_error(
        &provider("google", "[identity_providers.endpoints]\nemails_endpoint = \"https://api.github.com/user/emails\"\n"),
        "identity_providers[0].endpoints.emails_endpoint",
        "is not used by type google, only by github",
    );
    assert_eq!(
        e.location,
        "usher.toml:7:19: identity_providers[0].endpoints.emails_endpoint"
    );
    assert_error(
        &oidc("[identity_providers.endpoints]\nissuer = \"https://other.contoso.com\"\n"),
        "identity_providers[0].endpoints.issuer",
        "type oidc takes issuer at the top level of the provider's entry, not under endpoints",
    );
    assert_error(
        &provider(
            "github",
            "[identity_providers.endpoints]\nissuer = \"https://github.contoso.com\"\n",
        ),
        "identity_providers[0].endpoints.issuer",
        "is not used by type github, only by google, microsoft",
    );
    assert_error(
        &provider(
            "facebook",
            "[identity_providers.endpoints]\njwks_uri = \"https://www.facebook.com/keys\"\n",
        ),
        "identity_providers[0].endpoints.jwks_uri",
        "is not used by type facebook",
    );
    assert_error(
        &oauth2("[identity_providers.endpoints]\ntoken_endpoint = \"https://id.fabrikam.com/v2/token\"\n"),
        "identity_providers[0].endpoints.token_endpoint",
        "type oauth2 takes token_endpoint at the top level of the provider's entry, not under endpoints",
    );
    assert_error(
        &provider("github", "[identity_providers.endpoints]\nuserinfo_endpoint = \"http://github.contoso.com/api/v3/user\"\n"),
        "identity_providers[0].endpoints.userinfo_endpoint",
        "federation.allow_insecure_endpoints",
    );
    assert_error(
        &provider("github", "[identity_providers.endpoints]\ntoken_endpoint = \"https://u:p@github.contoso.com/token\"\n"),
        "identity_providers[0].endpoints.token_endpoint",
        "user name or password",
    );
    assert_error(
        &provider(
            "google",
            "[identity_providers.endpoints]\nissuer = \"https://accounts.google.test/?x=1\"\n",
        ),
        "identity_providers[0].endpoints.issuer",
        "must not have a query",
    );
    assert_error(
        &provider(
            "github",
            "[identity_providers.endpoints]\nuser_endpoint = \"https://github.contoso.com/user\"\n",
        ),
        "identity_providers[0].endpoints.user_endpoint",
        "unknown key `user_endpoint`",
    );
    assert_error(
        &provider("github", "endpoints = \"https://github.contoso.com\"\n"),
        "identity_providers[0].endpoints",
        "expected a table",
    );
}

#[test]
fn claim_mapping_rules() {
    let with_attributes = |fields: &str| {
        format!(
            "[[attributes]]\nname = \"ShoeSize\"\ndata_type = \"int\"\n[[attributes]]\nname = \"Tier\"\ndata_type = \"string\"\n{}",
            provider("google", &format!("[identity_providers.claims]\n{fields}"))
        )
    };
    let e = assert_error(
        &with_attributes("shoe = \"shoe_size\"\n"),
        "identity_providers[0].claims.shoe",
        "unknown attribute `shoe`",
    );
    assert_eq!(
        e.location,
        "usher.toml:13:8: identity_providers[0].claims.shoe"
    );
    assert_error(
        &with_attributes("extension_ShoeSize = \"shoe_size\"\n"),
        "identity_providers[0].claims.extension_ShoeSize",
        "is a int attribute; claims fill string attributes only",
    );
    assert_error(
        &with_attributes("givenName = \"given_name\"\nGIVENNAME = \"first\"\n"),
        "identity_providers[0].claims.GIVENNAME",
        "givenName is mapped twice (first at usher.toml:13:13: identity_providers[0].claims.givenName)",
    );
    assert_error(
        &with_attributes("city = \"address locality\"\n"),
        "identity_providers[0].claims.city",
        "must not contain spaces",
    );
    assert_error(
        &with_attributes("city = 5\n"),
        "identity_providers[0].claims.city",
        "expected a claim name (a string), found an integer",
    );
    assert_error(
        &provider("google", "claims = [\"email\"]\n"),
        "identity_providers[0].claims",
        "expected a table of attribute id = \"claim\"",
    );
    assert_error(
        &provider("github", "claims = { email = \"email\" }\n"),
        "identity_providers[0].claims.email",
        "GitHub's address comes from /user/emails",
    );
    assert_error(
        &provider("github", "claims = { emailVerified = \"verified\" }\n"),
        "identity_providers[0].claims.emailVerified",
        "/user/emails",
    );
    assert_error(
        &provider("facebook", "claims = { emailverified = \"verified\" }\n"),
        "identity_providers[0].claims.emailverified",
        "Facebook's addresses count as verified",
    );
    // email may be remapped; a custom attribute by its short or full name; the
    // result is merged over the kind's defaults, under the ids as stored.
    let config = load_str(
        &with_attributes(
            "Email = \"mail\"\nextension_tier = \"tier\"\nCITY = \"address.locality\"\n",
        ),
        &[],
    )
    .unwrap();
    let mapping = &config.identity_providers[0].claim_mapping;
    let app_id = &config.tenant.extensions_app_id;
    let mut expected = usher_domain::identity_provider::ClaimMapping::defaults_for(
        &usher_domain::identity_provider::ProviderKind::Google,
    );
    expected.insert("email", "mail");
    expected.insert(format!("extension_{app_id}_Tier"), "tier");
    expected.insert("city", "address.locality");
    assert_eq!(*mapping, expected);
    let full = format!("extension_{app_id}_Tier");
    let config = load_str(&with_attributes(&format!("{full} = \"tier\"\n")), &[]).unwrap();
    assert_eq!(
        config.identity_providers[0].claim_mapping.claim_for(&full),
        Some("tier")
    );
}

#[test]
fn federation_settings_and_their_override() {
    let insecure = provider("oidc", "issuer = \"http://127.0.0.1:9000\"\n");
    assert_error(&insecure, "identity_providers[0].issuer", "must use https");
    let config = load_str(
        &format!("[federation]\nallow_insecure_endpoints = true\n{insecure}"),
        &[],
    )
    .unwrap();
    assert!(config.federation.allow_insecure_endpoints);
    // The environment wins over the file, both ways.
    let config = load_str(
        &insecure,
        &[("USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS", "true")],
    )
    .unwrap();
    assert!(config.federation.allow_insecure_endpoints);
    assert_eq!(
        config.identity_providers[0].kind,
        usher_domain::identity_provider::ProviderKind::Oidc {
            issuer: "http://127.0.0.1:9000".into()
        }
    );
    let errs = errors(
        &format!("[federation]\nallow_insecure_endpoints = true\n{insecure}"),
        &[("USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS", "off")],
    );
    error_at(&errs, "identity_providers[0].issuer");
    let config = load_str(
        "[federation]\nallow_insecure_endpoints = true\n",
        &[("USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS", "0")],
    )
    .unwrap();
    assert!(!config.federation.allow_insecure_endpoints);
    let errs = errors(
        "",
        &[("USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS", "sometimes")],
    );
    assert!(error_at(
        &errs,
        "environment variable USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS"
    )
    .message
    .contains("true or false"));
    let errs = errors("", &[("USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS", "")]);
    assert!(error_at(
        &errs,
        "environment variable USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS"
    )
    .message
    .contains("empty"));

    let config = load_str("[federation]\ntimeout_ms = 100\n", &[]).unwrap();
    assert_eq!(
        config.federation.timeout,
        std::time::Duration::from_millis(100)
    );
    let e = assert_error(
        "[federation]\ntimeout_ms = 60001\n",
        "federation.timeout_ms",
        "between 100 and 60000 ms",
    );
    assert_eq!(e.location, "usher.toml:2:14: federation.timeout_ms");
    assert_error(
        "[federation]\ntimeout_ms = 99\n",
        "federation.timeout_ms",
        "between 100 and 60000 ms",
    );
    assert_error(
        "[federation]\ntimeout = 100\n",
        "federation.timeout",
        "did you mean `timeout_ms`",
    );
    assert_error(
        "[federation]\nallow_insecure_endpoints = \"yes\"\n",
        "federation.allow_insecure_endpoints",
        "expected true or false",
    );
}

#[test]
fn user_flows_offer_declared_providers() {
    let flow = |providers: &str| {
        format!(
            "{}{}[[user_flows]]\nid = \"a\"\nidentity_providers = {providers}\n",
            provider("google", "").replace("\"p\"", "\"Google-OAUTH\""),
            oidc("").replace("\"p\"", "\"contoso\""),
        )
    };
    // Matched without regard to case, stored as declared; built-ins as they are spelt.
    let config = load_str(
        &flow("[\"emailpassword-oauth\", \"google-oauth\", \"CONTOSO\", \"EmailOtpSignup-OAUTH\"]"),
        &[],
    )
    .unwrap();
    assert_eq!(
        config.tenant.user_flows[0].identity_providers,
        [
            "EmailPassword-OAUTH",
            "Google-OAUTH",
            "contoso",
            "EmailOtpSignup-OAUTH"
        ]
    );
    // A flow may offer upstream providers only.
    let config = load_str(&flow("[\"contoso\"]"), &[]).unwrap();
    assert_eq!(config.tenant.user_flows[0].identity_providers, ["contoso"]);
    assert!(!config.tenant.user_flows[0].allows_local_accounts());

    let e = assert_error(
        &flow("[\"Google-OAUTH\", \"Facebook-OAUTH\"]"),
        "user_flows[0].identity_providers[1]",
        "identity provider `Facebook-OAUTH` is not configured (available: EmailPassword-OAUTH, EmailOtpSignup-OAUTH, Google-OAUTH, contoso); upstream providers are declared under [[identity_providers]]",
    );
    assert_eq!(
        e.location,
        "usher.toml:14:39: user_flows[0].identity_providers[1]"
    );
    assert_error(
        &flow("[\"Google-OAUTH\", \"GOOGLE-OAUTH\"]"),
        "user_flows[0].identity_providers[1]",
        "Google-OAUTH is listed twice",
    );
    // A provider whose entry is wrong is still declared: only the entry is reported.
    let errs = errors(
        &format!(
            "{}[[user_flows]]\nid = \"a\"\nidentity_providers = [\"p\"]\n",
            provider("oidc", "")
        ),
        &[],
    );
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    error_at(&errs, "identity_providers[0].issuer");
    // The demo flow is unchanged by declared providers.
    let config = load_str(&format!("demo = true\n{}", provider("google", "")), &[]).unwrap();
    let demo = config.tenant.user_flow(DEMO_USER_FLOW_ID).unwrap();
    assert_eq!(demo.identity_providers, ["EmailPassword-OAUTH"]);
}

#[test]
fn provider_secrets_never_appear_in_debug_output() {
    let text = format!(
        "{}{}",
        provider("google", "").replace("{ value = \"provider-secret\" }", "{ env = \"G\" }"),
        oauth2("").replace("\"p\"", "\"o\"").replace(
            "https://api.fabrikam.com/me",
            "https://api.fabrikam.com/me?api_key=userinfo-key-value"
        ),
    );
    let config = load_str(&text, &[("G", "google-secret-value")]).unwrap();
    for debug in [format!("{config:?}"), format!("{config:#?}")] {
        for secret in [
            "google-secret-value",
            "provider-secret",
            "userinfo-key-value",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked into {debug}");
        }
        assert!(
            debug.contains("https://api.fabrikam.com/me?api_key=******"),
            "{debug}"
        );
        assert!(debug.contains("identity_issuer"), "{debug}");
    }
    assert!(format!("{config:?}").contains("client_secret: ******"));
}

#[test]
fn provider_errors_are_all_reported_in_one_pass() {
    let text = r#"
[federation]
timeout_ms = 0
[[identity_providers]]
id = "a b"
type = "google"
client_id = ""
client_secret = "in-the-clear"
issuer = "https://accounts.google.com"
scopes = ["email"]
[identity_providers.claims]
nickname = "nick"
[identity_providers.endpoints]
emails_endpoint = "https://api.github.com/user/emails"
[[identity_providers]]
id = "o"
type = "oauth2"
client_id = "c"
client_secret = { env = "MISSING" }
[[user_flows]]
id = "a"
identity_providers = ["o", "missing"]
"#;
    let errs = errors(
        text,
        &[("USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS", "maybe")],
    );
    for path in [
        "federation.timeout_ms",
        "identity_providers[0].id",
        "identity_providers[0].client_id",
        "identity_providers[0].client_secret",
        "identity_providers[0].issuer",
        "identity_providers[0].scopes",
        "identity_providers[0].claims.nickname",
        "identity_providers[0].endpoints.emails_endpoint",
        "identity_providers[1].client_secret.env",
        "identity_providers[1].authorization_endpoint",
        "identity_providers[1].token_endpoint",
        "identity_providers[1].userinfo_endpoint",
        "identity_providers[1].subject_claim",
        "identity_providers[1].identity_issuer",
        "user_flows[0].identity_providers[1]",
        "environment variable USHER_FEDERATION_ALLOW_INSECURE_ENDPOINTS",
    ] {
        error_at(&errs, path);
    }
    assert_eq!(errs.len(), 16, "{}", ConfigErrors(errs.clone()));
    assert!(!ConfigErrors(errs).to_string().contains("in-the-clear"));
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
            "[connector_settings]", "allow_insecure_targets = true", "[[connectors]]",
            "id = \"a\"", "target_url = \"http://[::1]\"", "timeout_ms = 99999",
            "budget_ms = 1", "signing_secrets = [{ value = \"whsec_\" }, \"x\", {}]",
            "[connectors.breaker]", "open_seconds = 0", "[connectors.authentication]",
            "type = \"basic\"", "type = \"clientCertificate\"", "password = { env = \"\" }",
            "value = { file = \"/\", value = \"\" }", "header = \"Host\"",
            "[[connectors.authentication.certificates]]", "pkcs12_file = \"/\"",
            "pem_file = \"\"", "uploaded_at = 1979-05-27", "certificates = [1]",
            "[federation]", "allow_insecure_endpoints = true", "timeout_ms = 0",
            "[[identity_providers]]", "type = \"oidc\"", "type = \"microsoft\"",
            "type = \"oauth2\"", "type = \"github\"", "id = \"EmailPassword-OAUTH\"",
            "client_id = \"c\"", "client_secret = { value = \"s\" }", "issuer = \"http://[::1]\"",
            "tenant = \"\"", "scopes = [\"email\", \"\"]", "subject_claim = \".\"",
            "identity_issuer = \"github.com\"", "token_endpoint = \"https://a\"",
            "[identity_providers.claims]", "email = \"mail\"", "emailVerified = 1",
            "extension_A = \"a.b\"", "[identity_providers.endpoints]", "jwks_uri = \"x\"",
            "identity_providers = [\"a\", \"A\", \"EmailOtpSignup-OAUTH\"]",
        ]),
        0..40,
    )) {
        let _ = load_str(&lines.join("\n"), &[("USHER_DEMO", "true")]);
    }
}

#[test]
fn user_flows_may_require_approval() {
    let config = load_str(
        "[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\nrequires_approval = true\n[[user_flows]]\nid = \"b\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n",
        &[],
    )
    .unwrap();
    assert!(
        config
            .tenant
            .user_flow("B2X_1_a")
            .unwrap()
            .requires_approval
    );
    assert!(
        !config
            .tenant
            .user_flow("B2X_1_b")
            .unwrap()
            .requires_approval
    );
}

#[test]
fn three_separate_doors_for_targets() {
    let target = |url: &str| format!("[[connectors]]\nid = \"c\"\ntarget_url = \"{url}\"\n");
    let settings = |keys: &str| format!("[connector_settings]\n{keys}\n");
    // Loopback alone: loopback over https, but neither the private network nor http.
    let loopback = settings("allow_loopback_targets = true");
    load_str(
        &(loopback.clone() + &target("https://127.0.0.1:9000/c")),
        &[],
    )
    .unwrap();
    load_str(
        &(loopback.clone() + &target("https://localhost:9000/c")),
        &[],
    )
    .unwrap();
    assert_error(
        &(loopback.clone() + &target("https://10.0.0.5/c")),
        "connectors[0].target_url",
        "allow_private_network_targets",
    );
    assert_error(
        &(loopback.clone() + &target("http://127.0.0.1:9000/c")),
        "connectors[0].target_url",
        "allow_http_targets",
    );
    // The private network alone does not open loopback.
    let private = settings("allow_private_network_targets = true");
    load_str(&(private.clone() + &target("https://192.168.1.20/c")), &[]).unwrap();
    assert_error(
        &(private + &target("https://[::1]/c")),
        "connectors[0].target_url",
        "allow_loopback_targets",
    );
    // http alone: to public hosts only.
    let http = settings("allow_http_targets = true");
    load_str(&(http.clone() + &target("http://api.contoso.com/c")), &[]).unwrap();
    assert_error(
        &(http + &target("http://127.0.0.1/c")),
        "connectors[0].target_url",
        "allow_loopback_targets",
    );
    // A new key written next to the deprecated one decides its own door.
    let config = load_str(
        &settings("allow_insecure_targets = true\nallow_private_network_targets = false"),
        &[],
    )
    .unwrap();
    let s = &config.connector_settings;
    assert!(s.allow_http_targets && s.allow_loopback_targets);
    assert!(!s.allow_private_network_targets);
    assert_error(
        &settings("allow_loopback_targets = \"yes\""),
        "connector_settings.allow_loopback_targets",
        "",
    );
}

fn test_ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn extra_root_certificates_per_connector_and_for_all() {
    let ca = test_ca_pem();
    let other = test_ca_pem();
    let dir = std::env::temp_dir().join(format!("usher-roots-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("company-ca.pem");
    std::fs::write(&file, format!("# company CA\n{ca}{other}")).unwrap();
    let text = format!(
        "[connector_settings]\nextra_root_certificates_file = {file:?}\n\
         [[connectors]]\nid = \"c\"\ntarget_url = \"https://api.contoso.com/c\"\n\
         extra_root_certificates = \"\"\"\n{ca}\"\"\"\n\
         [[connectors]]\nid = \"d\"\ntarget_url = \"https://api.contoso.com/d\"\n",
        file = file.display().to_string()
    );
    let config = load_str(&text, &[]).unwrap();
    assert_eq!(config.connector_settings.extra_root_certificates.len(), 2);
    assert_eq!(
        config.connectors[0].extra_root_certificates,
        usher_domain::rules::parse_root_certificates(&ca).unwrap()
    );
    assert!(config.connectors[1].extra_root_certificates.is_empty());

    let connector = |extra: &str| {
        format!("[[connectors]]\nid = \"c\"\ntarget_url = \"https://api.contoso.com/c\"\n{extra}\n")
    };
    assert_error(
        &connector("extra_root_certificates = \"not a certificate\""),
        "connectors[0].extra_root_certificates",
        "at least one PEM certificate",
    );
    assert_error(
        &connector("extra_root_certificates = \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\""),
        "connectors[0].extra_root_certificates",
        "private key",
    );
    assert_error(
        &connector(&format!(
            "extra_root_certificates = \"x\"\nextra_root_certificates_file = {:?}",
            file.display().to_string()
        )),
        "connectors[0].extra_root_certificates_file",
        "not both",
    );
    assert_error(
        "[connector_settings]\nextra_root_certificates_file = \"/no/such/ca.pem\"\n",
        "connector_settings.extra_root_certificates_file",
        "",
    );
    assert_error(
        "[connector_settings]\nextra_root_certificates = [\"a\"]\n",
        "connector_settings.extra_root_certificates",
        "",
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A custom authentication extension `x` on api.contoso.com with `fields` added.
fn extension_toml(fields: &str) -> String {
    format!(
        "[[connectors]]\nid = \"x\"\ncontract = \"custom-authentication-extension\"\ntarget_url = \"https://api.contoso.com/x\"\n{fields}[connectors.authentication]\ntype = \"issuedToken\"\nresource_id = \"api://api.contoso.com/4f1b7d6e\"\n"
    )
}

#[test]
fn extensions_have_their_contracts_defaults_and_limits() {
    let config = load_str(&extension_toml("claims_for_token = [\"tier\"]\n"), &[]).unwrap();
    let c = &config.connectors[0];
    assert_eq!(
        c.contract,
        usher_domain::ConnectorContract::CustomAuthenticationExtension {
            claims_for_token: vec!["tier".into()],
            event: None,
        }
    );
    assert_eq!(c.timeout, std::time::Duration::from_secs(1));
    assert_eq!(c.retries, 1);
    assert_eq!(c.budget, std::time::Duration::from_secs(2));
    assert_eq!(
        c.authentication,
        ConnectorAuthentication::IssuedToken {
            resource_id: "api://api.contoso.com/4f1b7d6e".into(),
            caller_id: usher_domain::ENTRA_EXTENSION_CALLER_ID.into(),
        }
    );
    assert_error(
        &extension_toml("timeout_ms = 5000\n"),
        "connectors[0].timeout_ms",
        "200",
    );
    assert_error(
        &extension_toml("retries = 2\n"),
        "connectors[0].retries",
        "1",
    );
    assert_error(
        &connector("contract = \"v2\"\n"),
        "connectors[0].contract",
        "custom-authentication-extension",
    );
    assert_error(
        &connector("claims_for_token = [\"a\"]\n"),
        "connectors[0].claims_for_token",
        "belongs to custom authentication extensions",
    );
    assert_error(
        &authentication("type = \"issuedToken\"\nresource_id = \"https://api.contoso.com\"\n"),
        "connectors[0].authentication.resource_id",
        "api://",
    );
    assert_error(
        &authentication("type = \"issuedToken\"\nresource_id = \"api://elsewhere.example/a\"\n"),
        "connectors[0].authentication.resource_id",
        "another host",
    );
}

#[test]
fn each_contract_serves_only_its_steps() {
    let flow = |slots: &str| {
        format!(
            "{}{}[[user_flows]]\nid = \"a\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[user_flows.connectors]\n{slots}",
            extension_toml(""),
            declare(&["old", "old2"])
        )
    };
    let config = load_str(
        &flow("attribute_collection_start = [\"old\", \"x\"]\nemail_otp_send = [\"x\"]\npre_token_issuance = [\"old\", \"x\"]\n"),
        &[],
    )
    .unwrap();
    let slots = &config.tenant.user_flows[0].connectors;
    assert_eq!(slots.attribute_collection_start, ["old", "x"]);
    assert_eq!(slots.email_otp_send, ["x"]);
    assert_error(
        &flow("post_federation_signup = [\"x\"]\n"),
        "user_flows[0].connectors.post_federation_signup[0]",
        "no event at post_federation_signup",
    );
    // An extension made for one event serves only it.
    let only_token = flow("attribute_collection_start = [\"x\"]\n").replace(
        "contract = \"custom-authentication-extension\"\n",
        "contract = \"custom-authentication-extension\"\nevent = \"tokenIssuanceStart\"\n",
    );
    assert_error(
        &only_token,
        "user_flows[0].connectors.attribute_collection_start[0]",
        "is an extension for tokenIssuanceStart, not for attribute_collection_start",
    );
    assert_error(
        &flow("email_otp_send = [\"old\"]\n"),
        "user_flows[0].connectors.email_otp_send[0]",
        "cannot deliver codes",
    );
    let second = extension_toml("").replace("id = \"x\"", "id = \"y\"");
    assert_error(
        &format!("{second}{}", flow("email_otp_send = [\"x\", \"y\"]\n")),
        "user_flows[0].connectors.email_otp_send",
        "one connector at most",
    );
}

#[test]
fn event_listeners_name_an_extension_for_their_event() {
    let with = |listener: &str| {
        format!(
            "{}{}[[event_listeners]]\n{listener}",
            extension_toml(""),
            declare(&["old"])
        )
    };
    let config = load_str(
        &with("id = \"tokens\"\nevent = \"tokenIssuanceStart\"\nextension = \"X\"\napplications = [\"app-1\"]\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        config.event_listeners,
        [usher_domain::EventListener {
            id: "tokens".into(),
            step: usher_domain::ConnectorStep::PreTokenIssuance,
            extension_id: "x".into(),
            applications: vec!["app-1".into()],
            priority: 500,
            fall_back_to_mailer: false,
        }]
    );
    assert_error(
        &with("id = \"l\"\nevent = \"attributeCollectionStart\"\nextension = \"x\"\napplications = [\"a\"]\n"),
        "event_listeners[0].event",
        "tokenIssuanceStart or emailOtpSend",
    );
    assert_error(
        &with(
            "id = \"l\"\nevent = \"emailOtpSend\"\nextension = \"old\"\napplications = [\"a\"]\n",
        ),
        "event_listeners[0].extension",
        "not a custom authentication extension",
    );
    assert_error(
        &with("id = \"l\"\nevent = \"emailOtpSend\"\nextension = \"x\"\n"),
        "event_listeners[0].applications",
        "at least one application",
    );
    assert_error(
        &with("id = \"l\"\nevent = \"tokenIssuanceStart\"\nextension = \"x\"\napplications = [\"a\"]\nfall_back_to_mailer = true\n"),
        "event_listeners[0].fall_back_to_mailer",
        "emailOtpSend",
    );
}
