//! API connectors: the calls Usher makes to a customer's web API at a step of a
//! sign-up, speaking the Entra-compatible contract (`shared/spec/api-connector-contract.md`).

mod step;

pub use step::{NoConnectors, StepConnectors, StepOutcome, StepRequest};
