//! ID token validation (OpenID Connect Core §3.1.3.7): the signature against the
//! provider's JWK set (ES256 or RS256 only; the key, not the header, decides the
//! algorithm, so `none` and HMAC confusion are refused by `usher_oidc::jose`), then
//! issuer, audience, authorized party, expiry, issue time, nonce and `at_hash`.

use serde_json::{Map, Value};
use usher_oidc::jose::{self, Algorithm, JoseError};

use crate::error::FederationError;

/// Allowed clock difference with the provider, in seconds.
pub(crate) const LEEWAY_SECS: i64 = 60;
/// An `iat` further ahead than this is not clock skew.
pub(crate) const MAX_IAT_AHEAD_SECS: i64 = 300;

const ALLOWED: &[Algorithm] = &[Algorithm::ES256, Algorithm::RS256];

/// A quirk in how a provider's ID tokens name their issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssuerQuirk {
    None,
    /// Microsoft `common`/`organizations`: the discovered issuer is a template with
    /// `{tenantid}`, to be filled with the token's `tid`.
    MicrosoftTemplate,
    /// Google also issues `iss` without the scheme (`accounts.google.com`).
    GoogleBare,
}

/// What the token must match.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    pub quirk: IssuerQuirk,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: i64,
    pub access_token: Option<&'a str>,
}

/// Why the signature could not be checked: an unknown `kid` is worth one JWKS refresh.
#[derive(Debug)]
pub(crate) enum SignatureError {
    UnknownKey,
    Invalid(FederationError),
}

/// Verifies the signature and returns the claims, which are not yet validated.
pub(crate) fn verify_signature(
    token: &str,
    jwks: &[Value],
) -> Result<Map<String, Value>, SignatureError> {
    jose::verify_jwt(token, jwks, ALLOWED).map_err(|e| {
        let reason = match e {
            JoseError::UnknownKey(_) => return SignatureError::UnknownKey,
            JoseError::BadSignature | JoseError::Crypto(_) => "signature".to_owned(),
            JoseError::AlgorithmNotAllowed(_) | JoseError::UnsupportedAlgorithm(_) => {
                "algorithm".to_owned()
            }
            JoseError::Malformed(what) => format!("malformed: {what}"),
            JoseError::InvalidKey(_) => "signing key unusable".to_owned(),
        };
        SignatureError::Invalid(FederationError::id_token(reason))
    })
}

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, FederationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            // Fractions are allowed by RFC 7519; seconds are precise enough.
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| FederationError::id_token(format!("malformed: {name} is not a date"))),
        Some(_) => Err(FederationError::id_token(format!(
            "malformed: {name} is not a date"
        ))),
    }
}

fn issuer_matches(iss: &str, expected: &Expected<'_>, claims: &Map<String, Value>) -> bool {
    match expected.quirk {
        IssuerQuirk::None => iss == expected.issuer,
        IssuerQuirk::GoogleBare => {
            iss == expected.issuer || Some(iss) == expected.issuer.strip_prefix("https://")
        }
        IssuerQuirk::MicrosoftTemplate => {
            if !expected.issuer.contains("{tenantid}") {
                return iss == expected.issuer;
            }
            let Some(tid) = claims.get("tid").and_then(Value::as_str) else {
                return false;
            };
            // A tenant id is a GUID; anything that could rewrite the URL is refused.
            let well_formed = !tid.is_empty()
                && tid.len() <= 64
                && tid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            well_formed && iss == expected.issuer.replace("{tenantid}", tid)
        }
    }
}

/// Validates the claims of a token whose signature was verified.
pub(crate) fn validate_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
) -> Result<(), FederationError> {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| FederationError::id_token("issuer"))?;
    if !issuer_matches(iss, expected, claims) {
        return Err(FederationError::id_token("issuer"));
    }

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(FederationError::id_token("audience"));
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == expected.client_id => {}
        Some(_) => return Err(FederationError::id_token("authorized party")),
        // Several audiences without azp would let another of them pass its token off.
        None if audiences.len() > 1 => return Err(FederationError::id_token("authorized party")),
        None => {}
    }

    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| FederationError::id_token("malformed: no exp"))?;
    if expected.now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(FederationError::id_token("expired"));
    }
    let iat = numeric_date(claims, "iat")?
        .ok_or_else(|| FederationError::id_token("malformed: no iat"))?;
    if iat > expected.now.saturating_add(MAX_IAT_AHEAD_SECS) {
        return Err(FederationError::id_token("issued in the future"));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf > expected.now.saturating_add(LEEWAY_SECS) {
            return Err(FederationError::id_token("not yet valid"));
        }
    }

    match claims.get("nonce") {
        Some(Value::String(n)) if constant_time_eq(n.as_bytes(), expected.nonce.as_bytes()) => {}
        _ => return Err(FederationError::id_token("nonce")),
    }

    // Optional in the code flow (Core §3.1.3.8), but when present it binds the access
    // token used for userinfo to this ID token. SHA-256 fits both allowed algorithms.
    if let (Some(at_hash), Some(access_token)) = (claims.get("at_hash"), expected.access_token) {
        if at_hash.as_str() != Some(jose::half_hash(access_token).as_str()) {
            return Err(FederationError::id_token("at_hash"));
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_790_000_000;

    fn expected(quirk: IssuerQuirk, issuer: &str) -> Expected<'_> {
        Expected {
            issuer,
            quirk,
            client_id: "client",
            nonce: "n-1",
            now: NOW,
            access_token: Some("at"),
        }
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://id.example", "aud": "client", "sub": "s",
            "exp": NOW + 300, "iat": NOW, "nonce": "n-1",
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    b.insert(k, v);
                }
            }
        }
        match base {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn check(extra: Value) -> Result<(), String> {
        validate_claims(
            &claims(extra),
            &expected(IssuerQuirk::None, "https://id.example"),
        )
        .map_err(|e| match e {
            FederationError::InvalidIdToken(r) => r,
            other => panic!("{other}"),
        })
    }

    #[test]
    fn accepts_a_good_token_and_refuses_each_fault() {
        assert_eq!(check(json!({})), Ok(()));
        assert_eq!(check(json!({"iss": "https://evil"})).unwrap_err(), "issuer");
        assert_eq!(check(json!({"aud": "other"})).unwrap_err(), "audience");
        assert_eq!(
            check(json!({"aud": ["client", "other"]})).unwrap_err(),
            "authorized party"
        );
        assert_eq!(
            check(json!({"aud": ["client", "other"], "azp": "client"})),
            Ok(())
        );
        assert_eq!(
            check(json!({"azp": "other"})).unwrap_err(),
            "authorized party"
        );
        assert_eq!(check(json!({"exp": NOW - 61})).unwrap_err(), "expired");
        assert_eq!(check(json!({"exp": NOW - 30})), Ok(()));
        assert_eq!(
            check(json!({"exp": "soon"})).unwrap_err(),
            "malformed: exp is not a date"
        );
        assert_eq!(
            check(json!({"exp": null})).unwrap_err(),
            "malformed: no exp"
        );
        assert_eq!(
            check(json!({"iat": NOW + 3600})).unwrap_err(),
            "issued in the future"
        );
        assert_eq!(check(json!({"iat": NOW as f64 + 0.5})), Ok(()));
        assert_eq!(
            check(json!({"nbf": NOW + 3600})).unwrap_err(),
            "not yet valid"
        );
        assert_eq!(check(json!({"nonce": "n-2"})).unwrap_err(), "nonce");
        assert_eq!(check(json!({"nonce": null})).unwrap_err(), "nonce");
        assert_eq!(check(json!({"at_hash": jose::half_hash("at")})), Ok(()));
        assert_eq!(check(json!({"at_hash": "wrong"})).unwrap_err(), "at_hash");
    }

    #[test]
    fn microsoft_template_takes_the_tokens_own_tenant() {
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let exp = expected(IssuerQuirk::MicrosoftTemplate, template);
        let ok = claims(json!({"iss": "https://login.microsoftonline.com/t-x/v2.0", "tid": "t-x"}));
        assert!(validate_claims(&ok, &exp).is_ok());
        let other =
            claims(json!({"iss": "https://login.microsoftonline.com/t-y/v2.0", "tid": "t-x"}));
        assert!(validate_claims(&other, &exp).is_err());
        let sneaky =
            claims(json!({"iss": "https://login.microsoftonline.com/a/b/v2.0", "tid": "a/b"}));
        assert!(validate_claims(&sneaky, &exp).is_err());
        let no_tid = claims(json!({"iss": "https://login.microsoftonline.com/{tenantid}/v2.0"}));
        assert!(validate_claims(&no_tid, &exp).is_err());
    }

    #[test]
    fn google_bare_issuer() {
        let exp = expected(IssuerQuirk::GoogleBare, "https://accounts.google.com");
        for iss in ["https://accounts.google.com", "accounts.google.com"] {
            assert!(
                validate_claims(&claims(json!({"iss": iss})), &exp).is_ok(),
                "{iss}"
            );
        }
        assert!(validate_claims(&claims(json!({"iss": "google.com"})), &exp).is_err());
    }
}
