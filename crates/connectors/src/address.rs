//! Which targets Usher may call (contract §4): `https://` only, and only public
//! addresses, unless the operator allows otherwise for development and tests.
//!
//! The check runs on the addresses a name resolves to, inside the HTTP client's own
//! resolver, so the address checked is the address connected to: a name that resolves
//! to a public address when validated and to 127.0.0.1 when called (DNS rebinding)
//! is refused at connection time. IP-literal hosts never reach a resolver and are
//! checked before the call.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::failure::{Failure, FailureReason};

/// Whether `ip` is an address on the public internet. Loopback, private, link-local,
/// unique-local, unspecified, multicast, broadcast, shared (CGNAT), documentation,
/// benchmarking and reserved ranges are not, nor are IPv6 forms that embed such an
/// IPv4 address (mapped, compatible, NAT64, 6to4).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let private_or_special = a == 0 // "this network", unspecified
        || a == 10
        || a == 127
        || (a == 100 && (64..=127).contains(&b)) // shared address space (CGNAT)
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (16..=31).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !private_or_special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // ::/96 holds the unspecified and loopback addresses and deprecated IPv4-compatible
    // ones: none is a public IPv6 destination.
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return false;
    }
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7]));
    }
    // Local-use NAT64 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return false;
    }
    // 6to4 2002::/16 embeds the IPv4 address in the next 32 bits.
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2]));
    }
    let special = (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x3fff && s[1] <= 0x0fff) // documentation (RFC 9637)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x2001 && (0x0010..=0x002f).contains(&s[1])) // ORCHID
        || (s[0] == 0x2001 && s[1] < 0x0200 && s[1] != 0x0db8); // IETF protocol assignments
    !special
}

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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses() {
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001::1",
        ] {
            assert!(!is_public(ip(s)), "{s} should not be public");
        }
    }

    #[test]
    fn public_addresses() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(s)), "{s} should be public");
        }
    }

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
