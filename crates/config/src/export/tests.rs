//! Exporting a tenant and loading the export: the same tenant comes back, with secrets
//! written as values or as environment references, and the demo as `demo = true`.

use std::{path::Path, time::Duration};

use usher_domain::identity_provider::ClaimMapping;
use usher_domain::{
    AttributeAssignment, AttributeOption, BreakerSettings, ClientCertificate, ConnectorSlots,
    LocalizedText, Secret, UserInputType,
};

use super::*;
use crate::{
    load, load_tenant_text, load_text,
    tests::{
        assert_provider, env_of, example_env, example_path, load_str, Scratch, WEBHOOK_SECRET,
    },
    DeclaredTenant, DEMO_CLIENT_ID,
};

const ISSUER: &str = "https://login.contoso.com";

/// A PKCS#12 file's bytes, as far as the loader cares: binary, not UTF-8.
const PFX_A: &[u8] = &[
    0x30, 0x82, 0x0a, 0x00, 0x00, 0xff, 0xfe, 0x80, b'"', b'\\', 0x0a,
];
const PFX_B: &[u8] = &[0x30, 0x82, 0x01, 0x02, 0x03, 0x04, 0xc3, 0x28];
const PEM_CHAIN: &str = "-----BEGIN CERTIFICATE-----\nMIIBleaf\"quoted\"\\back\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n";
const PEM_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n";
const QUIET_SECRET_1: &str = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const QUIET_SECRET_2: &str = "whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

/// Two CA certificates (made once, so that every export of the rich tenant is the
/// same), as the rules store them.
fn company_roots() -> Vec<String> {
    static ROOTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let pem = |name: &str| {
                let key = rcgen::KeyPair::generate().unwrap();
                let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
                params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, name);
                params.self_signed(&key).unwrap().pem()
            };
            let bundle = pem("Contoso Root") + &pem("Contoso Issuing");
            crate::rules::parse_root_certificates(&bundle).unwrap()
        })
        .clone()
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    crate::rules::parse_uploaded_at(s).unwrap()
}

/// The example file's tenant, and on top: connectors of every authentication kind
/// (PKCS#12 with and without a password, PEM), non-default connector settings, every
/// provider kind with scopes, endpoints, client auth and claims, a flow requiring
/// approval and one with every kind of page attribute and no claims.
fn rich() -> Config {
    let mut config = match load(Some(&example_path()), &example_env()) {
        Ok(c) => c,
        Err(e) => panic!("the example does not load:\n{e}"),
    };
    let custom = |name: &str| format!("extension_{}_{name}", config.tenant.extensions_app_id);

    let mut fraud = ConnectorDefinition::new("fraud-check", "https://fraud.contoso.com/check");
    fraud.authentication = ConnectorAuthentication::ClientCertificate {
        certificates: vec![
            ClientCertificate {
                source: CertificateSource::Pkcs12 {
                    der: PFX_A.to_vec(),
                    password: Secret::new("pfx-password"),
                },
                uploaded_at: at("2026-01-15T00:00:00Z"),
            },
            ClientCertificate {
                source: CertificateSource::Pkcs12 {
                    der: PFX_B.to_vec(),
                    password: Secret::new(""),
                },
                uploaded_at: at("2026-02-01T12:34:56.123456789Z"),
            },
            ClientCertificate {
                source: CertificateSource::Pem {
                    chain: PEM_CHAIN.into(),
                    key: Secret::new(PEM_KEY),
                },
                uploaded_at: std::time::SystemTime::UNIX_EPOCH
                    .checked_add(Duration::from_secs(2))
                    .unwrap()
                    .into(),
            },
        ],
    };
    let mut quiet = ConnectorDefinition::new("quiet", "https://quiet.contoso.com/hook?code=abc");
    quiet.display_name = "Quiet \"hook\"".into();
    quiet.signing_secrets = vec![Secret::new(QUIET_SECRET_1), Secret::new(QUIET_SECRET_2)];
    quiet.timeout = Duration::from_millis(250);
    quiet.extra_root_certificates = company_roots();
    quiet.retries = 0;
    quiet.budget = Duration::from_millis(750);
    quiet.failure_policy = FailurePolicy::Continue;
    quiet.lenient = true;
    quiet.breaker = BreakerSettings {
        failure_threshold: 7,
        open_for: Duration::from_secs(90),
    };
    let mut plain = ConnectorDefinition::new("plain-token", "https://plain.contoso.com/api");
    plain.authentication = ConnectorAuthentication::OAuthClientCredentials {
        token_url: "https://auth.contoso.com/token".into(),
        client_id: "plain".into(),
        client_secret: Secret::new("plain-token-secret"),
        scope: None,
    };
    let mut prefill = ConnectorDefinition::extension(
        "prefill-ext",
        "https://ext.contoso.com/start",
        "api://ext.contoso.com/4f1b7d6e",
    );
    prefill.contract = usher_domain::ConnectorContract::CustomAuthenticationExtension {
        claims_for_token: vec!["tier".into(), "groups".into()],
        event: None,
    };
    prefill.description = "Prefills and enriches".into();
    prefill.timeout = Duration::from_millis(1500);
    prefill.retries = 0;
    prefill.authentication = ConnectorAuthentication::IssuedToken {
        resource_id: "api://ext.contoso.com/4f1b7d6e".into(),
        caller_id: "custom-caller".into(),
    };
    config.connectors.extend([fraud, quiet, plain, prefill]);
    config.event_listeners.push(usher_domain::EventListener {
        id: "otp-for-partners".into(),
        step: usher_domain::ConnectorStep::EmailOtpSend,
        extension_id: "prefill-ext".into(),
        applications: vec!["partner-portal".into(), "other-app".into()],
        priority: 10,
        fall_back_to_mailer: true,
    });

    let providers = &mut config.identity_providers;
    let microsoft = &mut providers[1];
    microsoft.kind = ProviderKind::Microsoft {
        tenant: "organizations".into(),
    };
    microsoft.client_auth = Some(ClientAuthMethod::ClientSecretPost);
    microsoft.endpoints.issuer =
        Some("https://login.microsoftonline.com/organizations/v2.0".into());
    microsoft.endpoints.jwks_uri =
        Some("https://login.microsoftonline.com/organizations/discovery/v2.0/keys".into());
    providers[2].endpoints.userinfo_endpoint = Some("https://graph.facebook.com/v24.0/me".into());
    let partners = &mut providers[4];
    partners.scopes = vec!["openid".into(), "email".into()];
    partners
        .claim_mapping
        .insert(custom("Interests"), "interests");
    partners
        .claim_mapping
        .insert(ClaimMapping::EMAIL_VERIFIED, "email_checked");
    partners.endpoints.jwks_uri = Some("https://partners.contoso.com/keys".into());

    config.tenant.user_flows[0].requires_approval = true;
    config.tenant.user_flows.push(UserFlow {
        id: "B2X_1_otp".into(),
        identity_providers: vec![
            "EmailOtpSignup-OAUTH".into(),
            "fabrikam".into(),
            "contoso-partners".into(),
        ],
        attributes: vec![
            AttributeAssignment {
                attribute_id: "city".into(),
                label: None,
                is_optional: true,
                input_type: UserInputType::TextBox,
                options: Vec::new(),
                is_claim: false,
            },
            AttributeAssignment {
                attribute_id: custom("ShoeSize"),
                label: Some(LocalizedText::PerLocale(
                    [("en", "Size"), ("nb", "Størrelse"), ("pt-BR", "Tamanho")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                )),
                is_optional: false,
                input_type: UserInputType::RadioSingleSelect,
                options: vec![
                    AttributeOption {
                        name: LocalizedText::PerLocale(
                            [("en", "38 (small)"), ("nb", "38 (liten)")]
                                .into_iter()
                                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                                .collect(),
                        ),
                        value: "38".into(),
                        is_default: true,
                    },
                    AttributeOption {
                        name: LocalizedText::Plain("39".into()),
                        value: "39".into(),
                        is_default: false,
                    },
                ],
                is_claim: true,
            },
            AttributeAssignment {
                attribute_id: custom("Newsletter"),
                label: Some(LocalizedText::Plain("Send me \"news\" \\ ✉".into())),
                is_optional: false,
                input_type: UserInputType::CheckboxSingleSelect,
                options: Vec::new(),
                is_claim: true,
            },
        ],
        extra_claims: Vec::new(),
        connectors: ConnectorSlots {
            post_federation_signup: vec!["fraud-check".into()],
            post_attribute_collection: Vec::new(),
            pre_token_issuance: vec![
                "quiet".into(),
                "enrich-token".into(),
                "plain-token".into(),
                "prefill-ext".into(),
            ],
            attribute_collection_start: vec!["prefill-ext".into(), "quiet".into()],
            email_otp_send: vec!["prefill-ext".into()],
            pre_account_recovery: vec!["quiet".into()],
            on_profile_update: vec!["quiet".into()],
        },
        requires_approval: false,
    });
    config.tenant.applications.push(Application {
        client_id: "otp-app".into(),
        name: "OTP".into(),
        redirect_uris: vec!["https://otp.contoso.com/callback".into()],
        post_logout_redirect_uris: Vec::new(),
        client_type: ClientType::Public,
        user_flow_id: "B2X_1_otp".into(),
        roles: Vec::new(),
    });
    config
}

/// Every secret of [`rich`], with the variable the env-reference export names for it,
/// in the order the file has them. The PKCS#12 file without a password has none.
fn rich_secrets() -> Vec<(&'static str, String)> {
    vec![
        (
            "USHER_SECRET_CONNECTOR_APPROVAL_CHECK_SIGNING_SECRETS_0",
            WEBHOOK_SECRET.into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_APPROVAL_CHECK_AUTHENTICATION_PASSWORD",
            "api-password-value".into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_REQUEST_APPROVAL_AUTHENTICATION_VALUE",
            "api-key-value".into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_ENRICH_TOKEN_AUTHENTICATION_CLIENT_SECRET",
            "claims-client-secret-value".into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_FRAUD_CHECK_AUTHENTICATION_CERTIFICATES_0_PKCS12_BASE64",
            STANDARD.encode(PFX_A),
        ),
        (
            "USHER_SECRET_CONNECTOR_FRAUD_CHECK_AUTHENTICATION_CERTIFICATES_0_PASSWORD",
            "pfx-password".into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_FRAUD_CHECK_AUTHENTICATION_CERTIFICATES_1_PKCS12_BASE64",
            STANDARD.encode(PFX_B),
        ),
        (
            "USHER_SECRET_CONNECTOR_FRAUD_CHECK_AUTHENTICATION_CERTIFICATES_2_KEY",
            PEM_KEY.into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_QUIET_SIGNING_SECRETS_0",
            QUIET_SECRET_1.into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_QUIET_SIGNING_SECRETS_1",
            QUIET_SECRET_2.into(),
        ),
        (
            "USHER_SECRET_CONNECTOR_PLAIN_TOKEN_AUTHENTICATION_CLIENT_SECRET",
            "plain-token-secret".into(),
        ),
        (
            "USHER_SECRET_IDENTITY_PROVIDER_GOOGLE_OAUTH_CLIENT_SECRET",
            "google-client-secret-value".into(),
        ),
        (
            "USHER_SECRET_IDENTITY_PROVIDER_MSASIGNUP_OAUTH_CLIENT_SECRET",
            "microsoft-client-secret-value".into(),
        ),
        (
            "USHER_SECRET_IDENTITY_PROVIDER_FACEBOOK_OAUTH_CLIENT_SECRET",
            "facebook-app-secret-value".into(),
        ),
        (
            "USHER_SECRET_IDENTITY_PROVIDER_GITHUB_OAUTH_CLIENT_SECRET",
            "github-client-secret-value".into(),
        ),
        (
            "USHER_SECRET_IDENTITY_PROVIDER_CONTOSO_PARTNERS_CLIENT_SECRET",
            "partners-client-secret-value".into(),
        ),
        (
            "USHER_SECRET_IDENTITY_PROVIDER_FABRIKAM_CLIENT_SECRET",
            "fabrikam-client-secret-value".into(),
        ),
    ]
}

fn exported(config: &Config, secrets: SecretExport) -> Export {
    match export_toml(&ExportInput::from_config(config), secrets) {
        Ok(e) => e,
        Err(e) => panic!("the tenant cannot be exported:\n{e}"),
    }
}

/// Loads an export as a configuration file, with an issuer (the export has none).
fn reload(export: &Export, issuer: &str, env: &dyn Fn(&str) -> Option<String>) -> Config {
    let text = format!("issuer = {}\n{}", quote(issuer), export.toml);
    match load_text(Some(Path::new("exported.toml")), &text, env) {
        Ok(c) => c,
        Err(e) => panic!("the export does not load:\n{e}\n\n{}", export.toml),
    }
}

/// Loads an export as `usher apply` does, for a server with this issuer.
fn apply(export: &Export, issuer: &str, env: &dyn Fn(&str) -> Option<String>) -> DeclaredTenant {
    let server = load_str(&format!("issuer = {}\n", quote(issuer)), &[]).unwrap();
    match load_tenant_text(Path::new("exported.toml"), &export.toml, &server, env) {
        Ok(t) => t,
        Err(e) => panic!("the export does not apply:\n{e}\n\n{}", export.toml),
    }
}

/// Every field of the tenant, connectors and providers compared, secrets by value.
fn assert_same(
    tenant: &Tenant,
    connectors: &[ConnectorDefinition],
    providers: &[ProviderConfig],
    expected: &Config,
) {
    let e = &expected.tenant;
    assert_eq!(tenant.extensions_app_id, e.extensions_app_id);
    assert_eq!(tenant.custom_attributes, e.custom_attributes);
    assert_eq!(tenant.user_flows.len(), e.user_flows.len());
    for (a, b) in tenant.user_flows.iter().zip(&e.user_flows) {
        assert_eq!(a, b);
    }
    assert_eq!(tenant.applications.len(), e.applications.len());
    for (a, b) in tenant.applications.iter().zip(&e.applications) {
        assert_eq!(a, b);
    }
    assert_eq!(tenant, e);
    assert_eq!(connectors.len(), expected.connectors.len());
    for (a, b) in connectors.iter().zip(&expected.connectors) {
        assert_eq!(a, b, "{}", b.id);
    }
    assert_eq!(providers.len(), expected.identity_providers.len());
    for (a, b) in providers.iter().zip(&expected.identity_providers) {
        assert_provider(a, b);
    }
}

fn assert_reloads(config: &Config, export: &Export, env: &dyn Fn(&str) -> Option<String>) {
    let loaded = reload(export, &config.issuer, env);
    assert_same(
        &loaded.tenant,
        &loaded.connectors,
        &loaded.identity_providers,
        config,
    );
    let applied = apply(export, &config.issuer, env);
    assert_same(
        &applied.tenant,
        &applied.connectors,
        &applied.identity_providers,
        config,
    );
}

#[test]
fn a_rich_tenant_round_trips_with_its_secrets_as_values() {
    let config = rich();
    let export = exported(&config, SecretExport::Values);
    assert!(export.required_env.is_empty());
    assert_reloads(&config, &export, &|_| None);

    // The tenant only: no server setting at the top level.
    let table: toml::Table = toml::from_str(&export.toml).unwrap();
    let keys: Vec<&str> = table.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "applications",
            "attributes",
            "connectors",
            "demo",
            "event_listeners",
            "identity_providers",
            "tenant",
            "user_flows"
        ]
    );
    assert!(export.toml.contains("\ndemo = false\n"));
    // Each secret is in the file as it is, the PKCS#12 files as base64.
    for (_, secret) in rich_secrets() {
        assert!(
            export
                .toml
                .contains(&format!("{{ value = {} }}", quote(&secret))),
            "{secret}"
        );
    }
    // A confidential application's secret is its stored hash, not a plaintext one.
    let ClientType::Confidential { secret_hash } = &config.tenant.applications[0].client_type
    else {
        panic!()
    };
    assert!(export
        .toml
        .contains(&format!("client_secret_hash = {}", quote(secret_hash))));
    assert!(!export.toml.contains("contoso-web-secret-value"));
    // Custom attributes by their short names; the PEM chain readable, line by line.
    assert!(export.toml.contains("id = \"extension_ShoeSize\""));
    assert!(export
        .toml
        .contains("\nextension_Interests = \"interests\"\n"));
    assert!(export
        .toml
        .contains("pem = \"\"\"\n-----BEGIN CERTIFICATE-----\nMIIBleaf\\\"quoted\\\"\\\\back\n"));
    assert!(export
        .toml
        .contains("uploaded_at = \"2026-02-01T12:34:56.123456789Z\""));
    // The debug output never shows the text.
    assert!(!format!("{export:?}").contains("api-password-value"));
}

#[test]
fn env_references_name_every_secret_and_load_once_they_are_set() {
    let config = rich();
    let export = exported(&config, SecretExport::EnvReferences);
    let secrets = rich_secrets();
    let names: Vec<&str> = secrets.iter().map(|(n, _)| *n).collect();
    assert_eq!(export.required_env, names);

    // No secret is in the file, in any form.
    for (_, secret) in &secrets {
        assert!(!export.toml.contains(secret.as_str()), "{secret}");
        assert!(!export.toml.contains(&quote(secret)), "{secret}");
    }
    for leaked in ["api-password-value", "MIIEkey", "pfx-password", "whsec_"] {
        assert!(!export.toml.contains(leaked), "{leaked}");
    }
    // (Options are `{ value = "38", … }` too; secret references follow a key.)
    assert!(!export.toml.contains("= { value ="));
    for name in &names {
        assert!(
            export.toml.contains(&format!("{{ env = \"{name}\" }}")),
            "{name}"
        );
    }

    // Without the variables, every one is reported.
    let text = format!("issuer = \"{ISSUER}\"\n{}", export.toml);
    let errors = match load_text(Some(Path::new("exported.toml")), &text, &|_| None) {
        Ok(_) => panic!("loaded without its secrets"),
        Err(e) => e.0,
    };
    for name in &names {
        assert!(
            errors
                .iter()
                .any(|e| e.message == format!("environment variable {name} is not set")),
            "{name} is not reported: {}",
            ConfigErrors(errors.clone())
        );
    }
    assert_eq!(
        errors.len(),
        names.len(),
        "{}",
        ConfigErrors(errors.clone())
    );

    // With them, the same tenant; a PKCS#12 file may be given wrapped, as base64
    // prints it.
    let mut pairs: Vec<(&str, String)> = secrets.clone();
    let wrapped: String = STANDARD
        .encode(PFX_A)
        .as_bytes()
        .chunks(4)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    pairs[4].1 = wrapped;
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_reloads(&config, &export, &env_of(&pairs));
}

#[test]
fn exports_are_stable() {
    for secrets in [SecretExport::Values, SecretExport::EnvReferences] {
        let config = rich();
        let first = exported(&config, secrets);
        assert_eq!(exported(&config, secrets), first);
        // Loading the export and exporting again gives the same bytes.
        let env_pairs = rich_secrets();
        let pairs: Vec<(&str, &str)> = env_pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let again = exported(&reload(&first, ISSUER, &env_of(&pairs)), secrets);
        assert_eq!(again.toml, first.toml);
        assert_eq!(again.required_env, first.required_env);
    }
}

#[test]
fn the_demo_is_written_as_demo_true() {
    let config = load(None, &|_| None).unwrap();
    assert!(config.demo);
    let export = exported(&config, SecretExport::Values);
    assert!(export.toml.contains("\ndemo = true\n"), "{}", export.toml);
    assert!(!export.toml.contains("[["), "{}", export.toml);
    let settings: Vec<&str> = export
        .toml
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(
        settings,
        [
            "demo = true",
            "[tenant]",
            &format!(
                "extensions_app_id = \"{}\"",
                config.tenant.extensions_app_id
            ),
        ]
    );
    assert!(export.toml.lines().count() < 30, "{}", export.toml);
    assert_reloads(&config, &export, &|_| None);
    // The demo application is rebuilt with the issuer of the server applying the file.
    let applied = apply(&export, "https://other.contoso.com", &|_| None);
    let app = applied.tenant.application(DEMO_CLIENT_ID).unwrap();
    assert_eq!(
        app.redirect_uris,
        ["https://other.contoso.com/try/callback"]
    );
}

#[test]
fn the_demo_next_to_other_objects() {
    let config = load_str(
        "issuer = \"https://login.contoso.com\"\ndemo = true\n[[user_flows]]\nid = \"partner\"\nidentity_providers = [\"EmailPassword-OAUTH\"]\n[[applications]]\nclient_id = \"tryout\"\ntype = \"public\"\nredirect_uris = [\"https://a.contoso.com/cb\"]\nuser_flow = \"B2X_1_demo\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.tenant.user_flows.len(), 2);
    let export = exported(&config, SecretExport::Values);
    assert!(export.toml.contains("\ndemo = true\n"));
    assert_eq!(export.toml.matches("[[user_flows]]").count(), 1);
    assert_eq!(export.toml.matches("[[applications]]").count(), 1);
    assert!(!export.toml.contains("usher-demo\""));
    assert_reloads(&config, &export, &|_| None);
}

#[test]
fn demo_objects_unlike_the_demos_are_ordinary_ones() {
    // Renamed: no longer the demo's application.
    let mut config = load(None, &|_| None).unwrap();
    config.tenant.applications[0].name = "Our demo".into();
    let export = exported(&config, SecretExport::Values);
    assert!(export.toml.contains("\ndemo = false\n"));
    assert!(export.toml.contains("id = \"B2X_1_demo\""));
    assert!(export.toml.contains("client_id = \"usher-demo\""));
    assert_reloads(&config, &export, &|_| None);

    // Made for another issuer: exported from a server whose issuer has changed, the
    // objects are kept as they are.
    let config = load(None, &|_| None).unwrap();
    let moved = ExportInput {
        issuer: "https://moved.contoso.com",
        ..ExportInput::from_config(&config)
    };
    let moved = export_toml(&moved, SecretExport::Values).unwrap();
    assert!(moved.toml.contains("\ndemo = false\n"));
    let applied = apply(&moved, "https://moved.contoso.com", &|_| None);
    assert_eq!(applied.tenant, config.tenant);

    // Only the flow: written as an ordinary flow.
    let mut config = load(None, &|_| None).unwrap();
    config.tenant.applications.clear();
    let export = exported(&config, SecretExport::Values);
    assert!(export.toml.contains("\ndemo = false\n"));
    assert_reloads(&config, &export, &|_| None);
}

#[test]
fn an_empty_tenant_exports_to_an_empty_one() {
    let config = load_str("", &[]).unwrap();
    let tenant = Tenant {
        extensions_app_id: String::new(),
        custom_attributes: Vec::new(),
        user_flows: Vec::new(),
        applications: Vec::new(),
    };
    let input = ExportInput {
        tenant: &tenant,
        connectors: &[],
        identity_providers: &[],
        event_listeners: &[],
        issuer: &config.issuer,
    };
    let export = export_toml(&input, SecretExport::EnvReferences).unwrap();
    assert!(export.required_env.is_empty());
    let applied = apply(&export, &config.issuer, &|_| None);
    assert!(applied.tenant.user_flows.is_empty());
    assert!(applied.tenant.applications.is_empty());
    assert!(applied.connectors.is_empty());
    assert!(applied.identity_providers.is_empty());
}

#[test]
fn what_the_file_cannot_say_is_refused() {
    let config = rich();
    let mut tenant = config.tenant.clone();
    tenant.custom_attributes[0].id = "extension_0123456789abcdef0123456789abcdef_Size".into();
    tenant.applications[2].client_type = ClientType::Confidential {
        secret_hash: String::new(),
    };
    let mut connectors = config.connectors.clone();
    connectors[0].timeout = Duration::from_micros(1500);
    connectors[1].breaker.open_for = Duration::from_millis(1500);
    let mut providers = config.identity_providers.clone();
    providers[0].claim_mapping.0.remove("surname");
    let input = ExportInput {
        tenant: &tenant,
        connectors: &connectors,
        identity_providers: &providers,
        event_listeners: &[],
        issuer: ISSUER,
    };
    let errors = match export_toml(&input, SecretExport::Values) {
        Ok(_) => panic!("exported what cannot be loaded back"),
        Err(e) => e.0,
    };
    let found: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (e.location.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(found.len(), 5, "{}", ConfigErrors(errors.clone()));
    assert_eq!(
        found[0].0,
        "attribute extension_0123456789abcdef0123456789abcdef_Size"
    );
    assert_eq!(found[1].0, "connector approval-check: timeout");
    assert!(found[1].1.contains("whole milliseconds"));
    assert_eq!(found[2].0, "connector request-approval: breaker.open_for");
    assert!(found[2].1.contains("whole seconds"));
    assert_eq!(found[3].0, "identity provider Google-OAUTH: claim mapping");
    assert!(found[3].1.contains("does not map surname"));
    assert_eq!(found[4].0, "application contoso-provisioning");
}

#[test]
fn an_empty_claim_mapping_is_written_as_the_kinds_defaults() {
    let mut config = rich();
    config.identity_providers[3].claim_mapping = ClaimMapping::default();
    let export = exported(&config, SecretExport::Values);
    let loaded = reload(&export, ISSUER, &|_| None);
    let github = &loaded.identity_providers[3];
    assert_eq!(
        github.claim_mapping,
        ClaimMapping::defaults_for(&ProviderKind::GitHub)
    );
    assert_eq!(
        github.effective_claim_mapping(),
        config.identity_providers[3].effective_claim_mapping()
    );
}

#[test]
fn colliding_variable_names_are_made_unique() {
    let config = load_str(
        "[[connectors]]\nid = \"a-b\"\ntarget_url = \"https://a.contoso.com\"\n[connectors.authentication]\ntype = \"basic\"\nusername = \"u\"\npassword = { value = \"first-password\" }\n[[connectors]]\nid = \"a.b\"\ntarget_url = \"https://a.contoso.com\"\n[connectors.authentication]\ntype = \"basic\"\nusername = \"u\"\npassword = { value = \"second-password\" }\n",
        &[],
    )
    .unwrap();
    let export = exported(&config, SecretExport::EnvReferences);
    assert_eq!(
        export.required_env,
        [
            "USHER_SECRET_CONNECTOR_A_B_AUTHENTICATION_PASSWORD",
            "USHER_SECRET_CONNECTOR_A_B_AUTHENTICATION_PASSWORD_2"
        ]
    );
    let env = env_of(&[
        (
            "USHER_SECRET_CONNECTOR_A_B_AUTHENTICATION_PASSWORD",
            "first-password",
        ),
        (
            "USHER_SECRET_CONNECTOR_A_B_AUTHENTICATION_PASSWORD_2",
            "second-password",
        ),
    ]);
    assert_reloads(&config, &export, &env);
    assert_eq!(
        env_name("IDENTITY_PROVIDER", "Contoso.oidc_1", "client_secret"),
        "USHER_SECRET_IDENTITY_PROVIDER_CONTOSO_OIDC_1_CLIENT_SECRET"
    );
}

#[test]
fn the_pkcs12_and_pem_forms_load_from_every_kind_of_reference() {
    let scratch = Scratch::new("export-inline-certificates");
    let b64 = STANDARD.encode(PFX_A);
    // As `base64` writes it: wrapped, with a final newline.
    let wrapped: String = b64
        .as_bytes()
        .chunks(8)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let file = scratch.file("contoso.pfx.b64", &wrapped);
    let key = scratch.file("key.pem", PEM_KEY);
    let text = format!(
        "[[connectors]]\nid = \"c\"\ntarget_url = \"https://a.contoso.com\"\n[connectors.authentication]\ntype = \"clientCertificate\"\n\
         [[connectors.authentication.certificates]]\npkcs12_base64 = {{ value = \"{b64}\" }}\n\
         [[connectors.authentication.certificates]]\npkcs12_base64 = {{ env = \"PFX\" }}\npassword = {{ value = \"p\" }}\n\
         [[connectors.authentication.certificates]]\npkcs12_base64 = {{ file = {:?} }}\n\
         [[connectors.authentication.certificates]]\npem = {}\nkey = {{ file = {:?} }}\n\
         [[connectors.authentication.certificates]]\npem = \"one line\"\nkey_file = {:?}\n",
        file.to_str().unwrap(),
        multiline(PEM_CHAIN),
        key.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let config = match load_str(&text, &[("PFX", &wrapped)]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let ConnectorAuthentication::ClientCertificate { certificates } =
        &config.connectors[0].authentication
    else {
        panic!()
    };
    let sources: Vec<&CertificateSource> = certificates.iter().map(|c| &c.source).collect();
    let pkcs12 = |password: &str| CertificateSource::Pkcs12 {
        der: PFX_A.to_vec(),
        password: Secret::new(password),
    };
    assert_eq!(
        sources,
        [
            &pkcs12(""),
            &pkcs12("p"),
            &pkcs12(""),
            // A key read from a file loses its final newline, as every secret does.
            &CertificateSource::Pem {
                chain: PEM_CHAIN.into(),
                key: Secret::new(PEM_KEY.trim_end()),
            },
            &CertificateSource::Pem {
                chain: "one line".into(),
                key: Secret::new(PEM_KEY),
            },
        ]
    );
}

#[test]
fn the_inline_certificate_forms_follow_the_rules() {
    use crate::tests::assert_error;
    let entry = |fields: &str| {
        format!("[[connectors]]\nid = \"c\"\ntarget_url = \"https://a.contoso.com\"\n[connectors.authentication]\ntype = \"clientCertificate\"\n[[connectors.authentication.certificates]]\n{fields}")
    };
    let path = "connectors[0].authentication.certificates[0]";
    let e = assert_error(
        &entry("pkcs12_base64 = { value = \"not*base64*secret\" }\n"),
        &format!("{path}.pkcs12_base64"),
        "is not base64",
    );
    assert!(!e.message.contains("not*base64*secret"));
    assert_error(
        &entry("pkcs12_base64 = { value = \" \\n \" }\n"),
        &format!("{path}.pkcs12_base64"),
        "must not be empty",
    );
    assert_error(
        &entry("pkcs12_base64 = \"MIIK\"\n"),
        &format!("{path}.pkcs12_base64"),
        "a secret reference",
    );
    assert_error(
        &entry("pkcs12_file = \"/nonexistent.pfx\"\npkcs12_base64 = { value = \"MIIK\" }\n"),
        &format!("{path}.pkcs12_base64"),
        "either pkcs12_file or pkcs12_base64, not both",
    );
    assert_error(
        &entry("pkcs12_base64 = { value = \"MIIK\" }\npem = \"x\"\nkey = { value = \"k\" }\n"),
        &format!("{path}.pem"),
        "not both",
    );
    assert_error(
        &entry("pkcs12_base64 = { value = \"MIIK\" }\nkey = { value = \"k\" }\n"),
        &format!("{path}.key"),
        "key goes with pem_file or pem",
    );
    assert_error(
        &entry("pem = \"x\"\n"),
        &format!("{path}.key_file"),
        "pem needs key_file (or key",
    );
    assert_error(
        &entry("pem = \"\"\nkey = { value = \"k\" }\n"),
        &format!("{path}.pem"),
        "must not be empty",
    );
    assert_error(
        &entry("pem = \"x\"\nkey = { env = \"KEY\" }\n"),
        &format!("{path}.key.env"),
        "KEY is not set",
    );
    assert_error(
        &entry("pem = \"x\"\nkey = { value = \"k\" }\nkey_file = \"/k\"\n"),
        &format!("{path}.key"),
        "either key_file or key, not both",
    );
    assert_error(
        &entry("pem = \"x\"\npem_file = \"/x\"\nkey = { value = \"k\" }\n"),
        &format!("{path}.pem"),
        "either pem_file or pem, not both",
    );
    assert_error(
        &entry("pem = \"x\"\nkey = { value = \"k\" }\npassword = { value = \"p\" }\n"),
        &format!("{path}.password"),
        "password is for pkcs12_file and pkcs12_base64",
    );
    assert_error(
        &entry("pkcs12_base64 = { value = \"MIIK\" }\npem_file = \"/x\"\nkey_file = \"/k\"\n"),
        &format!("{path}.pem_file"),
        "not both",
    );
}

#[test]
fn apply_uses_only_the_tenant_of_a_full_configuration() {
    let example = std::fs::read_to_string(example_path()).unwrap();
    // Server settings that could not be used here (the templates directory and the
    // master key file do not exist; PostgreSQL without a key) do not matter.
    let text = format!("templates_dir = \"/nonexistent/templates\"\n{example}");
    let server = load_str("issuer = \"https://other.contoso.com\"\n", &[]).unwrap();
    let env = example_env();
    let without_overrides = |k: &str| {
        assert!(!crate::ENVIRONMENT_VARIABLES.contains(&k), "{k} was read");
        env(k)
    };
    let declared =
        match load_tenant_text(Path::new("usher.toml"), &text, &server, &without_overrides) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
    let config = load(Some(&example_path()), &example_env()).unwrap();
    // The same tenant, but for the confidential client's freshly hashed secret.
    let mut tenant = declared.tenant.clone();
    tenant.applications[0].client_type = config.tenant.applications[0].client_type.clone();
    assert_same(
        &tenant,
        &declared.connectors,
        &declared.identity_providers,
        &config,
    );
    assert!(!format!("{declared:?}").contains("api-password-value"));

    // The file's demo, with the server's issuer; USHER_DEMO is not the file's.
    let demo = |text: &str, env: &[(&str, &str)]| match load_tenant_text(
        Path::new("t.toml"),
        text,
        &server,
        &env_of(env),
    ) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let declared = demo(
        "demo = true\nissuer = \"https://ignored.contoso.com\"\n",
        &[],
    );
    assert_eq!(
        declared
            .tenant
            .application(DEMO_CLIENT_ID)
            .unwrap()
            .redirect_uris,
        ["https://other.contoso.com/try/callback"]
    );
    assert_eq!(
        declared.tenant.extensions_app_id,
        crate::rules::default_extensions_app_id("https://other.contoso.com")
    );
    assert!(demo("", &[("USHER_DEMO", "true")])
        .tenant
        .user_flows
        .is_empty());

    // Unknown keys are errors anywhere; the file's connector settings are not the
    // server's.
    let insecure = "[connector_settings]\nallow_insecure_targets = true\n[[connectors]]\nid = \"c\"\ntarget_url = \"http://127.0.0.1:9000/c\"\n";
    for (text, location) in [
        ("colour = \"red\"\n", "t.toml:1:10: colour"),
        (insecure, "t.toml:5:14: connectors[0].target_url"),
    ] {
        match load_tenant_text(Path::new("t.toml"), text, &server, &|_| None) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => assert_eq!(e.0[0].location, location, "{e}"),
        }
    }
    let lenient = load_str(
        "issuer = \"https://other.contoso.com\"\n[connector_settings]\nallow_insecure_targets = true\n",
        &[],
    )
    .unwrap();
    let declared = load_tenant_text(Path::new("t.toml"), insecure, &lenient, &|_| None).unwrap();
    assert_eq!(declared.connectors[0].target_url, "http://127.0.0.1:9000/c");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Whatever a string holds, it is written as TOML that reads back as the string.
    #[test]
    fn strings_and_keys_survive_the_writer(s in "\\PC{0,40}|[\\x00-\\x7f\\u{80}-\\u{a0}]{0,40}") {
        // The key goes in a table of its own, so no string can clash with `a` or `b`.
        let text = format!("a = {}\nb = {}\n[t]\n{} = 1\n", quote(&s), multiline(&s), toml_key(&s));
        let table: toml::Table = toml::from_str(&text).unwrap();
        proptest::prop_assert_eq!(table["a"].as_str(), Some(s.as_str()));
        proptest::prop_assert_eq!(table["b"].as_str(), Some(s.as_str()));
        let keyed = table["t"].as_table().and_then(|t| t.get(&s)).and_then(toml::Value::as_integer);
        proptest::prop_assert_eq!(keyed, Some(1));
    }
}
