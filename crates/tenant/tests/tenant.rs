//! The tenant service against real databases: every case runs on a fresh temporary
//! SQLite file and, when `USHER_TEST_POSTGRES_URL` names a server, on a fresh
//! `usher_test_<random>` PostgreSQL database (dropped afterwards). Without that
//! variable the PostgreSQL tests report themselves skipped, unless
//! `USHER_REQUIRE_POSTGRES=1` says they must run, in which case they fail.
//!
//! Several services on one database, each with a store of its own (its own pool),
//! stand for several Usher instances.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive Usher from outside, with the real clock, their own HTTP clients and random names"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::DateTime;
use sqlx::Connection as _;
use usher_domain::identity_provider::{
    ClientAuthMethod, EndpointOverrides, ProviderConfig, ProviderKind,
};
use usher_domain::user_flow::{EMAIL_OTP_PROVIDER, EMAIL_PASSWORD_PROVIDER};
use usher_domain::{
    Application, AttributeAssignment, AttributeDefinition, AttributeOption, BreakerSettings,
    CertificateSource, ClientCertificate, ClientType, ConnectorAuthentication, ConnectorDefinition,
    ConnectorSlots, DataType, FailurePolicy, LocalizedText, Secret, Tenant, UserFlow,
    UserInputType,
};
use usher_oidc::crypto::MasterKey;
use usher_storage::{Store, TenantObject, TenantObjects, TenantRepository};
use usher_tenant::{Change, ChangeAction, TenantError, TenantService, TenantSnapshot};

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// What a case gets: a migrated store, and its URL for the other "instances".
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

impl Ctx {
    /// A store of its own on the same database, as another instance would have.
    async fn another_store(&self) -> Arc<dyn Store> {
        usher_storage::connect(&self.url).await.expect("connect")
    }
}

fn random_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Runs `case` in a task of its own so that a failing case still lets the caller
/// clean up before the panic is passed on.
async fn run_case<F, Fut>(url: String, case: F) -> Result<(), tokio::task::JoinError>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = usher_storage::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    tokio::spawn(case(Ctx { store, url })).await
}

fn rethrow(outcome: Result<(), tokio::task::JoinError>) {
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("case did not finish: {e}"),
        }
    }
}

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = std::env::temp_dir().join(format!("usher-tenant-test-{}.db", random_name()));
    let url = format!("sqlite://{}", path.display());
    let outcome = run_case(url, case).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rethrow(outcome);
}

/// The server to test against, or `None` (after saying so) to skip.
fn postgres_server() -> Option<String> {
    match std::env::var("USHER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("USHER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL tests required but USHER_TEST_POSTGRES_URL is unset"
            );
            println!("skipped: USHER_TEST_POSTGRES_URL is unset");
            None
        }
    }
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = postgres_server() else {
        return;
    };
    let database = format!("usher_test_{}", random_name());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .expect("connect to USHER_TEST_POSTGRES_URL");
    // template0: template1 refuses to be copied while anyone is connected to it.
    sqlx::Executor::execute(
        &mut admin,
        format!("CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8'").as_str(),
    )
    .await
    .expect("create test database");
    let mut url = url::Url::parse(&server).expect("USHER_TEST_POSTGRES_URL is a URL");
    url.set_path(&database);
    let outcome = run_case(url.to_string(), case).await;
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE {database} WITH (FORCE)").as_str(),
    )
    .await
    .expect("drop test database");
    let _ = admin.close().await;
    rethrow(outcome);
}

/// Runs `sql` on the database at `url` behind the service's back.
async fn execute_directly(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::Executor::execute(&mut conn, sql).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::Executor::execute(&mut conn, sql).await.unwrap();
    }
}

/// Every stored document, as the text in the database.
async fn raw_documents(url: &str) -> String {
    const SQL: &str = "SELECT document FROM tenant_objects ORDER BY kind, id";
    let documents: Vec<String> = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(SQL).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(SQL).fetch_all(&mut conn).await.unwrap()
    };
    documents.join("\n")
}

/// Generates `sqlite::<case>` and `postgres::<case>` for every case.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::on_sqlite(super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::on_postgres(super::$case).await;
                }
            )*
        }
    };
}

cases! {
    round_trip,
    connectors_are_checked_whoever_writes_them,
    a_tenant_that_would_not_run_is_never_stored,
    secrets_are_encrypted_at_rest,
    another_master_key_cannot_decrypt,
    current_reloads_only_when_the_version_moves,
    seeding_happens_once,
    diff_and_apply,
    deletes_refuse_what_is_in_use,
    single_object_edits,
    concurrent_edits_from_two_instances,
    bad_stored_documents_are_corrupt,
}

// ---------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------

const APP_ID: &str = "d09380e2b4c642b9a203fb816a04a7ad";

const BASIC_PASSWORD: &str = "basic-password-Qx81";
const API_KEY: &str = "api-key-value-Zr55";
const OAUTH_SECRET: &str = "oauth-client-secret-Lm02";
const P12_PASSWORD: &str = "pkcs12-password-Tt93";
/// One line of the PEM private key; the JSON text escapes the line breaks around it.
const PEM_KEY_LINE: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCsecretPEMkey47";
/// One line of the public chain, which may be stored as is.
const PEM_CHAIN_LINE: &str = "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJR";
const SIGNING_SECRETS: [&str; 2] = [
    "whsec_c2lnbmluZy1zZWNyZXQtb25lLTAx",
    "whsec_c2lnbmluZy1zZWNyZXQtdHdvLTAy",
];
const IDP_SECRETS: [&str; 6] = [
    "oidc-client-secret-Aa11",
    "google-client-secret-Bb22",
    "microsoft-client-secret-Cc33",
    "facebook-client-secret-Dd44",
    "github-client-secret-Ee55",
    "oauth2-client-secret-Ff66",
];

fn pkcs12_der() -> Vec<u8> {
    // Every byte value, so nothing is treated as text on the way.
    b"PKCS12-DER-BLOB-"
        .iter()
        .copied()
        .chain(0..=255u8)
        .collect()
}

fn pem_key() -> String {
    format!("-----BEGIN PRIVATE KEY-----\n{PEM_KEY_LINE}\n-----END PRIVATE KEY-----\n")
}

/// Every secret of [`rich`], as text that must never appear in what is stored.
fn secret_texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        BASIC_PASSWORD,
        API_KEY,
        OAUTH_SECRET,
        P12_PASSWORD,
        PEM_KEY_LINE,
    ]
    .into_iter()
    .chain(SIGNING_SECRETS)
    .chain(IDP_SECRETS)
    .map(str::to_owned)
    .collect();
    texts.push(pem_key());
    // Nor merely encoded: base64 is not encryption.
    let encoded: Vec<String> = texts.iter().map(|t| STANDARD.encode(t)).collect();
    texts.extend(encoded);
    texts.push(STANDARD.encode(pkcs12_der()));
    texts.push(URL_SAFE_NO_PAD.encode(pkcs12_der()));
    texts.push("PKCS12-DER-BLOB".into());
    texts
}

fn ext(name: &str) -> String {
    format!("extension_{APP_ID}_{name}")
}

fn attribute(name: &str, data_type: DataType) -> AttributeDefinition {
    AttributeDefinition {
        id: ext(name),
        display_name: format!("{name} ✓"),
        description: format!("The {name} of the user"),
        data_type,
        built_in: false,
    }
}

fn option(name: LocalizedText, value: &str, is_default: bool) -> AttributeOption {
    AttributeOption {
        name,
        value: value.into(),
        is_default,
    }
}

fn assignment(
    attribute_id: &str,
    input_type: UserInputType,
    label: Option<LocalizedText>,
    options: Vec<AttributeOption>,
) -> AttributeAssignment {
    AttributeAssignment {
        attribute_id: attribute_id.into(),
        label,
        is_optional: matches!(input_type, UserInputType::CheckboxMultiSelect),
        input_type,
        options,
        is_claim: !matches!(input_type, UserInputType::NumericTextBox),
    }
}

fn per_locale(en: &str, fr: &str) -> LocalizedText {
    LocalizedText::PerLocale([("en".into(), en.into()), ("fr".into(), fr.into())].into())
}

fn signup_flow() -> UserFlow {
    UserFlow {
        id: "B2X_1_signup".into(),
        identity_providers: vec![
            EMAIL_PASSWORD_PROVIDER.into(),
            "contoso-oidc".into(),
            "Google-OAUTH".into(),
        ],
        attributes: vec![
            assignment("displayName", UserInputType::TextBox, None, Vec::new()),
            assignment(
                "email",
                UserInputType::EmailBox,
                Some(LocalizedText::Plain("Work email".into())),
                Vec::new(),
            ),
            assignment(
                &ext("ShoeSize"),
                UserInputType::NumericTextBox,
                Some(per_locale("Shoe size", "Pointure")),
                Vec::new(),
            ),
            assignment(
                &ext("Newsletter"),
                UserInputType::CheckboxSingleSelect,
                Some(LocalizedText::Plain("Send me news".into())),
                Vec::new(),
            ),
            assignment(
                &ext("Tier"),
                UserInputType::RadioSingleSelect,
                None,
                vec![
                    option(LocalizedText::Plain("Gold".into()), "gold", true),
                    option(per_locale("Silver", "Argent"), "silver", false),
                ],
            ),
            assignment(
                "country",
                UserInputType::DropdownSingleSelect,
                Some(per_locale("Country", "Pays")),
                vec![
                    option(LocalizedText::Plain("Norway".into()), "NO", false),
                    option(LocalizedText::Plain("France".into()), "FR", true),
                ],
            ),
            assignment(
                &ext("Interests"),
                UserInputType::CheckboxMultiSelect,
                None,
                vec![
                    option(LocalizedText::Plain("Hiking".into()), "hiking", false),
                    option(LocalizedText::Plain("Sailing".into()), "sailing", false),
                ],
            ),
        ],
        extra_claims: vec!["email".into()],
        connectors: ConnectorSlots {
            post_federation_signup: vec!["oauth".into()],
            post_attribute_collection: vec!["crm-basic".into(), "apikey".into()],
            pre_token_issuance: vec!["mtls".into()],
            ..ConnectorSlots::default()
        },
        requires_approval: false,
    }
}

fn social_flow() -> UserFlow {
    UserFlow {
        id: "B2X_1_social".into(),
        identity_providers: vec![
            EMAIL_OTP_PROVIDER.into(),
            "microsoft".into(),
            "facebook".into(),
            "github".into(),
            "partner-oauth2".into(),
        ],
        attributes: Vec::new(),
        extra_claims: Vec::new(),
        connectors: ConnectorSlots::default(),
        requires_approval: true,
    }
}

fn application(client_id: &str, client_type: ClientType, user_flow_id: &str) -> Application {
    Application {
        roles: vec!["User.Read.All".into()],
        ..usher_testkit::tenant::application(client_id, client_type, user_flow_id)
    }
}

fn connector(id: &str, authentication: ConnectorAuthentication) -> ConnectorDefinition {
    let mut c = ConnectorDefinition::new(id, format!("https://api.example/{id}"));
    c.authentication = authentication;
    c
}

fn connectors() -> Vec<ConnectorDefinition> {
    let mut none = connector("approval-check", ConnectorAuthentication::None);
    none.display_name = "Approval — check".into();
    none.timeout = Duration::from_millis(2_500);
    none.retries = 3;
    none.budget = Duration::from_millis(7_250);
    none.failure_policy = FailurePolicy::Continue;
    none.lenient = true;
    none.breaker = BreakerSettings {
        failure_threshold: 9,
        open_for: Duration::from_millis(45_500),
    };
    // Public: stored as is, and read back.
    none.extra_root_certificates =
        vec!["-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n".into()];
    let mut basic = connector(
        "crm-basic",
        ConnectorAuthentication::Basic {
            username: "usher".into(),
            password: Secret::new(BASIC_PASSWORD),
        },
    );
    basic.signing_secrets = SIGNING_SECRETS.iter().map(|s| Secret::new(*s)).collect();
    let mtls = connector(
        "mtls",
        ConnectorAuthentication::ClientCertificate {
            certificates: vec![
                ClientCertificate {
                    source: CertificateSource::Pkcs12 {
                        der: pkcs12_der(),
                        password: Secret::new(P12_PASSWORD),
                    },
                    uploaded_at: DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(),
                },
                ClientCertificate {
                    source: CertificateSource::Pem {
                        chain: format!(
                            "-----BEGIN CERTIFICATE-----\n{PEM_CHAIN_LINE}\n-----END CERTIFICATE-----\n"
                        ),
                        key: Secret::new(pem_key()),
                    },
                    uploaded_at: DateTime::from_timestamp(1_800_086_400, 0).unwrap(),
                },
            ],
        },
    );
    let apikey = connector(
        "apikey",
        ConnectorAuthentication::ApiKey {
            header: "X-Api-Key".into(),
            value: Secret::new(API_KEY),
        },
    );
    let oauth = connector(
        "oauth",
        ConnectorAuthentication::OAuthClientCredentials {
            token_url: "https://login.example/oauth2/token".into(),
            client_id: "usher-client".into(),
            client_secret: Secret::new(OAUTH_SECRET),
            scope: Some("api://crm/.default".into()),
        },
    );
    vec![none, basic, mtls, apikey, oauth]
}

fn providers() -> Vec<ProviderConfig> {
    let secret = |i: usize| Secret::new(IDP_SECRETS[i]);
    let mut oidc = ProviderConfig::new(
        "contoso-oidc",
        ProviderKind::Oidc {
            issuer: "https://login.contoso.example".into(),
        },
        "contoso-client",
        secret(0),
    );
    oidc.display_name = "Contoso".into();
    oidc.scopes = vec!["openid".into(), "email".into(), "offline_access".into()];
    oidc.claim_mapping.insert(ext("Tier"), "tier");
    oidc.claim_mapping.insert("emailVerified", "verified");
    oidc.endpoints = EndpointOverrides {
        issuer: Some("https://issuer.contoso.example".into()),
        authorization_endpoint: Some("https://login.contoso.example/authorize".into()),
        token_endpoint: Some("https://login.contoso.example/token".into()),
        userinfo_endpoint: Some("https://login.contoso.example/userinfo".into()),
        emails_endpoint: Some("https://login.contoso.example/emails".into()),
        jwks_uri: Some("https://login.contoso.example/jwks".into()),
    };
    oidc.client_auth = Some(ClientAuthMethod::ClientSecretPost);
    let google = ProviderConfig::new("Google-OAUTH", ProviderKind::Google, "g-client", secret(1));
    let mut microsoft = ProviderConfig::new(
        "microsoft",
        ProviderKind::Microsoft {
            tenant: "organizations".into(),
        },
        "ms-client",
        secret(2),
    );
    microsoft.endpoints.issuer = Some("https://login.microsoftonline.com/common/v2.0".into());
    microsoft.client_auth = Some(ClientAuthMethod::ClientSecretBasic);
    let mut facebook =
        ProviderConfig::new("facebook", ProviderKind::Facebook, "fb-client", secret(3));
    facebook.endpoints.userinfo_endpoint = Some("https://graph.facebook.com/v24.0/me".into());
    let mut github = ProviderConfig::new("github", ProviderKind::GitHub, "gh-client", secret(4));
    github.endpoints.emails_endpoint = Some("https://github.example/api/v3/user/emails".into());
    github.claim_mapping = usher_domain::identity_provider::ClaimMapping::default();
    let mut oauth2 = ProviderConfig::new(
        "partner-oauth2",
        ProviderKind::OAuth2 {
            authorization_endpoint: "https://partner.example/oauth/authorize".into(),
            token_endpoint: "https://partner.example/oauth/token".into(),
            userinfo_endpoint: "https://partner.example/api/me".into(),
            subject_claim: "data.id".into(),
            identity_issuer: "partner.example".into(),
        },
        "partner-client",
        secret(5),
    );
    oauth2
        .claim_mapping
        .insert("displayName", "data.profile.name");
    vec![oidc, google, microsoft, facebook, github, oauth2]
}

/// A tenant with one of everything: every connector authentication, every provider
/// kind, attributes of every type, every input type, both kinds of application.
fn rich() -> TenantSnapshot {
    TenantSnapshot::new(
        Tenant {
            extensions_app_id: APP_ID.into(),
            custom_attributes: vec![
                attribute("ShoeSize", DataType::Int),
                attribute("Newsletter", DataType::Boolean),
                attribute("Tier", DataType::String),
                attribute("Interests", DataType::String),
                attribute("Unused", DataType::String),
            ],
            user_flows: vec![signup_flow(), social_flow()],
            applications: vec![
                application(
                    "web-app",
                    ClientType::Confidential {
                        secret_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
                            .into(),
                    },
                    "B2X_1_signup",
                ),
                application("spa", ClientType::Public, "B2X_1_social"),
                application("legacy-app", ClientType::Public, "B2X_1_signup"),
            ],
        },
        connectors(),
        providers(),
    )
}

/// `expected` as read back at `version`.
fn at(version: i64, expected: &TenantSnapshot) -> TenantSnapshot {
    TenantSnapshot {
        version,
        ..expected.clone()
    }
}

fn master() -> Arc<MasterKey> {
    Arc::new(MasterKey::generate())
}

fn shown(changes: &[Change]) -> Vec<String> {
    changes.iter().map(ToString::to_string).collect()
}

fn assert_no_secret(text: &str, what: &str) {
    for secret in secret_texts() {
        assert!(
            !text.contains(&secret),
            "{what} contains the secret {secret:?}"
        );
    }
}

/// A repository that counts the calls the service makes.
struct Counting {
    inner: Arc<dyn Store>,
    versions: AtomicUsize,
    loads: AtomicUsize,
}

impl Counting {
    fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            versions: AtomicUsize::new(0),
            loads: AtomicUsize::new(0),
        })
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.versions.load(Ordering::SeqCst),
            self.loads.load(Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl TenantRepository for Counting {
    async fn tenant_version(&self) -> usher_storage::Result<i64> {
        self.versions.fetch_add(1, Ordering::SeqCst);
        self.inner.tenant_version().await
    }

    async fn tenant_objects(&self) -> usher_storage::Result<TenantObjects> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.tenant_objects().await
    }

    async fn replace_tenant(
        &self,
        objects: &[TenantObject],
        expected_version: i64,
    ) -> usher_storage::Result<i64> {
        self.inner.replace_tenant(objects, expected_version).await
    }

    async fn put_tenant_object(
        &self,
        object: &TenantObject,
        expected_version: Option<i64>,
    ) -> usher_storage::Result<i64> {
        self.inner.put_tenant_object(object, expected_version).await
    }

    async fn delete_tenant_object(
        &self,
        kind: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> usher_storage::Result<Option<i64>> {
        self.inner
            .delete_tenant_object(kind, id, expected_version)
            .await
    }
}

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

async fn round_trip(ctx: Ctx) {
    let key = master();
    let service = TenantService::new(ctx.store.clone(), key.clone());
    let desired = rich();

    let (seeded, differs) = service.seed(&desired).await.unwrap();
    assert!(!differs);
    assert_eq!(*seeded, at(1, &desired));
    assert_eq!(*service.current().await.unwrap(), at(1, &desired));

    // Another instance, with nothing cached, reads the same tenant.
    let other = TenantService::new(ctx.another_store().await, key);
    assert_eq!(*other.current().await.unwrap(), at(1, &desired));
    assert!(other.diff(&desired).await.unwrap().is_empty());
}

async fn connectors_are_checked_whoever_writes_them(ctx: Ctx) {
    let service = TenantService::new(ctx.store.clone(), master());
    let mut slow = connectors().remove(1);
    slow.budget = std::time::Duration::from_secs(121);
    let invalid = |e: TenantError| matches!(e, TenantError::Invalid { ref id, ref reason, .. } if *id == slow.id && reason.contains("120000 ms"));
    assert!(invalid(service.put_connector(&slow).await.unwrap_err()));
    let mut desired = rich();
    desired.connectors.push(slow.clone());
    assert!(invalid(service.seed(&desired).await.unwrap_err()));
    // Nothing was written.
    assert!(service.current().await.unwrap().connectors.is_empty());
}

async fn a_tenant_that_would_not_run_is_never_stored(ctx: Ctx) {
    let service = TenantService::new(ctx.store.clone(), master());
    let invalid = |e: TenantError, kind: &str, why: &str| {
        matches!(&e, TenantError::Invalid { kind: k, reason, .. } if *k == kind && reason.contains(why))
            || panic!("expected {kind} refused for {why:?}, got {e:?}")
    };
    // Whole tenants (the configuration file's seed, `usher apply`)...
    let mut orphan = rich();
    orphan.tenant.applications[0].user_flow_id = "B2X_1_gone".into();
    assert!(invalid(
        service.seed(&orphan).await.unwrap_err(),
        "application",
        "B2X_1_gone"
    ));
    let mut unknown = rich();
    unknown.tenant.user_flows[0]
        .connectors
        .post_attribute_collection
        .push("nowhere".into());
    assert!(invalid(
        service.seed(&unknown).await.unwrap_err(),
        "userFlow",
        "nowhere"
    ));
    let mut shared = rich();
    let mut twin = shared.identity_providers[0].clone();
    twin.id = "twin".into();
    shared.identity_providers.push(twin);
    assert!(invalid(
        service.seed(&shared).await.unwrap_err(),
        "identityProvider",
        "same issuer"
    ));
    assert_eq!(service.current().await.unwrap().version, 0);
    service.seed(&rich()).await.unwrap();
    let mut no_provider = rich();
    no_provider.tenant.user_flows[0]
        .identity_providers
        .push("not-configured".into());
    assert!(invalid(
        service.apply(&no_provider).await.unwrap_err(),
        "userFlow",
        "not-configured"
    ));
    // ...and single objects (the admin API) alike.
    let mut app = rich().tenant.applications[0].clone();
    app.user_flow_id = "B2X_1_gone".into();
    assert!(invalid(
        service.put_application(&app).await.unwrap_err(),
        "application",
        "B2X_1_gone"
    ));
    // A 1.0.0 connector cannot deliver codes.
    let mut flow = rich().tenant.user_flows[0].clone();
    flow.connectors.email_otp_send.push("oauth".into());
    assert!(invalid(
        service.put_user_flow(&flow).await.unwrap_err(),
        "userFlow",
        "no call at emailOtpSend"
    ));
    let mut flow = rich().tenant.user_flows[0].clone();
    flow.attributes.push(assignment_of("extension_nope"));
    assert!(invalid(
        service.put_user_flow(&flow).await.unwrap_err(),
        "userFlow",
        "extension_nope"
    ));
    // Nothing of it was written.
    assert_eq!(*service.current().await.unwrap(), at(1, &rich()));
    // A single write checks only what concerns it: a flaw elsewhere in the stored
    // tenant (a stored provider sharing an issuer, as tenants stored before that
    // rule may have) does not block an unrelated edit.
    let mut twin = rich().identity_providers[0].clone();
    twin.id = "twin".into();
    service.put_identity_provider(&twin).await.unwrap();
    let mut app = rich().tenant.applications[0].clone();
    app.name = "Renamed".into();
    service.put_application(&app).await.unwrap();
    service
        .put_user_flow(&rich().tenant.user_flows[0])
        .await
        .unwrap();
}

fn assignment_of(id: &str) -> AttributeAssignment {
    usher_testkit::tenant::assign(id, UserInputType::TextBox)
}

async fn secrets_are_encrypted_at_rest(ctx: Ctx) {
    let service = TenantService::new(ctx.store.clone(), master());
    service.seed(&rich()).await.unwrap();
    // Single-object writes encrypt too.
    let mut provider = providers().remove(0);
    provider.id = "second-oidc".into();
    service.put_identity_provider(&provider).await.unwrap();
    let mut c = connectors().remove(1);
    c.id = "second-basic".into();
    service.put_connector(&c).await.unwrap();

    let stored = raw_documents(&ctx.url).await;
    assert_no_secret(&stored, "the stored tenant");
    // The search would find them: public material is stored as given.
    assert!(stored.contains(PEM_CHAIN_LINE));
    assert!(stored.contains("usher-client"));

    // Nor do secrets leak through `Debug`, which logs may print.
    let snapshot = service.current().await.unwrap();
    assert_no_secret(&format!("{snapshot:?}"), "the snapshot's Debug");
    assert_eq!(snapshot.connector("SECOND-basic").unwrap(), &c);
}

async fn another_master_key_cannot_decrypt(ctx: Ctx) {
    TenantService::new(ctx.store.clone(), master())
        .seed(&rich())
        .await
        .unwrap();

    let wrong = TenantService::new(ctx.another_store().await, master());
    let error = wrong.current().await.unwrap_err();
    assert!(
        matches!(&error, TenantError::Decrypt { kind, .. } if kind == "connector"),
        "{error:?}"
    );
    assert!(error.to_string().contains("master key"), "{error}");
    // Seeding does not paper over it either, nor overwrite what is stored.
    assert!(matches!(
        wrong.seed(&rich()).await,
        Err(TenantError::Decrypt { .. })
    ));
    assert!(matches!(
        wrong.apply(&rich()).await,
        Err(TenantError::Decrypt { .. })
    ));
    assert_eq!(ctx.store.tenant_version().await.unwrap(), 1);
}

async fn current_reloads_only_when_the_version_moves(ctx: Ctx) {
    let key = master();
    let counting = Counting::new(ctx.store.clone());
    let service = Arc::new(TenantService::new(counting.clone(), key.clone()));
    service.seed(&rich()).await.unwrap();
    let (versions, loads) = counting.counts();
    assert_eq!(loads, 1, "seeding loads once");

    for _ in 0..10 {
        assert_eq!(service.current().await.unwrap().version, 1);
    }
    assert_eq!(
        counting.counts(),
        (versions + 10, 1),
        "one version query each"
    );

    // An edit made by another instance is seen on the next call.
    let other = TenantService::new(ctx.another_store().await, key);
    let mut partner = social_flow();
    partner.id = "B2X_1_partner".into();
    assert_eq!(other.put_user_flow(&partner).await.unwrap(), 2);
    let snapshot = service.current().await.unwrap();
    assert_eq!(snapshot.version, 2);
    assert_eq!(snapshot.tenant.user_flow("b2x_1_PARTNER"), Some(&partner));
    assert_eq!(counting.counts().1, 2);

    // Callers arriving together after a change share one reload.
    other.delete_application("legacy-app").await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move { service.current().await })
        })
        .collect();
    for task in tasks {
        let snapshot = task.await.unwrap().unwrap();
        assert_eq!(snapshot.version, 3);
        assert!(snapshot.tenant.application("legacy-app").is_none());
    }
    assert_eq!(counting.counts().1, 3);
}

async fn seeding_happens_once(ctx: Ctx) {
    let key = master();
    let first = rich();
    let mut second = rich();
    second.tenant.user_flows.push(UserFlow {
        id: "B2X_1_extra".into(),
        ..social_flow()
    });

    // Four instances start together, two configured one way and two the other.
    let mut services = Vec::new();
    for _ in 0..4 {
        services.push(Arc::new(TenantService::new(
            ctx.another_store().await,
            key.clone(),
        )));
    }
    let tasks: Vec<_> = services
        .iter()
        .enumerate()
        .map(|(i, service)| {
            let service = service.clone();
            let desired = if i % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move { service.seed(&desired).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    let stored = outcomes[0].0.clone();
    assert_eq!(stored.version, 1, "stored exactly once");
    let winner = if *stored == at(1, &first) {
        &first
    } else {
        &second
    };
    assert_eq!(*stored, at(1, winner));
    for (i, (snapshot, differs)) in outcomes.iter().enumerate() {
        assert_eq!(snapshot, &stored);
        let mine = if i % 2 == 0 { &first } else { &second };
        assert_eq!(*differs, !std::ptr::eq(mine, winner), "instance {i}");
    }

    // Later starts never store again, whatever the file says.
    let (again, differs) = services[1].seed(&first).await.unwrap();
    assert_eq!(again.version, 1);
    assert_eq!(differs, !std::ptr::eq(winner, &raw const first));
    assert_eq!(ctx.store.tenant_version().await.unwrap(), 1);
}

async fn diff_and_apply(ctx: Ctx) {
    let key = master();
    let service = TenantService::new(ctx.store.clone(), key.clone());
    let original = rich();

    // Against a database never seeded, everything is new.
    let everything = service.diff(&original).await.unwrap();
    assert_eq!(everything[0].to_string(), "+ settings tenant");
    assert!(everything.iter().all(|c| c.action == ChangeAction::Added));
    assert_eq!(everything.len(), 1 + 5 + 5 + 6 + 2 + 3);
    service.seed(&original).await.unwrap();
    assert!(service.diff(&original).await.unwrap().is_empty());

    let mut desired = original.clone();
    {
        let basic = &mut desired.connectors[1];
        basic.target_url = "https://crm.example/v2/hook".into();
        basic.timeout = Duration::from_secs(4);
        basic.authentication = ConnectorAuthentication::Basic {
            username: "usher".into(),
            password: Secret::new("the-new-basic-password"),
        };
    }
    desired.connectors[3].authentication = ConnectorAuthentication::None;
    desired.identity_providers[0].client_secret = Secret::new("the-new-oidc-secret");
    desired.tenant.user_flows.push(UserFlow {
        id: "B2X_1_partner".into(),
        ..social_flow()
    });
    desired.tenant.applications.pop();
    desired.tenant.applications.swap(0, 1);

    let expected = [
        "~ connector crm-basic: authentication.password, targetUrl, timeoutMs",
        "~ connector apikey: authentication",
        "~ identityProvider contoso-oidc: clientSecret",
        "+ userFlow B2X_1_partner",
        "~ application spa: position",
        "~ application web-app: position",
        "- application legacy-app",
    ];
    let diff = service.diff(&desired).await.unwrap();
    assert_eq!(shown(&diff), expected);
    assert_eq!(
        diff[0].action,
        ChangeAction::Changed {
            fields: vec![
                "authentication.password".into(),
                "targetUrl".into(),
                "timeoutMs".into()
            ]
        }
    );
    // Each field with its old and new value; a secret's values never.
    let detailed = diff[0].detailed();
    assert!(
        detailed.contains("    authentication.password: a different secret"),
        "{detailed}"
    );
    assert!(
        detailed.contains(
            r#"    targetUrl: "https://api.example/crm-basic" → "https://crm.example/v2/hook""#
        ),
        "{detailed}"
    );
    assert!(
        detailed.contains("    timeoutMs: 10000 → 4000"),
        "{detailed}"
    );
    let printed = format!(
        "{diff:?} {}",
        diff.iter()
            .map(Change::detailed)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_no_secret(&printed, "the diff");
    assert!(
        !printed.contains("the-new-basic-password") && !printed.contains("the-new-oidc-secret")
    );
    assert_eq!(
        ctx.store.tenant_version().await.unwrap(),
        1,
        "diff writes nothing"
    );

    let applied = service.apply(&desired).await.unwrap();
    assert_eq!(shown(&applied), expected);
    assert_eq!(*service.current().await.unwrap(), at(2, &desired));

    // Idempotent, from this instance or another (whose secrets encrypt differently).
    assert!(service.apply(&desired).await.unwrap().is_empty());
    let other = TenantService::new(ctx.another_store().await, key);
    assert!(other.apply(&desired).await.unwrap().is_empty());
    let (_, differs) = other.seed(&desired).await.unwrap();
    assert!(!differs);
    assert_eq!(ctx.store.tenant_version().await.unwrap(), 2);

    // Back to the original, in one step.
    assert_eq!(
        service.apply(&original).await.unwrap().len(),
        expected.len()
    );
    assert_eq!(*other.current().await.unwrap(), at(3, &original));
}

async fn deletes_refuse_what_is_in_use(ctx: Ctx) {
    let service = TenantService::new(ctx.store.clone(), master());
    service.seed(&rich()).await.unwrap();

    let in_use = |result: Result<bool, TenantError>, by: &str| match result {
        Err(TenantError::InUse { by: actual, .. }) if actual == by => {}
        other => panic!("expected in use by {by}, got {other:?}"),
    };
    // Short attribute form and other spellings of the ids still find the references.
    in_use(
        service.delete_custom_attribute("extension_shoesize").await,
        "userFlow B2X_1_signup",
    );
    in_use(
        service.delete_custom_attribute(&ext("Interests")).await,
        "userFlow B2X_1_signup",
    );
    in_use(
        service.delete_connector("CRM-BASIC").await,
        "userFlow B2X_1_signup",
    );
    in_use(
        service.delete_connector("mtls").await,
        "userFlow B2X_1_signup",
    );
    in_use(
        service.delete_identity_provider("Contoso-OIDC").await,
        "userFlow B2X_1_signup",
    );
    in_use(
        service.delete_identity_provider("github").await,
        "userFlow B2X_1_social",
    );
    in_use(
        service.delete_user_flow("b2x_1_social").await,
        "application spa",
    );
    let error = service.delete_connector("oauth").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "connector oauth is in use by userFlow B2X_1_signup"
    );
    assert_eq!(
        ctx.store.tenant_version().await.unwrap(),
        1,
        "refusals write nothing"
    );

    // What nothing refers to goes, once.
    assert!(service
        .delete_custom_attribute("extension_Unused")
        .await
        .unwrap());
    assert!(!service
        .delete_custom_attribute(&ext("Unused"))
        .await
        .unwrap());
    assert!(service.delete_connector("approval-check").await.unwrap());
    assert!(!service.delete_connector("no-such-connector").await.unwrap());
    assert_eq!(ctx.store.tenant_version().await.unwrap(), 3);

    // Once the references go, so can the objects.
    let mut signup = signup_flow();
    signup
        .attributes
        .retain(|a| a.attribute_id != ext("ShoeSize"));
    signup.connectors.post_attribute_collection.clear();
    signup.identity_providers.retain(|p| p != "contoso-oidc");
    service.put_user_flow(&signup).await.unwrap();
    assert!(service
        .delete_custom_attribute(&ext("ShoeSize"))
        .await
        .unwrap());
    assert!(service.delete_connector("crm-basic").await.unwrap());
    assert!(service
        .delete_identity_provider("contoso-oidc")
        .await
        .unwrap());
    assert!(service.delete_application("SPA").await.unwrap());
    assert!(service.delete_user_flow("B2X_1_social").await.unwrap());
    let snapshot = service.current().await.unwrap();
    assert!(snapshot.connector("crm-basic").is_none());
    assert!(snapshot.identity_provider("contoso-oidc").is_none());
    assert!(snapshot.tenant.attribute("extension_ShoeSize").is_none());
    assert!(snapshot.tenant.user_flow("B2X_1_social").is_none());
    assert_eq!(snapshot.version, 9);
}

async fn single_object_edits(ctx: Ctx) {
    let service = TenantService::new(ctx.store.clone(), master());
    service.seed(&rich()).await.unwrap();

    // Ids ignore case: this replaces B2X_1_signup, in its place.
    let mut renamed = signup_flow();
    renamed.id = "b2x_1_SIGNUP".into();
    renamed.extra_claims.clear();
    assert_eq!(service.put_user_flow(&renamed).await.unwrap(), 2);
    // New objects go after the others of their kind.
    let mut added = connector("late", ConnectorAuthentication::None);
    added.retries = 0;
    assert_eq!(service.put_connector(&added).await.unwrap(), 3);
    let mut attribute = attribute("Loyalty", DataType::Int);
    assert_eq!(service.put_custom_attribute(&attribute).await.unwrap(), 4);
    attribute.description = "Changed".into();
    assert_eq!(service.put_custom_attribute(&attribute).await.unwrap(), 5);
    let mut spa = application("spa", ClientType::Public, "B2X_1_signup");
    spa.roles.clear();
    assert_eq!(service.put_application(&spa).await.unwrap(), 6);
    let mut google = providers().remove(1);
    google.client_secret = Secret::new("rotated-google-secret");
    assert_eq!(service.put_identity_provider(&google).await.unwrap(), 7);
    let new_app_id = "00000000000000000000000000000abc";
    assert_eq!(service.set_extensions_app_id(new_app_id).await.unwrap(), 8);

    let mut expected = at(8, &rich());
    expected.tenant.user_flows[0] = renamed;
    expected.connectors.push(added);
    expected.tenant.custom_attributes.push(attribute);
    expected.tenant.applications[1] = spa;
    expected.identity_providers[1] = google;
    expected.tenant.extensions_app_id = new_app_id.into();
    assert_eq!(*service.current().await.unwrap(), expected);
    assert!(!raw_documents(&ctx.url)
        .await
        .contains("rotated-google-secret"));
}

async fn concurrent_edits_from_two_instances(ctx: Ctx) {
    let key = master();
    let a = Arc::new(TenantService::new(ctx.store.clone(), key.clone()));
    let b = Arc::new(TenantService::new(ctx.another_store().await, key));
    a.seed(&rich()).await.unwrap();

    const EACH: usize = 10;
    let mut tasks = Vec::new();
    for i in 0..EACH {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            a.put_application(&application(
                &format!("app-{i}"),
                ClientType::Public,
                "B2X_1_signup",
            ))
            .await
        }));
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.put_user_flow(&UserFlow {
                id: format!("B2X_1_flow{i}"),
                ..social_flow()
            })
            .await
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().expect("every put succeeds"));
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..2 + 2 * EACH as i64).collect::<Vec<_>>());

    // Neither instance lost the other's writes.
    for service in [&a, &b] {
        let snapshot = service.current().await.unwrap();
        assert_eq!(snapshot.version, 1 + 2 * EACH as i64);
        for i in 0..EACH {
            assert!(snapshot.tenant.application(&format!("app-{i}")).is_some());
            assert!(snapshot
                .tenant
                .user_flow(&format!("B2X_1_flow{i}"))
                .is_some());
        }
        assert_eq!(snapshot.tenant.applications.len(), 3 + EACH);
        assert_eq!(snapshot.tenant.user_flows.len(), 2 + EACH);
    }
}

async fn bad_stored_documents_are_corrupt(ctx: Ctx) {
    let key = master();
    TenantService::new(ctx.store.clone(), key.clone())
        .seed(&rich())
        .await
        .unwrap();
    let corrupt = |result: Result<Arc<TenantSnapshot>, TenantError>| match result {
        Err(TenantError::Corrupt(_)) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    };

    // A document that is not the object it should be.
    execute_directly(
        &ctx.url,
        "UPDATE tenant_objects SET document = '{\"id\": 5}' WHERE kind = 'connector' AND id = 'mtls'",
    )
    .await;
    corrupt(
        TenantService::new(ctx.another_store().await, key.clone())
            .current()
            .await,
    );

    // A document filed under another object's id.
    execute_directly(
        &ctx.url,
        "DELETE FROM tenant_objects WHERE kind = 'connector' AND id = 'mtls';
         UPDATE tenant_objects SET id = 'someone-else' WHERE kind = 'application' AND id = 'spa'",
    )
    .await;
    corrupt(
        TenantService::new(ctx.another_store().await, key.clone())
            .current()
            .await,
    );

    // A sealed secret that is not even base64.
    execute_directly(
        &ctx.url,
        "UPDATE tenant_objects SET id = 'spa' WHERE kind = 'application' AND id = 'someone-else';
         UPDATE tenant_objects SET document = replace(document, '\"clientSecret\":\"', '\"clientSecret\":\"!')
             WHERE kind = 'identityProvider' AND id = 'github'",
    )
    .await;
    corrupt(
        TenantService::new(ctx.another_store().await, key.clone())
            .current()
            .await,
    );

    // Kinds this version does not know are left alone rather than refused.
    execute_directly(
        &ctx.url,
        "UPDATE tenant_objects SET document = replace(document, '\"clientSecret\":\"!', '\"clientSecret\":\"')
             WHERE kind = 'identityProvider' AND id = 'github';
         INSERT INTO tenant_objects (kind, id, position, document)
             VALUES ('somethingNew', 'x', 0, '{}')",
    )
    .await;
    let snapshot = TenantService::new(ctx.another_store().await, key)
        .current()
        .await
        .unwrap();
    assert_eq!(snapshot.connectors.len(), 4);
}
