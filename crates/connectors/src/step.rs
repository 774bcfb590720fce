//! The connector steps of a sign-up, as the flow engine sees them: at each step it
//! hands the claims gathered so far to a `StepConnectors` and acts on the outcome.
//! Without connectors every step continues with the claims unchanged.

use async_trait::async_trait;
use usher_domain::{flow::PageMessage, AttributeValues, ConnectorStep, Identity, User};

/// What a connector step is asked about.
pub struct StepRequest<'a> {
    pub step: ConnectorStep,
    pub flow_id: &'a str,
    pub user_flow_id: &'a str,
    pub connector_ids: &'a [String],
    pub client_id: &'a str,
    pub ui_locales: &'a str,
    pub email: Option<&'a str>,
    pub identities: &'a [Identity],
    pub attributes: &'a AttributeValues,
    /// Identifies this run of the step to the APIs (see `FlowStep::run_key`); each
    /// connector's calls carry it, with the connector's id, as `idempotency-key`.
    pub run_key: Option<&'a str>,
    /// The person's address as Usher saw it (an extension's `client.ip`).
    pub client_ip: Option<std::net::IpAddr>,
    /// The user a token is being issued for (`preTokenIssuance`).
    pub user: Option<&'a User>,
    /// The code to deliver (`emailOtpSend`).
    pub otp: Option<OtpContext<'a>>,
}

/// A one-time code a connector delivers.
#[derive(Debug, Clone, Copy)]
pub struct OtpContext<'a> {
    /// The address it goes to.
    pub identifier: &'a str,
    pub code: &'a str,
    /// `signUp`, or `signIn` for a passcode sign-in (External ID's `requestType`).
    pub request_type: &'a str,
}

/// How a connector step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Go on. `attributes` are the values after the connectors' changes (only
    /// attributes the flow selects); `token_claims` go into the token being issued
    /// (preTokenIssuance only).
    Continue {
        attributes: AttributeValues,
        token_claims: serde_json::Map<String, serde_json::Value>,
    },
    Block {
        user_message: String,
        /// The block page's heading, when the connector gave one (extensions).
        title: Option<String>,
    },
    ValidationError(PageMessage),
    /// A call failed; `reference` is in the call record and the log.
    Failed {
        reference: String,
    },
    /// A call failed and its connector's failure policy is `continue`, at a step that
    /// cannot simply go on without it (`emailOtpSend`: the code was not delivered, so
    /// Usher's mailer sends it instead).
    FellBack {
        reference: String,
    },
}

#[async_trait]
pub trait StepConnectors: Send + Sync {
    async fn run(&self, request: StepRequest<'_>) -> StepOutcome;

    /// The longest a run of these connectors can take: the sum of their budgets,
    /// since they run one after the other. A run older than this is dead.
    fn worst_case(&self, _connector_ids: &[String]) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// No connectors configured: every step continues unchanged.
pub struct NoConnectors;

#[async_trait]
impl StepConnectors for NoConnectors {
    async fn run(&self, request: StepRequest<'_>) -> StepOutcome {
        StepOutcome::Continue {
            attributes: request.attributes.clone(),
            token_claims: serde_json::Map::new(),
        }
    }
}
