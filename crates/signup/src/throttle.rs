//! Rate limits at the sign-in, code and token endpoints: whether a limit refuses an
//! attempt, counted before the attempt is made and given back when it succeeds, and
//! the refusal counts for `/metrics`. The windows live in the database, so every
//! instance counts the same attempts.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::atomic::{AtomicU64, Ordering},
};

use usher_domain::{Limit, RateLimitPolicy};
use usher_oidc::crypto::HmacKey;
use usher_storage::Store;

/// The address a request comes from, when the server knows it (it does whenever it
/// serves a socket; an in-process router in a test may not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// What limits per source address count under (an IPv6 address's /64).
    pub fn subject(&self) -> Option<String> {
        self.0.map(usher_domain::address_subject)
    }
}

/// A limit said no: which, and for how many more seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub limit: Limit,
    pub retry_after_seconds: i64,
}

impl Throttled {
    /// Whole minutes, rounded up, for the page.
    pub fn minutes(&self) -> i64 {
        (self.retry_after_seconds + 59) / 60
    }
}

/// The policy, the key that hides subjects in the store, and the refusal counts.
pub struct Throttle {
    pub policy: RateLimitPolicy,
    key: HmacKey,
    refused: BTreeMap<Limit, AtomicU64>,
    errors: AtomicU64,
}

/// Attempts counted before they were made, to give back if they succeed.
#[must_use = "release the reservation when the attempt succeeds"]
#[derive(Default)]
pub struct Reservation {
    keys: Vec<String>,
}

impl Throttle {
    /// `key` must be the same on every instance (derive it from the master key), so
    /// that they count under the same names.
    pub fn new(policy: RateLimitPolicy, key: HmacKey) -> Self {
        Self {
            policy,
            key,
            refused: Limit::ALL
                .into_iter()
                .map(|l| (l, AtomicU64::new(0)))
                .collect(),
            errors: AtomicU64::new(0),
        }
    }

    fn key(&self, limit: Limit, subject: &str) -> String {
        limit.key(subject, |b| self.key.sign_hex(b))
    }

    /// A refusal by `limit`, counted for `/metrics`.
    fn refuse(&self, limit: Limit, retry_after_seconds: i64) -> Throttled {
        if let Some(c) = self.refused.get(&limit) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Throttled {
            limit,
            retry_after_seconds: retry_after_seconds.max(1),
        }
    }

    /// Counts one attempt against each of `limits` before it is made, so parallel
    /// attempts cannot all slip past a check; `Err` if any limit is now over its
    /// maximum (the attempt must not be made). Give the attempt back with
    /// [`Throttle::release`] when it turns out to be the owner's. A store that cannot
    /// answer does not stop sign-ins (the per-flow limits still hold): the failure is
    /// logged and counted in `usher_rate_limit_errors_total`.
    pub async fn reserve(
        &self,
        store: &dyn Store,
        now: chrono::DateTime<chrono::Utc>,
        limits: &[(Limit, Option<&str>)],
    ) -> Result<Reservation, Throttled> {
        let mut reservation = Reservation::default();
        let mut refused = None;
        for (limit, subject) in limits {
            let (rule, Some(subject)) = (self.policy.rule(*limit), subject) else {
                continue;
            };
            if rule.is_off() {
                continue;
            }
            let key = self.key(*limit, subject);
            match store.hit_rate_limit(&key, rule.window, now).await {
                Ok(w) => {
                    if w.hits > i64::from(rule.max) && refused.is_none() {
                        refused = Some(self.refuse(*limit, (w.window_ends - now).num_seconds()));
                    }
                    reservation.keys.push(key);
                }
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, limit = limit.name(), "rate limit not counted");
                }
            }
        }
        match refused {
            Some(t) => Err(t),
            None => Ok(reservation),
        }
    }

    /// Gives back the attempts of `reservation`: the password or code was right.
    pub async fn release(
        &self,
        store: &dyn Store,
        now: chrono::DateTime<chrono::Utc>,
        reservation: Reservation,
    ) {
        for key in reservation.keys {
            if let Err(e) = store.release_rate_limit(&key, now).await {
                self.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "rate limit not released");
            }
        }
    }

    /// `usher_rate_limited_total` in the Prometheus text format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::from(
            "# HELP usher_rate_limited_total Requests a rate limit refused on this instance.\n\
             # TYPE usher_rate_limited_total counter\n",
        );
        for (limit, count) in &self.refused {
            out.push_str(&format!(
                "usher_rate_limited_total{{limit=\"{}\"}} {}\n",
                limit.name(),
                count.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP usher_rate_limit_errors_total Rate-limit counts the database could not take.\n\
             # TYPE usher_rate_limit_errors_total counter\n\
             usher_rate_limit_errors_total {}\n",
            self.errors.load(Ordering::Relaxed)
        ));
        out
    }
}
