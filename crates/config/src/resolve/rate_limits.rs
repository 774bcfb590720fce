//! `[rate_limits]`: each limit's maximum and window, and the trusted proxies.

use usher_domain::RateLimitPolicy;

use super::Resolver;
use crate::raw::RawRateLimits;

/// A window longer than a day would be a lockout in all but name.
const MAX_WINDOW_SECONDS: i64 = 86_400;

impl Resolver<'_> {
    pub(super) fn rate_limits(&mut self, raw: &RawRateLimits) -> RateLimitPolicy {
        let mut policy = RateLimitPolicy::default();
        for (limit, r) in &raw.limits {
            let default = policy.rule(*limit);
            let rule = policy.rule_mut(*limit);
            rule.max = self.number(&r.max, default.max, 0, 1_000_000, "");
            let seconds: i64 = self.number(
                &r.window_seconds,
                default.window.num_seconds(),
                1,
                MAX_WINDOW_SECONDS,
                " seconds",
            );
            rule.window = chrono::Duration::seconds(seconds);
        }
        if let Some(list) = &raw.trusted_proxies {
            for item in &list.value {
                let parsed = item.value.parse::<ipnet::IpNet>().or_else(|_| {
                    item.value
                        .parse::<std::net::IpAddr>()
                        .map(ipnet::IpNet::from)
                });
                match parsed {
                    Ok(net) => policy.trusted_proxies.push(net),
                    Err(_) => self.err(
                        item.loc.clone(),
                        format!(
                            "{:?} is not an IP address or network (such as 10.0.0.0/8)",
                            item.value
                        ),
                    ),
                }
            }
        }
        policy
    }
}
