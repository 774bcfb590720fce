//! Usher's domain: the vocabulary of self-service sign-up (attributes, user flows,
//! applications, users and their identities) and the sign-up state machine.
//!
//! Nothing in this crate performs I/O; time and randomness are passed in so every
//! rule here can be tested deterministically.

pub mod application;
pub mod attribute;
pub mod clock;
pub mod connector;
pub mod event_listener;
pub mod flow;
pub mod id;
pub mod identity_provider;
pub mod password;
pub mod rate_limit;
pub mod rules;
pub mod sign_up_request;
pub mod tenant;
pub mod user;
pub mod user_flow;

pub use application::{Application, ClientType};
pub use attribute::{
    AttributeDefinition, AttributeError, AttributeValue, AttributeValues, BuiltInAttribute,
    DataType, UserInputType,
};
pub use clock::{Clock, MockClock, SystemClock};
pub use connector::{
    limits as connector_limits, BreakerSettings, CertificateSource, ClientCertificate,
    ConnectorAuthentication, ConnectorContract, ConnectorDefinition, ConnectorField,
    ConnectorRuleError, ConnectorStep, FailurePolicy, Secret, ENTRA_EXTENSION_CALLER_ID,
};
pub use event_listener::EventListener;
pub use flow::{
    AccountAction, AuthorizationRequest, CodePurpose, EmailCode, Flow, FlowError, FlowStep,
    PendingLink, Prompt, ResetLink, SignUpDraft,
};
pub use rate_limit::{address_subject, Limit, LimitRule, RateLimitPolicy};
pub use sign_up_request::{SignUpRequest, SignUpRequestStatus};
pub use tenant::Tenant;
pub use user::{
    AccountEvent, AccountEventKind, Identity, NewUser, SignInType, User, UserProfile, UserType,
};
pub use user_flow::{
    AttributeAssignment, AttributeOption, ConnectorSlots, LocalizedText, UserFlow,
};
