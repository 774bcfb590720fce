//! Test harness: Usher instances on loopback over a temporary SQLite file or a
//! throw-away PostgreSQL database, and a cookie-keeping browser without JavaScript.

#![allow(dead_code)]

use std::{path::PathBuf, sync::Arc};

pub mod api;
pub mod extension_api;
pub mod mtls;
pub mod webdriver;

use reqwest::{header::HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;
use usher_domain::MockClock;

pub const PUBLIC_CLIENT: &str = "e2e-public";
pub const CONFIDENTIAL_CLIENT: &str = "e2e-confidential";
pub const CONFIDENTIAL_SECRET: &str = "e2e-secret-value-0123456789";
pub const CALLBACK: &str = "http://127.0.0.1:9/callback";
pub const SIGNED_OUT: &str = "http://127.0.0.1:9/signed-out";
/// A fixed master key shared by every instance of one test.
pub const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
pub const EXT: &str = "0123456789abcdef0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `sqlite_<name>` and `postgres_<name>` tests running `name(backend)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        paste_tests!($name);
    };
}

#[macro_export]
macro_rules! paste_tests {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::harness::postgres_url().is_none() {
                    return;
                }
                super::$name($crate::harness::Backend::Postgres).await;
            }
        }
    };
}

/// The PostgreSQL server to test against, if any. Panics when PostgreSQL tests are
/// required but no server is named.
pub fn postgres_url() -> Option<String> {
    match std::env::var("USHER_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("USHER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL tests are required but USHER_TEST_POSTGRES_URL is unset"
            );
            eprintln!(
                "skipped: set USHER_TEST_POSTGRES_URL to run the PostgreSQL end-to-end tests"
            );
            None
        }
    }
}

fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// One test's world: a data directory, a database, a clock.
pub struct TestEnv {
    pub dir: PathBuf,
    pub database_url: String,
    pg: Option<(String, String)>,
    pub clock: MockClock,
}

impl TestEnv {
    pub async fn new(backend: Backend) -> Self {
        // `USHER_LOG=debug cargo test …` shows the instances' logs with the test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("USHER_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
            )
            .with_test_writer()
            .try_init();
        let dir = std::env::temp_dir().join(format!("usher-e2e-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/usher.db", dir.display()), None),
            Backend::Postgres => {
                let server = postgres_url().expect("a PostgreSQL server");
                let name = format!("usher_e2e_{}", random_suffix());
                admin(&server, &format!("CREATE DATABASE {name}")).await;
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&format!("/{name}"));
                (url.to_string(), Some((server, name)))
            }
        };
        Self {
            dir,
            database_url,
            pg,
            clock: MockClock::new(chrono::Utc::now()),
        }
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.join("outbox")
    }

    /// Starts an instance whose issuer is its own address.
    pub async fn start(&self) -> Instance {
        self.start_inner(None, "").await
    }

    /// Starts an instance whose e2e user flow runs `connector` at
    /// `postAttributeCollection`, calling `url`.
    pub async fn start_with_connector(&self, url: &str) -> Instance {
        self.start_with(&format!(
            r#"
[connector_settings]
allow_insecure_targets = true
record_bodies = true

[[connectors]]
id = "e2e-connector"
target_url = "{url}"
retries = 0
timeout_ms = 3000
budget_ms = 3000

[user_flows.connectors]
post_attribute_collection = ["e2e-connector"]
"#
        ))
        .await
    }

    /// Opens the instance's database directly, to look at what was stored.
    pub async fn store(&self) -> std::sync::Arc<dyn usher_storage::Store> {
        usher_storage::connect(&self.database_url).await.unwrap()
    }

    /// Starts an instance with `extra` TOML appended to the test configuration.
    pub async fn start_with(&self, extra: &str) -> Instance {
        self.start_inner(None, extra).await
    }

    /// Starts an instance that serves `issuer` (another instance's address), as two
    /// instances behind one load balancer do.
    pub async fn start_with_issuer(&self, issuer: &str) -> Instance {
        self.start_inner(Some(issuer), "").await
    }

    async fn start_inner(&self, issuer: Option<&str>, extra: &str) -> Instance {
        let (listener, _) = bind().await;
        self.start_on(listener, issuer, extra).await
    }

    /// Starts an instance on a listener bound beforehand (so two instances can be
    /// configured with each other's addresses).
    pub async fn start_on(
        &self,
        listener: tokio::net::TcpListener,
        issuer: Option<&str>,
        extra: &str,
    ) -> Instance {
        let addr = listener.local_addr().unwrap();
        let own = format!("http://{addr}");
        let issuer = issuer.unwrap_or(&own).to_owned();
        // Top-level keys at the start of `extra` go before the first table.
        let split = extra
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            .min(extra.len());
        let (root, tables) = extra.split_at(split);
        let toml = format!(
            "{root}\n{}{tables}",
            config_toml(&issuer, &self.dir, &self.database_url)
        );
        let path = self.dir.join(format!("usher-{}.toml", addr.port()));
        std::fs::write(&path, toml).unwrap();
        let env = |k: &str| match k {
            "USHER_MASTER_KEY" => Some(MASTER_KEY.to_owned()),
            "E2E_SECRET" => Some(CONFIDENTIAL_SECRET.to_owned()),
            _ => None,
        };
        let config =
            usher_config::load(Some(&path), &env).unwrap_or_else(|e| panic!("config: {e}"));
        let state = usher_cli::build(
            &config,
            usher_cli::Overrides {
                clock: Some(Arc::new(self.clock.clone())),
                rng_seed: None,
            },
        )
        .await
        .expect("instance starts");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(usher_cli::serve_on(state, listener, async move {
            let _ = rx.await;
        }));
        Instance {
            base: own,
            issuer,
            config_path: path.clone(),
            outbox: self.outbox(),
            shutdown: Some(tx),
            handle,
        }
    }

    /// The code in the newest email to `to`.
    pub fn code_for(&self, to: &str) -> String {
        code_in(&self.outbox(), to)
    }

    pub fn last_mail_to(&self, to: &str) -> String {
        last_mail_in(&self.outbox(), to)
    }

    /// Removes the database and directory of an environment that ran no instance.
    pub async fn finish_empty(self) {
        if let Some((server, name)) = &self.pg {
            admin(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    pub async fn finish_instance(&self, instance: Instance) {
        instance.stop().await;
    }

    /// Stops the instance and removes the database.
    pub async fn finish(self, instance: Instance) {
        instance.stop().await;
        if let Some((server, name)) = &self.pg {
            admin(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn admin(server: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to PostgreSQL");
    sqlx::Executor::execute(&mut conn, sql).await.expect(sql);
}

fn config_toml(issuer: &str, dir: &std::path::Path, database_url: &str) -> String {
    format!(
        r#"
issuer = "{issuer}"
data_dir = "{dir}"
database_url = "{database_url}"
demo = true

[email]
delivery = "file"
outbox_dir = "{dir}/outbox"
log_codes = false

[tenant]
extensions_app_id = "{EXT}"

[[attributes]]
name = "ShoeSize"
data_type = "int"
display_name = "Shoe size"

[[attributes]]
name = "Team"
data_type = "string"
display_name = "Team"

[[attributes]]
name = "Newsletter"
data_type = "boolean"
display_name = "Newsletter"

[[user_flows]]
id = "B2X_1_e2e"
identity_providers = ["EmailPassword-OAUTH"]
claims = ["email"]

[[user_flows.attributes]]
id = "displayName"
required = true

[[user_flows.attributes]]
id = "givenName"

[[user_flows.attributes]]
id = "surname"

[[user_flows.attributes]]
id = "extension_ShoeSize"
label = {{ en = "Shoe size", nb = "Skostørrelse" }}

[[user_flows.attributes]]
id = "city"
input = "dropdownSingleSelect"
[[user_flows.attributes.options]]
value = "Oslo"
label = "Oslo"
[[user_flows.attributes.options]]
value = "Bergen"
label = "Bergen"

[[user_flows.attributes]]
id = "extension_Newsletter"
label = "Send me the newsletter"

[[user_flows.attributes]]
id = "extension_Team"

[[applications]]
client_id = "{PUBLIC_CLIENT}"
name = "E2E public"
redirect_uris = ["{CALLBACK}"]
post_logout_redirect_uris = ["{SIGNED_OUT}"]
type = "public"
user_flow = "B2X_1_e2e"

[[applications]]
client_id = "{CONFIDENTIAL_CLIENT}"
name = "E2E confidential"
redirect_uris = ["{CALLBACK}"]
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["User.Read.All"]
"#,
        dir = dir.display()
    )
}

pub struct Instance {
    /// Where this instance listens.
    pub base: String,
    /// The issuer it serves.
    pub issuer: String,
    pub outbox: PathBuf,
    /// The configuration file it was started with.
    pub config_path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// An authorization request for `client` with PKCE (fixed verifier, see
    /// `redeem_public`), state `st` and nonce `nc`, plus `extra`.
    pub fn authorize_url(&self, client: &str, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", client),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
            ("nonce", "nc"),
            ("code_challenge", PKCE_CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            params.retain(|(pk, _)| pk != k);
            params.push((k, v));
        }
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        format!("{}/authorize?{}", self.base, q.join("&"))
    }

    pub fn authorize_url_without_pkce(&self, client: &str) -> String {
        format!(
            "{}/authorize?client_id={client}&redirect_uri={}&response_type=code&scope=openid&state=st",
            self.base,
            urlencode(CALLBACK)
        )
    }

    /// Redeems a code issued for `authorize_url(PUBLIC_CLIENT, …)`.
    pub async fn redeem_public(&self, code: &str) -> Value {
        self.redeem_public_for(PUBLIC_CLIENT, code).await
    }

    /// Redeems a code issued for `authorize_url(client, …)` to a public client.
    pub async fn redeem_public_for(&self, client: &str, code: &str) -> Value {
        let r = reqwest::Client::new()
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
                ("client_id", client),
                ("code_verifier", PKCE_VERIFIER),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Starts the shutdown a SIGTERM starts, without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the server has stopped.
    pub fn has_stopped(&self) -> bool {
        self.handle.is_finished()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
    }
}

pub use usher_testkit::{
    net::bind,
    oauth::{payload, query, urlencode, PKCE_CHALLENGE, PKCE_VERIFIER},
};

pub async fn json(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

/// The text of the page's error summary.
pub fn error_summary(body: &str) -> String {
    let start = body
        .find("class=\"error-summary\"")
        .unwrap_or_else(|| panic!("no error summary in {body}"));
    let end = body[start..]
        .find("</div>")
        .map_or(body.len(), |e| start + e);
    body[start..end].to_owned()
}

/// Asserts the page has an error for `field`, tied to it and in the summary.
pub fn assert_field_error(body: &str, field: &str) {
    assert!(
        body.contains(&format!("id=\"{field}-error\"")),
        "no error for {field} in {body}"
    );
    assert!(
        body.contains(&format!("href=\"#{field}\"")),
        "{field} is not in the summary"
    );
    assert!(
        body.contains(&format!("aria-describedby=\"{field}-error\""))
            || body.contains(&format!("{field}-hint {field}-error\"")),
        "{field}'s error is not tied to it"
    );
}

/// The ids of the page's visible inputs.
pub fn input_ids(body: &str) -> Vec<String> {
    body.split("<input ")
        .skip(1)
        .filter(|i| !i.contains("type=\"hidden\""))
        .filter_map(|i| {
            i.split("id=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.body))
    }

    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF token in {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

/// A browser without JavaScript: keeps cookies, does not follow redirects.
pub struct Browser {
    client: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// A browser whose person reads `accept_language` (sent on every request).
    pub fn with_language(accept_language: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT_LANGUAGE,
            accept_language.parse().unwrap(),
        );
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> Page {
        let r = self.client.get(url).send().await.unwrap();
        Self::page(r).await
    }

    pub async fn post(&self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self.client.post(url).form(form).send().await.unwrap();
        Self::page(r).await
    }

    /// Posts `body` as it is, as a form: for bytes no form encoder would make.
    pub async fn post_raw(&self, url: &str, body: Vec<u8>) -> Page {
        let r = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        Self::page(r).await
    }

    /// Posts a form of `page` (its CSRF token included).
    pub async fn submit(&self, url: &str, page: &Page, fields: &[(&str, &str)]) -> Page {
        let csrf = page.csrf();
        let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post(url, &form).await
    }

    async fn page(r: reqwest::Response) -> Page {
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap_or_default();
        // 502 is the page for a failed connector call, the customer's API's fault;
        // 503 the page that asks to try again (a code that could not be sent).
        assert!(
            status.as_u16() < 500
                || status == StatusCode::BAD_GATEWAY
                || status == StatusCode::SERVICE_UNAVAILABLE,
            "server error {status}: {body}"
        );
        Page {
            status,
            headers,
            body,
        }
    }

    /// Follows `/authorize` to the flow; returns the flow's path `/flow/<id>`.
    pub async fn start_flow(&self, authorize_url: &str) -> String {
        let r = self.get(authorize_url).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let location = r.location().to_owned();
        assert!(location.starts_with("/flow/"), "{location}");
        location
    }

    /// A whole local-account sign-up; returns the application's callback URL.
    pub async fn sign_up(
        &self,
        usher: &Instance,
        authorize_url: &str,
        email: &str,
        password: &str,
        attributes: &[(&str, &str)],
    ) -> String {
        let flow = self.start_flow(authorize_url).await;
        let base = &usher.base;
        let page = self.get(&format!("{base}{flow}")).await;
        let r = self
            .submit(&format!("{base}{flow}/sign-up"), &page, &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let page = self.get(&format!("{base}{flow}")).await;
        assert!(page.body.contains("name=\"email\""), "{}", page.body);
        let r = self
            .submit(&format!("{base}{flow}/email"), &page, &[("email", email)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = self.get(&format!("{base}{flow}")).await;
        let code = code_in(&usher.outbox, email);
        let r = self
            .submit(&format!("{base}{flow}/code"), &page, &[("code", &code)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = self.get(&format!("{base}{flow}")).await;
        let r = self
            .submit(
                &format!("{base}{flow}/password"),
                &page,
                &[("password", password), ("confirmPassword", password)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let page = self.get(&format!("{base}{flow}")).await;
        let r = self
            .submit(&format!("{base}{flow}/attributes"), &page, attributes)
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        r.location().to_owned()
    }

    /// Signs in with email and password; returns the callback URL.
    pub async fn sign_in(&self, authorize_url: &str, email: &str, password: &str) -> String {
        let flow = self.start_flow(authorize_url).await;
        let base = authorize_url.split("/authorize").next().unwrap();
        let page = self.get(&format!("{base}{flow}")).await;
        let r = self
            .submit(
                &format!("{base}{flow}/sign-in"),
                &page,
                &[("email", email), ("password", password)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        r.location().to_owned()
    }

    /// A sign-up at `client` from `prompt=create` through the email and its code;
    /// returns the flow and the answer to the code.
    pub async fn verify_email(
        &self,
        usher: &Instance,
        client: &str,
        email: &str,
    ) -> (String, Page) {
        let (flow, _) = self.enter_email(usher, client, email).await;
        let page = self.get(&usher.url(&flow)).await;
        let code = code_in(&usher.outbox, email);
        let r = self
            .submit(
                &usher.url(&format!("{flow}/code")),
                &page,
                &[("code", &code)],
            )
            .await;
        (flow, r)
    }

    /// A sign-up at `client` from `prompt=create` to the email sent to `email`;
    /// returns the flow and the answer to the email form.
    pub async fn enter_email(&self, usher: &Instance, client: &str, email: &str) -> (String, Page) {
        self.enter_email_for(usher, client, email, ("prompt", "create"))
            .await
    }

    /// A password reset's email page (`usher_action=reset_password`), submitted.
    pub async fn enter_reset_email(&self, usher: &Instance, email: &str) -> (String, Page) {
        self.enter_email_for(
            usher,
            PUBLIC_CLIENT,
            email,
            ("usher_action", "reset_password"),
        )
        .await
    }

    async fn enter_email_for(
        &self,
        usher: &Instance,
        client: &str,
        email: &str,
        parameter: (&str, &str),
    ) -> (String, Page) {
        let flow = self
            .start_flow(&usher.authorize_url(client, &[parameter]))
            .await;
        let page = self.get(&usher.url(&flow)).await;
        let r = self
            .submit(
                &usher.url(&format!("{flow}/email")),
                &page,
                &[("email", email)],
            )
            .await;
        (flow, r)
    }

    /// [`Browser::verify_email`], then `password` (twice): returns the flow, now at
    /// the attribute page.
    pub async fn to_attribute_page(
        &self,
        usher: &Instance,
        client: &str,
        email: &str,
        password: &str,
    ) -> String {
        let (flow, _) = self.verify_email(usher, client, email).await;
        let page = self.get(&usher.url(&flow)).await;
        let r = self
            .submit(
                &usher.url(&format!("{flow}/password")),
                &page,
                &[("password", password), ("confirmPassword", password)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        flow
    }

    /// A sign-in attempt at `client`'s flow; returns the page.
    pub async fn try_sign_in_to(
        &self,
        usher: &Instance,
        client: &str,
        email: &str,
        password: &str,
    ) -> Page {
        let flow = self
            .start_flow(&usher.authorize_url(client, &[("prompt", "login")]))
            .await;
        let page = self.get(&usher.url(&flow)).await;
        self.submit(
            &usher.url(&format!("{flow}/sign-in")),
            &page,
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// A sign-in attempt that is expected to fail; returns the page.
    pub async fn try_sign_in(&self, usher: &Instance, email: &str, password: &str) -> Page {
        let flow = self
            .start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "login")]))
            .await;
        let page = self.get(&usher.url(&flow)).await;
        self.submit(
            &usher.url(&format!("{flow}/sign-in")),
            &page,
            &[("email", email), ("password", password)],
        )
        .await
    }
}

/// The code in the newest email to `to` in `outbox`.
pub fn code_in(outbox: &std::path::Path, to: &str) -> String {
    let mail = last_mail_in(outbox, to);
    let subject = mail
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .unwrap_or_else(|| panic!("no subject in {mail}"));
    subject
        .split(|c: char| !c.is_ascii_digit())
        .find(|s| s.len() == 6)
        .unwrap_or_else(|| panic!("no code in {subject}"))
        .to_owned()
}

/// The newest email to `to` in `outbox` (file names sort by time).
pub fn last_mail_in(outbox: &std::path::Path, to: &str) -> String {
    let mut files: Vec<_> = std::fs::read_dir(outbox)
        .unwrap_or_else(|e| panic!("no outbox: {e}"))
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .rev()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.lines().any(|l| l.starts_with("To:") && l.contains(to)))
        .unwrap_or_else(|| panic!("no mail to {to}"))
}

/// Undoes the HTML escaping of an attribute value.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
