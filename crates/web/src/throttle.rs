//! Rate limits at the sign-in, code and token endpoints: who is asking (the source
//! address, behind trusted proxies), whether a limit refuses them, and how a refusal
//! is answered (a page or `429` with `Retry-After`) and counted for `/metrics`.
//! The windows live in the database, so every instance counts the same attempts.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{
    extract::{ConnectInfo, State},
    http::{header, HeaderValue},
    response::Response,
};
use usher_domain::{Limit, RateLimitPolicy};
use usher_oidc::crypto::HmacKey;
use usher_storage::Store;

use crate::state::AppState;

/// The address a request comes from, when the server knows it (it does whenever it
/// serves a socket; an in-process router in a test may not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    pub fn subject(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

/// Middleware: works out the [`ClientAddress`] of every request once.
pub async fn client_address(
    State(state): State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let address = peer.map(|p| state.throttle.policy.client_address(p, forwarded));
    request.extensions_mut().insert(ClientAddress(address));
    next.run(request).await
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

    /// Adds `Retry-After` to a response.
    pub fn mark(&self, mut response: Response) -> Response {
        if let Ok(v) = HeaderValue::from_str(&self.retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The policy, the key that hides subjects in the store, and the refusal counts.
pub struct Throttle {
    pub policy: RateLimitPolicy,
    key: HmacKey,
    refused: BTreeMap<Limit, AtomicU64>,
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
        }
    }

    fn key(&self, limit: Limit, subject: &str) -> String {
        limit.key(subject, |b| self.key.sign_hex(b))
    }

    fn refused(&self, limit: Limit) -> Throttled {
        if let Some(c) = self.refused.get(&limit) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Throttled {
            limit,
            retry_after_seconds: 0,
        }
    }

    /// Whether any of `checks` is already exhausted; counts nothing. A store that
    /// cannot answer does not stop sign-ins (its failure is logged): the per-flow
    /// limits still hold.
    pub async fn check(
        &self,
        store: &dyn Store,
        now: chrono::DateTime<chrono::Utc>,
        checks: &[(Limit, Option<&str>)],
    ) -> Option<Throttled> {
        for (limit, subject) in checks {
            let (rule, Some(subject)) = (self.policy.rule(*limit), subject) else {
                continue;
            };
            if rule.is_off() {
                continue;
            }
            match store.rate_limit(&self.key(*limit, subject), now).await {
                Ok(Some(w)) if rule.exhausted_by(w.hits) => {
                    return Some(Throttled {
                        retry_after_seconds: (w.window_ends - now).num_seconds().max(1),
                        ..self.refused(*limit)
                    })
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, limit = limit.name(), "rate limit unreadable"),
            }
        }
        None
    }

    /// Counts one hit for each of `hits`; the first limit the hit takes past its
    /// maximum is the answer (every hit is counted either way).
    pub async fn hit(
        &self,
        store: &dyn Store,
        now: chrono::DateTime<chrono::Utc>,
        hits: &[(Limit, Option<&str>)],
    ) -> Option<Throttled> {
        let mut refused = None;
        for (limit, subject) in hits {
            let (rule, Some(subject)) = (self.policy.rule(*limit), subject) else {
                continue;
            };
            if rule.is_off() {
                continue;
            }
            match store
                .hit_rate_limit(&self.key(*limit, subject), rule.window, now)
                .await
            {
                Ok(w) if w.hits > i64::from(rule.max) && refused.is_none() => {
                    refused = Some(Throttled {
                        retry_after_seconds: (w.window_ends - now).num_seconds().max(1),
                        ..self.refused(*limit)
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, limit = limit.name(), "rate limit not counted")
                }
            }
        }
        refused
    }

    /// Forgets `subject`'s window for `limit` (the owner proved who they are).
    pub async fn clear(&self, store: &dyn Store, limit: Limit, subject: &str) {
        if let Err(e) = store.clear_rate_limit(&self.key(limit, subject)).await {
            tracing::warn!(error = %e, limit = limit.name(), "rate limit not cleared");
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
        out
    }
}

impl AppState {
    pub async fn rate_check(&self, checks: &[(Limit, Option<&str>)]) -> Option<Throttled> {
        self.throttle
            .check(&*self.store, self.clock.now(), checks)
            .await
    }

    pub async fn rate_hit(&self, hits: &[(Limit, Option<&str>)]) -> Option<Throttled> {
        self.throttle
            .hit(&*self.store, self.clock.now(), hits)
            .await
    }
}
