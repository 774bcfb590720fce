//! The one random source of an instance: flow and user ids, tokens, codes. Seeded from
//! the operating system, or from a fixed seed in tests, so a whole sign-up can be
//! replayed exactly.

use std::sync::Mutex;

use rand::{rngs::StdRng, RngCore, SeedableRng};

pub struct Random(Mutex<StdRng>);

impl Random {
    /// Seeded from the operating system, or from `seed` (tests).
    pub fn new(seed: Option<u64>) -> Self {
        Self(Mutex::new(match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_entropy(),
        }))
    }

    /// Runs `f` with the generator.
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        let mut rng = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut *rng)
    }

    pub fn new_id(&self) -> String {
        self.with(|r| usher_domain::id::new_uuid(r))
    }

    pub fn new_token(&self) -> String {
        self.with(|r| usher_domain::id::new_secret_token(r))
    }

    /// A code of `digits` decimal digits.
    pub fn new_code(&self, digits: u32) -> String {
        self.with(|r| usher_domain::id::new_numeric_code(r, digits))
    }
}
