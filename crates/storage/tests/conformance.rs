//! The storage conformance suite: one set of cases, written against `dyn Store`, run
//! on SQLite and on PostgreSQL so both backends are held to the same behaviour.
//!
//! Every case gets a database of its own: a fresh temporary SQLite file, or a fresh
//! `usher_test_<random>` PostgreSQL database on the server named by
//! `USHER_TEST_POSTGRES_URL` (dropped afterwards). Without that variable the
//! PostgreSQL tests report themselves skipped, unless `USHER_REQUIRE_POSTGRES=1` says
//! they must run (as in CI), in which case they fail. The migrated cases also run on
//! `sqlite::memory:`, whose single-connection pool must serialise everything.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive Usher from outside, with the real clock, their own HTTP clients and random names"
)]
#![allow(
    clippy::too_many_lines,
    reason = "a test reads best as one story, set-up to last assertion"
)]

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::Connection as _;
use usher_domain::{
    AttributeValue, AttributeValues, AuthorizationRequest, Flow, FlowStep, Identity, NewUser,
    SignInType, SignUpRequest, SignUpRequestStatus, User, UserProfile, UserType,
};
use usher_storage::{
    AuthorizationCode, BrowserSession, CallFilter, ConnectorCallRecord, Grant, Redemption,
    RefreshToken, StorageError, Store, StoredSigningKey, TenantObject, TenantObjects, UserEdit,
    UserQuery,
};

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// What a case gets: the store, and its URL for cases that need more connections.
struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

fn random_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Runs `case` on a fresh store at `url`, in a task of its own so that a failing case
/// still lets the caller clean up before the panic is passed on.
async fn run_case<F, Fut>(url: String, migrate: bool, case: F) -> Result<(), tokio::task::JoinError>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = usher_storage::connect(&url).await.expect("connect");
    if migrate {
        store.migrate().await.expect("migrate");
    }
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

async fn on_sqlite<F, Fut>(migrate: bool, case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = std::env::temp_dir().join(format!("usher-storage-test-{}.db", random_name()));
    let url = format!("sqlite://{}", path.display());
    let outcome = run_case(url, migrate, case).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rethrow(outcome);
}

async fn on_sqlite_memory<F, Fut>(migrate: bool, case: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    rethrow(run_case("sqlite::memory:".into(), migrate, case).await);
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

async fn on_postgres<F, Fut>(migrate: bool, case: F)
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
    let outcome = run_case(url.to_string(), migrate, case).await;
    sqlx::Executor::execute(
        &mut admin,
        format!("DROP DATABASE {database} WITH (FORCE)").as_str(),
    )
    .await
    .expect("drop test database");
    let _ = admin.close().await;
    rethrow(outcome);
}

/// Runs `sql` on the database at `url` behind the store's back.
async fn execute_directly(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::Executor::execute(&mut conn, sql).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::Executor::execute(&mut conn, sql).await.unwrap();
    }
}

/// The migration versions recorded in the database at `url`, read directly.
async fn applied_migrations(url: &str) -> Vec<i64> {
    const SQL: &str = "SELECT version FROM usher_migrations ORDER BY version";
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(SQL).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(SQL).fetch_all(&mut conn).await.unwrap()
    }
}

/// Generates, for every case, `sqlite::<case>` and `postgres::<case>` tests (and
/// `sqlite_memory::<case>` for the `migrated` ones). Cases listed under `fresh` get an
/// unmigrated database and may open more connections to it through `Ctx::url`.
macro_rules! conformance {
    (migrated: $($case:ident),* $(,)?; fresh: $($fresh:ident),* $(,)?;) => {
        conformance!(@backend sqlite, on_sqlite, [$($case),*], [$($fresh),*]);
        conformance!(@backend postgres, on_postgres, [$($case),*], [$($fresh),*]);
        // Every connection to `sqlite::memory:` is a new database, so the cases that
        // open a second store do not apply.
        conformance!(@backend sqlite_memory, on_sqlite_memory, [$($case),*], []);
    };
    (@backend $module:ident, $runner:ident, [$($case:ident),*], [$($fresh:ident),*]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$runner(true, super::$case).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $fresh() {
                    super::$runner(false, super::$fresh).await;
                }
            )*
        }
    };
}

conformance! {
    migrated:
        users_and_identities,
        duplicate_identity_writes_nothing,
        flows_optimistic_concurrency,
        flow_run_leases,
        authorization_codes_single_use,
        grants_revocation,
        refresh_tokens_single_use,
        browser_sessions,
        signing_keys,
        delete_expired_removes_only_expired,
        unicode_and_large_values,
        connector_call_records,
        linking_identities,
        exact_issuers,
        tenant_versioning,
        tenant_concurrent_writes,
        list_users_filters,
        list_users_paging,
        list_users_literal_and_unicode,
        update_user_and_password,
        delete_user_cleans_up,
        credential_and_role_changes_end_sessions,
        rate_limit_windows,
        set_identities_replaces,
        user_roles,
        sign_up_requests_store_and_page,
        open_sign_up_requests,
        decide_sign_up_request_once,
        approve_sign_up_request_creates_the_user_with_the_decision,
        edit_user_is_one_transaction_at_one_version,
        account_events_newest_first_and_gone_with_their_user;
    fresh:
        migrate_twice_is_a_no_op,
        concurrent_migrations,
        bad_stored_data_is_corrupt,
        display_name_backfill;
}

// ---------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------

/// A fixed instant, on a millisecond, since stored timestamps keep milliseconds.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_123).unwrap()
}

fn identity(sign_in_type: SignInType, issuer: &str, id: &str) -> Identity {
    Identity {
        sign_in_type,
        issuer: issuer.into(),
        issuer_assigned_id: id.into(),
        exact_issuer: None,
    }
}

fn local(email: &str) -> Identity {
    identity(SignInType::EmailAddress, "usher.example", email)
}

fn new_user(id: &str, email: Option<&str>, identities: Vec<Identity>) -> NewUser {
    NewUser {
        id: id.into(),
        email: email.map(Into::into),
        attributes: [(
            "displayName".to_owned(),
            AttributeValue::String(format!("User {id}")),
        )]
        .into(),
        identities,
        password_hash: None,
        created_at: t0(),
        account_enabled: true,
        email_verified: true,
        profile: UserProfile::default(),
    }
}

fn flow(id: &str, expires_at: DateTime<Utc>) -> Flow {
    let mut flow = Flow::start(
        id.into(),
        "B2X_1_signup_signin".into(),
        AuthorizationRequest {
            client_id: "app".into(),
            redirect_uri: "https://app.example/callback".into(),
            scope: vec!["openid".into(), "email".into()],
            state: Some("xyz".into()),
            nonce: Some("n-0S6_WzA2Mj".into()),
            code_challenge: None,
            ui_locales: Some("fr-CA".into()),
            browser_language: None,
            account_action: None,
            login_hint: None,
            prompt: None,
        },
        "fr".into(),
        "browser-binding-hash".into(),
        "csrf-token".into(),
        // Flows are stored whole as JSON, so even nanoseconds survive.
        t0() + Duration::nanoseconds(456_789),
    );
    flow.expires_at = expires_at;
    flow
}

fn code(code_hash: &str, expires_at: DateTime<Utc>) -> AuthorizationCode {
    let mut extra_claims = serde_json::Map::new();
    extra_claims.insert("loyaltyTier".into(), serde_json::json!("gold"));
    extra_claims.insert("roles".into(), serde_json::json!(["a", "b"]));
    AuthorizationCode {
        code_hash: code_hash.into(),
        client_id: "app".into(),
        user_id: "u-1".into(),
        redirect_uri: "https://app.example/callback".into(),
        scope: vec!["openid".into(), "offline_access".into()],
        nonce: Some("nonce".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        auth_time: t0() - Duration::minutes(1),
        session_id: Some("session-1".into()),
        grant_id: "grant-1".into(),
        extra_claims,
        created_at: t0(),
        expires_at,
        used_at: None,
    }
}

fn refresh_token(token_hash: &str, expires_at: DateTime<Utc>) -> RefreshToken {
    RefreshToken {
        token_hash: token_hash.into(),
        grant_id: "grant-1".into(),
        created_at: t0(),
        expires_at,
        used_at: None,
    }
}

fn session(id_hash: &str, expires_at: DateTime<Utc>) -> BrowserSession {
    BrowserSession {
        id_hash: id_hash.into(),
        user_id: "u-1".into(),
        auth_time: t0(),
        created_at: t0(),
        expires_at,
        ended_at: None,
        identity_provider: Some("Google-OAUTH".into()),
    }
}

fn signing_key(kid: &str, created_at: DateTime<Utc>) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        algorithm: "ES256".into(),
        // Every byte value, so nothing is treated as text on the way.
        encrypted_private_key: (0..=255u8).rev().chain(0..=255u8).collect(),
        public_jwk: serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "use": "sig", "alg": "ES256"
        }),
        created_at,
        activates_at: created_at + Duration::hours(1),
        retired_at: None,
    }
}

fn is<T: std::fmt::Debug>(result: Result<T, StorageError>, expected: fn(&StorageError) -> bool) {
    match result {
        Err(e) if expected(&e) => {}
        other => panic!("unexpected result: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------

async fn users_and_identities(ctx: Ctx) {
    let store = ctx.store;
    let google = identity(
        SignInType::Federated,
        "https://accounts.google.com",
        "1098765",
    );

    // Created first but later in time, so the email lookup must order by created_at.
    let mut later = new_user("u-fed", Some("ada@example.com"), vec![google.clone()]);
    later.created_at = t0() + Duration::seconds(10);
    let later = store.create_user(later).await.unwrap();

    let mut new = new_user(
        "u-local",
        Some("ada@example.com"),
        vec![
            local("ada@example.com"),
            identity(
                SignInType::Federated,
                "mail.usher.example",
                "ada@example.com",
            ),
        ],
    );
    new.attributes.insert(
        "extension_0a1b_LoyaltyNumber".into(),
        AttributeValue::Int(-42),
    );
    new.attributes.insert(
        "extension_0a1b_Newsletter".into(),
        AttributeValue::Boolean(true),
    );
    new.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    // Sub-millisecond precision is dropped on the way in, and the returned user says so.
    new.created_at = t0() + Duration::nanoseconds(999_999);
    let created = store.create_user(new.clone()).await.unwrap();
    assert_eq!(
        created,
        User {
            id: "u-local".into(),
            email: Some("ada@example.com".into()),
            attributes: new.attributes.clone(),
            identities: new.identities.clone(),
            account_enabled: true,
            created_at: t0(),
            email_verified: true,
            profile: UserProfile::default(),
            version: 1,
            // The password was set when the account was made.
            password_changed_at: Some(t0()),
        }
    );

    assert_eq!(
        store.user_by_id("u-local").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.user_by_id("u-fed").await.unwrap(),
        Some(later.clone())
    );
    assert_eq!(store.user_by_id("u-nobody").await.unwrap(), None);

    assert_eq!(
        store
            .user_by_identity(SignInType::EmailAddress, "usher.example", "ada@example.com")
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store
            .user_by_identity(
                SignInType::Federated,
                "https://accounts.google.com",
                "1098765"
            )
            .await
            .unwrap(),
        Some(later.clone())
    );
    // All three parts of an identity count.
    for (t, issuer, id) in [
        (
            SignInType::EmailAddress,
            "https://accounts.google.com",
            "1098765",
        ),
        (
            SignInType::Federated,
            "https://accounts.google.com",
            "1098766",
        ),
        (SignInType::Federated, "https://login.example", "1098765"),
    ] {
        assert_eq!(store.user_by_identity(t, issuer, id).await.unwrap(), None);
    }

    assert_eq!(
        store.users_by_email("ada@example.com").await.unwrap(),
        vec![created.clone(), later.clone()]
    );
    assert!(store
        .users_by_email("nobody@example.com")
        .await
        .unwrap()
        .is_empty());

    assert_eq!(
        store.password_hash("u-local").await.unwrap(),
        new.password_hash
    );
    assert_eq!(store.password_hash("u-fed").await.unwrap(), None);
    assert_eq!(store.password_hash("u-nobody").await.unwrap(), None);

    // A user may have neither email nor identities.
    let bare = store
        .create_user(new_user("u-bare", None, Vec::new()))
        .await
        .unwrap();
    assert_eq!(store.user_by_id("u-bare").await.unwrap(), Some(bare));
}

async fn duplicate_identity_writes_nothing(ctx: Ctx) {
    let store = ctx.store;
    let taken = local("ada@example.com");
    let first = store
        .create_user(new_user(
            "u-1",
            Some("ada@example.com"),
            vec![taken.clone()],
        ))
        .await
        .unwrap();

    // The new identity comes first, so a non-transactional insert would leave it.
    let fresh = identity(SignInType::Federated, "https://idp.example", "ada");
    let clash = new_user(
        "u-2",
        Some("ada2@example.com"),
        vec![fresh.clone(), taken.clone()],
    );
    is(store.create_user(clash).await, |e| {
        matches!(e, StorageError::DuplicateIdentity)
    });
    assert_eq!(store.user_by_id("u-2").await.unwrap(), None);
    assert!(store
        .users_by_email("ada2@example.com")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .user_by_identity(fresh.sign_in_type, &fresh.issuer, &fresh.issuer_assigned_id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .user_by_identity(taken.sign_in_type, &taken.issuer, &taken.issuer_assigned_id)
            .await
            .unwrap(),
        Some(first.clone())
    );

    // The same identity twice in one user is a duplicate too.
    let twice = new_user("u-3", None, vec![fresh.clone(), fresh.clone()]);
    is(store.create_user(twice).await, |e| {
        matches!(e, StorageError::DuplicateIdentity)
    });
    assert_eq!(store.user_by_id("u-3").await.unwrap(), None);

    // A taken id is a different error, and also writes nothing.
    let other = identity(SignInType::Federated, "https://idp.example", "other");
    let same_id = new_user("u-1", Some("someone@example.com"), vec![other.clone()]);
    is(store.create_user(same_id).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(first));
    assert_eq!(
        store
            .user_by_identity(other.sign_in_type, &other.issuer, &other.issuer_assigned_id)
            .await
            .unwrap(),
        None
    );

    // Nothing of the failed attempts is in the way of a correct one.
    let retry = new_user("u-2", Some("ada2@example.com"), vec![fresh.clone()]);
    let retried = store.create_user(retry).await.unwrap();
    assert_eq!(
        store
            .user_by_identity(fresh.sign_in_type, &fresh.issuer, &fresh.issuer_assigned_id)
            .await
            .unwrap(),
        Some(retried)
    );
}

async fn migrate_twice_is_a_no_op(ctx: Ctx) {
    let store = ctx.store;
    let expected_backend = if ctx.url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(store.backend_name(), expected_backend);
    store.ping().await.unwrap();

    store.migrate().await.unwrap();
    assert_eq!(applied_migrations(&ctx.url).await, MIGRATIONS);
    let user = store
        .create_user(new_user(
            "u-1",
            Some("a@example.com"),
            vec![local("a@example.com")],
        ))
        .await
        .unwrap();

    store.migrate().await.unwrap();
    assert_eq!(applied_migrations(&ctx.url).await, MIGRATIONS);
    assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(user));

    // A new process (a new pool) migrating the same database is a no-op as well.
    let again = usher_storage::connect(&ctx.url).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(applied_migrations(&ctx.url).await, MIGRATIONS);
    assert_eq!(
        again.users_by_email("a@example.com").await.unwrap().len(),
        1
    );
}

/// Every migration the store has, in order.
const MIGRATIONS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

async fn concurrent_migrations(ctx: Ctx) {
    // Separate pools, as separate Usher instances starting together would have.
    let mut stores = vec![ctx.store.clone()];
    for _ in 0..3 {
        stores.push(usher_storage::connect(&ctx.url).await.unwrap());
    }
    let tasks: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("concurrent migrate");
    }
    assert_eq!(applied_migrations(&ctx.url).await, MIGRATIONS);

    let user = stores[1]
        .create_user(new_user("u-1", None, vec![local("a@example.com")]))
        .await
        .unwrap();
    for store in &stores {
        assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(user.clone()));
    }
}

async fn flows_optimistic_concurrency(ctx: Ctx) {
    let store = ctx.store;
    let original = flow("flow-1", t0() + Duration::hours(1));
    store.insert_flow(&original).await.unwrap();
    is(store.insert_flow(&original).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    assert_eq!(store.flow("flow-1").await.unwrap(), Some(original.clone()));
    assert_eq!(store.flow("flow-unknown").await.unwrap(), None);

    // Two requests read the same flow; the first to save wins.
    let mut first = store.flow("flow-1").await.unwrap().unwrap();
    let mut second = store.flow("flow-1").await.unwrap().unwrap();
    first.go_to_sign_up(t0()).unwrap();
    store.update_flow(&mut first).await.unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(
        first.step,
        FlowStep::EnterEmail {
            purpose: usher_domain::CodePurpose::SignUp
        }
    );

    second.fail("ref-1".into());
    is(store.update_flow(&mut second).await, |e| {
        matches!(e, StorageError::Conflict)
    });
    assert_eq!(
        second.version, 0,
        "a refused save leaves the copy's version alone"
    );
    assert_eq!(store.flow("flow-1").await.unwrap(), Some(first.clone()));

    // The winner can keep going; the loser must re-read.
    first
        .code_sent("a@example.com".into(), Some("hmac".into()), t0())
        .unwrap();
    store.update_flow(&mut first).await.unwrap();
    assert_eq!(first.version, 2);
    let mut reread = store.flow("flow-1").await.unwrap().unwrap();
    assert_eq!(reread, first);
    reread.go_to_sign_in(t0()).unwrap();
    store.update_flow(&mut reread).await.unwrap();
    assert_eq!(store.flow("flow-1").await.unwrap().unwrap().version, 3);

    // Many stale copies saved at once: exactly one gets through.
    let base = store.flow("flow-1").await.unwrap().unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let mut copy = base.clone();
            tokio::spawn(async move {
                copy.fail(format!("ref-{i}"));
                store.update_flow(&mut copy).await.map(|()| copy)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(saved) => winners.push(saved),
            Err(StorageError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.flow("flow-1").await.unwrap(), winners.pop());

    // A flow that is gone (expired and cleaned up) cannot be saved either.
    let mut missing = flow("flow-missing", t0() + Duration::hours(1));
    is(store.update_flow(&mut missing).await, |e| {
        matches!(e, StorageError::Conflict)
    });
    assert_eq!(store.flow("flow-missing").await.unwrap(), None);
}

/// Redeems `key` from `tasks` tasks at once and returns (fresh, replayed) results.
async fn redeem_concurrently<T, F, Fut>(tasks: usize, redeem: F) -> (Vec<T>, Vec<T>)
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<Redemption<T>>, StorageError>> + Send + 'static,
{
    let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(redeem())).collect();
    let (mut fresh, mut replayed) = (Vec::new(), Vec::new());
    for handle in handles {
        match handle.await.unwrap().unwrap() {
            Some(Redemption::Fresh(t)) => fresh.push(t),
            Some(Redemption::Replayed(t)) => replayed.push(t),
            None => panic!("an inserted record was not found"),
        }
    }
    (fresh, replayed)
}

async fn flow_run_leases(ctx: Ctx) {
    let store = ctx.store;
    let mut f = flow("f-lease", t0() + Duration::hours(1));
    store.insert_flow(&f).await.unwrap();
    let s = |n: i64| t0() + Duration::seconds(n);
    assert!(store
        .take_flow_lease("f-lease", "run-1", s(0), s(10))
        .await
        .unwrap());
    // Held: nobody else gets it, until it runs out.
    assert!(!store
        .take_flow_lease("f-lease", "run-2", s(5), s(15))
        .await
        .unwrap());
    assert!(store
        .renew_flow_lease("f-lease", "run-1", s(20))
        .await
        .unwrap());
    assert!(!store
        .take_flow_lease("f-lease", "run-2", s(15), s(25))
        .await
        .unwrap());
    // Renewing is no save of the flow: its version stays.
    let read = store.flow("f-lease").await.unwrap().unwrap();
    assert_eq!(read.version, f.version);
    store.update_flow(&mut f).await.unwrap();
    // Run out: taken over, and the old holder can no longer renew or release it.
    assert!(store
        .take_flow_lease("f-lease", "run-2", s(20), s(30))
        .await
        .unwrap());
    assert!(!store
        .renew_flow_lease("f-lease", "run-1", s(40))
        .await
        .unwrap());
    store.release_flow_lease("f-lease", "run-1").await.unwrap();
    assert!(!store
        .take_flow_lease("f-lease", "run-3", s(25), s(35))
        .await
        .unwrap());
    // Released by its holder: free at once.
    store.release_flow_lease("f-lease", "run-2").await.unwrap();
    assert!(store
        .take_flow_lease("f-lease", "run-3", s(25), s(35))
        .await
        .unwrap());
    assert!(!store
        .take_flow_lease("nope", "run-1", s(0), s(10))
        .await
        .unwrap());
}

async fn authorization_codes_single_use(ctx: Ctx) {
    let store = ctx.store;
    let issued = code("code-hash-1", t0() + Duration::minutes(10));
    store.insert_authorization_code(&issued).await.unwrap();
    is(store.insert_authorization_code(&issued).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });

    let now = t0() + Duration::seconds(5);
    let (fresh, replayed) = redeem_concurrently(16, || {
        let store = store.clone();
        async move { store.redeem_authorization_code("code-hash-1", now).await }
    })
    .await;
    let used = AuthorizationCode {
        used_at: Some(now),
        ..issued.clone()
    };
    assert_eq!(fresh, vec![used.clone()], "exactly one redemption is fresh");
    assert_eq!(replayed.len(), 15);
    assert!(replayed.iter().all(|c| *c == used));

    // A later replay still reports the first use, not its own.
    assert_eq!(
        store
            .redeem_authorization_code("code-hash-1", now + Duration::minutes(1))
            .await
            .unwrap(),
        Some(Redemption::Replayed(used))
    );
    assert_eq!(
        store
            .redeem_authorization_code("code-hash-unknown", now)
            .await
            .unwrap(),
        None
    );

    // Optional fields may be empty.
    let plain = AuthorizationCode {
        code_hash: "code-hash-2".into(),
        nonce: None,
        code_challenge: None,
        session_id: None,
        extra_claims: serde_json::Map::new(),
        scope: Vec::new(),
        ..issued
    };
    store.insert_authorization_code(&plain).await.unwrap();
    assert_eq!(
        store
            .redeem_authorization_code("code-hash-2", now)
            .await
            .unwrap(),
        Some(Redemption::Fresh(AuthorizationCode {
            used_at: Some(now),
            ..plain
        }))
    );
}

async fn grants_revocation(ctx: Ctx) {
    let store = ctx.store;
    let grant = Grant {
        id: "grant-1".into(),
        client_id: "app".into(),
        user_id: "u-1".into(),
        scope: vec!["openid".into(), "offline_access".into()],
        auth_time: t0() - Duration::minutes(3),
        session_id: Some("session-1".into()),
        created_at: t0(),
        revoked_at: None,
        // Connector claims survive the round trip, nested values and all.
        token_claims: serde_json::json!({"roles": ["reader"], "tier": {"level": 2}})
            .as_object()
            .unwrap()
            .clone(),
    };
    store.insert_grant(&grant).await.unwrap();
    is(store.insert_grant(&grant).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    assert_eq!(store.grant("grant-1").await.unwrap(), Some(grant.clone()));
    assert_eq!(store.grant("grant-unknown").await.unwrap(), None);

    let without_session = Grant {
        id: "grant-2".into(),
        session_id: None,
        ..grant.clone()
    };
    store.insert_grant(&without_session).await.unwrap();

    let revoked_at = t0() + Duration::minutes(1);
    store.revoke_grant("grant-1", revoked_at).await.unwrap();
    let revoked = Grant {
        revoked_at: Some(revoked_at),
        ..grant
    };
    assert_eq!(store.grant("grant-1").await.unwrap(), Some(revoked.clone()));
    // Idempotent: revoking again keeps the first revocation time.
    store
        .revoke_grant("grant-1", revoked_at + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(store.grant("grant-1").await.unwrap(), Some(revoked));
    store
        .revoke_grant("grant-unknown", revoked_at)
        .await
        .unwrap();
    // Other grants are untouched.
    assert_eq!(store.grant("grant-2").await.unwrap(), Some(without_session));
}

async fn refresh_tokens_single_use(ctx: Ctx) {
    let store = ctx.store;
    let token = refresh_token("rt-hash-1", t0() + Duration::days(30));
    store.insert_refresh_token(&token).await.unwrap();
    is(store.insert_refresh_token(&token).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });

    // Looking redeems nothing.
    assert_eq!(
        store.refresh_token("rt-hash-1").await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.refresh_token("rt-unknown").await.unwrap(), None);

    let now = t0() + Duration::hours(2);
    let (fresh, replayed) = redeem_concurrently(16, || {
        let store = store.clone();
        async move { store.redeem_refresh_token("rt-hash-1", now).await }
    })
    .await;
    let used = RefreshToken {
        used_at: Some(now),
        ..token
    };
    assert_eq!(fresh, vec![used.clone()], "exactly one redemption is fresh");
    assert_eq!(replayed, vec![used.clone(); 15]);

    assert_eq!(
        store
            .redeem_refresh_token("rt-hash-1", now + Duration::hours(1))
            .await
            .unwrap(),
        Some(Redemption::Replayed(used.clone()))
    );
    assert_eq!(store.refresh_token("rt-hash-1").await.unwrap(), Some(used));
    assert_eq!(
        store.redeem_refresh_token("rt-unknown", now).await.unwrap(),
        None
    );

    // Rotation: the successor is independent of its redeemed predecessor.
    let next = refresh_token("rt-hash-2", now + Duration::days(30));
    store.insert_refresh_token(&next).await.unwrap();
    assert_eq!(
        store.redeem_refresh_token("rt-hash-2", now).await.unwrap(),
        Some(Redemption::Fresh(RefreshToken {
            used_at: Some(now),
            ..next
        }))
    );
}

async fn browser_sessions(ctx: Ctx) {
    let store = ctx.store;
    let live = session("sid-hash-1", t0() + Duration::hours(8));
    store.insert_session(&live).await.unwrap();
    is(store.insert_session(&live).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    assert_eq!(
        store.session("sid-hash-1").await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(store.session("sid-unknown").await.unwrap(), None);

    let other = session("sid-hash-2", t0() + Duration::hours(8));
    store.insert_session(&other).await.unwrap();

    let ended_at = t0() + Duration::minutes(30);
    store.end_session("sid-hash-1", ended_at).await.unwrap();
    let ended = BrowserSession {
        ended_at: Some(ended_at),
        ..live
    };
    assert_eq!(
        store.session("sid-hash-1").await.unwrap(),
        Some(ended.clone())
    );
    // Idempotent: ending again keeps the first end.
    store
        .end_session("sid-hash-1", ended_at + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(store.session("sid-hash-1").await.unwrap(), Some(ended));
    store.end_session("sid-unknown", ended_at).await.unwrap();
    assert_eq!(store.session("sid-hash-2").await.unwrap(), Some(other));
}

async fn signing_keys(ctx: Ctx) {
    let store = ctx.store;
    assert!(store.signing_keys().await.unwrap().is_empty());

    let newer = signing_key("kid-newer", t0() + Duration::days(90));
    let older = signing_key("kid-older", t0());
    // Inserted newest first, listed oldest first.
    store.insert_signing_key(&newer).await.unwrap();
    store.insert_signing_key(&older).await.unwrap();
    let mut same_kid = signing_key("kid-older", t0() + Duration::days(1));
    same_kid.algorithm = "RS256".into();
    is(store.insert_signing_key(&same_kid).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    assert_eq!(
        store.signing_keys().await.unwrap(),
        vec![older.clone(), newer.clone()]
    );

    let retired_at = t0() + Duration::days(100);
    store
        .retire_signing_key("kid-older", retired_at)
        .await
        .unwrap();
    let retired = StoredSigningKey {
        retired_at: Some(retired_at),
        ..older.clone()
    };
    assert_eq!(
        store.signing_keys().await.unwrap(),
        vec![retired.clone(), newer.clone()]
    );
    // Retiring again later does not postpone it...
    store
        .retire_signing_key("kid-older", retired_at + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(store.signing_keys().await.unwrap()[0], retired);
    // ...but retiring earlier brings it forward.
    let sooner = retired_at - Duration::days(1);
    store.retire_signing_key("kid-older", sooner).await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap(),
        vec![
            StoredSigningKey {
                retired_at: Some(sooner),
                ..older
            },
            newer
        ]
    );
    store
        .retire_signing_key("kid-unknown", retired_at)
        .await
        .unwrap();
    assert_eq!(store.signing_keys().await.unwrap().len(), 2);
}

async fn delete_expired_removes_only_expired(ctx: Ctx) {
    let store = ctx.store;
    let now = t0() + Duration::hours(1);
    let past = now - Duration::milliseconds(1);
    let future = now + Duration::minutes(5);

    store.insert_flow(&flow("flow-old", past)).await.unwrap();
    store.insert_flow(&flow("flow-live", future)).await.unwrap();
    // Expiring exactly now is not "before now".
    store.insert_flow(&flow("flow-edge", now)).await.unwrap();
    store
        .insert_authorization_code(&code("code-old", past))
        .await
        .unwrap();
    store
        .insert_authorization_code(&code("code-live", future))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh_token("rt-old", past))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh_token("rt-live", future))
        .await
        .unwrap();
    store
        .insert_session(&session("sid-old", past))
        .await
        .unwrap();
    store
        .insert_session(&session("sid-live", future))
        .await
        .unwrap();
    let grant = Grant {
        id: "grant-1".into(),
        client_id: "app".into(),
        user_id: "u-1".into(),
        scope: vec!["openid".into()],
        auth_time: t0(),
        session_id: None,
        created_at: t0(),
        revoked_at: None,
        token_claims: serde_json::Map::default(),
    };
    store.insert_grant(&grant).await.unwrap();
    let user = store
        .create_user(new_user("u-1", None, vec![local("a@example.com")]))
        .await
        .unwrap();
    let key = signing_key("kid-1", t0());
    store.insert_signing_key(&key).await.unwrap();

    assert_eq!(store.delete_expired(now).await.unwrap(), 4);

    assert_eq!(store.flow("flow-old").await.unwrap(), None);
    assert!(store.flow("flow-live").await.unwrap().is_some());
    assert!(store.flow("flow-edge").await.unwrap().is_some());
    assert_eq!(
        store
            .redeem_authorization_code("code-old", now)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        store
            .redeem_authorization_code("code-live", now)
            .await
            .unwrap(),
        Some(Redemption::Fresh(_))
    ));
    assert_eq!(
        store.redeem_refresh_token("rt-old", now).await.unwrap(),
        None
    );
    assert!(matches!(
        store.redeem_refresh_token("rt-live", now).await.unwrap(),
        Some(Redemption::Fresh(_))
    ));
    assert_eq!(store.session("sid-old").await.unwrap(), None);
    assert!(store.session("sid-live").await.unwrap().is_some());
    assert_eq!(store.grant("grant-1").await.unwrap(), Some(grant));
    assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(user));
    assert_eq!(store.signing_keys().await.unwrap(), vec![key]);

    // Nothing left to delete; later, everything goes.
    assert_eq!(store.delete_expired(now).await.unwrap(), 0);
    assert_eq!(
        store
            .delete_expired(future + Duration::milliseconds(1))
            .await
            .unwrap(),
        5
    );
}

async fn unicode_and_large_values(ctx: Ctx) {
    let store = ctx.store;
    // About 1.5 MB of text mixing 1- to 4-byte UTF-8, quotes, backslashes and
    // control characters (NUL included, which PostgreSQL text cannot hold unescaped).
    let large: String = "Zoë “quoted” \\ back\tslash \u{0} 李小龍 🦀 Ωμέγα\n".repeat(30_000);
    let mut attributes = AttributeValues::new();
    attributes.insert(
        "displayName".into(),
        AttributeValue::String("Zoë 🦀 Ångström".into()),
    );
    attributes.insert(
        "extension_0a1b_Biography".into(),
        AttributeValue::String(large.clone()),
    );
    attributes.insert(
        "extension_0a1b_Ünïcödé".into(),
        AttributeValue::String("✓".into()),
    );
    attributes.insert("extension_0a1b_Count".into(), AttributeValue::Int(i64::MIN));
    attributes.insert(
        "extension_0a1b_Empty".into(),
        AttributeValue::String(String::new()),
    );

    let email = "zoë.李@exämple.org";
    let federated = identity(SignInType::Federated, "https://idp.例え.jp", "用户-ä-🦀");
    let new = NewUser {
        id: "u-ünïcödé-🦀".into(),
        email: Some(email.into()),
        attributes: attributes.clone(),
        identities: vec![local(email), federated.clone()],
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        created_at: t0(),
        account_enabled: true,
        email_verified: true,
        profile: UserProfile::default(),
    };
    let created = store.create_user(new).await.unwrap();
    assert_eq!(created.attributes, attributes);
    assert_eq!(
        store.user_by_id("u-ünïcödé-🦀").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store
            .user_by_identity(
                federated.sign_in_type,
                &federated.issuer,
                &federated.issuer_assigned_id
            )
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.users_by_email(email).await.unwrap(), vec![created]);

    // Large and Unicode claims in a code, and a large flow.
    let mut issued = code("code-🦀", t0() + Duration::minutes(10));
    issued.extra_claims.insert(
        "bio".into(),
        serde_json::json!({ "text": large, "nested": ["√", 1.5, null, true] }),
    );
    issued.nonce = Some("nönce-✓".into());
    store.insert_authorization_code(&issued).await.unwrap();
    assert_eq!(
        store
            .redeem_authorization_code("code-🦀", t0())
            .await
            .unwrap(),
        Some(Redemption::Fresh(AuthorizationCode {
            used_at: Some(t0()),
            ..issued
        }))
    );

    let mut big = flow("flow-🦀", t0() + Duration::hours(1));
    big.authorization.login_hint = Some(large);
    big.locale = "zh-Hant-TW".into();
    store.insert_flow(&big).await.unwrap();
    assert_eq!(store.flow("flow-🦀").await.unwrap(), Some(big.clone()));
    big.block("Désolé — 申し訳ありません 🙏".into(), Some("Non".into()));
    store.update_flow(&mut big).await.unwrap();
    assert_eq!(store.flow("flow-🦀").await.unwrap(), Some(big));
}

async fn bad_stored_data_is_corrupt(ctx: Ctx) {
    let store = ctx.store;
    store.migrate().await.unwrap();
    store
        .create_user(new_user(
            "u-1",
            Some("a@example.com"),
            vec![local("a@example.com")],
        ))
        .await
        .unwrap();
    store
        .create_user(new_user("u-2", Some("b@example.com"), Vec::new()))
        .await
        .unwrap();
    store
        .insert_flow(&flow("flow-1", t0() + Duration::hours(1)))
        .await
        .unwrap();
    store
        .insert_authorization_code(&code("code-1", t0() + Duration::minutes(10)))
        .await
        .unwrap();
    store
        .insert_session(&session("sid-1", t0() + Duration::hours(1)))
        .await
        .unwrap();
    execute_directly(
        &ctx.url,
        "UPDATE users SET attributes = '{\"displayName\": [1, 2]' WHERE id = 'u-1';
         INSERT INTO identities (user_id, position, sign_in_type, issuer, issuer_assigned_id)
             VALUES ('u-2', 0, 'carrierPigeon', 'coop', 'b');
         UPDATE flows SET state = '{\"id\": \"flow-1\"}';
         UPDATE authorization_codes SET data = 'null';
         UPDATE browser_sessions SET expires_at = 9223372036854775807;",
    )
    .await;
    store
        .put_tenant_object(&tenant_object("userFlow", "b2x_1_a", 1), None)
        .await
        .unwrap();
    execute_directly(
        &ctx.url,
        "UPDATE tenant_objects SET document = '{\"id\": ' WHERE id = 'b2x_1_a'",
    )
    .await;

    let corrupt = |e: &StorageError| matches!(e, StorageError::Corrupt(_));
    is(store.user_by_id("u-1").await, corrupt);
    is(store.users_by_email("a@example.com").await, corrupt);
    is(
        store
            .user_by_identity(SignInType::EmailAddress, "usher.example", "a@example.com")
            .await,
        corrupt,
    );
    is(store.user_by_id("u-2").await, corrupt);
    is(store.flow("flow-1").await, corrupt);
    is(
        store.redeem_authorization_code("code-1", t0()).await,
        corrupt,
    );
    is(store.session("sid-1").await, corrupt);
    is(store.tenant_objects().await, corrupt);
    // What is not damaged still reads.
    assert_eq!(store.tenant_version().await.unwrap(), 1);
    assert_eq!(store.password_hash("u-1").await.unwrap(), None);
    assert_eq!(store.user_by_id("u-3").await.unwrap(), None);
}

fn call(id: &str, connector: &str, outcome: &str, at: DateTime<Utc>) -> ConnectorCallRecord {
    ConnectorCallRecord {
        call_id: id.into(),
        connector_id: connector.into(),
        user_flow_id: "B2X_1_signup".into(),
        step: "PostAttributeCollection".into(),
        flow_id: "f-1".into(),
        attempts: 2,
        http_status: Some(503),
        latency_ms: 1234,
        outcome: outcome.into(),
        failure_reason: (outcome == "failed").then(|| "http5xx".into()),
        error_code: (outcome == "failed").then_some(1_003_002),
        warnings: vec!["missing version".into(), "claim x not selected".into()],
        request_body: Some("{\"email\":\"a@example.com\"}".into()),
        response_body: None,
        created_at: at,
    }
}

async fn connector_call_records(ctx: Ctx) {
    let store = ctx.store;
    let t = t0();
    let a = call("c-1", "approval", "continue", t);
    let b = call("c-2", "approval", "failed", t + Duration::seconds(1));
    let c = call("c-3", "crm", "block", t + Duration::seconds(2));
    for r in [&a, &b, &c] {
        store.insert_connector_call(r).await.unwrap();
    }
    assert!(matches!(
        store.insert_connector_call(&a).await,
        Err(StorageError::AlreadyExists)
    ));
    assert_eq!(store.connector_call("c-2").await.unwrap(), Some(b.clone()));
    assert_eq!(store.connector_call("nope").await.unwrap(), None);

    let all = CallFilter {
        limit: 10,
        ..CallFilter::default()
    };
    let ids = |v: Vec<ConnectorCallRecord>| v.into_iter().map(|r| r.call_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.connector_calls(&all).await.unwrap()),
        ["c-3", "c-2", "c-1"]
    );
    let approval = CallFilter {
        connector_id: Some("approval".into()),
        ..all.clone()
    };
    assert_eq!(
        ids(store.connector_calls(&approval).await.unwrap()),
        ["c-2", "c-1"]
    );
    let failed = CallFilter {
        outcome: Some("failed".into()),
        ..all.clone()
    };
    assert_eq!(ids(store.connector_calls(&failed).await.unwrap()), ["c-2"]);
    let window = CallFilter {
        since: Some(t + Duration::seconds(1)),
        until: Some(t + Duration::seconds(2)),
        ..all.clone()
    };
    assert_eq!(ids(store.connector_calls(&window).await.unwrap()), ["c-2"]);
    let one = CallFilter { limit: 1, ..all };
    assert_eq!(ids(store.connector_calls(&one).await.unwrap()), ["c-3"]);
}

async fn linking_identities(ctx: Ctx) {
    let store = ctx.store;
    store
        .create_user(new_user(
            "u-1",
            Some("a@example.com"),
            vec![local("a@example.com")],
        ))
        .await
        .unwrap();
    store
        .create_user(new_user(
            "u-2",
            Some("b@example.com"),
            vec![local("b@example.com")],
        ))
        .await
        .unwrap();
    let google = identity(SignInType::Federated, "google.com", "g-1");
    assert!(store.add_identity("u-1", &google).await.unwrap());
    let found = store
        .user_by_identity(SignInType::Federated, "google.com", "g-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "u-1");
    assert_eq!(
        found.identities,
        vec![local("a@example.com"), google.clone()]
    );
    // The identity belongs to u-1 now: not to u-2 as well.
    assert!(matches!(
        store.add_identity("u-2", &google).await,
        Err(StorageError::DuplicateIdentity)
    ));
    assert!(!store
        .add_identity("nobody", &identity(SignInType::Federated, "mail", "x"))
        .await
        .unwrap());
}

fn from_provider(issuer: &str, exact: &str, id: &str) -> Identity {
    Identity {
        exact_issuer: Some(exact.into()),
        ..identity(SignInType::Federated, issuer, id)
    }
}

async fn exact_issuers(ctx: Ctx) {
    let store = ctx.store;
    const A: &str = "https://127.0.0.1:1";
    const B: &str = "https://127.0.0.1:2/b";
    // Two providers on one host whose users share a subject: two identities.
    let at_a = from_provider("127.0.0.1", A, "user-1");
    let at_b = from_provider("127.0.0.1", B, "user-1");
    store
        .create_user(new_user("u-a", None, vec![at_a.clone()]))
        .await
        .unwrap();
    store
        .create_user(new_user("u-b", None, vec![at_b.clone()]))
        .await
        .unwrap();
    let found = |identity: Identity, take_on: bool| {
        let store = store.clone();
        async move {
            store
                .user_by_provider_identity(&identity, take_on)
                .await
                .unwrap()
                .map(|u| u.id)
        }
    };
    assert_eq!(found(at_a.clone(), true).await.as_deref(), Some("u-a"));
    assert_eq!(found(at_b.clone(), true).await.as_deref(), Some("u-b"));
    let stored = store.user_by_id("u-b").await.unwrap().unwrap();
    assert_eq!(stored.identities, std::slice::from_ref(&at_b));
    // The same identity of the same provider is still unique.
    assert!(matches!(
        store.add_identity("u-b", &at_a).await,
        Err(StorageError::DuplicateIdentity)
    ));
    // Nor is a provider's identity found by the contract's fields alone.
    assert_eq!(
        store
            .user_by_identity(SignInType::Federated, "127.0.0.1", "user-1")
            .await
            .unwrap(),
        None
    );

    // An identity without an exact issuer (stored by an older Usher, or entered by
    // an administrator) is only taken on by the provider that owns it.
    let legacy = identity(SignInType::Federated, "127.0.0.1", "user-2");
    store
        .create_user(new_user("u-legacy", None, vec![legacy.clone()]))
        .await
        .unwrap();
    let a2 = from_provider("127.0.0.1", A, "user-2");
    let b2 = from_provider("127.0.0.1", B, "user-2");
    assert_eq!(found(b2.clone(), false).await, None);
    assert_eq!(found(a2.clone(), true).await.as_deref(), Some("u-legacy"));
    // ...once: it has A's exact issuer now, and B cannot have it.
    assert_eq!(found(b2.clone(), true).await, None);
    assert_eq!(
        store
            .user_by_id("u-legacy")
            .await
            .unwrap()
            .unwrap()
            .identities,
        std::slice::from_ref(&a2)
    );
    // An administrator cannot give a second user an identity of that issuer and
    // subject, whichever provider the first one's came from.
    assert!(matches!(
        store
            .create_user(new_user(
                "u-dup",
                None,
                vec![identity(SignInType::Federated, "127.0.0.1", "user-1")]
            ))
            .await,
        Err(StorageError::DuplicateIdentity)
    ));
    assert_eq!(store.user_by_id("u-dup").await.unwrap(), None);

    // Resolving at start: every unresolved identity of the short issuer, no other.
    for (n, id) in ["user-3", "user-4"].iter().enumerate() {
        store
            .create_user(new_user(
                &format!("u-old-{n}"),
                None,
                vec![identity(SignInType::Federated, "127.0.0.1", id)],
            ))
            .await
            .unwrap();
    }
    store
        .create_user(new_user(
            "u-google",
            None,
            vec![identity(SignInType::Federated, "google.com", "user-3")],
        ))
        .await
        .unwrap();
    assert_eq!(store.resolve_identities("127.0.0.1", A).await.unwrap(), 2);
    assert_eq!(store.resolve_identities("127.0.0.1", A).await.unwrap(), 0);
    assert_eq!(
        found(from_provider("127.0.0.1", A, "user-4"), false)
            .await
            .as_deref(),
        Some("u-old-1")
    );
    assert_eq!(
        found(from_provider("127.0.0.1", B, "user-3"), true).await,
        None
    );
    assert_eq!(
        store
            .user_by_identity(SignInType::Federated, "google.com", "user-3")
            .await
            .unwrap()
            .map(|u| u.id)
            .as_deref(),
        Some("u-google")
    );

    // An administrator's list of identities cannot name exact issuers: the ones that
    // stay keep theirs.
    let email = local("b@example.com");
    assert!(store
        .set_identities(
            "u-b",
            &[
                identity(SignInType::Federated, "127.0.0.1", "user-1"),
                email.clone()
            ],
        )
        .await
        .unwrap());
    assert_eq!(
        store.user_by_id("u-b").await.unwrap().unwrap().identities,
        [at_b.clone(), email]
    );
    assert_eq!(found(at_b.clone(), false).await.as_deref(), Some("u-b"));

    // A sign-up held for one provider's user does not hold the other's.
    let held = from_provider("127.0.0.1", A, "user-9");
    store
        .insert_sign_up_request(&sign_up_request(
            "req-a",
            "nine@example.com",
            vec![held.clone()],
            t0(),
        ))
        .await
        .unwrap();
    let open = |identity: Identity| {
        let store = store.clone();
        async move {
            store
                .open_sign_up_requests_for(None, &[identity])
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(open(held).await, ["req-a"]);
    assert!(open(from_provider("127.0.0.1", B, "user-9"))
        .await
        .is_empty());
    assert_eq!(
        open(identity(SignInType::Federated, "127.0.0.1", "user-9")).await,
        ["req-a"]
    );
}

fn tenant_object(kind: &str, id: &str, n: i64) -> TenantObject {
    TenantObject {
        kind: kind.into(),
        id: id.into(),
        document: serde_json::json!({ "id": id, "n": n, "text": "Désolé 🦀" }),
    }
}

/// `(kind, id)` of each object, in the order read.
fn keys(objects: &TenantObjects) -> Vec<(String, String)> {
    objects
        .objects
        .iter()
        .map(|o| (o.kind.clone(), o.id.clone()))
        .collect()
}

fn key(kind: &str, id: &str) -> (String, String) {
    (kind.to_owned(), id.to_owned())
}

async fn tenant_versioning(ctx: Ctx) {
    let store = ctx.store;
    let conflict = |e: &StorageError| matches!(e, StorageError::Conflict);

    // Never stored.
    assert_eq!(store.tenant_version().await.unwrap(), 0);
    assert_eq!(
        store.tenant_objects().await.unwrap(),
        TenantObjects {
            version: 0,
            objects: Vec::new()
        }
    );

    // Given order is kept within a kind; kinds come in order, whatever the given one.
    let initial = vec![
        tenant_object("userFlow", "zeta", 1),
        tenant_object("attribute", "b", 2),
        tenant_object("userFlow", "alpha", 3),
        tenant_object("attribute", "a", 4),
        tenant_object("settings", "tenant", 5),
    ];
    assert_eq!(store.replace_tenant(&initial, 0).await.unwrap(), 1);
    // Another instance seeding from the same never-stored state loses.
    is(store.replace_tenant(&initial[..1], 0).await, conflict);
    let read = store.tenant_objects().await.unwrap();
    assert_eq!(read.version, 1);
    assert_eq!(
        keys(&read),
        [
            key("attribute", "b"),
            key("attribute", "a"),
            key("settings", "tenant"),
            key("userFlow", "zeta"),
            key("userFlow", "alpha"),
        ]
    );
    assert_eq!(read.objects[3], initial[0], "documents come back as stored");
    assert_eq!(store.tenant_version().await.unwrap(), 1);

    // An update keeps the position; an insert goes last in its kind; ids are exact.
    assert_eq!(
        store
            .put_tenant_object(&tenant_object("userFlow", "zeta", 10), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .put_tenant_object(&tenant_object("userFlow", "Alpha", 11), Some(2))
            .await
            .unwrap(),
        3
    );
    is(
        store
            .put_tenant_object(&tenant_object("userFlow", "late", 12), Some(2))
            .await,
        conflict,
    );
    let read = store.tenant_objects().await.unwrap();
    assert_eq!(read.version, 3);
    assert_eq!(
        keys(&read)[3..],
        [
            key("userFlow", "zeta"),
            key("userFlow", "alpha"),
            key("userFlow", "Alpha")
        ]
    );
    assert_eq!(read.objects[3].document["n"], 10);

    // Deleting: a stale version is refused even for an absent object; deleting
    // nothing leaves the version alone.
    is(
        store
            .delete_tenant_object("userFlow", "zeta", Some(2))
            .await,
        conflict,
    );
    is(
        store
            .delete_tenant_object("userFlow", "nope", Some(2))
            .await,
        conflict,
    );
    assert_eq!(
        store
            .delete_tenant_object("userFlow", "zeta", Some(3))
            .await
            .unwrap(),
        Some(4)
    );
    assert_eq!(
        store
            .delete_tenant_object("userFlow", "zeta", None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_tenant_object("userFlow", "ALPHA", None)
            .await
            .unwrap(),
        None,
        "ids compare exactly"
    );
    assert_eq!(store.tenant_version().await.unwrap(), 4);
    // A deleted object's position is not reused by the next one appended.
    store
        .put_tenant_object(&tenant_object("userFlow", "omega", 13), None)
        .await
        .unwrap();
    assert_eq!(
        keys(&store.tenant_objects().await.unwrap())[3..],
        [
            key("userFlow", "alpha"),
            key("userFlow", "Alpha"),
            key("userFlow", "omega")
        ]
    );

    // A replace with a repeated key writes nothing.
    let repeated = vec![
        tenant_object("connector", "c", 1),
        tenant_object("connector", "c", 2),
    ];
    is(store.replace_tenant(&repeated, 5).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    let before = store.tenant_objects().await.unwrap();
    assert_eq!(before.version, 5);
    assert_eq!(before.objects.len(), 6);

    // A replace removes what it does not list.
    let replacement = vec![tenant_object("connector", "c", 1)];
    assert_eq!(store.replace_tenant(&replacement, 5).await.unwrap(), 6);
    assert_eq!(
        store.tenant_objects().await.unwrap(),
        TenantObjects {
            version: 6,
            objects: replacement
        }
    );
    assert_eq!(store.replace_tenant(&[], 6).await.unwrap(), 7);
    assert_eq!(
        store.tenant_objects().await.unwrap(),
        TenantObjects {
            version: 7,
            objects: Vec::new()
        }
    );
}

async fn tenant_concurrent_writes(ctx: Ctx) {
    // Separate pools where the database allows it, as separate instances would have.
    let mut stores = vec![ctx.store.clone()];
    if !ctx.url.contains(":memory:") {
        stores.push(usher_storage::connect(&ctx.url).await.unwrap());
    }
    store_one(&stores[0], "settings", "tenant").await;
    let start = stores[0].tenant_version().await.unwrap();

    const TASKS: i64 = 16;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = stores[i as usize % stores.len()].clone();
            tokio::spawn(async move {
                // Half of them update one shared object, half insert their own.
                let id = if i % 2 == 0 {
                    "shared".to_owned()
                } else {
                    format!("own-{i}")
                };
                store
                    .put_tenant_object(&tenant_object("connector", &id, i), None)
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().expect("concurrent put"));
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        ((start + 1)..=(start + TASKS)).collect::<Vec<_>>(),
        "every put gets a version of its own, none skipped"
    );
    let read = stores[stores.len() - 1].tenant_objects().await.unwrap();
    assert_eq!(read.version, start + TASKS);
    assert_eq!(read.objects.len(), 1 + 1 + TASKS as usize / 2);

    // Replaces against one version: exactly one wins.
    let version = read.version;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                store
                    .replace_tenant(&[tenant_object("attribute", "x", i as i64)], version)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, version + 1);
                won += 1;
            }
            Err(StorageError::Conflict) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    let read = stores[0].tenant_objects().await.unwrap();
    assert_eq!(read.version, version + 1);
    assert_eq!(read.objects.len(), 1);
}

async fn store_one(store: &Arc<dyn Store>, kind: &str, id: &str) {
    store
        .put_tenant_object(&tenant_object(kind, id, 0), None)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------
// User administration
// ---------------------------------------------------------------------------------

/// A user whose `displayName` is `display_name` (none with `None`).
fn named(
    id: &str,
    email: Option<&str>,
    display_name: Option<&str>,
    identities: Vec<Identity>,
) -> NewUser {
    let mut user = new_user(id, email, identities);
    user.attributes = AttributeValues::new();
    if let Some(name) = display_name {
        user.attributes.insert(
            "displayName".into(),
            AttributeValue::String(name.to_owned()),
        );
    }
    user
}

fn query() -> UserQuery {
    UserQuery {
        limit: 100,
        ..UserQuery::default()
    }
}

fn ids_of(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.id.as_str()).collect()
}

/// The ids `list_users` answers for `q`.
async fn listed(store: &Arc<dyn Store>, q: UserQuery) -> Vec<String> {
    let users = store.list_users(&q).await.unwrap();
    ids_of(&users).into_iter().map(str::to_owned).collect()
}

async fn list_users_filters(ctx: Ctx) {
    let store = ctx.store;
    let google = "https://accounts.google.com";
    let shared = identity(SignInType::EmailAddress, "usher.example", "shared-id");
    // Created out of id order: listing orders by id, not by insertion.
    let users = [
        named(
            "u-06",
            Some("dave@adams.example"),
            Some("Dave"),
            // The same (issuer, issuerAssignedId) as u-05's, of another sign-in type.
            vec![identity(
                SignInType::Federated,
                "usher.example",
                "shared-id",
            )],
        ),
        named(
            "u-01",
            Some("ada@example.com"),
            Some("Ada Lovelace"),
            vec![
                local("ada@example.com"),
                identity(SignInType::Federated, google, "g-ada"),
            ],
        ),
        named(
            "u-03",
            Some("bob@example.com"),
            Some("Bob Adams"),
            vec![identity(SignInType::Federated, google, "g-bob")],
        ),
        named(
            "u-02",
            Some("ada@example.com"),
            Some("Adam Smith"),
            vec![identity(
                SignInType::Federated,
                "mail.usher.example",
                "ada@example.com",
            )],
        ),
        named("u-04", None, Some("ada"), Vec::new()),
        named("u-05", Some("carol@example.com"), None, vec![shared]),
    ];
    for user in users {
        store.create_user(user).await.unwrap();
    }

    // Identities are filled in, as a lookup by id returns them.
    let all = store.list_users(&query()).await.unwrap();
    assert_eq!(
        ids_of(&all),
        ["u-01", "u-02", "u-03", "u-04", "u-05", "u-06"]
    );
    for user in &all {
        assert_eq!(
            Some(user),
            store.user_by_id(&user.id).await.unwrap().as_ref()
        );
    }

    let q = |f: fn(&mut UserQuery)| {
        let mut q = query();
        f(&mut q);
        q
    };
    let cases: Vec<(UserQuery, Vec<&str>)> = vec![
        // email: exact.
        (
            q(|q| q.email = Some("ada@example.com".into())),
            vec!["u-01", "u-02"],
        ),
        (q(|q| q.email = Some("ada@example".into())), vec![]),
        // display_name_prefix: case-insensitive, a prefix (not a substring).
        (
            q(|q| q.display_name_prefix = Some("ada".into())),
            vec!["u-01", "u-02", "u-04"],
        ),
        (
            q(|q| q.display_name_prefix = Some("ADA L".into())),
            vec!["u-01"],
        ),
        (
            q(|q| q.display_name_prefix = Some("aDaM".into())),
            vec!["u-02"],
        ),
        (
            q(|q| q.display_name_prefix = Some("Lovelace".into())),
            vec![],
        ),
        (
            q(|q| q.display_name_prefix = Some("Ada Lovelace, Countess".into())),
            vec![],
        ),
        // The empty prefix: every user with a display name (u-05 has none).
        (
            q(|q| q.display_name_prefix = Some(String::new())),
            vec!["u-01", "u-02", "u-03", "u-04", "u-06"],
        ),
        // identity: issuer and issuerAssignedId, whatever the sign-in type.
        (
            q(|q| q.identity = Some(("https://accounts.google.com".into(), "g-bob".into()))),
            vec!["u-03"],
        ),
        (
            q(|q| q.identity = Some(("usher.example".into(), "shared-id".into()))),
            vec!["u-05", "u-06"],
        ),
        (
            q(|q| q.identity = Some(("usher.example".into(), "ada@example.com".into()))),
            vec!["u-01"],
        ),
        (
            q(|q| q.identity = Some(("https://accounts.google.com".into(), "g-ada ".into()))),
            vec![],
        ),
        (
            q(|q| q.identity = Some(("accounts.google.com".into(), "g-ada".into()))),
            vec![],
        ),
        // search: a substring of the email or the display name, case-insensitive.
        (
            q(|q| q.search = Some("ada".into())),
            vec!["u-01", "u-02", "u-03", "u-04", "u-06"],
        ),
        (q(|q| q.search = Some("ADAMS".into())), vec!["u-03", "u-06"]),
        (
            q(|q| q.search = Some("example.com".into())),
            vec!["u-01", "u-02", "u-03", "u-05"],
        ),
        (q(|q| q.search = Some("Lovelace".into())), vec!["u-01"]),
        (q(|q| q.search = Some("zebra".into())), vec![]),
        // Combined, the filters must all hold.
        (
            q(|q| {
                q.email = Some("ada@example.com".into());
                q.display_name_prefix = Some("adam".into());
            }),
            vec!["u-02"],
        ),
        (
            q(|q| {
                q.email = Some("ada@example.com".into());
                q.identity = Some(("https://accounts.google.com".into(), "g-ada".into()));
            }),
            vec!["u-01"],
        ),
        (
            q(|q| {
                q.search = Some("adams".into());
                q.identity = Some(("usher.example".into(), "shared-id".into()));
            }),
            vec!["u-06"],
        ),
        (
            q(|q| {
                q.display_name_prefix = Some("ada".into());
                q.search = Some("smith".into());
            }),
            vec!["u-02"],
        ),
        (
            q(|q| {
                q.email = Some("bob@example.com".into());
                q.display_name_prefix = Some("ada".into());
            }),
            vec![],
        ),
        (
            q(|q| {
                q.email = Some("ada@example.com".into());
                q.display_name_prefix = Some("ada".into());
                q.identity = Some(("mail.usher.example".into(), "ada@example.com".into()));
                q.search = Some("SMI".into());
                q.after = Some("u-01".into());
            }),
            vec!["u-02"],
        ),
        // after and limit.
        (
            q(|q| q.after = Some("u-03".into())),
            vec!["u-04", "u-05", "u-06"],
        ),
        (
            q(|q| {
                q.after = Some("u-03".into());
                q.limit = 2;
            }),
            vec!["u-04", "u-05"],
        ),
        (
            q(|q| {
                q.search = Some("ada".into());
                q.after = Some("u-02".into());
                q.limit = 2;
            }),
            vec!["u-03", "u-04"],
        ),
        (q(|q| q.limit = 0), vec![]),
    ];
    for (q, expected) in cases {
        assert_eq!(listed(&store, q.clone()).await, expected, "{q:?}");
    }
}

async fn list_users_paging(ctx: Ctx) {
    let store = ctx.store;
    const USERS: usize = 23;
    // Created in a scrambled order (7 is coprime with 23, so every i comes once).
    for n in 0..USERS {
        let i = (n * 7) % USERS;
        let name = if i.is_multiple_of(2) { "Even" } else { "Odd" };
        let user = named(
            &format!("p-{i:02}"),
            Some(&format!("p{i}@example.com")),
            Some(&format!("{name} {i}")),
            vec![local(&format!("p{i}@example.com"))],
        );
        store.create_user(user).await.unwrap();
    }

    /// Every page of `q` (by `page` users), following the cursor to the end.
    async fn pages(store: &Arc<dyn Store>, mut q: UserQuery, page: u32) -> Vec<Vec<String>> {
        q.limit = page;
        let mut pages = Vec::new();
        loop {
            let users = store.list_users(&q).await.unwrap();
            assert!(users.len() <= page as usize);
            let Some(last) = users.last() else { break };
            q.after = Some(last.id.clone());
            pages.push(users.iter().map(|u| u.id.clone()).collect::<Vec<_>>());
        }
        pages
    }

    let all: Vec<String> = (0..USERS).map(|i| format!("p-{i:02}")).collect();
    for page in [1, 5, 22, 23, 100] {
        let pages = pages(&store, query(), page).await;
        assert_eq!(
            pages.len(),
            USERS.div_ceil(page as usize),
            "page size {page}"
        );
        // Concatenated, the pages are every user once, in order: no overlap, no gap.
        assert_eq!(pages.concat(), all, "page size {page}");
    }

    // Paging through a filtered list.
    let even: Vec<String> = all.iter().step_by(2).cloned().collect();
    let filtered = UserQuery {
        display_name_prefix: Some("even".into()),
        ..query()
    };
    let got = pages(&store, filtered, 3).await;
    assert_eq!(got.len(), 4);
    assert_eq!(got.concat(), even);
    let searched = UserQuery {
        search: Some("ODD".into()),
        ..query()
    };
    let odd: Vec<String> = all.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(pages(&store, searched, 4).await.concat(), odd);

    // The cursor need not be an existing id: paging goes on from where it sorts.
    let q = UserQuery {
        after: Some("p-05x".into()),
        limit: 2,
        ..query()
    };
    assert_eq!(listed(&store, q).await, ["p-06", "p-07"]);
}

async fn list_users_literal_and_unicode(ctx: Ctx) {
    let store = ctx.store;
    let users = [
        ("l-1", None, "100% Cotton"),
        ("l-2", None, "100 Cotton"),
        ("l-3", None, "a_b"),
        ("l-4", None, "axb"),
        ("l-5", None, "back\\slash"),
        ("l-6", None, "backslash"),
        ("l-7", Some("under_score@example.com"), "Plain"),
        ("l-8", Some("underxscore@example.com"), "Plain"),
        ("n-1", None, "Élodie Durand"),
        ("n-2", None, "ÉLISE"),
        ("n-3", None, "émile"),
        ("n-4", None, "Ωmega"),
        ("n-5", None, "ΣΟΦΊΑ ΠΑΠΑΔΟΠΟΎΛΟΥ"),
        ("n-6", None, "山田 太郎"),
        ("n-7", None, "🦀 Ferris"),
        ("n-8", None, "Elodie"),
    ];
    for (id, email, name) in users {
        store
            .create_user(named(id, email, Some(name), Vec::new()))
            .await
            .unwrap();
    }
    let search = |term: &str| UserQuery {
        search: Some(term.into()),
        ..query()
    };
    let prefix = |p: &str| UserQuery {
        display_name_prefix: Some(p.into()),
        ..query()
    };

    // LIKE's wildcards (and its escape character) in what the user typed are
    // literal.
    assert_eq!(listed(&store, search("%")).await, ["l-1"]);
    assert_eq!(listed(&store, search("100%")).await, ["l-1"]);
    assert_eq!(listed(&store, search("0% c")).await, ["l-1"]);
    assert_eq!(listed(&store, search("_")).await, ["l-3", "l-7"]);
    assert_eq!(listed(&store, search("a_b")).await, ["l-3"]);
    assert_eq!(listed(&store, search("r_s")).await, ["l-7"]);
    assert_eq!(listed(&store, search("\\")).await, ["l-5"]);
    assert_eq!(listed(&store, search("k\\s")).await, ["l-5"]);
    assert_eq!(listed(&store, search("%_\\")).await, Vec::<String>::new());
    assert_eq!(listed(&store, prefix("100%")).await, ["l-1"]);
    assert_eq!(listed(&store, prefix("a_")).await, ["l-3"]);
    assert_eq!(listed(&store, prefix("%")).await, Vec::<String>::new());
    assert_eq!(listed(&store, prefix("_")).await, Vec::<String>::new());
    assert_eq!(listed(&store, prefix("back\\")).await, ["l-5"]);

    // Case-insensitive beyond ASCII, on both backends: display names are lower-cased
    // by Usher (Unicode lower case), whatever the database's own rules.
    assert_eq!(listed(&store, prefix("él")).await, ["n-1", "n-2"]);
    assert_eq!(listed(&store, prefix("ÉL")).await, ["n-1", "n-2"]);
    assert_eq!(listed(&store, prefix("é")).await, ["n-1", "n-2", "n-3"]);
    // An accent is not a case: E is not É.
    assert_eq!(listed(&store, prefix("E")).await, ["n-8"]);
    assert_eq!(listed(&store, prefix("ωMEGA")).await, ["n-4"]);
    assert_eq!(listed(&store, prefix("σοφία π")).await, ["n-5"]);
    assert_eq!(listed(&store, prefix("ΣΟΦΊΑ")).await, ["n-5"]);
    assert_eq!(listed(&store, prefix("山田")).await, ["n-6"]);
    assert_eq!(listed(&store, prefix("田")).await, Vec::<String>::new());
    assert_eq!(listed(&store, prefix("🦀")).await, ["n-7"]);
    assert_eq!(listed(&store, search("DURAND")).await, ["n-1"]);
    assert_eq!(listed(&store, search("lise")).await, ["n-2"]);
    assert_eq!(listed(&store, search("παπαδοπού")).await, ["n-5"]);
    assert_eq!(listed(&store, search("太郎")).await, ["n-6"]);
    assert_eq!(listed(&store, search("FERRIS")).await, ["n-7"]);
    assert_eq!(
        listed(&store, search("lodie")).await,
        ["n-1", "n-8"],
        "a substring anywhere"
    );
}

async fn update_user_and_password(ctx: Ctx) {
    let store = ctx.store;
    let mut new = named(
        "u-1",
        Some("ada@example.com"),
        Some("Ada"),
        vec![local("ada@example.com")],
    );
    new.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$b25l".into());
    let created = store.create_user(new.clone()).await.unwrap();
    let other = store
        .create_user(named(
            "u-2",
            Some("bob@example.com"),
            Some("Bob"),
            Vec::new(),
        ))
        .await
        .unwrap();

    let mut changed = created.clone();
    changed.email = Some("countess@example.com".into());
    changed.attributes = [
        (
            "displayName".to_owned(),
            AttributeValue::String("Countess Lovelace".into()),
        ),
        ("extension_0a1b_Tier".to_owned(), AttributeValue::Int(3)),
    ]
    .into();
    changed.account_enabled = false;
    // Identities and the creation time are not the update's to change.
    changed.identities = vec![identity(SignInType::Federated, "elsewhere", "x")];
    changed.created_at = t0() + Duration::days(1);
    assert!(store.update_user(&changed).await.unwrap());

    let expected = User {
        identities: created.identities.clone(),
        created_at: created.created_at,
        // Every write counts in the version, whatever the caller's copy says.
        version: created.version + 1,
        ..changed.clone()
    };
    assert_eq!(
        store.user_by_id("u-1").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.users_by_email("countess@example.com").await.unwrap(),
        vec![expected.clone()]
    );
    assert!(store
        .users_by_email("ada@example.com")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .user_by_identity(SignInType::EmailAddress, "usher.example", "ada@example.com")
            .await
            .unwrap(),
        Some(expected.clone())
    );
    // The display name filters follow the new name.
    let prefix = |p: &str| UserQuery {
        display_name_prefix: Some(p.into()),
        ..query()
    };
    assert_eq!(listed(&store, prefix("countess")).await, ["u-1"]);
    assert!(listed(&store, prefix("ada")).await.is_empty());
    // The password is not the update's to change either.
    assert_eq!(store.password_hash("u-1").await.unwrap(), new.password_hash);
    assert_eq!(store.user_by_id("u-2").await.unwrap(), Some(other));

    // Without a display name the user drops out of the prefix filter.
    let mut nameless = expected.clone();
    nameless.attributes.remove("displayName");
    nameless.email = None;
    nameless.account_enabled = true;
    assert!(store.update_user(&nameless).await.unwrap());
    nameless.version += 1;
    assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(nameless));
    assert_eq!(listed(&store, prefix("")).await, ["u-2"]);

    let ghost = User {
        id: "u-nobody".into(),
        ..expected
    };
    assert!(!store.update_user(&ghost).await.unwrap());
    assert_eq!(store.user_by_id("u-nobody").await.unwrap(), None);

    // Password hashes: set, replaced, removed.
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$dHdv";
    assert!(store
        .set_password_hash("u-1", Some(hash), t0())
        .await
        .unwrap());
    assert_eq!(
        store.password_hash("u-1").await.unwrap().as_deref(),
        Some(hash)
    );
    assert_eq!(store.password_hash("u-2").await.unwrap(), None);
    assert!(store
        .set_password_hash("u-2", Some("other"), t0())
        .await
        .unwrap());
    let later = t0() + Duration::hours(1);
    assert!(store
        .set_password_hash("u-2", Some("newer"), later)
        .await
        .unwrap());
    assert_eq!(
        store
            .user_by_id("u-2")
            .await
            .unwrap()
            .unwrap()
            .password_changed_at,
        Some(later)
    );
    assert!(store
        .set_password_hash("u-2", Some("other"), t0())
        .await
        .unwrap());
    assert!(store.set_password_hash("u-1", None, t0()).await.unwrap());
    assert_eq!(store.password_hash("u-1").await.unwrap(), None);
    // No password, no time of its last change.
    assert_eq!(
        store
            .user_by_id("u-1")
            .await
            .unwrap()
            .unwrap()
            .password_changed_at,
        None
    );
    assert_eq!(
        store.password_hash("u-2").await.unwrap().as_deref(),
        Some("other")
    );
    assert!(!store
        .set_password_hash("u-nobody", Some(hash), t0())
        .await
        .unwrap());
    // A compare-and-set: only from the hash the caller saw, once.
    assert!(store
        .replace_password_hash("u-2", "other", "third", t0())
        .await
        .unwrap());
    assert!(!store
        .replace_password_hash("u-2", "other", "fourth", t0())
        .await
        .unwrap());
    assert_eq!(
        store.password_hash("u-2").await.unwrap().as_deref(),
        Some("third")
    );
    assert!(!store
        .replace_password_hash("u-nobody", "x", "y", t0())
        .await
        .unwrap());
    assert_eq!(store.password_hash("u-nobody").await.unwrap(), None);
}

fn grant_of(id: &str, user_id: &str, revoked_at: Option<DateTime<Utc>>) -> Grant {
    Grant {
        id: id.into(),
        client_id: "app".into(),
        user_id: user_id.into(),
        scope: vec!["openid".into()],
        auth_time: t0(),
        session_id: None,
        created_at: t0(),
        revoked_at,
        token_claims: serde_json::Map::default(),
    }
}

async fn rate_limit_windows(ctx: Ctx) {
    let store = ctx.store;
    let window = Duration::minutes(15);
    assert_eq!(store.rate_limit("k", t0()).await.unwrap(), None);
    // The window starts at the first hit.
    let ends = t0() + Duration::seconds(1) + window;
    for n in 1..=3 {
        let w = store
            .hit_rate_limit("k", window, t0() + Duration::seconds(n))
            .await
            .unwrap();
        // Later hits count in the first hit's window.
        assert_eq!(w.hits, n);
        assert_eq!(w.window_ends, ends);
    }
    assert_eq!(
        store
            .rate_limit("k", t0() + Duration::minutes(1))
            .await
            .unwrap()
            .map(|w| w.hits),
        Some(3)
    );
    // Other keys count apart.
    assert_eq!(
        store
            .hit_rate_limit("other", window, t0())
            .await
            .unwrap()
            .hits,
        1
    );
    // The window ends: nothing is live, and the next hit starts a new one.
    assert_eq!(store.rate_limit("k", ends).await.unwrap(), None);
    let w = store.hit_rate_limit("k", window, ends).await.unwrap();
    assert_eq!((w.hits, w.window_ends), (1, ends + window));

    // Concurrent hits (as from several instances) are all counted.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.hit_rate_limit("busy", window, t0()).await })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().unwrap().hits);
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());

    // A hit taken back; never below zero, never in a window that is over.
    store.release_rate_limit("busy", t0()).await.unwrap();
    assert_eq!(
        store
            .rate_limit("busy", t0())
            .await
            .unwrap()
            .map(|w| w.hits),
        Some(19)
    );
    store.hit_rate_limit("once", window, t0()).await.unwrap();
    for _ in 0..3 {
        store.release_rate_limit("once", t0()).await.unwrap();
    }
    assert_eq!(
        store
            .rate_limit("once", t0())
            .await
            .unwrap()
            .map(|w| w.hits),
        Some(0)
    );
    store.release_rate_limit("k", ends + window).await.unwrap();
    store.release_rate_limit("never-hit", t0()).await.unwrap();
    // Housekeeping sweeps windows that are over.
    store
        .delete_expired(ends + window + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(store.rate_limit("k", ends).await.unwrap(), None);
    assert_eq!(
        store.hit_rate_limit("k", window, ends).await.unwrap().hits,
        1
    );
}

async fn credential_and_role_changes_end_sessions(ctx: Ctx) {
    let store = ctx.store;
    for (id, email) in [("u-1", "ada@example.com"), ("u-2", "bob@example.com")] {
        store
            .create_user(named(id, Some(email), None, vec![local(email)]))
            .await
            .unwrap();
    }
    let expires = t0() + Duration::hours(8);
    let sessions_and_grants = |n: u32| {
        let store = store.clone();
        async move {
            for user_id in ["u-1", "u-2"] {
                let id = format!("{user_id}-s{n}");
                store
                    .insert_session(&BrowserSession {
                        user_id: user_id.into(),
                        ..session(&id, expires)
                    })
                    .await
                    .unwrap();
                store
                    .insert_grant(&grant_of(&format!("{user_id}-g{n}"), user_id, None))
                    .await
                    .unwrap();
            }
        }
    };
    let ended = |n: u32, user_id: &'static str| {
        let store = store.clone();
        async move {
            let s = store
                .session(&format!("{user_id}-s{n}"))
                .await
                .unwrap()
                .unwrap();
            let g = store
                .grant(&format!("{user_id}-g{n}"))
                .await
                .unwrap()
                .unwrap();
            (s.ended_at, g.revoked_at)
        }
    };

    // A new password ends the user's sessions and grants, nobody else's.
    sessions_and_grants(1).await;
    let t1 = t0() + Duration::minutes(1);
    assert!(store
        .set_password_hash("u-1", Some("$argon2id$new"), t1)
        .await
        .unwrap());
    assert_eq!(ended(1, "u-1").await, (Some(t1), Some(t1)));
    assert_eq!(ended(1, "u-2").await, (None, None));

    // Roles: the same set changes nothing; another set ends them.
    sessions_and_grants(2).await;
    let t2 = t0() + Duration::minutes(2);
    assert!(store.set_user_roles("u-1", &[], t2).await.unwrap());
    assert_eq!(ended(2, "u-1").await, (None, None));
    assert!(store
        .set_user_roles("u-1", &["Usher.Admin".into()], t2)
        .await
        .unwrap());
    assert_eq!(ended(2, "u-1").await, (Some(t2), Some(t2)));
    sessions_and_grants(3).await;
    let t3 = t0() + Duration::minutes(3);
    assert!(store
        .set_user_roles("u-1", &["Usher.Admin".into(), "Usher.Admin".into()], t3)
        .await
        .unwrap());
    assert_eq!(
        ended(3, "u-1").await,
        (None, None),
        "the same roles, given twice"
    );
    assert!(store.set_user_roles("u-1", &[], t3).await.unwrap());
    assert_eq!(ended(3, "u-1").await, (Some(t3), Some(t3)));
    assert_eq!(ended(3, "u-2").await, (None, None));
    // An earlier end keeps its time.
    assert_eq!(ended(1, "u-1").await, (Some(t1), Some(t1)));

    // Directly, as a disabled account or a revoked sign-in needs.
    let t4 = t0() + Duration::minutes(4);
    store.end_user_sessions("u-2", t4).await.unwrap();
    assert_eq!(ended(3, "u-2").await, (Some(t4), Some(t4)));
    assert!(!store.set_password_hash("u-nobody", None, t4).await.unwrap());
}

async fn delete_user_cleans_up(ctx: Ctx) {
    let store = ctx.store;
    let google = identity(SignInType::Federated, "google.com", "g-1");
    let identities = vec![local("ada@example.com"), google.clone()];
    store
        .create_user(named(
            "u-1",
            Some("ada@example.com"),
            Some("Ada"),
            identities.clone(),
        ))
        .await
        .unwrap();
    let bob = store
        .create_user(named(
            "u-2",
            Some("bob@example.com"),
            Some("Bob"),
            vec![local("bob@example.com")],
        ))
        .await
        .unwrap();
    assert!(store
        .set_user_roles("u-1", &["Usher.Admin".into()], t0())
        .await
        .unwrap());
    assert!(store
        .set_user_roles("u-2", &["Usher.Admin".into()], t0())
        .await
        .unwrap());
    let expires = t0() + Duration::hours(8);
    for (id, user_id) in [("sid-1", "u-1"), ("sid-2", "u-1"), ("sid-3", "u-2")] {
        store
            .insert_session(&BrowserSession {
                user_id: user_id.into(),
                ..session(id, expires)
            })
            .await
            .unwrap();
    }
    let earlier = t0() - Duration::hours(1);
    let kept = grant_of("grant-3", "u-2", None);
    for grant in [
        grant_of("grant-1", "u-1", None),
        grant_of("grant-2", "u-1", Some(earlier)),
        kept.clone(),
    ] {
        store.insert_grant(&grant).await.unwrap();
    }

    let now = t0() + Duration::minutes(5);
    assert!(store.delete_user("u-1", now).await.unwrap());

    assert_eq!(store.user_by_id("u-1").await.unwrap(), None);
    for i in &identities {
        assert_eq!(
            store
                .user_by_identity(i.sign_in_type, &i.issuer, &i.issuer_assigned_id)
                .await
                .unwrap(),
            None
        );
    }
    assert!(store.user_roles("u-1").await.unwrap().is_empty());
    assert_eq!(store.session("sid-1").await.unwrap(), None);
    assert_eq!(store.session("sid-2").await.unwrap(), None);
    assert_eq!(
        store.grant("grant-1").await.unwrap().unwrap().revoked_at,
        Some(now)
    );
    // An earlier revocation keeps its time.
    assert_eq!(
        store.grant("grant-2").await.unwrap().unwrap().revoked_at,
        Some(earlier)
    );
    // Nobody else is touched (beyond the version their roles moved).
    assert_eq!(
        store.user_by_id("u-2").await.unwrap(),
        Some(User { version: 2, ..bob })
    );
    assert_eq!(store.user_roles("u-2").await.unwrap(), ["Usher.Admin"]);
    assert!(store.session("sid-3").await.unwrap().is_some());
    assert_eq!(store.grant("grant-3").await.unwrap(), Some(kept));

    assert!(!store.delete_user("u-1", now).await.unwrap());
    assert!(!store.delete_user("u-nobody", now).await.unwrap());

    // The email and identities are free again: a new user (even one with the same
    // id) can have them, and inherits none of the old roles.
    let again = store
        .create_user(named(
            "u-1",
            Some("ada@example.com"),
            Some("Ada again"),
            identities.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(
        store.users_by_email("ada@example.com").await.unwrap(),
        vec![again.clone()]
    );
    assert_eq!(
        store
            .user_by_identity(
                google.sign_in_type,
                &google.issuer,
                &google.issuer_assigned_id
            )
            .await
            .unwrap(),
        Some(again)
    );
    assert!(store.user_roles("u-1").await.unwrap().is_empty());
}

async fn set_identities_replaces(ctx: Ctx) {
    let store = ctx.store;
    let ada = local("ada@example.com");
    let google_1 = identity(SignInType::Federated, "google.com", "g-1");
    let google_2 = identity(SignInType::Federated, "google.com", "g-2");
    let fresh = identity(SignInType::Federated, "https://idp.example", "new");
    store
        .create_user(named(
            "u-1",
            Some("ada@example.com"),
            Some("Ada"),
            vec![ada.clone(), google_1.clone()],
        ))
        .await
        .unwrap();
    let bob = store
        .create_user(named("u-2", None, Some("Bob"), vec![google_2.clone()]))
        .await
        .unwrap();

    // Kept, added and dropped at once, in the order given.
    assert!(store
        .set_identities("u-1", &[fresh.clone(), google_1.clone()])
        .await
        .unwrap());
    let ada_user = store.user_by_id("u-1").await.unwrap().unwrap();
    assert_eq!(ada_user.identities, vec![fresh.clone(), google_1.clone()]);
    assert_eq!(
        store
            .user_by_identity(ada.sign_in_type, &ada.issuer, &ada.issuer_assigned_id)
            .await
            .unwrap(),
        None
    );

    // One that belongs to another user: nothing is written, not even the deletion.
    let unused = identity(SignInType::Federated, "https://idp.example", "unused");
    is(
        store
            .set_identities("u-1", &[unused.clone(), google_2.clone()])
            .await,
        |e| matches!(e, StorageError::DuplicateIdentity),
    );
    // The same one twice is a duplicate too.
    is(
        store
            .set_identities("u-1", &[unused.clone(), unused.clone()])
            .await,
        |e| matches!(e, StorageError::DuplicateIdentity),
    );
    assert_eq!(
        store.user_by_id("u-1").await.unwrap(),
        Some(ada_user.clone())
    );
    assert_eq!(store.user_by_id("u-2").await.unwrap(), Some(bob.clone()));
    assert_eq!(
        store
            .user_by_identity(
                unused.sign_in_type,
                &unused.issuer,
                &unused.issuer_assigned_id
            )
            .await
            .unwrap(),
        None
    );

    assert!(!store
        .set_identities("u-nobody", std::slice::from_ref(&unused))
        .await
        .unwrap());
    assert_eq!(
        store
            .user_by_identity(
                unused.sign_in_type,
                &unused.issuer,
                &unused.issuer_assigned_id
            )
            .await
            .unwrap(),
        None
    );

    // A dropped identity can go to someone else.
    assert!(store.add_identity("u-2", &ada).await.unwrap());
    assert_eq!(
        store
            .user_by_identity(ada.sign_in_type, &ada.issuer, &ada.issuer_assigned_id)
            .await
            .unwrap()
            .map(|u| u.id),
        Some("u-2".into())
    );
    // And none at all is allowed.
    assert!(store.set_identities("u-1", &[]).await.unwrap());
    assert!(store
        .user_by_id("u-1")
        .await
        .unwrap()
        .unwrap()
        .identities
        .is_empty());
}

async fn user_roles(ctx: Ctx) {
    let store = ctx.store;
    for id in ["u-1", "u-2"] {
        store
            .create_user(named(id, None, None, Vec::new()))
            .await
            .unwrap();
    }
    let roles = |names: &[&str]| names.iter().map(|&r| r.to_owned()).collect::<Vec<_>>();
    assert!(store.user_roles("u-1").await.unwrap().is_empty());

    // A role given twice is had once; roles read back sorted.
    assert!(store
        .set_user_roles(
            "u-1",
            &roles(&["Usher.Reader", "Usher.Admin", "Usher.Admin"]),
            t0()
        )
        .await
        .unwrap());
    assert!(store
        .set_user_roles("u-2", &roles(&["Usher.Admin"]), t0())
        .await
        .unwrap());
    assert_eq!(
        store.user_roles("u-1").await.unwrap(),
        roles(&["Usher.Admin", "Usher.Reader"])
    );

    // Setting replaces.
    assert!(store
        .set_user_roles("u-1", &roles(&["Usher.Reader"]), t0())
        .await
        .unwrap());
    assert_eq!(
        store.user_roles("u-1").await.unwrap(),
        roles(&["Usher.Reader"])
    );
    assert_eq!(
        store.user_roles("u-2").await.unwrap(),
        roles(&["Usher.Admin"])
    );
    assert!(store.set_user_roles("u-1", &[], t0()).await.unwrap());
    assert!(store.user_roles("u-1").await.unwrap().is_empty());

    assert!(!store
        .set_user_roles("u-nobody", &roles(&["Usher.Admin"]), t0())
        .await
        .unwrap());
    assert!(store.user_roles("u-nobody").await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------
// Sign-up requests
// ---------------------------------------------------------------------------------

fn sign_up_request(
    id: &str,
    email: &str,
    identities: Vec<Identity>,
    created_at: DateTime<Utc>,
) -> SignUpRequest {
    SignUpRequest {
        id: id.into(),
        user_flow_id: "b2x_1_signup".into(),
        client_id: "app".into(),
        email: email.into(),
        identities,
        attributes: [
            (
                "displayName".to_owned(),
                AttributeValue::String("Zoë 🦀 山田".into()),
            ),
            ("extension_0a1b_Shoe".to_owned(), AttributeValue::Int(44)),
            (
                "extension_0a1b_Terms".to_owned(),
                AttributeValue::Boolean(true),
            ),
        ]
        .into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$cmVx".into()),
        status: SignUpRequestStatus::Pending,
        created_at,
        decided_by: None,
        decided_at: None,
        user_id: None,
    }
}

fn request_ids(requests: &[SignUpRequest]) -> Vec<&str> {
    requests.iter().map(|r| r.id.as_str()).collect()
}

async fn sign_up_requests_store_and_page(ctx: Ctx) {
    let store = ctx.store;
    let first = sign_up_request(
        "req-first",
        "ada@example.com",
        vec![
            local("ada@example.com"),
            identity(SignInType::Federated, "google.com", "g-1"),
        ],
        t0() - Duration::days(1),
    );
    store.insert_sign_up_request(&first).await.unwrap();
    is(store.insert_sign_up_request(&first).await, |e| {
        matches!(e, StorageError::AlreadyExists)
    });
    // The password hash is kept, although the type does not serialise it.
    assert_eq!(
        store.sign_up_request("req-first").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.sign_up_request("req-unknown").await.unwrap(), None);

    // A decided one round-trips too, and one without identities or password.
    let decided = SignUpRequest {
        id: "req-decided".into(),
        status: SignUpRequestStatus::Approved,
        decided_by: Some("admin-1".into()),
        decided_at: Some(t0() - Duration::hours(1)),
        user_id: Some("u-1".into()),
        password_hash: None,
        identities: Vec::new(),
        ..first.clone()
    };
    store.insert_sign_up_request(&decided).await.unwrap();
    assert_eq!(
        store.sign_up_request("req-decided").await.unwrap(),
        Some(decided.clone())
    );
    assert!(store.delete_sign_up_request("req-first").await.unwrap());
    assert!(store.delete_sign_up_request("req-decided").await.unwrap());
    assert!(!store.delete_sign_up_request("req-first").await.unwrap());
    assert_eq!(store.sign_up_request("req-first").await.unwrap(), None);

    // Eleven requests, three to a creation time so that ids must break ties,
    // inserted out of order; statuses mixed.
    let mut all = Vec::new();
    for n in 0..11 {
        let i = (n * 4) % 11;
        let mut r = sign_up_request(
            &format!("req-{i:02}"),
            &format!("r{i}@example.com"),
            vec![local(&format!("r{i}@example.com"))],
            t0() + Duration::seconds(i / 3),
        );
        match i % 4 {
            0 => {
                r.status = SignUpRequestStatus::Approved;
                r.decided_by = Some("admin".into());
                r.decided_at = Some(t0() + Duration::hours(1));
                r.user_id = Some(format!("u-{i}"));
            }
            1 => {
                r.status = SignUpRequestStatus::Denied;
                r.decided_by = Some("admin".into());
                r.decided_at = Some(t0() + Duration::hours(1));
            }
            _ => {}
        }
        store.insert_sign_up_request(&r).await.unwrap();
        all.push(r);
    }
    // Newest first, then by id, descending.
    all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    assert_eq!(
        request_ids(&all),
        [
            "req-10", "req-09", "req-08", "req-07", "req-06", "req-05", "req-04", "req-03",
            "req-02", "req-01", "req-00"
        ]
    );

    /// Every page, following the cursor to the end.
    async fn pages(
        store: &Arc<dyn Store>,
        status: Option<SignUpRequestStatus>,
        page: u32,
    ) -> Vec<Vec<SignUpRequest>> {
        let mut after: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let requests = store
                .sign_up_requests(status, after.as_deref(), page)
                .await
                .unwrap();
            assert!(requests.len() <= page as usize);
            let Some(last) = requests.last() else { break };
            after = Some(last.id.clone());
            pages.push(requests);
        }
        pages
    }

    for page in [1, 3, 4, 11, 50] {
        let got = pages(&store, None, page).await;
        assert_eq!(
            got.len(),
            11usize.div_ceil(page as usize),
            "page size {page}"
        );
        assert_eq!(got.concat(), all, "page size {page}");
    }
    for status in [
        SignUpRequestStatus::Pending,
        SignUpRequestStatus::Approved,
        SignUpRequestStatus::Denied,
    ] {
        let expected: Vec<_> = all.iter().filter(|r| r.status == status).cloned().collect();
        assert_eq!(pages(&store, Some(status), 2).await.concat(), expected);
    }
    assert!(store
        .sign_up_requests(None, None, 0)
        .await
        .unwrap()
        .is_empty());

    // The cursor is a position: deciding the last request of a page (so it leaves
    // the pending list) does not move where the next page starts.
    let pending: Vec<_> = all
        .iter()
        .filter(|r| r.status == SignUpRequestStatus::Pending)
        .cloned()
        .collect();
    let page = store
        .sign_up_requests(Some(SignUpRequestStatus::Pending), None, 2)
        .await
        .unwrap();
    assert_eq!(page, pending[..2]);
    store
        .decide_sign_up_request(
            &page[1].id,
            SignUpRequestStatus::Denied,
            "admin",
            t0(),
            None,
        )
        .await
        .unwrap()
        .unwrap();
    let next = store
        .sign_up_requests(Some(SignUpRequestStatus::Pending), Some(&page[1].id), 2)
        .await
        .unwrap();
    assert_eq!(next, pending[2..4]);

    // A cursor whose request is gone has lost its position: a conflict, rather than
    // a page that silently says there is nothing more.
    assert!(store.delete_sign_up_request(&page[1].id).await.unwrap());
    is(
        store
            .sign_up_requests(Some(SignUpRequestStatus::Pending), Some(&page[1].id), 2)
            .await,
        |e| matches!(e, StorageError::Conflict),
    );
    is(
        store.sign_up_requests(None, Some("req-unknown"), 2).await,
        |e| matches!(e, StorageError::Conflict),
    );
    assert_eq!(
        store.sign_up_requests(None, None, 100).await.unwrap().len(),
        10
    );
}

async fn open_sign_up_requests(ctx: Ctx) {
    let store = ctx.store;
    let google_1 = identity(SignInType::Federated, "google.com", "g-1");
    let google_2 = identity(SignInType::Federated, "google.com", "g-2");
    let bob_otp = identity(
        SignInType::Federated,
        "mail.usher.example",
        "bob@example.com",
    );
    let pending = sign_up_request(
        "req-pending",
        "ada@example.com",
        vec![local("ada@example.com"), google_1.clone()],
        t0(),
    );
    let denied = SignUpRequest {
        status: SignUpRequestStatus::Denied,
        decided_by: Some("admin".into()),
        decided_at: Some(t0()),
        ..sign_up_request(
            "req-denied",
            "bob@example.com",
            vec![bob_otp.clone()],
            t0() + Duration::seconds(1),
        )
    };
    let approved = SignUpRequest {
        status: SignUpRequestStatus::Approved,
        decided_by: Some("admin".into()),
        decided_at: Some(t0()),
        user_id: Some("u-1".into()),
        ..sign_up_request(
            "req-approved",
            "ada@example.com",
            vec![google_2.clone()],
            t0() + Duration::seconds(2),
        )
    };
    // A second request with one of the first's identities (say, a retry).
    let later = sign_up_request(
        "req-later",
        "carol@example.com",
        vec![google_1.clone()],
        t0() + Duration::seconds(3),
    );
    for r in [&pending, &denied, &approved, &later] {
        store.insert_sign_up_request(r).await.unwrap();
    }
    let open = |email: Option<&'static str>, identities: Vec<Identity>| {
        let store = store.clone();
        async move {
            let found = store
                .open_sign_up_requests_for(email, &identities)
                .await
                .unwrap();
            request_ids(&found)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };

    // By email: approved requests are not open.
    assert_eq!(open(Some("ada@example.com"), vec![]).await, ["req-pending"]);
    assert_eq!(open(Some("bob@example.com"), vec![]).await, ["req-denied"]);
    assert!(open(Some("nobody@example.com"), vec![]).await.is_empty());
    // By identity, newest first.
    assert_eq!(
        open(None, vec![google_1.clone()]).await,
        ["req-later", "req-pending"]
    );
    assert_eq!(open(None, vec![bob_otp.clone()]).await, ["req-denied"]);
    assert!(open(None, vec![google_2.clone()]).await.is_empty());
    // All three parts of an identity count.
    for other in [
        identity(SignInType::EmailAddress, "google.com", "g-1"),
        identity(SignInType::Federated, "google.co", "g-1"),
        identity(SignInType::Federated, "google.com", "g-11"),
    ] {
        assert!(open(None, vec![other]).await.is_empty());
    }
    // Either way; a request found both ways is listed once.
    assert_eq!(
        open(Some("ada@example.com"), vec![local("ada@example.com")]).await,
        ["req-pending"]
    );
    assert_eq!(
        open(
            Some("bob@example.com"),
            vec![google_2.clone(), google_1.clone()]
        )
        .await,
        ["req-later", "req-denied", "req-pending"]
    );
    assert!(open(None, vec![]).await.is_empty());
    // What comes back is the whole request.
    assert_eq!(
        store
            .open_sign_up_requests_for(Some("ada@example.com"), &[])
            .await
            .unwrap(),
        vec![pending.clone()]
    );

    // Cleared (deleted) and approved requests stop being open.
    assert!(store.delete_sign_up_request("req-denied").await.unwrap());
    assert!(open(None, vec![bob_otp.clone()]).await.is_empty());
    assert!(open(Some("bob@example.com"), vec![]).await.is_empty());
    store
        .decide_sign_up_request(
            "req-pending",
            SignUpRequestStatus::Approved,
            "admin",
            t0(),
            Some("u-2"),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(open(Some("ada@example.com"), vec![]).await.is_empty());
    assert_eq!(open(None, vec![google_1]).await, ["req-later"]);
}

async fn decide_sign_up_request_once(ctx: Ctx) {
    let store = ctx.store;
    let request = sign_up_request(
        "req-1",
        "ada@example.com",
        vec![local("ada@example.com")],
        t0(),
    );
    store.insert_sign_up_request(&request).await.unwrap();

    // "Pending" is no decision and changes nothing.
    assert_eq!(
        store
            .decide_sign_up_request("req-1", SignUpRequestStatus::Pending, "a", t0(), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.sign_up_request("req-1").await.unwrap(),
        Some(request.clone())
    );

    // Sixteen administrators decide at once, half approving, half denying.
    let at = t0() + Duration::minutes(1);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let (status, user_id) = if i % 2 == 0 {
                    (SignUpRequestStatus::Approved, Some(format!("u-{i}")))
                } else {
                    (SignUpRequestStatus::Denied, None)
                };
                store
                    .decide_sign_up_request(
                        "req-1",
                        status,
                        &format!("admin-{i}"),
                        at,
                        user_id.as_deref(),
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(decided) = task.await.unwrap().unwrap() {
            winners.push(decided);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one decision wins");
    let winner = winners.pop().unwrap();
    let i: usize = winner.decided_by.as_deref().unwrap()["admin-".len()..]
        .parse()
        .unwrap();
    let expected = if i.is_multiple_of(2) {
        SignUpRequest {
            status: SignUpRequestStatus::Approved,
            decided_by: Some(format!("admin-{i}")),
            decided_at: Some(at),
            user_id: Some(format!("u-{i}")),
            ..request.clone()
        }
    } else {
        SignUpRequest {
            status: SignUpRequestStatus::Denied,
            decided_by: Some(format!("admin-{i}")),
            decided_at: Some(at),
            ..request.clone()
        }
    };
    assert_eq!(winner, expected);
    assert_eq!(
        store.sign_up_request("req-1").await.unwrap(),
        Some(expected.clone())
    );

    // Decided is decided.
    assert_eq!(
        store
            .decide_sign_up_request(
                "req-1",
                SignUpRequestStatus::Approved,
                "late",
                at,
                Some("u-late")
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.sign_up_request("req-1").await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        store
            .decide_sign_up_request("req-unknown", SignUpRequestStatus::Denied, "a", at, None)
            .await
            .unwrap(),
        None
    );
}

async fn approve_sign_up_request_creates_the_user_with_the_decision(ctx: Ctx) {
    let store = ctx.store;
    let taken = identity(SignInType::Federated, "https://idp.example", "taken");
    store
        .create_user(new_user("u-owner", None, vec![taken.clone()]))
        .await
        .unwrap();
    let request = sign_up_request("req-dup", "ada@example.com", vec![taken.clone()], t0());
    store.insert_sign_up_request(&request).await.unwrap();
    let at = t0() + Duration::minutes(1);

    // The identity belongs to someone: no user, and the request is still pending.
    let user = new_user("u-new", Some("ada@example.com"), vec![taken]);
    assert!(matches!(
        store
            .approve_sign_up_request("req-dup", user, "admin-1", at)
            .await,
        Err(StorageError::DuplicateIdentity)
    ));
    assert_eq!(store.user_by_id("u-new").await.unwrap(), None);
    assert_eq!(
        store.sign_up_request("req-dup").await.unwrap(),
        Some(request)
    );

    // A pending request: the user and the decision together.
    let fresh = identity(SignInType::Federated, "https://idp.example", "fresh");
    let request = sign_up_request("req-ok", "bob@example.com", vec![fresh.clone()], t0());
    store.insert_sign_up_request(&request).await.unwrap();
    let user = new_user("u-bob", Some("bob@example.com"), vec![fresh.clone()]);
    let (decided, created) = store
        .approve_sign_up_request("req-ok", user, "admin-1", at)
        .await
        .unwrap()
        .unwrap();
    let expected = SignUpRequest {
        status: SignUpRequestStatus::Approved,
        decided_by: Some("admin-1".into()),
        decided_at: Some(at),
        user_id: Some("u-bob".into()),
        ..request
    };
    assert_eq!(decided, expected);
    assert_eq!(
        store.sign_up_request("req-ok").await.unwrap(),
        Some(expected)
    );
    assert_eq!(store.user_by_id("u-bob").await.unwrap(), Some(created));

    // Decided is decided: a second approval creates nobody.
    let again = new_user("u-bob-2", Some("bob@example.com"), vec![]);
    assert_eq!(
        store
            .approve_sign_up_request("req-ok", again, "admin-2", at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.user_by_id("u-bob-2").await.unwrap(), None);
}

async fn edit_user_is_one_transaction_at_one_version(ctx: Ctx) {
    let store = ctx.store;
    let mine = identity(SignInType::Federated, "https://idp.example", "mine");
    let theirs = identity(SignInType::Federated, "https://idp.example", "theirs");
    let mut new = new_user("u-1", Some("ada@example.com"), vec![mine.clone()]);
    new.password_hash = Some("$argon2id$old".into());
    let created = store.create_user(new).await.unwrap();
    assert_eq!(created.version, 1);
    store
        .create_user(new_user("u-2", None, vec![theirs.clone()]))
        .await
        .unwrap();

    // A duplicate identity undoes the whole edit, attributes and password included.
    let mut changed = created.clone();
    changed.email = Some("countess@example.com".into());
    changed.email_verified = false;
    changed.profile.user_type = UserType::Guest;
    changed.identities = vec![mine.clone(), theirs];
    let edit = UserEdit {
        user: &changed,
        replace_identities: true,
        password_hash: Some(Some("$argon2id$new")),
        expected_version: Some(1),
        now: t0(),
    };
    assert!(matches!(
        store.edit_user(&edit).await,
        Err(StorageError::DuplicateIdentity)
    ));
    assert_eq!(
        store.user_by_id("u-1").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.password_hash("u-1").await.unwrap().as_deref(),
        Some("$argon2id$old")
    );

    // Without the clash it all lands, at the next version.
    changed.identities = vec![mine];
    let edit = UserEdit {
        user: &changed,
        replace_identities: true,
        password_hash: Some(Some("$argon2id$new")),
        expected_version: Some(1),
        now: t0(),
    };
    assert_eq!(store.edit_user(&edit).await.unwrap(), Some(2));
    let stored = store.user_by_id("u-1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        User {
            version: 2,
            // A new password in the edit: changed at the edit's time.
            password_changed_at: Some(t0()),
            ..changed.clone()
        }
    );
    assert_eq!(stored.profile.user_type, UserType::Guest);
    assert!(!stored.email_verified);
    assert_eq!(
        store.password_hash("u-1").await.unwrap().as_deref(),
        Some("$argon2id$new")
    );

    // A stale version writes nothing; none given writes whatever the version.
    let mut stale = stored.clone();
    stale.account_enabled = false;
    let edit = UserEdit {
        user: &stale,
        replace_identities: false,
        password_hash: Some(None),
        expected_version: Some(1),
        now: t0(),
    };
    assert!(matches!(
        store.edit_user(&edit).await,
        Err(StorageError::Conflict)
    ));
    assert_eq!(store.user_by_id("u-1").await.unwrap(), Some(stored));
    let edit = UserEdit {
        expected_version: None,
        ..edit
    };
    assert_eq!(store.edit_user(&edit).await.unwrap(), Some(3));
    assert_eq!(store.password_hash("u-1").await.unwrap(), None);

    // Other writes of the user count too.
    assert!(store
        .set_user_roles("u-1", &["Usher.Admin".to_owned()], t0())
        .await
        .unwrap());
    assert_eq!(store.user_by_id("u-1").await.unwrap().unwrap().version, 4);

    let ghost = User {
        id: "u-nobody".into(),
        ..changed
    };
    let edit = UserEdit {
        user: &ghost,
        replace_identities: false,
        password_hash: None,
        expected_version: Some(1),
        now: t0(),
    };
    assert_eq!(store.edit_user(&edit).await.unwrap(), None);
}

/// Undoes migrations 5 and 4 behind the store's back, as a database last migrated by an
/// older Usher would be.
const UNDO_MIGRATION_4: &str = "ALTER TABLE browser_sessions DROP COLUMN identity_provider;
     DELETE FROM usher_migrations WHERE version = 5;
     DROP TABLE sign_up_request_identities;
     DROP TABLE sign_up_requests;
     DROP TABLE user_roles;
     DROP INDEX identities_issuer;
     DROP INDEX users_display_name_lower;
     ALTER TABLE users DROP COLUMN display_name_lower;
     DELETE FROM usher_migrations WHERE version = 4;";

async fn display_name_backfill(ctx: Ctx) {
    let store = ctx.store;
    store.migrate().await.unwrap();
    execute_directly(&ctx.url, UNDO_MIGRATION_4).await;
    assert_eq!(
        applied_migrations(&ctx.url).await,
        MIGRATIONS
            .iter()
            .copied()
            .filter(|&v| v != 4 && v != 5)
            .collect::<Vec<_>>()
    );

    // Users as an older Usher wrote them; more than one backfill batch of them.
    const MANY: usize = 1100;
    let mut rows = vec![
        "('b-1', '{\"displayName\": \"Élodie\"}')".to_owned(),
        "('b-2', '{\"displayName\": 42}')".to_owned(),
        "('b-3', '{}')".to_owned(),
        "('b-4', '{\"displayName\": [1')".to_owned(),
        "('b-5', '{\"displayName\": \"ΣΟΦΊΑ\", \"city\": \"Αθήνα\"}')".to_owned(),
    ];
    rows.extend((0..MANY).map(|i| format!("('c-{i:04}', '{{\"displayName\": \"Name {i}\"}}')")));
    let mut insert =
        String::from("INSERT INTO users (id, attributes, account_enabled, created_at) VALUES ");
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            insert.push_str(", ");
        }
        // `('id', 'attributes')` becomes `('id', 'attributes', TRUE, 0)`.
        insert.push_str(&row[..row.len() - 1]);
        insert.push_str(", TRUE, 0)");
    }
    execute_directly(&ctx.url, &insert).await;

    store.migrate().await.unwrap();
    assert_eq!(applied_migrations(&ctx.url).await, MIGRATIONS);

    let prefix = |p: &str| UserQuery {
        display_name_prefix: Some(p.into()),
        limit: 10_000,
        ..UserQuery::default()
    };
    assert_eq!(listed(&store, prefix("élo")).await, ["b-1"]);
    assert_eq!(listed(&store, prefix("σοφ")).await, ["b-5"]);
    // "name 1", "name 10" to "name 19", "name 100" to "name 199", "name 1000" on.
    let ones: Vec<String> = (1..2)
        .chain(10..20)
        .chain(100..200)
        .chain(1000..MANY)
        .map(|i| format!("c-{i:04}"))
        .collect();
    assert_eq!(listed(&store, prefix("NAME 1")).await, ones);
    // Every string display name got its key; the others (a number, none, attributes
    // that do not parse) did not, and did not stop the migration.
    assert_eq!(listed(&store, prefix("")).await.len(), 2 + MANY);
    is(store.user_by_id("b-4").await, |e| {
        matches!(e, StorageError::Corrupt(_))
    });
    // The new tables are there again.
    assert!(store
        .set_user_roles("b-1", &["Usher.Admin".into()], t0())
        .await
        .unwrap());
}

async fn account_events_newest_first_and_gone_with_their_user(ctx: Ctx) {
    use usher_domain::{AccountEvent, AccountEventKind};
    let store = ctx.store;
    for (id, email) in [("u-1", "a@example.com"), ("u-2", "b@example.com")] {
        store
            .create_user(new_user(id, Some(email), vec![local(email)]))
            .await
            .unwrap();
    }
    let event = |id: &str, user: &str, kind, minutes| AccountEvent {
        id: id.into(),
        user_id: user.into(),
        kind,
        at: t0() + Duration::minutes(minutes),
        client_id: Some("app".into()),
        flow_id: (minutes % 2 == 0).then(|| format!("flow-{id}")),
    };
    let reset = event("e-1", "u-1", AccountEventKind::PasswordReset, 0);
    let edit = event("e-2", "u-1", AccountEventKind::ProfileUpdated, 5);
    let changed = event("e-3", "u-1", AccountEventKind::PasswordChanged, 3);
    let other = event("e-4", "u-2", AccountEventKind::ResetLinkSent, 10);
    for e in [&reset, &edit, &changed, &other] {
        store.insert_account_event(e).await.unwrap();
    }
    assert!(matches!(
        store.insert_account_event(&reset).await,
        Err(StorageError::AlreadyExists)
    ));
    assert_eq!(
        store.account_events("u-1", 10).await.unwrap(),
        vec![edit.clone(), changed, reset]
    );
    assert_eq!(
        store.account_events("u-1", 1).await.unwrap(),
        vec![edit.clone()]
    );
    assert_eq!(store.account_events("nobody", 10).await.unwrap(), vec![]);
    // Kept for their retention period, then cleaned up with what expired.
    store
        .delete_expired(t0() + usher_storage::ACCOUNT_EVENT_RETENTION + Duration::minutes(4))
        .await
        .unwrap();
    assert_eq!(store.account_events("u-1", 10).await.unwrap(), vec![edit]);
    // They go with their user.
    assert!(store.delete_user("u-1", t0()).await.unwrap());
    assert_eq!(store.account_events("u-1", 10).await.unwrap(), vec![]);
    assert_eq!(store.account_events("u-2", 10).await.unwrap(), vec![other]);
}
