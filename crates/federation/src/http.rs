//! The HTTP side: one client that follows no redirect, reads at most 1 MiB of any
//! answer, and (unless insecure endpoints are allowed) refuses `http://` and
//! loopback, link-local and unspecified addresses, both as literals in URLs and as
//! what a host name resolves to, so a provider's discovery document cannot aim Usher
//! at itself or at a cloud metadata service. Private ranges stay allowed: companies
//! run their identity providers on internal addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::error::FederationError;
use usher_domain::identity_provider::FederationSettings;

/// The largest answer read from a provider; discovery documents and JWKS are a few
/// KiB, so anything near this is a mistake or an attack.
pub(crate) const MAX_BODY: usize = 1 << 20;

const USER_AGENT: &str = concat!("Usher/", env!("CARGO_PKG_VERSION"));

/// An HTTP answer that was read in full.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

pub(crate) struct Http {
    client: reqwest::Client,
    allow_insecure: bool,
}

impl Http {
    pub fn new(settings: &FederationSettings) -> Result<Self, FederationError> {
        #[allow(
            clippy::disallowed_methods,
            reason = "the federation client owns outbound HTTP to identity providers"
        )]
        let mut builder = reqwest::Client::builder()
            // A redirect from a token or userinfo endpoint would carry the request
            // somewhere nobody configured; providers do not need it.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // GitHub's API refuses requests without a User-Agent.
            .user_agent(USER_AGENT)
            .https_only(!settings.allow_insecure_endpoints);
        if !settings.allow_insecure_endpoints {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder
            .build()
            .map_err(|e| FederationError::Misconfigured(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            allow_insecure: settings.allow_insecure_endpoints,
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Parses an endpoint and checks it against the settings.
    pub fn check_url(&self, url: &str, what: &str) -> Result<Url, FederationError> {
        check_url(url, what, self.allow_insecure)
    }

    /// Sends the request and reads the whole answer, whatever its status. The error
    /// is a reason fit for an error message: no URL (it may carry a proof or a
    /// token in its query), no body.
    pub async fn execute(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let mut response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(format!("answer larger than {MAX_BODY} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("answer larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}

/// A reqwest error without its URL, with its causes (which say e.g. "connection
/// refused" or why an address was refused).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    let mut seen = 0;
    while let Some(cause) = source {
        if seen == 4 {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        seen += 1;
    }
    text
}

pub(crate) fn check_url(
    url: &str,
    what: &str,
    allow_insecure: bool,
) -> Result<Url, FederationError> {
    let parsed = Url::parse(url)
        .map_err(|e| FederationError::Misconfigured(format!("{what} is not a URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Credentials in a URL end up in logs; they have no place in an endpoint.
        return Err(FederationError::Misconfigured(format!(
            "{what} must not contain credentials"
        )));
    }
    if parsed.fragment().is_some() {
        return Err(FederationError::Misconfigured(format!(
            "{what} must not contain a fragment"
        )));
    }
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(FederationError::NotAllowed(format!(
                "{what} uses http:// ({})",
                origin(&parsed)
            )))
        }
        other => {
            return Err(FederationError::Misconfigured(format!(
                "{what} has unsupported scheme {other:?}"
            )))
        }
    }
    let forbidden_host = match parsed.host() {
        None => {
            return Err(FederationError::Misconfigured(format!(
                "{what} has no host"
            )))
        }
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => is_forbidden_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_forbidden_ip(IpAddr::V6(ip)),
    };
    if forbidden_host && !allow_insecure {
        return Err(FederationError::NotAllowed(format!(
            "{what} is a loopback, link-local or unspecified address ({})",
            origin(&parsed)
        )));
    }
    Ok(parsed)
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Loopback, unspecified, link-local (which includes 169.254.169.254, the cloud
/// metadata address) and broadcast addresses, also when written as IPv4-mapped IPv6.
pub(crate) fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_unspecified() || v4.is_link_local() || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_ip(IpAddr::V4(v4));
            }
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves with the system resolver and drops forbidden addresses, so the check
/// applies to the address actually connected to and DNS rebinding cannot bypass it.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_forbidden_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves to no address that may be used (loopback, link-local and unspecified are refused)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://accounts.google.com/x", "t", false).is_ok());
        assert!(check_url("https://10.1.2.3/x", "t", false).is_ok());
        for bad in [
            "http://example.com/",
            "https://127.0.0.1/",
            "https://localhost/",
            "https://a.localhost./",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://169.254.169.254/latest",
            "https://[fe80::1]/",
            "https://0.0.0.0/",
        ] {
            assert!(
                matches!(
                    check_url(bad, "t", false),
                    Err(FederationError::NotAllowed(_))
                ),
                "{bad}"
            );
        }
        assert!(check_url("http://127.0.0.1:8080/", "t", true).is_ok());
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://user:pw@example.com/",
            "https://example.com/#f",
        ] {
            assert!(
                matches!(
                    check_url(bad, "t", true),
                    Err(FederationError::Misconfigured(_))
                ),
                "{bad}"
            );
        }
        let err = check_url("https://user:hunter2@example.com/", "t", true).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn the_guarded_resolver_refuses_loopback_names() {
        let err = GuardedResolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("localhost"));
    }
}
