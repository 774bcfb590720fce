//! Usher's OpenID Connect building blocks, independent of HTTP: the master key that
//! protects secrets at rest, JOSE signing and verification of JWTs, PKCE, the
//! signing-key lifecycle (creation, rotation, publication) and the discovery document.
//!
//! Every operation on untrusted input (tokens, keys, encoded text) returns an error
//! rather than panicking.

pub mod crypto;
pub mod discovery;
pub mod jose;
pub mod keys;
pub mod pkce;

pub use crypto::{CryptoError, HmacKey, MasterKey};
pub use jose::{Algorithm, JoseError, SigningKey};
pub use keys::{KeyError, KeyManager, Keyring, RotationPolicy};
