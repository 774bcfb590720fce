//! What an engine operation answers: the typed [`Next`] the web layer renders, with
//! the [`Feedback`] a re-shown step carries, the [`Status`] it is shown with and the
//! [`Failure`]s a person is told about in words (and a reference).

use std::collections::BTreeMap;

use usher_domain::FlowStep;

use crate::Loaded;

/// What to tell the person on a re-shown page: errors per field and errors without a
/// field (in the flow's language), what they typed, and a status notice.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub field_errors: BTreeMap<String, String>,
    pub general: Vec<String>,
    pub entered: BTreeMap<String, Vec<String>>,
    pub notice: Option<String>,
}

impl Feedback {
    pub fn general(message: String) -> Self {
        Self {
            general: vec![message],
            ..Self::default()
        }
    }

    pub fn notice(message: String) -> Self {
        Self {
            notice: Some(message),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn field(mut self, id: &str, message: String) -> Self {
        self.field_errors.insert(id.to_owned(), message);
        self
    }

    #[must_use]
    pub fn entered(mut self, entered: BTreeMap<String, Vec<String>>) -> Self {
        self.entered = entered;
        self
    }

    /// What the person typed into `id`, to show it again.
    pub fn value(&self, id: &str) -> Option<String> {
        self.entered.get(id).and_then(|v| v.first().cloned())
    }
}

/// Why a step is shown again, which the web layer turns into a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The input was refused.
    BadRequest,
    /// The password (or account) was not accepted.
    Unauthorized,
    /// The account may not sign in.
    Forbidden,
    /// The flow or the account changed under the request.
    Conflict,
    /// A limit refused the attempt; when it is a rate limit, after how long to retry.
    TooManyRequests {
        retry_after_seconds: Option<i64>,
    },
    /// An upstream provider failed.
    BadGateway,
    /// Usher cannot do it now (the mail failed, every core is hashing).
    Unavailable {
        retry_after_seconds: Option<u32>,
    },
}

/// Why a flow cannot go on; shown as a page a person understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    FlowNotFound,
    FlowExpired {
        back_url: Option<String>,
    },
    FlowFinished {
        back_url: Option<String>,
    },
    WrongBrowser,
    BadRequest {
        message_key: &'static str,
        args: Vec<(&'static str, String)>,
    },
    /// Something broke on Usher's side; logged with `reference`.
    Internal {
        reference: String,
    },
    /// An API connector call failed; `reference` is its call id.
    ConnectorFailed {
        reference: String,
        back_url: Option<String>,
    },
}

/// What the web layer does next.
#[derive(Debug)]
pub enum Next {
    /// Show the flow's current step (a form) with `feedback`.
    Step {
        loaded: Box<Loaded>,
        feedback: Feedback,
        status: Status,
    },
    /// Post/redirect/get: send the browser to the flow's page.
    ShowFlow { flow_id: String },
    /// Send the browser elsewhere: back to the application with a code or an error,
    /// or to an upstream provider.
    Redirect { location: String },
    /// The flow was blocked (by a connector or a denied approval): say so.
    Blocked {
        loaded: Box<Loaded>,
        user_message: String,
        /// The page's heading when the connector gave one.
        title: Option<String>,
    },
    /// The sign-up waits for an administrator's approval.
    Pending { loaded: Box<Loaded> },
    /// Connectors are running for this flow elsewhere: wait and look again.
    Working { loaded: Box<Loaded> },
    /// The flow cannot go on.
    Failure { locale: String, failure: Failure },
    /// A new browser session was signed in (`token`, lasting `seconds`); then `then`.
    SignedIn {
        token: String,
        seconds: i64,
        then: Box<Next>,
    },
}

impl Next {
    pub fn step(loaded: Loaded, feedback: Feedback, status: Status) -> Self {
        Next::Step {
            loaded: Box::new(loaded),
            feedback,
            status,
        }
    }

    pub fn show(loaded: &Loaded) -> Self {
        Next::ShowFlow {
            flow_id: loaded.flow.id.clone(),
        }
    }

    pub fn failure(locale: &str, failure: Failure) -> Self {
        Next::Failure {
            locale: locale.to_owned(),
            failure,
        }
    }

    /// The page for the flow's current step, final steps included: what a reload
    /// shows, and what an operation answers when the flow has moved on.
    pub fn current(issuer: &str, loaded: Loaded, feedback: Feedback, status: Status) -> Self {
        match &loaded.flow.step {
            FlowStep::Blocked {
                user_message,
                title,
            } => Next::Blocked {
                user_message: user_message.clone(),
                title: title.clone(),
                loaded: Box::new(loaded),
            },
            FlowStep::PendingApproval { .. } => Next::Pending {
                loaded: Box::new(loaded),
            },
            FlowStep::Failed { reference } => Next::Failure {
                failure: Failure::ConnectorFailed {
                    reference: reference.clone(),
                    back_url: Some(loaded.error_url(
                        issuer,
                        "server_error",
                        "The sign-up could not be completed.",
                    )),
                },
                locale: loaded.flow.locale,
            },
            // Someone's run of the connectors will save the outcome: the working page
            // reloads the flow, which resumes the run if its instance stopped.
            FlowStep::RunningConnectors { .. } => Next::Working {
                loaded: Box::new(loaded),
            },
            FlowStep::Completed { .. } => Next::Failure {
                failure: Failure::FlowFinished {
                    back_url: Some(loaded.error_url(
                        issuer,
                        "access_denied",
                        "The sign-in has already finished.",
                    )),
                },
                locale: loaded.flow.locale,
            },
            _ => Next::step(loaded, feedback, status),
        }
    }
}
