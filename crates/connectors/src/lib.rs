//! API connectors: the calls Usher makes to a customer's web API at a step of a
//! sign-up, speaking the Entra-compatible contract described in `docs/CONNECTORS.md`.
//!
//! - [`ConnectorRunner`] is the production [`StepConnectors`]: it runs a step's
//!   connectors in order, records every call and counts it in [`Metrics`].
//! - [`probe`] makes one diagnostic call for `usher connectors test`.
//! - [`request`] and [`response`] hold the 1.0.0 wire format and [`extension`] that of
//!   Entra External ID's custom authentication extensions (pure, tested without a
//!   server);
//!   [`certificate`] reads uploaded client certificates. The HTTP side (`transport`),
//!   the address policy (`address`) and the circuit breaker (`breaker`) are internal.

mod address;
mod breaker;
pub mod certificate;
pub mod extension;
mod failure;
mod metrics;
mod probe;
pub mod request;
pub mod response;
mod runner;
mod step;
mod transport;

pub use address::{check_target, is_public};
pub use breaker::BreakerState;
pub use failure::{Failure, FailureReason};
pub use metrics::{render_breakers, Metrics};
pub use probe::{
    probe, probe_with_schema, ProbeInterpretation, ProbeReport, ProbeResponse, ProbeSchema,
};
pub use response::{is_protected_token_claim, RESERVED_TOKEN_CLAIMS};
pub use runner::{redact_body, ConnectorRunner, RunnerSettings, MAX_RECORDED_BODY_BYTES};
pub use step::{NoConnectors, OtpContext, StepConnectors, StepOutcome, StepRequest};
pub use transport::{NamedValue, SentRequest, TokenSigner, MAX_BODY_BYTES};
