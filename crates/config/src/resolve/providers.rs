//! Upstream identity providers (`[[identity_providers]]`, `[federation]`), which user
//! flows offer by id next to the built-in ones.

use std::{collections::HashMap, time::Duration};

use usher_domain::identity_provider::{
    ClaimMapping, ClientAuthMethod, EndpointOverrides, FederationSettings, ProviderConfig,
    ProviderKind,
};
use usher_domain::{BuiltInAttribute, DataType, Tenant};

use super::{Resolver, MAX_LABEL};
use crate::{
    raw::{RawFederation, RawIdentityProvider, Val},
    rules,
};

/// The kind a type name stands for, with empty settings: what the defaults (scopes,
/// claim mapping) depend on.
fn kind_template(name: &str) -> ProviderKind {
    match name {
        "oidc" => ProviderKind::Oidc {
            issuer: String::new(),
        },
        "google" => ProviderKind::Google,
        "microsoft" => ProviderKind::Microsoft {
            tenant: String::new(),
        },
        "facebook" => ProviderKind::Facebook,
        "github" => ProviderKind::GitHub,
        _ => ProviderKind::OAuth2 {
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            userinfo_endpoint: String::new(),
            subject_claim: String::new(),
            identity_issuer: String::new(),
        },
    }
}

fn type_names() -> String {
    let names: Vec<_> = rules::PROVIDER_TYPES.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

impl Resolver<'_> {
    pub(super) fn federation_settings(&mut self, raw: &RawFederation) -> FederationSettings {
        let mut settings = FederationSettings::default();
        let default_ms = u64::try_from(settings.timeout.as_millis()).unwrap_or(10_000);
        let timeout_ms: u64 = self.number(&raw.timeout_ms, default_ms, 100, 60_000, " ms");
        settings.timeout = Duration::from_millis(timeout_ms);
        settings.allow_insecure_endpoints = raw
            .allow_insecure_endpoints
            .as_ref()
            .is_some_and(|v| v.value);
        settings
    }

    /// The providers, and every id declared, as written and in file order. An id is
    /// declared even when the rest of its entry is wrong, so that user flows naming it
    /// are not reported as well.
    pub(super) fn identity_providers(
        &mut self,
        raws: &[RawIdentityProvider],
        settings: &FederationSettings,
        tenant: &Tenant,
    ) -> (Vec<ProviderConfig>, Vec<String>) {
        let mut declared = Vec::new();
        let mut first_at: HashMap<String, String> = HashMap::new();
        let mut providers = Vec::new();
        for p in raws {
            let id = match &p.id {
                Some(v) => {
                    let valid = self.check(v, |s| rules::check_provider_id(s)).is_some();
                    let key = v.value.to_ascii_lowercase();
                    if let Some(first) = first_at.get(&key) {
                        let message = format!(
                            "identity provider id {} is used twice (ids ignore case; first at {first})",
                            v.value
                        );
                        self.err(v.loc.clone(), message);
                        None
                    } else {
                        first_at.insert(key, v.loc.clone());
                        declared.push(v.value.clone());
                        valid.then(|| v.value.clone())
                    }
                }
                None => {
                    self.missing_setting(p, "id", "is required");
                    None
                }
            };
            if let Some(provider) =
                self.identity_provider(p, id, settings.allow_insecure_endpoints, tenant)
            {
                providers.push(provider);
            }
        }
        // Identities are found by issuer and subject: two providers with one issuer
        // would let the users of one sign in as those of the other.
        for i in 1..providers.len() {
            let Some(shared) =
                usher_domain::identity_provider::shared_identity_issuer(&providers[..=i])
            else {
                continue;
            };
            if shared.second == providers[i].id {
                let loc = first_at
                    .get(&shared.second.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_default();
                self.err(loc, shared.to_string());
            }
        }
        (providers, declared)
    }

    /// Reports a required setting as missing, unless it was written (and so has been
    /// reported as written wrong already).
    fn missing_setting(&mut self, p: &RawIdentityProvider, key: &str, message: impl Into<String>) {
        if !p.keys.iter().any(|k| k == key) {
            self.err(p.place.key(key), message);
        }
    }

    /// A setting the provider's type needs, checked by `rule`.
    fn required_for_type(
        &mut self,
        v: &Option<Val<String>>,
        p: &RawIdentityProvider,
        key: &str,
        kind: &str,
        rule: impl FnOnce(&String) -> Result<(), String>,
    ) -> Option<String> {
        match v {
            Some(v) => self.check(v, rule).map(|()| v.value.clone()),
            None => {
                self.missing_setting(p, key, format!("is required for type {kind}"));
                None
            }
        }
    }

    fn identity_provider(
        &mut self,
        p: &RawIdentityProvider,
        id: Option<String>,
        insecure: bool,
        tenant: &Tenant,
    ) -> Option<ProviderConfig> {
        // `None`: the type is missing or written wrong, so what depends on it is not
        // checked.
        let kind_name = match &p.kind {
            Some(v) => self.check(v, |s| rules::parse_provider_type(s)),
            None => {
                self.missing_setting(p, "type", format!("is required: one of {}", type_names()));
                None
            }
        };
        if let Some(kind) = kind_name {
            self.foreign_settings(p, kind);
        }

        let display_name = p.display_name.as_ref().and_then(|v| {
            self.check(v, |s| {
                if s.trim().is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    rules::check_display_text(s, MAX_LABEL)
                }
            })
            .map(|()| v.value.clone())
        });
        let client_id = match &p.client_id {
            Some(v) => self
                .check(v, |s| rules::check_oauth_client_id(s))
                .map(|()| v.value.clone()),
            None => {
                self.missing_setting(
                    p,
                    "client_id",
                    "is required: the client id registered at the provider",
                );
                None
            }
        };
        let client_secret = match &p.client_secret {
            Some(r) => self.secret(r).map(usher_domain::Secret::from),
            None => {
                self.missing_setting(
                    p,
                    "client_secret",
                    "is required: a secret reference such as { env = \"NAME\" }",
                );
                None
            }
        };
        // `Some(None)`: not given, the type's default; `None`: written wrong.
        let client_auth: Option<Option<ClientAuthMethod>> = match &p.client_auth {
            Some(v) => self.check(v, |s| rules::parse_client_auth(s)).map(Some),
            None => Some(None),
        };
        let scopes = self.scopes(p, kind_name);
        let endpoints = self.endpoint_overrides(p, kind_name, insecure);
        let claims = self.claim_overrides(p, kind_name, tenant);

        let kind = self.provider_kind(p, kind_name?, insecure);

        let mut provider = ProviderConfig::new(id?, kind?, client_id?, client_secret?);
        if let Some(name) = display_name {
            provider.display_name = name;
        }
        provider.scopes = scopes?;
        for (attribute, claim) in claims? {
            provider.claim_mapping.insert(attribute, claim);
        }
        provider.endpoints = endpoints?;
        provider.client_auth = client_auth?;
        Some(provider)
    }

    /// What kind of provider the entry is, with the settings of its type.
    fn provider_kind(
        &mut self,
        p: &RawIdentityProvider,
        kind_name: &str,
        insecure: bool,
    ) -> Option<ProviderKind> {
        match kind_name {
            "oidc" => self
                .required_for_type(&p.issuer, p, "issuer", "oidc", |s| {
                    rules::check_oidc_issuer(s, insecure)
                })
                .map(|issuer| ProviderKind::Oidc { issuer }),
            "google" => Some(ProviderKind::Google),
            "microsoft" => match &p.tenant {
                Some(v) => self
                    .check(v, |s| rules::check_microsoft_tenant(s))
                    .map(|()| ProviderKind::Microsoft {
                        tenant: v.value.clone(),
                    }),
                None => Some(ProviderKind::Microsoft {
                    tenant: "common".to_owned(),
                }),
            },
            "facebook" => Some(ProviderKind::Facebook),
            "github" => Some(ProviderKind::GitHub),
            _ => self.oauth2_kind(p, insecure),
        }
    }

    /// A generic OAuth 2.0 provider (type `oauth2`): with no discovery document, its
    /// endpoints are written out, as are the claim its subject is in and the issuer
    /// its identities are keyed by.
    fn oauth2_kind(&mut self, p: &RawIdentityProvider, insecure: bool) -> Option<ProviderKind> {
        let url = |s: &String| rules::check_federation_url(s, insecure);
        let authorization_endpoint = self.required_for_type(
            &p.authorization_endpoint,
            p,
            "authorization_endpoint",
            "oauth2",
            url,
        );
        let token_endpoint =
            self.required_for_type(&p.token_endpoint, p, "token_endpoint", "oauth2", url);
        let userinfo_endpoint =
            self.required_for_type(&p.userinfo_endpoint, p, "userinfo_endpoint", "oauth2", url);
        let subject_claim =
            self.required_for_type(&p.subject_claim, p, "subject_claim", "oauth2", |s| {
                rules::check_claim_path(s)
            });
        let identity_issuer =
            self.required_for_type(&p.identity_issuer, p, "identity_issuer", "oauth2", |s| {
                rules::check_identity_issuer(s)
            });
        Some(ProviderKind::OAuth2 {
            authorization_endpoint: authorization_endpoint?,
            token_endpoint: token_endpoint?,
            userinfo_endpoint: userinfo_endpoint?,
            subject_claim: subject_claim?,
            identity_issuer: identity_issuer?,
        })
    }

    /// Reports the type-specific settings that belong to another type.
    fn foreign_settings(&mut self, p: &RawIdentityProvider, kind: &str) {
        for (key, loc) in &p.given {
            if rules::provider_fields(kind).contains(&key.as_str()) {
                continue;
            }
            let owner = rules::provider_type_of(key).unwrap_or("another type");
            let hint = if key == "issuer" && rules::endpoint_types("issuer").contains(&kind) {
                format!("; {kind}'s issuer is built in: to read another discovery document (tests), set endpoints.issuer")
            } else if rules::endpoint_types(key).contains(&kind) {
                format!("; to override {kind}'s {key}, set it under [identity_providers.endpoints]")
            } else {
                String::new()
            };
            self.err(
                loc.clone(),
                format!("belongs to type {owner}, not {kind}{hint}"),
            );
        }
    }

    /// The scopes written, or none for the type's defaults. `None`: written wrong.
    fn scopes(&mut self, p: &RawIdentityProvider, kind: Option<&str>) -> Option<Vec<String>> {
        let Some(list) = &p.scopes else {
            return Some(Vec::new());
        };
        let mut scopes: Vec<String> = Vec::new();
        let mut valid = true;
        for v in &list.value {
            if self.check(v, |s| rules::check_scope_token(s)).is_none() {
                valid = false;
            } else if scopes.contains(&v.value) {
                self.err(v.loc.clone(), format!("{} is listed twice", v.value));
                valid = false;
            } else {
                scopes.push(v.value.clone());
            }
        }
        if let Some(kind) = kind.map(kind_template) {
            let defaults = kind.default_scopes();
            if list.value.is_empty() && !defaults.is_empty() {
                self.err(
                    list.loc.clone(),
                    format!(
                        "must list at least one scope; leave scopes out for the type's defaults ({})",
                        defaults.join(", ")
                    ),
                );
                valid = false;
            } else if valid && kind.is_oidc() {
                let listed: Vec<&str> = scopes.iter().map(String::as_str).collect();
                if self
                    .check(list, |_| rules::check_oidc_scopes(&listed))
                    .is_none()
                {
                    valid = false;
                }
            }
        }
        valid.then_some(scopes)
    }

    /// `[identity_providers.endpoints]`. `None`: something was written wrong.
    fn endpoint_overrides(
        &mut self,
        p: &RawIdentityProvider,
        kind: Option<&str>,
        insecure: bool,
    ) -> Option<EndpointOverrides> {
        let mut endpoints = EndpointOverrides::default();
        let mut valid = true;
        for (name, v) in &p.endpoints {
            if let Some(kind) = kind {
                let users = rules::endpoint_types(name);
                if !users.contains(&kind) {
                    let message = if rules::provider_fields(kind).contains(name) {
                        format!("type {kind} takes {name} at the top level of the provider's entry, not under endpoints")
                    } else {
                        format!("is not used by type {kind}, only by {}", users.join(", "))
                    };
                    self.err(v.loc.clone(), message);
                    valid = false;
                    continue;
                }
            }
            let checked = if *name == "issuer" {
                self.check(v, |s| rules::check_oidc_issuer(s, insecure))
            } else {
                self.check(v, |s| rules::check_federation_url(s, insecure))
            };
            if checked.is_none() {
                valid = false;
                continue;
            }
            let slot = match *name {
                "issuer" => &mut endpoints.issuer,
                "authorization_endpoint" => &mut endpoints.authorization_endpoint,
                "token_endpoint" => &mut endpoints.token_endpoint,
                "userinfo_endpoint" => &mut endpoints.userinfo_endpoint,
                "emails_endpoint" => &mut endpoints.emails_endpoint,
                _ => &mut endpoints.jwks_uri,
            };
            *slot = Some(v.value.clone());
        }
        valid.then_some(endpoints)
    }

    /// `[identity_providers.claims]`: attribute id (as stored) → claim, to merge over
    /// the type's defaults. `None`: something was written wrong.
    fn claim_overrides(
        &mut self,
        p: &RawIdentityProvider,
        kind: Option<&str>,
        tenant: &Tenant,
    ) -> Option<Vec<(String, String)>> {
        let mut mapped: Vec<(String, String)> = Vec::new();
        let mut first_at: HashMap<String, String> = HashMap::new();
        let mut valid = true;
        for (attribute, claim) in &p.claims {
            let id = self.mapped_attribute(attribute, claim, kind, tenant);
            let claim_ok = self.check(claim, |s| rules::check_claim_path(s)).is_some();
            let Some(id) = id else {
                valid = false;
                continue;
            };
            if let Some(first) = first_at.get(&id) {
                let message = format!("{id} is mapped twice (first at {first})");
                self.err(claim.loc.clone(), message);
                valid = false;
                continue;
            }
            first_at.insert(id.clone(), claim.loc.clone());
            valid &= claim_ok;
            mapped.push((id, claim.value.clone()));
        }
        valid.then_some(mapped)
    }

    /// The attribute a claim mapping's key names, as stored: `email`, a built-in
    /// attribute, a string custom attribute (in full), or `emailVerified`.
    fn mapped_attribute(
        &mut self,
        attribute: &str,
        claim: &Val<String>,
        kind: Option<&str>,
        tenant: &Tenant,
    ) -> Option<String> {
        if attribute.eq_ignore_ascii_case(ClaimMapping::EMAIL_VERIFIED) {
            let refused = match kind {
                Some("facebook") => Some("Facebook's addresses count as verified: there is no claim to name"),
                Some("github") => Some("GitHub says whether an address is verified in /user/emails, which Usher reads itself"),
                _ => None,
            };
            return match refused {
                Some(why) => {
                    self.err(claim.loc.clone(), why);
                    None
                }
                None => Some(ClaimMapping::EMAIL_VERIFIED.to_owned()),
            };
        }
        let Some(def) = tenant.attribute(attribute) else {
            self.err(
                claim.loc.clone(),
                format!(
                    "unknown attribute `{attribute}`; map email, emailVerified, a built-in attribute (displayName, givenName, surname, jobTitle, streetAddress, city, postalCode, state, country) or extension_<Name> of one defined under [[attributes]]"
                ),
            );
            return None;
        };
        if kind == Some("github") && def.id == BuiltInAttribute::Email.id() {
            self.err(
                claim.loc.clone(),
                "GitHub's address comes from /user/emails (the primary one, if verified), not from a claim",
            );
            return None;
        }
        if def.data_type != DataType::String {
            self.err(
                claim.loc.clone(),
                format!(
                    "{} is a {} attribute; claims fill string attributes only",
                    def.id,
                    rules::data_type_name(def.data_type)
                ),
            );
            return None;
        }
        Some(def.id)
    }
}
