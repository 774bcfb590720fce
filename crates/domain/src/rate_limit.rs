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
    /// Wrong passwords for one account from one source address: the tight limit, so
    /// one attacker is stopped early without touching the owner elsewhere.
    PasswordFailuresPerAccountAndAddress,
    /// Wrong passwords for one account (its email address), from anywhere: the loose
    /// limit on attacks spread over many addresses.
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
    /// Wrong client secrets for one client from one source address, at the token,
    /// revocation and introspection endpoints.
    ClientSecretFailuresPerAddress,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::PasswordFailuresPerAccountAndAddress,
        Limit::PasswordFailuresPerAccount,
        Limit::PasswordFailuresPerAddress,
        Limit::CodeFailuresPerEmail,
        Limit::CodeFailuresPerAddress,
        Limit::CodesSentPerEmail,
        Limit::CodesSentPerAddress,
        Limit::ClientSecretFailuresPerAddress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Limit::PasswordFailuresPerAccountAndAddress => {
                "password_failures_per_account_and_address"
            }
            Limit::PasswordFailuresPerAccount => "password_failures_per_account",
            Limit::PasswordFailuresPerAddress => "password_failures_per_address",
            Limit::CodeFailuresPerEmail => "code_failures_per_email",
            Limit::CodeFailuresPerAddress => "code_failures_per_address",
            Limit::CodesSentPerEmail => "codes_sent_per_email",
            Limit::CodesSentPerAddress => "codes_sent_per_address",
            Limit::ClientSecretFailuresPerAddress => "client_secret_failures_per_address",
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
    pub password_failures_per_account_and_address: LimitRule,
    pub password_failures_per_account: LimitRule,
    pub password_failures_per_address: LimitRule,
    pub code_failures_per_email: LimitRule,
    pub code_failures_per_address: LimitRule,
    pub codes_sent_per_email: LimitRule,
    pub codes_sent_per_address: LimitRule,
    pub client_secret_failures_per_address: LimitRule,
    /// The load balancers and reverse proxies in front of Usher. Only when the peer
    /// is one of them is `X-Forwarded-For` read, right to left, to the first address
    /// that is not.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            password_failures_per_account_and_address: LimitRule::new(10, 15 * 60),
            password_failures_per_account: LimitRule::new(50, 15 * 60),
            password_failures_per_address: LimitRule::new(100, 15 * 60),
            code_failures_per_email: LimitRule::new(10, 15 * 60),
            code_failures_per_address: LimitRule::new(100, 15 * 60),
            codes_sent_per_email: LimitRule::new(5, 60 * 60),
            codes_sent_per_address: LimitRule::new(50, 60 * 60),
            client_secret_failures_per_address: LimitRule::new(20, 60),
            trusted_proxies: Vec::new(),
        }
    }
}

impl RateLimitPolicy {
    pub fn rule(&self, limit: Limit) -> LimitRule {
        match limit {
            Limit::PasswordFailuresPerAccountAndAddress => {
                self.password_failures_per_account_and_address
            }
            Limit::PasswordFailuresPerAccount => self.password_failures_per_account,
            Limit::PasswordFailuresPerAddress => self.password_failures_per_address,
            Limit::CodeFailuresPerEmail => self.code_failures_per_email,
            Limit::CodeFailuresPerAddress => self.code_failures_per_address,
            Limit::CodesSentPerEmail => self.codes_sent_per_email,
            Limit::CodesSentPerAddress => self.codes_sent_per_address,
            Limit::ClientSecretFailuresPerAddress => self.client_secret_failures_per_address,
        }
    }

    pub fn rule_mut(&mut self, limit: Limit) -> &mut LimitRule {
        match limit {
            Limit::PasswordFailuresPerAccountAndAddress => {
                &mut self.password_failures_per_account_and_address
            }
            Limit::PasswordFailuresPerAccount => &mut self.password_failures_per_account,
            Limit::PasswordFailuresPerAddress => &mut self.password_failures_per_address,
            Limit::CodeFailuresPerEmail => &mut self.code_failures_per_email,
            Limit::CodeFailuresPerAddress => &mut self.code_failures_per_address,
            Limit::CodesSentPerEmail => &mut self.codes_sent_per_email,
            Limit::CodesSentPerAddress => &mut self.codes_sent_per_address,
            Limit::ClientSecretFailuresPerAddress => &mut self.client_secret_failures_per_address,
        }
    }

    /// The address a request comes from: the peer, unless the peer is a trusted
    /// proxy, in which case `X-Forwarded-For` (every line of it, in order) is read
    /// from the right to the first hop that is not a trusted proxy. Only the hops up
    /// to that one are read: what a client wrote to the left of it (garbage
    /// included) cannot move it. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let lines: Vec<&str> = forwarded_for.into_iter().collect();
        let mut nearest = peer;
        for hop in lines.iter().rev().flat_map(|l| l.rsplit(',')) {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    let ip = ip.to_canonical();
                    if !trusted(&ip) {
                        return ip;
                    }
                    nearest = ip;
                }
                // A trusted proxy wrote something that is no address: the last
                // trusted hop is as far as the chain can be believed.
                Err(_) => return nearest,
            }
        }
        nearest
    }
}

/// The subject a source address is counted under: the address itself for IPv4, its
/// /64 for IPv6 (one subscriber usually has a whole /64, so single addresses would
/// be free to change).
pub fn address_subject(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
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
        let one = |s: &'static str| vec![s];
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            policy.client_address(ip("203.0.113.9"), one("198.51.100.1")),
            ip("203.0.113.9")
        );
        // Through a proxy: the nearest hop that is not one.
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), one("198.51.100.1, 192.0.2.7, 10.0.0.5")),
            ip("192.0.2.7")
        );
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), vec![]),
            ip("10.0.0.2")
        );
        // What the client wrote left of the real hop does not matter, garbage or not.
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), one("not an address, 192.0.2.7")),
            ip("192.0.2.7")
        );
        // A proxy that adds its own header line: the lines are read in order, so the
        // client's forged first line is not what counts.
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), vec!["198.51.100.66", "192.0.2.7"]),
            ip("192.0.2.7")
        );
        // Garbage from the trusted side stops at the last trusted hop.
        assert_eq!(
            policy.client_address(ip("10.0.0.2"), one("192.0.2.7, junk")),
            ip("10.0.0.2")
        );
        assert_eq!(
            policy.client_address(ip("::1"), one("2001:db8::1")),
            ip("2001:db8::1")
        );
        // An IPv4-mapped peer is the IPv4 address, trusted or not as such.
        assert_eq!(
            policy.client_address(ip("::ffff:10.0.0.2"), one("192.0.2.7")),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_subject(ip("2001:db8:1:2:aaaa::1")),
            address_subject(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_subject(ip("2001:db8:1:2::1")),
            address_subject(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_subject(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(address_subject(ip("192.0.2.1")), "192.0.2.1");
    }
}
