//! The repositories of [`Store`](crate::Store), one file each. Each file is a
//! macro that `impl_store!` (in `shared.rs`) expands inside the SQLite and the
//! PostgreSQL store, so both run the same SQL; what differs between the databases
//! stays in `sqlite.rs` and `postgres.rs`.

pub(crate) mod account_events;
pub(crate) mod connector_calls;
pub(crate) mod flows;
pub(crate) mod maintenance;
pub(crate) mod rate_limits;
pub(crate) mod sessions;
pub(crate) mod sign_up_requests;
pub(crate) mod signing_keys;
pub(crate) mod tenant;
pub(crate) mod tokens;
pub(crate) mod user_admin;
pub(crate) mod users;
