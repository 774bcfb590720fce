//! API connectors (`[[connectors]]`, `[connector_settings]`) and the references user
//! flows make to them.

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, SystemTime},
};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use usher_domain::rules::TargetPolicy;
use usher_domain::{
    connector_limits as limits, BreakerSettings, CertificateSource, ClientCertificate,
    ConnectorAuthentication, ConnectorContract, ConnectorDefinition, ConnectorField, ConnectorStep,
    EventListener,
};

use super::{Resolver, MAX_LABEL};
use crate::{
    raw::{
        List, RawAuthentication, RawCertificate, RawConnector, RawConnectorSettings,
        RawEventListener, RawSecretRef, Val,
    },
    rules,
    secret::Secret,
    settings::ConnectorSettings,
};

/// Connector ids declared in the file: lower-cased (ids ignore case) → as written,
/// with the contract it speaks when the rest of the connector is right.
pub(crate) type Declared = HashMap<String, (String, Option<ConnectorContract>)>;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long a connector's calls may take, as written or defaulted.
struct CallLimits {
    /// Per attempt.
    timeout: Duration,
    /// Attempts after the first.
    retries: u32,
    /// For the whole call, retries included.
    budget: Duration,
}

impl Resolver<'_> {
    pub(super) fn connector_settings(&mut self, raw: &RawConnectorSettings) -> ConnectorSettings {
        // The deprecated key is an alias for all three; a new key written as well
        // says what the operator means for that door, so it wins.
        let alias = raw.allow_insecure_targets.as_ref().is_some_and(|v| v.value);
        let door = |v: &Option<Val<bool>>| v.as_ref().map_or(alias, |v| v.value);
        ConnectorSettings {
            allow_http_targets: door(&raw.allow_http_targets),
            allow_loopback_targets: door(&raw.allow_loopback_targets),
            allow_private_network_targets: door(&raw.allow_private_network_targets),
            record_bodies: raw.record_bodies.as_ref().is_some_and(|v| v.value),
            extra_root_certificates: self.root_certificates(
                &raw.extra_root_certificates,
                &raw.extra_root_certificates_file,
            ),
            deprecated_insecure_targets_at: raw
                .allow_insecure_targets
                .as_ref()
                .map(|v| v.loc.clone()),
        }
    }

    /// Extra trusted roots: PEM written inline, or a PEM file; not both.
    fn root_certificates(
        &mut self,
        inline: &Option<Val<String>>,
        file: &Option<Val<String>>,
    ) -> Vec<String> {
        let parsed = match (inline, file) {
            (None, None) => return Vec::new(),
            (Some(v), None) => self.check(v, |s| rules::parse_root_certificates(s)),
            (None, Some(f)) => self.check(f, |p| {
                let text = rules::read_nonempty_text_file(Path::new(p))?;
                rules::parse_root_certificates(&text).map_err(|e| format!("{p}: {e}"))
            }),
            (Some(_), Some(f)) => {
                self.err(
                    f.loc.clone(),
                    "give either extra_root_certificates or extra_root_certificates_file, not both",
                );
                None
            }
        };
        parsed.unwrap_or_default()
    }

    /// The connectors, and every id declared. An id is declared even when the rest of
    /// its connector is wrong, so that user flows naming it are not reported as well.
    pub(super) fn connectors(
        &mut self,
        raws: &[RawConnector],
        settings: &ConnectorSettings,
    ) -> (Vec<ConnectorDefinition>, Declared) {
        let mut declared = Declared::new();
        let mut first_at: HashMap<String, String> = HashMap::new();
        let mut connectors = Vec::new();
        for c in raws {
            let id = match &c.id {
                Some(v) => {
                    let valid = self.check(v, |s| rules::check_connector_id(s)).is_some();
                    let key = v.value.to_ascii_lowercase();
                    if let Some(first) = first_at.get(&key) {
                        let message = format!(
                            "connector id {} is used twice (ids ignore case; first at {first})",
                            v.value
                        );
                        self.err(v.loc.clone(), message);
                        None
                    } else {
                        first_at.insert(key.clone(), v.loc.clone());
                        declared.insert(key, (v.value.clone(), None));
                        valid.then(|| v.value.clone())
                    }
                }
                None => {
                    self.err(c.place.key("id"), "is required");
                    None
                }
            };
            if let Some(connector) = self.connector(c, id, settings.target_policy()) {
                if let Some(entry) = declared.get_mut(&connector.id.to_ascii_lowercase()) {
                    entry.1 = Some(connector.contract.clone());
                }
                connectors.push(connector);
            }
        }
        (connectors, declared)
    }

    fn connector(
        &mut self,
        c: &RawConnector,
        id: Option<String>,
        targets: TargetPolicy,
    ) -> Option<ConnectorDefinition> {
        let display_name = c.display_name.as_ref().and_then(|v| {
            self.check(v, |s| {
                if s.trim().is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    rules::check_display_text(s, MAX_LABEL)
                }
            })
            .map(|()| v.value.clone())
        });
        let target_url = match &c.target_url {
            Some(v) => self
                .check(v, |s| rules::check_connector_url(s, targets))
                .map(|()| v.value.clone()),
            None => {
                self.err(
                    c.place.key("target_url"),
                    "is required: the https URL of the API to call",
                );
                None
            }
        };

        let contract = self.contract(c);
        let defaults = match &contract {
            ConnectorContract::ApiConnector => ConnectorDefinition::new("", ""),
            ConnectorContract::CustomAuthenticationExtension { .. } => {
                ConnectorDefinition::extension("", "", "")
            }
        };
        let call = self.call_limits(c, &defaults);
        let failure_policy = c
            .failure_policy
            .as_ref()
            .and_then(|v| self.check(v, |s| rules::parse_failure_policy(s)))
            .unwrap_or(defaults.failure_policy);
        let breaker = self.breaker(c, &defaults.breaker);
        let signing_secrets = self.signing_secrets(c);
        let authentication = match &c.authentication {
            Some(a) => self.authentication(a, targets),
            None => Some(ConnectorAuthentication::None),
        };

        let extra_root_certificates =
            self.root_certificates(&c.extra_root_certificates, &c.extra_root_certificates_file);

        let (id, target_url, authentication) = (id?, target_url?, authentication?);
        let mut connector = ConnectorDefinition::new(id, target_url);
        connector.contract = contract;
        if let Some(d) = &c.description {
            connector.description.clone_from(&d.value);
        }
        if let Some(name) = display_name {
            connector.display_name = name;
        }
        connector.authentication = authentication;
        connector.signing_secrets = signing_secrets;
        connector.timeout = call.timeout;
        connector.retries = call.retries;
        connector.budget = call.budget;
        connector.failure_policy = failure_policy;
        connector.lenient = c.lenient.as_ref().is_some_and(|v| v.value);
        connector.breaker = breaker;
        connector.extra_root_certificates = extra_root_certificates;
        self.shared_connector_rules(c, &connector);
        Some(connector)
    }

    /// `contract` and, for an extension, `claims_for_token`.
    fn contract(&mut self, c: &RawConnector) -> ConnectorContract {
        let extension = c
            .contract
            .as_ref()
            .and_then(|v| self.check(v, |s| rules::parse_contract(s)))
            .unwrap_or(false);
        if !extension {
            if let Some(v) = &c.claims_for_token {
                self.err(
                    v.loc.clone(),
                    "belongs to custom authentication extensions (contract = \"custom-authentication-extension\"); a 1.0.0 connector's claims are those it answers",
                );
            }
            if let Some(v) = &c.event {
                self.err(
                    v.loc.clone(),
                    "belongs to custom authentication extensions (contract = \"custom-authentication-extension\")",
                );
            }
            return ConnectorContract::ApiConnector;
        }
        let mut claims_for_token: Vec<String> = Vec::new();
        for v in c.claims_for_token.iter().flat_map(|l| &l.value) {
            if claims_for_token.contains(&v.value) {
                self.err(v.loc.clone(), format!("{} is listed twice", v.value));
            } else {
                claims_for_token.push(v.value.clone());
            }
        }
        let event = c.event.as_ref().and_then(|v| {
            self.check(v, |s| {
                ConnectorStep::from_extension_event(s).ok_or_else(|| {
                    "must be attributeCollectionStart, attributeCollectionSubmit, tokenIssuanceStart or emailOtpSend".to_owned()
                })
            })
        });
        ConnectorContract::CustomAuthenticationExtension {
            claims_for_token,
            event,
        }
    }

    /// How long a connector's calls may take: each attempt, how many retries, and the
    /// budget for them all, which must leave room for at least one whole attempt.
    fn call_limits(&mut self, c: &RawConnector, defaults: &ConnectorDefinition) -> CallLimits {
        let (timeout_range, retries_range) = if defaults.contract.is_extension() {
            (limits::extension::TIMEOUT_MS, limits::extension::RETRIES)
        } else {
            (limits::TIMEOUT_MS, limits::RETRIES)
        };
        let timeout: u64 = self.number(
            &c.timeout_ms,
            millis(defaults.timeout),
            limits::lo(&timeout_range),
            limits::hi(&timeout_range),
            " ms",
        );
        let retries: u32 = self.number(
            &c.retries,
            defaults.retries,
            limits::lo(&retries_range),
            limits::hi(&retries_range),
            "",
        );
        let budget: u64 = self.number(
            &c.budget_ms,
            millis(defaults.budget),
            limits::lo(&limits::BUDGET_MS),
            limits::hi(&limits::BUDGET_MS),
            " ms",
        );
        if let Err(m) = rules::check_connector_budget(timeout, budget) {
            // Blame what was written: a timeout above the default budget is the
            // timeout's fault when no budget was given.
            if let Some(v) = c.budget_ms.as_ref().or(c.timeout_ms.as_ref()) {
                self.err(v.loc.clone(), m);
            }
        }
        CallLimits {
            timeout: Duration::from_millis(timeout),
            retries,
            budget: Duration::from_millis(budget),
        }
    }

    /// `[connectors.breaker]`: after how many failed calls in a row the connector is
    /// no longer called, and for how long.
    fn breaker(&mut self, c: &RawConnector, defaults: &BreakerSettings) -> BreakerSettings {
        let failure_threshold: u32 = self.number(
            &c.failure_threshold,
            defaults.failure_threshold,
            limits::lo(&limits::BREAKER_FAILURE_THRESHOLD),
            limits::hi(&limits::BREAKER_FAILURE_THRESHOLD),
            "",
        );
        let open_seconds: u64 = self.number(
            &c.open_seconds,
            defaults.open_for.as_secs(),
            limits::lo(&limits::BREAKER_OPEN_SECONDS),
            limits::hi(&limits::BREAKER_OPEN_SECONDS),
            " seconds",
        );
        BreakerSettings {
            failure_threshold,
            open_for: Duration::from_secs(open_seconds),
        }
    }

    /// The rules every entry point (file, `apply`, admin API) checks a connector
    /// with. What is out of range was reported at its value already, so these speak
    /// only when nothing else was reported.
    fn shared_connector_rules(&mut self, c: &RawConnector, connector: &ConnectorDefinition) {
        if let Err(e) = connector.check() {
            if self.errors.is_empty() {
                let key = match e.field {
                    ConnectorField::Timeout => "timeout_ms",
                    ConnectorField::Retries => "retries",
                    ConnectorField::Budget => "budget_ms",
                    ConnectorField::BreakerFailureThreshold => "breaker.failure_threshold",
                    ConnectorField::BreakerOpenSeconds => "breaker.open_seconds",
                    ConnectorField::ClientCertificates => "authentication",
                    ConnectorField::ResourceId => "authentication.resource_id",
                    ConnectorField::CallerId => "authentication.caller_id",
                    ConnectorField::ClaimsForToken => "claims_for_token",
                    ConnectorField::Description => "description",
                    ConnectorField::FailurePolicy => "failure_policy",
                };
                // At the value itself where it was written.
                let written = match e.field {
                    ConnectorField::ResourceId => c
                        .authentication
                        .as_ref()
                        .and_then(|a| a.resource_id.as_ref())
                        .map(|v| v.loc.clone()),
                    ConnectorField::ClaimsForToken => {
                        c.claims_for_token.as_ref().map(|v| v.loc.clone())
                    }
                    ConnectorField::FailurePolicy => {
                        c.failure_policy.as_ref().map(|v| v.loc.clone())
                    }
                    _ => None,
                };
                self.err(written.unwrap_or_else(|| c.place.key(key)), e.message);
            }
        }
    }

    fn signing_secrets(&mut self, c: &RawConnector) -> Vec<usher_domain::Secret> {
        let mut secrets: Vec<(Secret, String)> = Vec::new();
        for r in c.signing_secrets.iter().flat_map(|l| &l.value) {
            let Some(secret) = self.secret(r) else {
                continue;
            };
            let here = r.place.here();
            if let Err(m) = rules::check_signing_secret(secret.expose()) {
                self.err(here, m);
            } else if let Some((_, first)) = secrets.iter().find(|(s, _)| *s == secret) {
                let message = format!("is the same secret as the one at {first}");
                self.err(here, message);
            } else {
                secrets.push((secret, here));
            }
        }
        secrets.into_iter().map(|(s, _)| s.into()).collect()
    }

    /// Reads a secret from where its reference says.
    pub(super) fn secret(&mut self, r: &RawSecretRef) -> Option<Secret> {
        match (&r.env, &r.file, &r.value) {
            (Some(v), None, None) => {
                if v.value.is_empty() {
                    self.err(v.loc.clone(), "must name an environment variable");
                    return None;
                }
                match (self.env)(&v.value) {
                    Some(s) if !s.is_empty() => Some(Secret::new(s)),
                    Some(_) => {
                        self.err(
                            v.loc.clone(),
                            format!("environment variable {} is empty", v.value),
                        );
                        None
                    }
                    None => {
                        self.err(
                            v.loc.clone(),
                            format!("environment variable {} is not set", v.value),
                        );
                        None
                    }
                }
            }
            (None, Some(v), None) => self
                .check(v, |p| rules::read_secret_file(Path::new(p)))
                .map(Secret::new),
            (None, None, Some(v)) => {
                if v.value.expose().is_empty() {
                    self.err(v.loc.clone(), "must not be empty");
                    return None;
                }
                Some(v.value.clone())
            }
            (None, None, None) => {
                self.err(
                    r.place.here(),
                    "give one of env (an environment variable), file or value",
                );
                None
            }
            _ => {
                let extra = [
                    r.file.as_ref().map(|v| &v.loc),
                    r.value.as_ref().map(|v| &v.loc),
                ];
                // Everything after the first one given is reported.
                for loc in extra
                    .into_iter()
                    .flatten()
                    .skip(usize::from(r.env.is_none()))
                {
                    self.err(loc.clone(), "give only one of env, file and value");
                }
                None
            }
        }
    }

    /// A secret the authentication needs: missing is an error at `key`.
    fn required_secret(
        &mut self,
        r: &Option<RawSecretRef>,
        a: &RawAuthentication,
        key: &str,
        kind: &str,
    ) -> Option<usher_domain::Secret> {
        match r {
            Some(r) => self.secret(r).map(Into::into),
            None => {
                self.err(
                    a.place.key(key),
                    format!("is required for {kind} authentication"),
                );
                None
            }
        }
    }

    /// A setting the authentication needs, checked by `rule`.
    fn required(
        &mut self,
        v: &Option<Val<String>>,
        a: &RawAuthentication,
        key: &str,
        kind: &str,
        rule: impl FnOnce(&String) -> Result<(), String>,
    ) -> Option<String> {
        match v {
            Some(v) => self.check(v, rule).map(|()| v.value.clone()),
            None => {
                self.err(
                    a.place.key(key),
                    format!("is required for {kind} authentication"),
                );
                None
            }
        }
    }

    fn authentication(
        &mut self,
        a: &RawAuthentication,
        targets: TargetPolicy,
    ) -> Option<ConnectorAuthentication> {
        let kind = match &a.kind {
            Some(v) => self.check(v, |s| rules::parse_authentication_type(s))?,
            None => "none",
        };
        let fields = rules::authentication_fields(kind);
        for (key, loc) in &a.given {
            if fields.contains(&key.as_str()) {
                continue;
            }
            let owner = rules::authentication_type_of(key).unwrap_or("another");
            let default = if a.kind.is_none() {
                " (type defaults to none: set type)"
            } else {
                ""
            };
            self.err(
                loc.clone(),
                format!("belongs to {owner} authentication, not {kind}{default}"),
            );
        }
        match kind {
            "basic" => {
                let username = self.required(&a.username, a, "username", kind, |s| {
                    rules::check_basic_username(s)
                });
                let password = self.required_secret(&a.password, a, "password", kind);
                Some(ConnectorAuthentication::Basic {
                    username: username?,
                    password: password?,
                })
            }
            "apiKey" => {
                let header = self.required(&a.header, a, "header", kind, |s| {
                    rules::check_api_key_header(s)
                });
                let value = self.required_secret(&a.value, a, "value", kind);
                Some(ConnectorAuthentication::ApiKey {
                    header: header?,
                    value: value?,
                })
            }
            "oauthClientCredentials" => {
                let token_url = self.required(&a.token_url, a, "token_url", kind, |s| {
                    rules::check_connector_url(s, targets)
                });
                let client_id = self.required(&a.client_id, a, "client_id", kind, |s| {
                    rules::check_oauth_client_id(s)
                });
                let client_secret =
                    self.required_secret(&a.client_secret, a, "client_secret", kind);
                // `Some(None)`: no scope; `None`: a scope written wrong.
                let scope = match &a.scope {
                    Some(v) => self
                        .check(v, |s| rules::check_scope(s))
                        .map(|()| Some(v.value.clone())),
                    None => Some(None),
                };
                Some(ConnectorAuthentication::OAuthClientCredentials {
                    token_url: token_url?,
                    client_id: client_id?,
                    client_secret: client_secret?,
                    scope: scope?,
                })
            }
            "clientCertificate" => {
                const NEEDED: &str = "clientCertificate authentication needs at least one certificate ([[connectors.authentication.certificates]])";
                let Some((loc, list)) = &a.certificates else {
                    self.err(a.place.key("certificates"), NEEDED);
                    return None;
                };
                if list.is_empty() {
                    self.err(loc.clone(), NEEDED);
                }
                let certificates: Vec<Option<ClientCertificate>> = list
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.certificate(c, i))
                    .collect();
                Some(ConnectorAuthentication::ClientCertificate {
                    certificates: certificates.into_iter().collect::<Option<_>>()?,
                })
            }
            "issuedToken" => self.issued_token(a, kind),
            _ => Some(ConnectorAuthentication::None),
        }
    }

    /// `issuedToken`: the resource id the token is for, and its caller id.
    fn issued_token(
        &mut self,
        a: &RawAuthentication,
        kind: &str,
    ) -> Option<ConnectorAuthentication> {
        let resource_id = self.required(&a.resource_id, a, "resource_id", kind, |s| {
            rules::check_resource_id(s)
        });
        let caller_id = match &a.caller_id {
            Some(v) => self
                .check(v, |s| {
                    if s.is_empty() || s.len() > 128 {
                        Err("must be 1 to 128 characters".to_owned())
                    } else {
                        Ok(())
                    }
                })
                .map(|()| v.value.clone()),
            None => Some(usher_domain::ENTRA_EXTENSION_CALLER_ID.to_owned()),
        };
        Some(ConnectorAuthentication::IssuedToken {
            resource_id: resource_id?,
            caller_id: caller_id?,
        })
    }

    /// One client certificate, the `index`th in its list: a PKCS#12 file
    /// (`pkcs12_file`, or inline `pkcs12_base64`) or a PEM chain (`pem_file` or `pem`)
    /// with its key (`key_file` or `key`).
    fn certificate(&mut self, c: &RawCertificate, index: usize) -> Option<ClientCertificate> {
        // Without a date, later entries count as uploaded later: one second apart
        // from the Unix epoch, so that any real date is newer still.
        let uploaded_at = match &c.uploaded_at {
            Some(v) => self.check(v, |s| rules::parse_uploaded_at(s)),
            None => Some(
                (SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(index).ok()?)).into(),
            ),
        };
        let pkcs12 = c.pkcs12_file.is_some() || c.pkcs12_base64.is_some();
        let pem = c.pem_file.is_some() || c.pem.is_some();
        let source = match (pkcs12, pem) {
            (true, false) => self.pkcs12_source(c),
            (false, true) => self.pem_source(c),
            (true, true) => {
                let loc = c
                    .pem_file
                    .as_ref()
                    .or(c.pem.as_ref())
                    .map_or_else(|| c.place.here(), |v| v.loc.clone());
                self.err(
                    loc,
                    "give either a PKCS#12 certificate (pkcs12_file or pkcs12_base64) or a PEM one (pem_file or pem), not both",
                );
                None
            }
            (false, false) => {
                self.err(
                    c.place.key("pkcs12_file"),
                    "a certificate needs pkcs12_file, or pem_file with key_file (or, written inline, pkcs12_base64, or pem with key)",
                );
                None
            }
        };
        Some(ClientCertificate {
            source: source?,
            uploaded_at: uploaded_at?,
        })
    }

    /// A certificate given as a PKCS#12 file, which holds its own key, with the
    /// password that opens it (empty when none is given).
    fn pkcs12_source(&mut self, c: &RawCertificate) -> Option<CertificateSource> {
        let keys = [
            c.key_file.as_ref().map(|k| ("key_file", k.loc.clone())),
            c.key.as_ref().map(|r| ("key", r.place.here())),
        ];
        for (name, loc) in keys.into_iter().flatten() {
            self.err(
                loc,
                format!("{name} goes with pem_file or pem; a PKCS#12 file holds its own key"),
            );
        }
        let der = match (&c.pkcs12_file, &c.pkcs12_base64) {
            (Some(file), None) => self.check(file, |p| rules::read_nonempty_file(Path::new(p))),
            (None, Some(r)) => self.pkcs12_base64(r),
            (Some(_), Some(r)) => {
                self.err(
                    r.place.here(),
                    "give either pkcs12_file or pkcs12_base64, not both",
                );
                None
            }
            (None, None) => None,
        };
        let password = match &c.password {
            Some(r) => self.secret(r),
            None => Some(Secret::new("")),
        };
        Some(CertificateSource::Pkcs12 {
            der: der?,
            password: password?.into(),
        })
    }

    /// A certificate given as a PEM chain, with its private key in PEM beside it.
    fn pem_source(&mut self, c: &RawCertificate) -> Option<CertificateSource> {
        if let Some(r) = &c.password {
            self.err(
                r.place.here(),
                "password is for pkcs12_file and pkcs12_base64; the PEM key must not be encrypted",
            );
        }
        let chain = match (&c.pem_file, &c.pem) {
            (Some(file), None) => {
                self.check(file, |p| rules::read_nonempty_text_file(Path::new(p)))
            }
            (None, Some(v)) => self.check(v, |s| {
                if s.trim().is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    Ok(s.clone())
                }
            }),
            (Some(_), Some(v)) => {
                self.err(v.loc.clone(), "give either pem_file or pem, not both");
                None
            }
            (None, None) => None,
        };
        let key = match (&c.key_file, &c.key) {
            (Some(k), None) => self
                .check(k, |p| rules::read_nonempty_text_file(Path::new(p)))
                .map(Secret::new),
            (None, Some(r)) => self.secret(r),
            (Some(_), Some(r)) => {
                self.err(r.place.here(), "give either key_file or key, not both");
                None
            }
            (None, None) => {
                let chain_key = if c.pem_file.is_some() {
                    "pem_file"
                } else {
                    "pem"
                };
                self.err(
                    c.place.key("key_file"),
                    format!("{chain_key} needs key_file (or key, a secret reference), the certificate's private key in PEM"),
                );
                None
            }
        };
        Some(CertificateSource::Pem {
            chain: chain?,
            key: key?.into(),
        })
    }

    /// A PKCS#12 file given as base64 by secret reference. Whitespace is ignored, so
    /// that wrapped output (`base64 contoso.pfx`, 76 columns) can be used as it is.
    fn pkcs12_base64(&mut self, r: &RawSecretRef) -> Option<Vec<u8>> {
        let text = self.secret(r)?;
        let compact: String = text
            .expose()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        match STANDARD.decode(compact) {
            Ok(der) if !der.is_empty() => Some(der),
            Ok(_) => {
                self.err(r.place.here(), "must not be empty");
                None
            }
            // The value is not quoted back: it is the file, private key included.
            Err(_) => {
                self.err(
                    r.place.here(),
                    "is not base64: give the PKCS#12 file's bytes in standard base64 (such as the output of `base64 contoso.pfx`)",
                );
                None
            }
        }
    }

    /// The connector ids of one slot of a user flow, as declared.
    /// `[[event_listeners]]`: each names an extension (declared above, with an event
    /// at the listener's) and the applications it runs for.
    pub(super) fn event_listeners(
        &mut self,
        raws: &[RawEventListener],
        connectors: &[ConnectorDefinition],
    ) -> Vec<EventListener> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut listeners = Vec::new();
        for r in raws {
            let id = match &r.id {
                Some(v) => self
                    .check(v, |s| rules::check_connector_id(s))
                    .and_then(|()| {
                        let key = v.value.to_ascii_lowercase();
                        if let Some(first) = seen.get(&key) {
                            let message =
                                format!("listener id {} is used twice (first at {first})", v.value);
                            self.err(v.loc.clone(), message);
                            return None;
                        }
                        seen.insert(key, v.loc.clone());
                        Some(v.value.clone())
                    }),
                None => {
                    self.err(r.place.key("id"), "is required");
                    None
                }
            };
            let step = match &r.event {
                Some(v) => self.check(v, |s| match ConnectorStep::from_extension_event(s) {
                    Some(step) if EventListener::STEPS.contains(&step) => Ok(step),
                    _ => Err("must be tokenIssuanceStart or emailOtpSend".to_owned()),
                }),
                None => {
                    self.err(
                        r.place.key("event"),
                        "is required: tokenIssuanceStart or emailOtpSend",
                    );
                    None
                }
            };
            let extension = self.listener_extension(r, step, connectors);
            let applications: Vec<String> = r
                .applications
                .iter()
                .flat_map(|l| &l.value)
                .map(|v| v.value.clone())
                .collect();
            if applications.is_empty() {
                self.err(
                    r.applications
                        .as_ref()
                        .map_or_else(|| r.place.key("applications"), |v| v.loc.clone()),
                    "name at least one application (client id) the listener runs for",
                );
            }
            let priority: i32 = self.number(
                &r.priority,
                usher_domain::event_listener::DEFAULT_PRIORITY,
                0,
                1_000_000,
                "",
            );
            let fall_back_to_mailer = r.fall_back_to_mailer.as_ref().is_some_and(|v| v.value);
            if fall_back_to_mailer && step == Some(ConnectorStep::PreTokenIssuance) {
                if let Some(v) = &r.fall_back_to_mailer {
                    self.err(v.loc.clone(), "is for emailOtpSend listeners");
                }
            }
            if let (Some(id), Some(step), Some(extension_id)) = (id, step, extension) {
                listeners.push(EventListener {
                    id,
                    step,
                    extension_id,
                    applications,
                    priority,
                    fall_back_to_mailer,
                });
            }
        }
        listeners
    }

    /// The extension a listener runs: declared, and with an event at its step.
    fn listener_extension(
        &mut self,
        r: &RawEventListener,
        step: Option<ConnectorStep>,
        connectors: &[ConnectorDefinition],
    ) -> Option<String> {
        match (&r.extension, step) {
            (Some(v), Some(step)) => self.check(v, |s| {
                let c = connectors
                    .iter()
                    .find(|c| c.id.eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        format!("no connector `{s}` is declared under [[connectors]]")
                    })?;
                if c.contract.serves(step) && c.contract.is_extension() {
                    Ok(c.id.clone())
                } else {
                    Err(format!(
                        "{} is not a custom authentication extension for {}",
                        c.id,
                        step.extension_event().unwrap_or_default()
                    ))
                }
            }),
            (None, _) => {
                self.err(
                    r.place.key("extension"),
                    "is required: the id of the extension it runs",
                );
                None
            }
            (Some(_), None) => None,
        }
    }

    pub(super) fn connector_slot(
        &mut self,
        list: &Option<List>,
        declared: &Declared,
        step: ConnectorStep,
    ) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for v in list.iter().flat_map(|l| &l.value) {
            match declared.get(&v.value.to_ascii_lowercase()) {
                None => self.err(
                    v.loc.clone(),
                    format!(
                        "no connector `{}` is declared under [[connectors]]",
                        v.value
                    ),
                ),
                Some((id, _)) if ids.contains(id) => {
                    self.err(v.loc.clone(), format!("{id} is listed twice in this slot"));
                }
                Some((id, Some(contract))) if !contract.serves(step) => {
                    self.err(v.loc.clone(), rules::slot_refusal(id, contract, step));
                }
                Some((id, _)) => ids.push(id.clone()),
            }
        }
        if step == ConnectorStep::EmailOtpSend && ids.len() > 1 {
            if let Some(list) = list {
                self.err(
                    list.loc.clone(),
                    "one connector at most: it delivers the code, and a code is sent once",
                );
            }
        }
        ids
    }
}
