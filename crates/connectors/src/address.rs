//! Which targets Usher may call (contract §4): `https://` only, and only public
//! addresses, unless the operator allows otherwise for development and tests.
//!
//! The check runs on the addresses a name resolves to, inside the HTTP client's own
//! resolver, so the address checked is the address connected to: a name that resolves
//! to a public address when validated and to 127.0.0.1 when called (DNS rebinding)
//! is refused at connection time. IP-literal hosts never reach a resolver and are
//! checked before the call.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::failure::{Failure, FailureReason};

/// Whether `ip` is an address on the public internet: the rule the configuration file
/// and the admin API apply to the targets they are given.
pub use usher_domain::rules::is_public_ip as is_public;

/// Checks a target URL before any connection: the scheme, and the host when it is an
/// IP literal. Names are checked when they resolve, inside the HTTP client.
pub fn check_target(url: &url::Url, allow_insecure: bool) -> Result<(), Failure> {
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(Failure::new(
                FailureReason::TargetNotAllowed,
                "plain http:// is not allowed; the target must be https://",
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
    if allow_insecure || is_public(ip) {
        Ok(())
    } else {
        Err(not_public(ip))
    }
}

fn not_public(ip: IpAddr) -> Failure {
    Failure::new(
        FailureReason::TargetNotAllowed,
        format!("{ip} is not a public address"),
    )
}

/// Every address a name resolved to was refused. Found again in the HTTP client's
/// error chain to tell this apart from other connection failures.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to non-public addresses")]
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
    pub allow_non_public: bool,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_non_public = self.allow_non_public;
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
                .filter(|a| allow_non_public || is_public(a.ip()))
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
        assert!(check_target(&u("https://api.example.com/x"), false).is_ok());
        assert!(check_target(&u("https://8.8.8.8/x"), false).is_ok());
        for (s, insecure_ok) in [
            ("http://api.example.com/x", true),
            ("https://127.0.0.1/x", true),
            ("https://[::1]/x", true),
            ("https://[::ffff:7f00:1]/x", true),
            ("https://10.1.2.3/x", true),
            ("ftp://api.example.com/x", false),
        ] {
            let e = check_target(&u(s), false).unwrap_err();
            assert_eq!(e.reason, FailureReason::TargetNotAllowed, "{s}");
            assert_eq!(check_target(&u(s), true).is_ok(), insecure_ok, "{s}");
        }
    }

    #[tokio::test]
    async fn resolver_filters_loopback() {
        let strict = FilteringResolver {
            allow_non_public: false,
        };
        let err = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost must be refused");
        assert!(err.downcast_ref::<AddressRefused>().is_some());
        let open = FilteringResolver {
            allow_non_public: true,
        };
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("allowed: {e}"))
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
