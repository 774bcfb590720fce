//! Fixtures Usher's test suites share, so that each is written once: loopback servers
//! ([`net`]), the OAuth and JWT helpers a relying party needs ([`oauth`]), builders
//! for tenant objects ([`tenant`]), and the sign-up engine over an in-memory database
//! with scripted connectors, a fake upstream provider and mail kept in memory
//! ([`engine`]). A dev-dependency of the test suites only.

#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    reason = "test fixtures: a failure is a failed test"
)]

pub mod engine;
pub mod net;
pub mod oauth;
pub mod tenant;
