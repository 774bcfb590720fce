//! The redirects back to the application: `redirect_uri` with the code or the OAuth
//! error, the `state` and the issuer (RFC 6749 §4.1.2, RFC 9207).

/// Appends query parameters to a redirect URI that may already have a query.
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        out.push_str(k);
        out.push('=');
        out.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
    }
    out
}

/// `redirect_uri?error=…&error_description=…&state=…&iss=…` (RFC 6749 §4.1.2.1, RFC 9207).
pub fn error_redirect_url(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    append_query(redirect_uri, &params)
}

/// `redirect_uri?code=…&state=…&iss=…`.
pub fn success_redirect_url(
    redirect_uri: &str,
    code: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut params = vec![("code", code)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    append_query(redirect_uri, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_urls() {
        assert_eq!(
            success_redirect_url("https://a.example/cb?x=1", "c d", Some("s&t"), "https://i"),
            "https://a.example/cb?x=1&code=c+d&state=s%26t&iss=https%3A%2F%2Fi"
        );
        assert_eq!(
            error_redirect_url(
                "https://a.example/cb",
                "access_denied",
                "no",
                None,
                "https://i"
            ),
            "https://a.example/cb?error=access_denied&error_description=no&iss=https%3A%2F%2Fi"
        );
    }
}
