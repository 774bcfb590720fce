//! From what a provider says about a user to an [`ExternalIdentity`]: the identity
//! issuer of the API connector contract, the subject, a verified email address and
//! the mapped attribute values.
//!
//! Email addresses are only taken when the provider vouches for them, because Usher
//! treats the email of a federated sign-up as verified:
//! - OpenID Connect, Google and generic OAuth 2.0: the `email_verified` claim (or
//!   the one the mapping names under `emailVerified`) is `true` or `"true"`.
//! - Microsoft: `email_verified` or the optional `xms_edov` ("email domain owner
//!   verified") claim is true, or the account is a personal Microsoft account (tenant
//!   `9188040d-…`, whose sign-in address Microsoft verified). A work or school
//!   account's `email` is otherwise an unverified, administrator-editable attribute,
//!   so it is dropped.
//! - Facebook: `/me` only returns an address Facebook has confirmed.
//! - GitHub: the primary address from `/user/emails`, only if marked verified.

use serde_json::{Map, Value};
use usher_domain::attribute::{check_text, is_plausible_email, normalize_email};
use usher_domain::{AttributeValue, AttributeValues, BuiltInAttribute, Identity, SignInType};

use usher_domain::identity_provider::{
    normalize_exact_issuer, ClaimMapping, ProviderKind, MICROSOFT_CONSUMERS_TENANT_ID,
};

use crate::error::FederationError;

/// A federated identity as Usher records it.
#[derive(Clone, PartialEq)]
pub struct ExternalIdentity {
    pub provider_id: String,
    /// Sign-in type `federated`, the contract's issuer (`google.com`, `facebook.com`,
    /// `github.com`, `login.microsoftonline.com`, or the OIDC issuer URL's host) and
    /// the provider's subject.
    pub identity: Identity,
    /// Lower-cased, and only when the provider says it is verified.
    pub email: Option<String>,
    /// Mapped attribute values (strings); never `email`.
    pub attributes: AttributeValues,
    /// What the provider said, for diagnostics. Never logged: `Debug` shows only the
    /// claim names.
    pub raw_claims: Map<String, Value>,
}

impl std::fmt::Debug for ExternalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalIdentity")
            .field("provider_id", &self.provider_id)
            .field("identity", &self.identity)
            .field("email", &self.email)
            .field("attributes", &self.attributes)
            .field("raw_claims", &self.raw_claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What building an identity needs to know about the provider.
#[derive(Debug, Clone)]
pub(crate) struct ProfileContext<'a> {
    pub provider_id: &'a str,
    pub kind: &'a ProviderKind,
    pub identity_issuer: &'a str,
    /// What identities are keyed by when the provider's answer names no issuer
    /// (OAuth-only kinds); see [`exact_issuer`].
    pub exact_issuer: &'a str,
    pub mapping: &'a ClaimMapping,
}

/// The value at `path`: the claim of that exact name if there is one (claim names
/// may be URLs with dots), otherwise the dotted path through objects, with numeric
/// segments indexing arrays.
pub(crate) fn lookup<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = root.get(path) {
        return Some(v);
    }
    let mut segments = path.split('.');
    let mut current = root.get(segments.next()?)?;
    for segment in segments {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// A claim as attribute text: strings trimmed and non-empty, numbers and booleans
/// written out; objects, arrays and null have none.
pub(crate) fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        }
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `true`, or the string `"true"` that some providers send.
pub(crate) fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// A subject must be something an identity can be keyed on: 1 to 255 bytes (OIDC
/// Core's limit), no control characters.
pub(crate) fn subject_from(value: Option<&Value>) -> Option<String> {
    let text = match value? {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.len() <= 255 && !text.chars().any(char::is_control)).then_some(text)
}

/// The attribute values the mapping finds in `claims`. Values that would be refused
/// on the attribute page (control characters, too long) are left out so the user
/// types them instead.
pub(crate) fn map_attributes(
    mapping: &ClaimMapping,
    claims: &Map<String, Value>,
) -> AttributeValues {
    let mut out = AttributeValues::new();
    for (attribute, claim) in &mapping.0 {
        if attribute.eq_ignore_ascii_case(ClaimMapping::EMAIL_VERIFIED) {
            continue;
        }
        let (id, max) = match BuiltInAttribute::from_id(attribute) {
            Some(BuiltInAttribute::Email) => continue,
            Some(builtin) => (builtin.id().to_owned(), builtin.max_length()),
            None => (
                attribute.clone(),
                usher_domain::attribute::CUSTOM_STRING_MAX_LENGTH,
            ),
        };
        let Some(text) = lookup(claims, claim).and_then(as_text) else {
            continue;
        };
        if check_text(&text, max).is_ok() {
            out.insert(id, AttributeValue::String(text));
        }
    }
    out
}

/// The email address the mapping points at, normalised, if it looks like one.
fn mapped_email(mapping: &ClaimMapping, claims: &Map<String, Value>) -> Option<String> {
    let claim = mapping.claim_for("email")?;
    let text = lookup(claims, claim)?.as_str()?;
    plausible(text)
}

fn plausible(text: &str) -> Option<String> {
    let email = normalize_email(text);
    is_plausible_email(&email).then_some(email)
}

fn email_verified_claim(mapping: &ClaimMapping) -> &str {
    mapping
        .claim_for(ClaimMapping::EMAIL_VERIFIED)
        .unwrap_or("email_verified")
}

/// The verified email in OIDC or generic OAuth 2.0 claims, by the rules above.
pub(crate) fn verified_email(
    kind: &ProviderKind,
    mapping: &ClaimMapping,
    claims: &Map<String, Value>,
) -> Option<String> {
    let email = mapped_email(mapping, claims)?;
    let said_verified = is_true(lookup(claims, email_verified_claim(mapping)));
    let verified = match kind {
        ProviderKind::Microsoft { .. } => {
            said_verified
                || is_true(claims.get("xms_edov"))
                || claims.get("tid").and_then(Value::as_str) == Some(MICROSOFT_CONSUMERS_TENANT_ID)
        }
        ProviderKind::Facebook => true,
        ProviderKind::GitHub => false,
        ProviderKind::Oidc { .. } | ProviderKind::Google | ProviderKind::OAuth2 { .. } => {
            said_verified
        }
    };
    verified.then_some(email)
}

/// `token_issuer`: the validated `iss` of an ID token, which names the exact issuer
/// (for a multi-tenant Microsoft provider, the user's own tenant).
fn identity(ctx: &ProfileContext<'_>, subject: String, token_issuer: Option<&str>) -> Identity {
    Identity {
        sign_in_type: SignInType::Federated,
        issuer: ctx.identity_issuer.to_owned(),
        issuer_assigned_id: subject,
        exact_issuer: Some(match token_issuer {
            // Google's tokens may name its issuer without the scheme (also when the
            // issuer is overridden): the same issuer as configured.
            Some(iss)
                if !iss.contains("://")
                    && normalize_exact_issuer(&format!("https://{iss}")) == ctx.exact_issuer =>
            {
                ctx.exact_issuer.to_owned()
            }
            Some(iss) => normalize_exact_issuer(iss),
            None => ctx.exact_issuer.to_owned(),
        }),
    }
}

/// From validated ID token claims (perhaps completed by userinfo).
pub(crate) fn oidc_identity(
    ctx: &ProfileContext<'_>,
    claims: Map<String, Value>,
) -> Result<ExternalIdentity, FederationError> {
    let subject =
        subject_from(claims.get("sub")).ok_or_else(|| FederationError::id_token("subject"))?;
    Ok(ExternalIdentity {
        provider_id: ctx.provider_id.to_owned(),
        identity: identity(ctx, subject, claims.get("iss").and_then(Value::as_str)),
        email: verified_email(ctx.kind, ctx.mapping, &claims),
        attributes: map_attributes(ctx.mapping, &claims),
        raw_claims: claims,
    })
}

/// From Facebook's `GET /me`.
pub(crate) fn facebook_identity(
    ctx: &ProfileContext<'_>,
    me: Map<String, Value>,
) -> Result<ExternalIdentity, FederationError> {
    let subject = subject_from(me.get("id"))
        .ok_or_else(|| FederationError::userinfo(None, "Facebook /me has no usable id"))?;
    Ok(ExternalIdentity {
        provider_id: ctx.provider_id.to_owned(),
        identity: identity(ctx, subject, None),
        email: verified_email(ctx.kind, ctx.mapping, &me),
        attributes: map_attributes(ctx.mapping, &me),
        raw_claims: me,
    })
}

/// From GitHub's `GET /user` and, when it could be read, `GET /user/emails`.
pub(crate) fn github_identity(
    ctx: &ProfileContext<'_>,
    mut user: Map<String, Value>,
    emails: Option<Value>,
) -> Result<ExternalIdentity, FederationError> {
    // Only the numeric id is stable: logins can be renamed and then reused by others.
    let subject = match user.get("id") {
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
    .ok_or_else(|| FederationError::userinfo(None, "GitHub /user has no numeric id"))?;
    let email = emails.as_ref().and_then(github_primary_email);
    let attributes = map_attributes(ctx.mapping, &user);
    if let Some(emails) = emails {
        user.insert("emails".into(), emails);
    }
    Ok(ExternalIdentity {
        provider_id: ctx.provider_id.to_owned(),
        identity: identity(ctx, subject, None),
        email,
        attributes,
        raw_claims: user,
    })
}

/// The primary address if GitHub verified it. A verified secondary address is not
/// used instead: the user chose the primary one as theirs.
pub(crate) fn github_primary_email(emails: &Value) -> Option<String> {
    let primary = emails
        .as_array()?
        .iter()
        .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))?;
    if primary.get("verified").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    plausible(primary.get("email")?.as_str()?)
}

/// From a generic OAuth 2.0 userinfo answer.
pub(crate) fn oauth2_identity(
    ctx: &ProfileContext<'_>,
    subject_claim: &str,
    info: Map<String, Value>,
) -> Result<ExternalIdentity, FederationError> {
    let subject = subject_from(lookup(&info, subject_claim)).ok_or_else(|| {
        FederationError::userinfo(None, format!("userinfo has no usable {subject_claim:?}"))
    })?;
    Ok(ExternalIdentity {
        provider_id: ctx.provider_id.to_owned(),
        identity: identity(ctx, subject, None),
        email: verified_email(ctx.kind, ctx.mapping, &info),
        attributes: map_attributes(ctx.mapping, &info),
        raw_claims: info,
    })
}

/// Whether the mapping names claims that `claims` lacks, so userinfo may help.
pub(crate) fn needs_more_claims(mapping: &ClaimMapping, claims: &Map<String, Value>) -> bool {
    mapping.0.iter().any(|(attribute, claim)| {
        !attribute.eq_ignore_ascii_case(ClaimMapping::EMAIL_VERIFIED)
            && lookup(claims, claim).is_none()
    })
}

#[cfg(test)]
mod tests {
    use usher_domain::identity_provider::GOOGLE_ISSUER;

    #[test]
    fn identities_carry_the_exact_issuer() {
        let mapping = ClaimMapping::default();
        let kind = ProviderKind::Microsoft {
            tenant: "common".into(),
        };
        let ctx = ProfileContext {
            provider_id: "ms",
            kind: &kind,
            identity_issuer: "login.microsoftonline.com",
            exact_issuer: "https://login.microsoftonline.com/common/v2.0",
            mapping: &mapping,
        };
        let claims = obj(json!({
            "iss": "https://login.microsoftonline.com/72f988bf-0000-0000-0000-000000000000/v2.0",
            "sub": "abc",
        }));
        let id = oidc_identity(&ctx, claims).unwrap().identity;
        assert_eq!(id.issuer, "login.microsoftonline.com");
        assert_eq!(
            id.exact_issuer.as_deref(),
            Some("https://login.microsoftonline.com/72f988bf-0000-0000-0000-000000000000/v2.0")
        );
        assert_eq!(normalize_exact_issuer("accounts.google.com"), GOOGLE_ISSUER);
        assert_eq!(
            normalize_exact_issuer("https://id.example/x/"),
            "https://id.example/x"
        );
    }

    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn lookup_follows_dotted_paths_and_exact_names() {
        let claims = obj(json!({
            "data": {"id": 42, "list": [{"v": "a"}]},
            "https://example.com/claims.role": "admin",
        }));
        assert_eq!(lookup(&claims, "data.id"), Some(&json!(42)));
        assert_eq!(lookup(&claims, "data.list.0.v"), Some(&json!("a")));
        assert_eq!(
            lookup(&claims, "https://example.com/claims.role"),
            Some(&json!("admin"))
        );
        assert_eq!(lookup(&claims, "data.missing"), None);
        assert_eq!(lookup(&claims, "data.id.deeper"), None);
        assert_eq!(lookup(&claims, "data.list.x"), None);
        assert_eq!(lookup(&claims, ""), None);
    }

    #[test]
    fn email_rules_per_kind() {
        let oidc = ProviderKind::Oidc {
            issuer: "https://id.example".into(),
        };
        let ms = ProviderKind::Microsoft {
            tenant: "common".into(),
        };
        let mapping = ClaimMapping::defaults_for(&oidc);
        let with = |extra: Value| {
            let mut c = obj(json!({"email": "Ann@Example.COM"}));
            c.extend(obj(extra));
            c
        };
        assert_eq!(
            verified_email(&oidc, &mapping, &with(json!({"email_verified": true}))),
            Some("ann@example.com".into())
        );
        assert_eq!(
            verified_email(&oidc, &mapping, &with(json!({"email_verified": "true"}))),
            Some("ann@example.com".into())
        );
        assert_eq!(verified_email(&oidc, &mapping, &with(json!({}))), None);
        assert_eq!(
            verified_email(&oidc, &mapping, &with(json!({"email_verified": false}))),
            None
        );
        // Microsoft work or school: unverified unless said otherwise.
        assert_eq!(
            verified_email(&ms, &mapping, &with(json!({"tid": "some-tenant"}))),
            None
        );
        assert_eq!(
            verified_email(&ms, &mapping, &with(json!({"xms_edov": true}))),
            Some("ann@example.com".into())
        );
        assert_eq!(
            verified_email(
                &ms,
                &mapping,
                &with(json!({"tid": MICROSOFT_CONSUMERS_TENANT_ID}))
            ),
            Some("ann@example.com".into())
        );
        let bad = obj(json!({"email": "not an email", "email_verified": true}));
        assert_eq!(verified_email(&oidc, &mapping, &bad), None);
    }

    #[test]
    fn attributes_are_mapped_but_never_email() {
        let kind = ProviderKind::Google;
        let mut mapping = ClaimMapping::defaults_for(&kind);
        mapping.insert("City", "address.locality");
        mapping.insert("extension_abc_Level", "level");
        mapping.insert("jobTitle", "title");
        let claims = obj(json!({
            "email": "a@example.com", "name": "  Ann Smith ", "given_name": "Ann",
            "family_name": "", "address": {"locality": "Oslo"}, "level": 3,
            "title": "line\nbreak",
        }));
        let attrs = map_attributes(&mapping, &claims);
        let s = |v: &str| AttributeValue::String(v.into());
        assert_eq!(attrs.get("displayName"), Some(&s("Ann Smith")));
        assert_eq!(attrs.get("givenName"), Some(&s("Ann")));
        assert_eq!(attrs.get("city"), Some(&s("Oslo")));
        assert_eq!(attrs.get("extension_abc_Level"), Some(&s("3")));
        assert!(!attrs.contains_key("surname"));
        assert!(!attrs.contains_key("jobTitle"));
        assert!(!attrs.contains_key("email"));
    }

    #[test]
    fn github_primary_email_must_be_verified() {
        let list = json!([
            {"email": "other@example.com", "primary": false, "verified": true},
            {"email": "Main@Example.com", "primary": true, "verified": true},
        ]);
        assert_eq!(github_primary_email(&list), Some("main@example.com".into()));
        let unverified = json!([
            {"email": "other@example.com", "primary": false, "verified": true},
            {"email": "main@example.com", "primary": true, "verified": false},
        ]);
        assert_eq!(github_primary_email(&unverified), None);
        assert_eq!(github_primary_email(&json!({"message": "x"})), None);
    }

    #[test]
    fn subjects() {
        assert_eq!(subject_from(Some(&json!("abc"))), Some("abc".into()));
        assert_eq!(subject_from(Some(&json!(123))), Some("123".into()));
        assert_eq!(subject_from(Some(&json!(""))), None);
        assert_eq!(subject_from(Some(&json!(1.5))), None);
        assert_eq!(subject_from(Some(&json!("a\u{0}"))), None);
        assert_eq!(subject_from(Some(&json!("x".repeat(256)))), None);
        assert_eq!(subject_from(None), None);
    }

    #[test]
    fn debug_does_not_show_raw_claim_values() {
        let id = ExternalIdentity {
            provider_id: "p".into(),
            identity: Identity {
                sign_in_type: SignInType::Federated,
                issuer: "x".into(),
                issuer_assigned_id: "1".into(),
                exact_issuer: None,
            },
            email: None,
            attributes: AttributeValues::new(),
            raw_claims: obj(json!({"secret_claim": "hunter2"})),
        };
        let debug = format!("{id:?}");
        assert!(debug.contains("secret_claim") && !debug.contains("hunter2"));
    }
}
