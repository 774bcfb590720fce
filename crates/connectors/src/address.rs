//! Which targets Usher may call (contract §4): `https://` only, and only public
//! addresses, unless the operator's [`TargetPolicy`] allows plain http, loopback or
//! the private network (each on its own).
//!
//! The check runs on the addresses a name resolves to, inside the HTTP client's own
//! resolver, so the address checked is the address connected to: a name that resolves
//! to a public address when validated and to 127.0.0.1 when called (DNS rebinding)
//! is refused at connection time. IP-literal hosts never reach a resolver and are
//! checked before the call.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use usher_domain::rules::TargetPolicy;

use crate::failure::{Failure, FailureReason};

/// Whether `ip` is an address on the public internet: the rule the configuration file
/// and the admin API apply to the targets they are given.
pub use usher_domain::rules::is_public_ip as is_public;

/// Checks a target URL before any connection: the scheme, and the host when it is an
/// IP literal. Names are checked when they resolve, inside the HTTP client.
pub fn check_target(url: &url::Url, policy: TargetPolicy) -> Result<(), Failure> {
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(Failure::new(
                FailureReason::TargetNotAllowed,
                "plain http:// is not allowed (connector_settings.allow_http_targets); the target must be https://",
            ))
        }
        other => {
            return Err(Failure::new(
                FailureReason::TargetNotAllowed,
                format!("scheme {other:?} is not allowed; the target must be https://"),
            ))
        }
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => {
            return Err(Failure::new(
                FailureReason::ConfigurationError,
                "the target URL has no host",
            ))
        }
    };
    match policy.refusal(ip) {
        None => Ok(()),
        Some(why) => Err(Failure::new(FailureReason::TargetNotAllowed, why)),
    }
}

/// Every address a name resolved to was refused. Found again in the HTTP client's
/// error chain to tell this apart from other connection failures.
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves only to addresses the connector settings refuse (loopback or private network)"
)]
pub(crate) struct AddressRefused {
    pub host: String,
}

/// The name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("{host} could not be resolved: {source}")]
pub(crate) struct ResolveFailed {
    pub host: String,
    #[source]
    pub source: std::io::Error,
}

/// The system resolver, keeping only the addresses Usher may connect to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilteringResolver {
    pub policy: TargetPolicy,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| ResolveFailed {
                    host: host.clone(),
                    source,
                })?
                .collect();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| policy.allows_ip(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressRefused { host }) as _);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let strict = TargetPolicy::default();
        let only = |http, loopback, private| TargetPolicy {
            allow_http: http,
            allow_loopback: loopback,
            allow_private_network: private,
        };
        assert!(check_target(&u("https://api.example.com/x"), strict).is_ok());
        assert!(check_target(&u("https://8.8.8.8/x"), strict).is_ok());
        // Each setting opens its own door only.
        for (s, opened_by) in [
            ("http://api.example.com/x", Some(only(true, false, false))),
            ("https://127.0.0.1/x", Some(only(false, true, false))),
            ("https://[::1]/x", Some(only(false, true, false))),
            ("https://[::ffff:7f00:1]/x", Some(only(false, true, false))),
            ("https://10.1.2.3/x", Some(only(false, false, true))),
            ("https://[fd00::1]/x", Some(only(false, false, true))),
            ("ftp://api.example.com/x", None),
        ] {
            let e = check_target(&u(s), strict).unwrap_err();
            assert_eq!(e.reason, FailureReason::TargetNotAllowed, "{s}");
            assert_eq!(
                check_target(&u(s), TargetPolicy::ALL).is_ok(),
                opened_by.is_some(),
                "{s}"
            );
            if let Some(p) = opened_by {
                assert!(check_target(&u(s), p).is_ok(), "{s}");
                for other in [
                    only(true, false, false),
                    only(false, true, false),
                    only(false, false, true),
                ] {
                    if other != p {
                        assert!(check_target(&u(s), other).is_err(), "{s} with {other:?}");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn resolver_filters_loopback() {
        let strict = FilteringResolver {
            policy: TargetPolicy {
                allow_http: true,
                allow_loopback: false,
                allow_private_network: true,
            },
        };
        let err = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost must be refused");
        assert!(err.downcast_ref::<AddressRefused>().is_some());
        let open = FilteringResolver {
            policy: TargetPolicy {
                allow_loopback: true,
                ..TargetPolicy::default()
            },
        };
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("allowed: {e}"))
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
