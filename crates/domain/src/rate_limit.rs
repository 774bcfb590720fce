//! Rate limits: how many password failures, code failures, codes sent and token
//! requests one account, email address, source address or client may have in a
//! window. Counting happens in the store (every instance sees the same count); this
//! module only names the limits, holds their rules and turns what is limited into a
//! key that does not show it.

use std::net::IpAddr;

use chrono::Duration;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One limited thing. The names are the configuration keys and the `limit` label of
/// the `usher_rate_limited_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Wrong passwords for one account (its email address), from anywhere.
    PasswordFailuresPerAccount,
    /// Wrong passwords from one source address, for any accounts.
    PasswordFailuresPerAddress,
    /// Wrong codes entered for one email address, across flows.
    CodeFailuresPerEmail,
    /// Wrong codes entered from one source address.
    CodeFailuresPerAddress,
    /// Codes (and "you already have an account" mails) sent to one email address.
    CodesSentPerEmail,
    /// Codes requested from one source address.
    CodesSentPerAddress,
    /// Requests to the token endpoint naming one client.
    TokenRequestsPerClient,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::PasswordFailuresPerAccount,
        Limit::PasswordFailuresPerAddress,
        Limit::CodeFailuresPerEmail,
        Limit::CodeFailuresPerAddress,
        Limit::CodesSentPerEmail,
        Limit::CodesSentPerAddress,
        Limit::TokenRequestsPerClient,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Limit::PasswordFailuresPerAccount => "password_failures_per_account",
            Limit::PasswordFailuresPerAddress => "password_failures_per_address",
            Limit::CodeFailuresPerEmail => "code_failures_per_email",
            Limit::CodeFailuresPerAddress => "code_failures_per_address",
            Limit::CodesSentPerEmail => "codes_sent_per_email",
            Limit::CodesSentPerAddress => "codes_sent_per_address",
            Limit::TokenRequestsPerClient => "token_requests_per_client",
        }
    }

    pub fn from_name(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The store key for `subject` (an email address, an IP address, a client id):
    /// a digest, so the table of counters is no list of who tried what. The
    /// subject's case is folded: `Ada@` and `ada@` are one account.
    pub fn key(self, subject: &str, digest: impl Fn(&[u8]) -> String) -> String {
        format!(
            "{}:{}",
            self.name(),
            digest(subject.to_lowercase().as_bytes())
        )
    }
}

/// At most `max` hits per `window`; `max == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitRule {
    pub max: u32,
    pub window: Duration,
}

impl LimitRule {
    pub const fn new(max: u32, window_seconds: i64) -> Self {
        Self {
            max,
            window: Duration::seconds(window_seconds),
        }
    }

    pub fn is_off(&self) -> bool {
        self.max == 0
    }

    /// Whether a window that has had `hits` refuses the next attempt.
    pub fn exhausted_by(&self, hits: i64) -> bool {
        !self.is_off() && hits >= i64::from(self.max)
    }
}

/// Every limit's rule, and which proxies' `X-Forwarded-For` is believed.
///
/// The defaults are on: generous for a person (ten wrong passwords in a quarter of an
/// hour), tight for a script. Windows are fixed and end on their own, so a limit
/// backs an attacker off without ever locking the owner out for longer than one
/// window; and a limit counts the address typed whether or not it has an account, so
/// its answer tells nothing about which addresses do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitPolicy {
    pub password_failures_per_account: LimitRule,
    pub password_failures_per_address: LimitRule,
    pub code_failures_per_email: LimitRule,
    pub code_failures_per_address: LimitRule,
    pub codes_sent_per_email: LimitRule,
    pub codes_sent_per_address: LimitRule,
    pub token_requests_per_client: LimitRule,
    /// The load balancers and reverse proxies in front of Usher. Only when the peer
    /// is one of them is `X-Forwarded-For` read, right to left, to the first address
    /// that is not.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            password_failures_per_account: LimitRule::new(10, 15 * 60),
            password_failures_per_address: LimitRule::new(100, 15 * 60),
            code_failures_per_email: LimitRule::new(10, 15 * 60),
            code_failures_per_address: LimitRule::new(100, 15 * 60),
            codes_sent_per_email: LimitRule::new(5, 60 * 60),
            codes_sent_per_address: LimitRule::new(50, 60 * 60),
            token_requests_per_client: LimitRule::new(600, 60),
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitPolicy {
    pub fn rule(&self, limit: Limit) -> LimitRule {
        match limit {
            Limit::PasswordFailuresPerAccount => self.password_failures_per_account,
            Limit::PasswordFailuresPerAddress => self.password_failures_per_address,
            Limit::CodeFailuresPerEmail => self.code_failures_per_email,
            Limit::CodeFailuresPerAddress => self.code_failures_per_address,
            Limit::CodesSentPerEmail => self.codes_sent_per_email,
            Limit::CodesSentPerAddress => self.codes_sent_per_address,
            Limit::TokenRequestsPerClient => self.token_requests_per_client,
        }
    }

    pub fn rule_mut(&mut self, limit: Limit) -> &mut LimitRule {
        match limit {
            Limit::PasswordFailuresPerAccount => &mut self.password_failures_per_account,
            Limit::PasswordFailuresPerAddress => &mut self.password_failures_per_address,
            Limit::CodeFailuresPerEmail => &mut self.code_failures_per_email,
            Limit::CodeFailuresPerAddress => &mut self.code_failures_per_address,
            Limit::CodesSentPerEmail => &mut self.codes_sent_per_email,
            Limit::CodesSentPerAddress => &mut self.codes_sent_per_address,
            Limit::TokenRequestsPerClient => &mut self.token_requests_per_client,
        }
    }

    /// The address a request comes from: the peer, unless the peer is a trusted
    /// proxy, in which case the nearest untrusted hop of `X-Forwarded-For`. A
    /// malformed header from a trusted proxy leaves the proxy's own address, so a
    /// client cannot choose its address by sending garbage.
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut hops = Vec::new();
        for part in header.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in Limit::ALL {
            assert_eq!(Limit::from_name(l.name()), Some(l));
        }
        assert_eq!(Limit::from_name("nope"), None);
    }

    #[test]
    fn rules() {
        let r = LimitRule::new(3, 60);
        assert!(!r.exhausted_by(2));
        assert!(r.exhausted_by(3));
        assert!(!LimitRule::new(0, 60).exhausted_by(1_000_000));
    }

    #[test]
    fn keys_hide_and_fold_the_subject() {
        let digest = |b: &[u8]| format!("{}", b.len());
        assert_eq!(
            Limit::CodesSentPerEmail.key("Ada@Example.com", digest),
            Limit::CodesSentPerEmail.key("ada@example.com", digest)
        );
        assert!(Limit::CodesSentPerEmail
            .key("ada@example.com", digest)
            .starts_with("codes_sent_per_email:"));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let policy = RateLimitPolicy {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..RateLimitPolicy::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            policy.client_address(ip("203.0.113.9"), Some("198.51.100.1")),
            ip("203.0.113.9")
        );
        // Through a proxy: the nearest hop that is not one.
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), Some("198.51.100.1, 192.0.2.7, 10.0.0.5")),
            ip("192.0.2.7")
        );
        assert_eq!(policy.client_address(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), Some("not an address")),
            ip("10.0.0.2")
        );
        assert_eq!(
            policy.client_address(ip("::1"), Some("2001:db8::1")),
            ip("2001:db8::1")
        );
    }
}
