//! The sign-up engine over a fresh in-memory SQLite database: a clock that only moves
//! when told, a seeded random source, connectors that answer what a test scripts
//! ([`Script`]), an upstream provider that vouches for a fixed identity
//! ([`FakeGoogle`]), and mail kept in memory ([`Outbox`]). Messages are their
//! catalogue keys ([`Keys`]), so tests read what a person would be told. [`World`]
//! drives a flow to a step.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use usher_connectors::{StepConnectors, StepOutcome, StepRequest};
use usher_domain::{
    Application, AttributeAssignment, AttributeValue, AttributeValues, AuthorizationRequest,
    ClientType, ConnectorSlots, ConnectorStep, FlowStep, Identity, MockClock, Prompt,
    RateLimitPolicy, SignInType, Tenant, UserFlow, UserInputType,
};
use usher_federation::{
    AuthorizationRequest as UpstreamRequest, Completion, ExternalIdentity, FederationError,
};
use usher_oidc::crypto::MasterKey;
use usher_signup::{
    hasher::PasswordHasher, live::CompileTenant, throttle::ClientAddress, throttle::Throttle,
    Compiled, Engine, Letter, Live, Loaded, MailFailure, Messages, Next, Parts, Postman,
    ProviderName, Random, Settings, Upstream, Written,
};
use usher_storage::Store;
use usher_tenant::{TenantService, TenantSnapshot};

pub const ISSUER: &str = "https://id.example";
pub const CLIENT: &str = "app";
pub const REDIRECT: &str = "https://app.example/cb";
pub const FLOW: &str = "B2X_1_signup";
pub const BROWSER: &str = "browser-cookie-value-of-forty-three-chars-x";
pub const GOOGLE: &str = "Google-OAUTH";

/// Every message is its key, with its arguments.
pub struct Keys;

impl Messages for Keys {
    fn text(&self, _locale: &str, key: &str, args: &[(&str, String)]) -> String {
        if args.is_empty() {
            key.to_owned()
        } else {
            let args: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{key}({})", args.join(","))
        }
    }
}

/// Mail kept in memory: who got which letter (a letter counts once delivered, not
/// when written).
#[derive(Default)]
pub struct Outbox {
    delivered: Mutex<Vec<(String, Letter)>>,
    written: Mutex<Vec<(String, Letter)>>,
}

impl Outbox {
    pub fn letters(&self) -> Vec<(String, Letter)> {
        self.delivered.lock().unwrap().clone()
    }

    pub fn last_code(&self, to: &str) -> String {
        self.letters()
            .into_iter()
            .rev()
            .find_map(|(t, l)| match l {
                Letter::Code { code, .. }
                | Letter::ResetCode { code, .. }
                | Letter::DeletionCode { code, .. }
                    if t == to =>
                {
                    Some(code)
                }
                _ => None,
            })
            .expect("a code was sent")
    }
}

pub struct OutboxPostman(pub Arc<Outbox>);

#[async_trait]
impl Postman for OutboxPostman {
    fn deliverable(&self, to: &str) -> bool {
        !to.contains(' ')
    }

    fn write(
        &self,
        to: &str,
        _locale: &str,
        letter: &Letter,
        _flow_id: Option<&str>,
    ) -> Result<Written, MailFailure> {
        self.0
            .written
            .lock()
            .unwrap()
            .push((to.to_owned(), letter.clone()));
        Ok(Written {
            subject: String::new(),
            body: String::new(),
        })
    }

    async fn deliver(&self, to: &str, _written: Written) -> Result<(), MailFailure> {
        let mut written = self.0.written.lock().unwrap();
        if let Some(i) = written.iter().rposition(|(t, _)| t == to) {
            let letter = written.remove(i);
            self.0.delivered.lock().unwrap().push(letter);
        }
        Ok(())
    }
}

/// What a connector run was asked.
#[derive(Debug, Clone)]
pub struct Call {
    pub step: ConnectorStep,
    pub attributes: AttributeValues,
    pub run_key: Option<String>,
    pub client_ip: Option<std::net::IpAddr>,
    /// The user a token is for (`preTokenIssuance`).
    pub user_id: Option<String>,
    /// The code to deliver and its request type (`emailOtpSend`).
    pub otp: Option<(String, String)>,
}

/// Connectors that answer what the test scripted, in order, and then continue with
/// the attributes unchanged.
#[derive(Default)]
pub struct Script {
    outcomes: Mutex<VecDeque<StepOutcome>>,
    calls: Mutex<Vec<Call>>,
}

impl Script {
    pub fn then(&self, outcome: StepOutcome) {
        self.outcomes.lock().unwrap().push_back(outcome);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl StepConnectors for Script {
    async fn run(&self, request: StepRequest<'_>) -> StepOutcome {
        self.calls.lock().unwrap().push(Call {
            step: request.step,
            attributes: request.attributes.clone(),
            run_key: request.run_key.map(str::to_owned),
            client_ip: request.client_ip,
            user_id: request.user.map(|u| u.id.clone()),
            otp: request
                .otp
                .map(|o| (o.code.to_owned(), o.request_type.to_owned())),
        });
        self.outcomes
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| StepOutcome::Continue {
                attributes: request.attributes.clone(),
                token_claims: serde_json::Map::new(),
            })
    }
}

/// An upstream provider that vouches for `subject` whenever its code is `good`.
pub struct FakeGoogle;

#[async_trait]
impl Upstream for FakeGoogle {
    fn provider(&self, id: &str) -> Option<ProviderName> {
        id.eq_ignore_ascii_case(GOOGLE).then(|| ProviderName {
            id: GOOGLE.into(),
            display_name: "Google".into(),
        })
    }

    fn provider_for(&self, identity: &Identity) -> Option<String> {
        (identity.issuer == "google.com").then(|| GOOGLE.to_owned())
    }

    fn takes_on_unresolved(&self, id: &str) -> bool {
        id == GOOGLE
    }

    fn identity_owners(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn authorization_url(
        &self,
        _id: &str,
        request: &UpstreamRequest<'_>,
    ) -> Result<String, FederationError> {
        Ok(format!(
            "https://accounts.google.example/auth?state={}",
            request.state
        ))
    }

    async fn complete(
        &self,
        id: &str,
        completion: &Completion<'_>,
    ) -> Result<ExternalIdentity, FederationError> {
        if completion.code != "good" {
            return Err(FederationError::TokenEndpoint {
                status: Some(400),
                error: Some("invalid_grant".into()),
            });
        }
        Ok(ExternalIdentity {
            provider_id: id.to_owned(),
            identity: Identity {
                sign_in_type: SignInType::Federated,
                issuer: "google.com".into(),
                issuer_assigned_id: "google-subject-1".into(),
                exact_issuer: Some("https://accounts.google.com".into()),
            },
            email: Some("grace@example.com".into()),
            attributes: [(
                "displayName".to_owned(),
                AttributeValue::String("Grace".into()),
            )]
            .into(),
            raw_claims: serde_json::Map::new(),
        })
    }
}

pub struct TestCompiler {
    pub script: Arc<Script>,
}

impl CompileTenant for TestCompiler {
    fn compile(
        &self,
        _previous: Option<&Compiled>,
        snapshot: Arc<TenantSnapshot>,
    ) -> Result<Compiled, FederationError> {
        Ok(Compiled {
            snapshot,
            connectors: self.script.clone(),
            runner: None,
            upstream: Arc::new(FakeGoogle),
        })
    }
}

pub fn user_flow(slots: ConnectorSlots, requires_approval: bool) -> UserFlow {
    UserFlow {
        id: FLOW.into(),
        identity_providers: vec![
            "EmailPassword-OAUTH".into(),
            "EmailOtpSignup-OAUTH".into(),
            GOOGLE.into(),
        ],
        attributes: vec![AttributeAssignment {
            attribute_id: "displayName".into(),
            label: None,
            is_optional: false,
            input_type: UserInputType::TextBox,
            options: vec![],
            is_claim: true,
        }],
        extra_claims: vec!["email".into()],
        connectors: slots,
        requires_approval,
    }
}

/// One engine over a fresh in-memory database.
pub struct World {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub clock: MockClock,
    pub outbox: Arc<Outbox>,
    pub script: Arc<Script>,
}

pub async fn world(slots: ConnectorSlots, requires_approval: bool) -> World {
    let store = usher_storage::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let master = MasterKey::parse(&"ab".repeat(32)).unwrap();
    let tenant = Tenant {
        extensions_app_id: "0123456789abcdef0123456789abcdef".into(),
        custom_attributes: vec![],
        user_flows: vec![user_flow(slots, requires_approval)],
        applications: vec![
            Application {
                client_id: CLIENT.into(),
                name: "App".into(),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec![],
                client_type: ClientType::Public,
                user_flow_id: FLOW.into(),
                roles: vec![],
            },
            Application {
                client_id: usher_domain::application::CONSOLE_CLIENT_ID.into(),
                name: "Console".into(),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: vec![],
                client_type: ClientType::Public,
                user_flow_id: FLOW.into(),
                roles: vec![],
            },
        ],
    };
    let snapshot = Arc::new(TenantSnapshot::new(tenant, vec![], vec![]));
    let script = Arc::new(Script::default());
    let tenants = Arc::new(TenantService::new(store.clone(), master.clone()));
    let live = Live::start(
        tenants,
        store.clone(),
        Arc::new(TestCompiler {
            script: script.clone(),
        }),
        snapshot,
    )
    .await
    .unwrap();
    let clock = MockClock::default();
    let outbox = Arc::new(Outbox::default());
    let engine = Engine::new(Parts {
        store: store.clone(),
        live: Arc::new(live),
        clock: Arc::new(clock.clone()),
        random: Arc::new(Random::new(Some(7))),
        hasher: PasswordHasher::new(1),
        throttle: Arc::new(Throttle::new(
            RateLimitPolicy::default(),
            master.hmac_key("rate-limit"),
        )),
        postman: Arc::new(OutboxPostman(outbox.clone())),
        messages: Arc::new(Keys),
        code_key: master.hmac_key("email-code"),
        settings: Settings {
            issuer: ISSUER.into(),
            session: chrono::Duration::hours(1),
            authorization_code: chrono::Duration::seconds(60),
        },
    });
    World {
        engine,
        store,
        clock,
        outbox,
        script,
    }
}

pub fn request(prompt: Option<Prompt>) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: CLIENT.into(),
        redirect_uri: REDIRECT.into(),
        scope: vec!["openid".into()],
        state: Some("st".into()),
        nonce: Some("n".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        ui_locales: None,
        login_hint: None,
        prompt,
        browser_language: None,
        account_action: None,
    }
}

pub const NOBODY: ClientAddress = ClientAddress(None);
/// The address the person's requests come from in [`World::open`].
pub const PERSON: ClientAddress = ClientAddress(Some(std::net::IpAddr::V4(
    std::net::Ipv4Addr::new(203, 0, 113, 7),
)));

impl World {
    pub async fn start(&self, prompt: Option<Prompt>) -> String {
        self.start_for(CLIENT, prompt).await
    }

    /// A flow for application `client_id` (the tenant has [`CLIENT`] and the admin
    /// console's, on the same user flow).
    pub async fn start_for(&self, client_id: &str, prompt: Option<Prompt>) -> String {
        let tenant = self.engine.live.tenant();
        let user_flow = tenant.user_flow(FLOW).cloned().unwrap();
        let app = tenant.application(client_id).cloned().unwrap();
        let mut request = request(prompt);
        request.client_id = client_id.to_owned();
        self.engine
            .start(request, &app, &user_flow, "en", BROWSER)
            .await
            .unwrap()
    }

    /// A flow for [`CLIENT`] that came for `action` (`usher_action`).
    pub async fn start_action(&self, action: usher_domain::AccountAction) -> String {
        let tenant = self.engine.live.tenant();
        let user_flow = tenant.user_flow(FLOW).cloned().unwrap();
        let app = tenant.application(CLIENT).cloned().unwrap();
        let mut request = request(None);
        request.account_action = Some(action);
        self.engine
            .start(request, &app, &user_flow, "en", BROWSER)
            .await
            .unwrap()
    }

    pub async fn open(&self, flow_id: &str) -> Loaded {
        self.engine
            .open(flow_id, Some(BROWSER), PERSON)
            .await
            .unwrap()
    }

    pub async fn step(&self, flow_id: &str) -> FlowStep {
        self.store.flow(flow_id).await.unwrap().unwrap().step
    }
}

pub fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
        .collect()
}

/// The page the flow shows next: a redirect to itself, or the page itself.
pub fn shows_flow(next: &Next, flow_id: &str) {
    match next {
        Next::ShowFlow { flow_id: id } => assert_eq!(id, flow_id),
        other => panic!("expected the flow's page, got {other:?}"),
    }
}

/// Signed in, and back at the application with a code and the state; the session
/// token.
pub fn signed_in(next: Next) -> String {
    let Next::SignedIn { then, token, .. } = next else {
        panic!("expected a sign-in, got {next:?}");
    };
    let Next::Redirect { location } = *then else {
        panic!("expected the way back to the application, got {then:?}");
    };
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    assert!(location.contains("&state=st&iss="), "{location}");
    token
}

/// A local sign-up from the email page to the attribute page.
pub async fn local_sign_up_to_attributes(w: &World, email: &str) -> String {
    let id = w.start(Some(Prompt::Create)).await;
    let next = w
        .engine
        .submit_email(w.open(&id).await, email, NOBODY)
        .await;
    shows_flow(&next, &id);
    let code = w.outbox.last_code(email);
    let next = w.engine.submit_code(w.open(&id).await, &code, NOBODY).await;
    shows_flow(&next, &id);
    let next = w
        .engine
        .submit_password(
            w.open(&id).await,
            "a long pass phrase 42",
            "a long pass phrase 42",
        )
        .await;
    shows_flow(&next, &id);
    assert!(matches!(
        w.step(&id).await,
        FlowStep::SignUpAttributes { .. }
    ));
    id
}
