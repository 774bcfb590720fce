//! The stored form of each tenant object: one camelCase JSON document per object,
//! keyed by its kind and its id in lower case (ids are unique without regard to case,
//! so `B2X_1_SignUp` and `b2x_1_signup` are one object; the document keeps the
//! spelling given).
//!
//! | kind               | id               | document                                  |
//! |--------------------|------------------|-------------------------------------------|
//! | `settings`         | `tenant`         | `{"extensionsAppId": …}`                  |
//! | `attribute`        | the attribute id | id, displayName, description, dataType, builtIn |
//! | `userFlow`         | the flow id      | `usher_domain::UserFlow` as serialised    |
//! | `application`      | the client id    | `usher_domain::Application` as serialised |
//! | `connector`        | the connector id | its own form; durations in milliseconds (`timeoutMs`, …); `extraRootCertificates` (PEM) only when set |
//! | `identityProvider` | the provider id  | its own form; the kind tagged by `type`   |
//!
//! Secrets never reach a document in the clear. Stored, each is AES-256-GCM under the
//! master key, in standard base64, with the purpose
//! `tenant-secret:<kind>:<id>:<field>` as associated data, so that a ciphertext
//! copied to another object or field does not decrypt there. For diffs the same
//! documents are built with an HMAC of each secret instead: equal
//! secrets compare equal whatever their nonce, and nothing can be read back.
//! Public material (a PEM certificate chain, upload times) is stored as is.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use usher_domain::identity_provider::{
    ClaimMapping, ClientAuthMethod, EndpointOverrides, ProviderConfig, ProviderKind,
};
use usher_domain::{
    Application, AttributeDefinition, BreakerSettings, CertificateSource, ClientCertificate,
    ConnectorAuthentication, ConnectorContract, ConnectorDefinition, DataType, EventListener,
    FailurePolicy, Secret, Tenant, UserFlow,
};
use usher_oidc::crypto::{CryptoError, HmacKey, MasterKey};
use usher_storage::{TenantObject, TenantObjects};

use crate::{TenantError, TenantSnapshot};

pub const SETTINGS: &str = "settings";
pub const ATTRIBUTE: &str = "attribute";
pub const USER_FLOW: &str = "userFlow";
pub const APPLICATION: &str = "application";
pub const CONNECTOR: &str = "connector";
pub const IDENTITY_PROVIDER: &str = "identityProvider";
pub const EVENT_LISTENER: &str = "eventListener";

/// Every kind, in the order a tenant is written and its changes are listed:
/// what others refer to comes before what refers to it.
pub const KINDS: [&str; 7] = [
    SETTINGS,
    ATTRIBUTE,
    CONNECTOR,
    IDENTITY_PROVIDER,
    USER_FLOW,
    APPLICATION,
    EVENT_LISTENER,
];

/// The id of the one `settings` object.
pub const SETTINGS_ID: &str = "tenant";

/// The key an object with this id is stored under.
pub fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// What becomes of a secret on its way into a document.
pub(crate) enum SecretMode<'a> {
    /// Encrypted with the master key: the stored form.
    Seal(&'a MasterKey),
    /// Replaced by an HMAC: the form diffs compare.
    Fingerprint(&'a HmacKey),
}

/// One object in document form, before it becomes a `TenantObject`.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub kind: &'static str,
    /// The storage key (the id in lower case).
    pub key: String,
    /// The id as given, for messages.
    pub id: String,
    pub document: Value,
    /// The paths of the document's secret fields (`authentication.password`,
    /// `signingSecrets[0]`), so that a diff never shows their values.
    pub secrets: Vec<String>,
}

impl Doc {
    pub fn into_object(self) -> TenantObject {
        TenantObject {
            kind: self.kind.to_owned(),
            id: self.key,
            document: self.document,
        }
    }
}

/// Hides the secrets of one object, each under a purpose naming object and field,
/// and remembers which fields it hid.
struct Hider<'a> {
    mode: &'a SecretMode<'a>,
    kind: &'static str,
    key: &'a str,
    hidden: std::cell::RefCell<Vec<String>>,
}

impl<'a> Hider<'a> {
    fn new(mode: &'a SecretMode<'a>, kind: &'static str, key: &'a str) -> Self {
        Self {
            mode,
            kind,
            key,
            hidden: std::cell::RefCell::default(),
        }
    }

    /// The fields hidden so far, as document paths (the purpose's field names are
    /// exactly those).
    fn hidden(&self) -> Vec<String> {
        self.hidden.borrow().clone()
    }

    fn hide(&self, field: &str, plain: &[u8]) -> String {
        self.hidden.borrow_mut().push(field.to_owned());
        match self.mode {
            SecretMode::Seal(master) => {
                STANDARD.encode(master.encrypt(&purpose(self.kind, self.key, field), plain))
            }
            SecretMode::Fingerprint(hmac) => hmac.sign_hex(plain),
        }
    }

    fn text(&self, field: &str, secret: &Secret) -> String {
        self.hide(field, secret.expose().as_bytes())
    }
}

/// Reveals the secrets of one stored object.
struct Opener<'a> {
    master: &'a MasterKey,
    kind: &'static str,
    key: &'a str,
}

impl Opener<'_> {
    fn bytes(&self, field: &str, sealed: &str) -> Result<Vec<u8>, TenantError> {
        let data = STANDARD.decode(sealed).map_err(|e| {
            TenantError::Corrupt(format!("{} {}: {field}: {e}", self.kind, self.key))
        })?;
        self.master
            .decrypt(&purpose(self.kind, self.key, field), &data)
            .map_err(|e| match e {
                CryptoError::Decrypt => TenantError::Decrypt {
                    kind: self.kind.to_owned(),
                    id: self.key.to_owned(),
                },
                e => TenantError::Corrupt(format!("{} {}: {field}: {e}", self.kind, self.key)),
            })
    }

    fn text(&self, field: &str, sealed: &str) -> Result<Secret, TenantError> {
        let bytes = self.bytes(field, sealed)?;
        // Authenticated decryption succeeded, so this is what was stored; a secret
        // that is not UTF-8 can only have been written by something else.
        String::from_utf8(bytes).map(Secret::new).map_err(|_| {
            TenantError::Corrupt(format!(
                "{} {}: {field}: not UTF-8 once decrypted",
                self.kind, self.key
            ))
        })
    }
}

fn purpose(kind: &str, key: &str, field: &str) -> String {
    format!("tenant-secret:{kind}:{key}:{field}")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettingsDoc {
    extensions_app_id: String,
}

/// Its own form rather than the domain type's serde, which is `snake_case`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttributeDoc {
    id: String,
    display_name: String,
    description: String,
    data_type: DataType,
    built_in: bool,
}

/// A stored API connector. Secrets are sealed (see the module docs).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectorDoc {
    id: String,
    /// Left out for 1.0.0 connectors, so documents stored before the field existed
    /// read the same and compare equal.
    #[serde(default, skip_serializing_if = "is_api_connector")]
    contract: ConnectorContract,
    display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    target_url: String,
    authentication: AuthenticationDoc,
    signing_secrets: Vec<String>,
    timeout_ms: u64,
    retries: u32,
    budget_ms: u64,
    failure_policy: FailurePolicy,
    lenient: bool,
    breaker: BreakerDoc,
    /// Public PEM certificates, stored as is. Left out when empty, so that documents
    /// stored before the field existed read the same and compare equal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extra_root_certificates: Vec<String>,
}

/// Type names as in the configuration file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type")]
enum AuthenticationDoc {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "basic")]
    Basic { username: String, password: String },
    #[serde(rename = "clientCertificate")]
    ClientCertificate { certificates: Vec<CertificateDoc> },
    #[serde(rename = "apiKey")]
    ApiKey { header: String, value: String },
    #[serde(rename = "oauthClientCredentials", rename_all = "camelCase")]
    OAuthClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
    #[serde(rename = "issuedToken", rename_all = "camelCase")]
    IssuedToken {
        resource_id: String,
        caller_id: String,
    },
}

fn is_api_connector(c: &ConnectorContract) -> bool {
    *c == ConnectorContract::ApiConnector
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CertificateDoc {
    source: CertificateSourceDoc,
    uploaded_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "format")]
enum CertificateSourceDoc {
    /// Both the file (it holds the private key) and its password are sealed.
    #[serde(rename = "pkcs12")]
    Pkcs12 { der: String, password: String },
    /// The chain is public; the key is sealed.
    #[serde(rename = "pem")]
    Pem { chain: String, key: String },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BreakerDoc {
    failure_threshold: u32,
    open_for_ms: u64,
}

/// A stored upstream identity provider. The client secret is sealed.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderDoc {
    id: String,
    display_name: String,
    kind: ProviderKindDoc,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    claim_mapping: BTreeMap<String, String>,
    endpoints: EndpointsDoc,
    client_auth: Option<ClientAuthDoc>,
}

/// Type names as in the configuration file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type")]
enum ProviderKindDoc {
    #[serde(rename = "oidc")]
    Oidc { issuer: String },
    #[serde(rename = "google")]
    Google,
    #[serde(rename = "microsoft")]
    Microsoft { tenant: String },
    #[serde(rename = "facebook")]
    Facebook,
    #[serde(rename = "github")]
    GitHub,
    #[serde(rename = "oauth2", rename_all = "camelCase")]
    OAuth2 {
        authorization_endpoint: String,
        token_endpoint: String,
        userinfo_endpoint: String,
        subject_claim: String,
        identity_issuer: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emails_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
}

/// The names OAuth 2.0 gives them (RFC 7591).
#[derive(Serialize, Deserialize)]
enum ClientAuthDoc {
    #[serde(rename = "client_secret_basic")]
    ClientSecretBasic,
    #[serde(rename = "client_secret_post")]
    ClientSecretPost,
}

fn to_value<T: Serialize>(kind: &str, id: &str, doc: &T) -> Result<Value, TenantError> {
    // Only maps with non-string keys fail to serialise, and no document has one.
    serde_json::to_value(doc)
        .map_err(|e| TenantError::Corrupt(format!("{kind} {id} cannot be serialised: {e}")))
}

fn from_value<T: DeserializeOwned>(
    kind: &str,
    key: &str,
    document: Value,
) -> Result<T, TenantError> {
    serde_json::from_value(document).map_err(|e| TenantError::Corrupt(format!("{kind} {key}: {e}")))
}

/// `Duration` to whole milliseconds; anything beyond `u64` milliseconds (half a
/// billion years) is clamped rather than refused.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn doc(kind: &'static str, id: &str, document: Value) -> Doc {
    Doc {
        kind,
        key: key(id),
        id: id.to_owned(),
        document,
        secrets: Vec::new(),
    }
}

pub(crate) fn settings_doc(extensions_app_id: &str) -> Result<Doc, TenantError> {
    let document = to_value(
        SETTINGS,
        SETTINGS_ID,
        &SettingsDoc {
            extensions_app_id: extensions_app_id.to_owned(),
        },
    )?;
    Ok(doc(SETTINGS, SETTINGS_ID, document))
}

pub(crate) fn attribute_doc(a: &AttributeDefinition) -> Result<Doc, TenantError> {
    let AttributeDefinition {
        id,
        display_name,
        description,
        data_type,
        built_in,
    } = a.clone();
    let stored = AttributeDoc {
        id,
        display_name,
        description,
        data_type,
        built_in,
    };
    Ok(doc(ATTRIBUTE, &a.id, to_value(ATTRIBUTE, &a.id, &stored)?))
}

pub(crate) fn user_flow_doc(f: &UserFlow) -> Result<Doc, TenantError> {
    Ok(doc(USER_FLOW, &f.id, to_value(USER_FLOW, &f.id, f)?))
}

/// A listener is stored as its domain type: it holds no secret.
pub(crate) fn listener_doc(l: &EventListener) -> Result<Doc, TenantError> {
    l.check().map_err(|reason| TenantError::Invalid {
        kind: EVENT_LISTENER,
        id: l.id.clone(),
        reason,
    })?;
    Ok(doc(
        EVENT_LISTENER,
        &l.id,
        to_value(EVENT_LISTENER, &l.id, l)?,
    ))
}

pub(crate) fn application_doc(a: &Application) -> Result<Doc, TenantError> {
    let mut d = doc(
        APPLICATION,
        &a.client_id,
        to_value(APPLICATION, &a.client_id, a)?,
    );
    // A hash, not the secret; but not worth showing either: a diff says only that the
    // secret changed.
    if !a.is_public() {
        d.secrets.push("clientType.secret_hash".to_owned());
    }
    Ok(d)
}

pub(crate) fn connector_doc(
    c: &ConnectorDefinition,
    mode: &SecretMode,
) -> Result<Doc, TenantError> {
    // Every write (admin API, `apply`, the seed) and every diff comes through here:
    // the same rules hold whoever writes.
    c.check().map_err(|e| TenantError::Invalid {
        kind: CONNECTOR,
        id: c.id.clone(),
        reason: e.to_string(),
    })?;
    let key = key(&c.id);
    let hider = Hider::new(mode, CONNECTOR, &key);
    let authentication = match &c.authentication {
        ConnectorAuthentication::None => AuthenticationDoc::None,
        ConnectorAuthentication::Basic { username, password } => AuthenticationDoc::Basic {
            username: username.clone(),
            password: hider.text("authentication.password", password),
        },
        ConnectorAuthentication::ClientCertificate { certificates } => {
            AuthenticationDoc::ClientCertificate {
                certificates: certificates
                    .iter()
                    .enumerate()
                    .map(|(i, cert)| certificate_doc(&hider, i, cert))
                    .collect(),
            }
        }
        ConnectorAuthentication::ApiKey { header, value } => AuthenticationDoc::ApiKey {
            header: header.clone(),
            value: hider.text("authentication.value", value),
        },
        ConnectorAuthentication::OAuthClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } => AuthenticationDoc::OAuthClientCredentials {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: hider.text("authentication.clientSecret", client_secret),
            scope: scope.clone(),
        },
        ConnectorAuthentication::IssuedToken {
            resource_id,
            caller_id,
        } => AuthenticationDoc::IssuedToken {
            resource_id: resource_id.clone(),
            caller_id: caller_id.clone(),
        },
    };
    let stored = ConnectorDoc {
        id: c.id.clone(),
        contract: c.contract.clone(),
        description: c.description.clone(),
        display_name: c.display_name.clone(),
        target_url: c.target_url.clone(),
        authentication,
        signing_secrets: c
            .signing_secrets
            .iter()
            .enumerate()
            .map(|(i, s)| hider.text(&format!("signingSecrets[{i}]"), s))
            .collect(),
        timeout_ms: millis(c.timeout),
        retries: c.retries,
        budget_ms: millis(c.budget),
        failure_policy: c.failure_policy,
        lenient: c.lenient,
        breaker: BreakerDoc {
            failure_threshold: c.breaker.failure_threshold,
            open_for_ms: millis(c.breaker.open_for),
        },
        extra_root_certificates: c.extra_root_certificates.clone(),
    };
    let mut d = doc(CONNECTOR, &c.id, to_value(CONNECTOR, &c.id, &stored)?);
    d.secrets = hider.hidden();
    Ok(d)
}

fn certificate_doc(hider: &Hider, i: usize, cert: &ClientCertificate) -> CertificateDoc {
    let field = |name: &str| format!("authentication.certificates[{i}].{name}");
    let source = match &cert.source {
        CertificateSource::Pkcs12 { der, password } => CertificateSourceDoc::Pkcs12 {
            der: hider.hide(&field("der"), der),
            password: hider.text(&field("password"), password),
        },
        CertificateSource::Pem { chain, key } => CertificateSourceDoc::Pem {
            chain: chain.clone(),
            key: hider.text(&field("key"), key),
        },
    };
    CertificateDoc {
        source,
        uploaded_at: cert.uploaded_at,
    }
}

pub(crate) fn provider_doc(p: &ProviderConfig, mode: &SecretMode) -> Result<Doc, TenantError> {
    let key = key(&p.id);
    let hider = Hider::new(mode, IDENTITY_PROVIDER, &key);
    let kind = match &p.kind {
        ProviderKind::Oidc { issuer } => ProviderKindDoc::Oidc {
            issuer: issuer.clone(),
        },
        ProviderKind::Google => ProviderKindDoc::Google,
        ProviderKind::Microsoft { tenant } => ProviderKindDoc::Microsoft {
            tenant: tenant.clone(),
        },
        ProviderKind::Facebook => ProviderKindDoc::Facebook,
        ProviderKind::GitHub => ProviderKindDoc::GitHub,
        ProviderKind::OAuth2 {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            subject_claim,
            identity_issuer,
        } => ProviderKindDoc::OAuth2 {
            authorization_endpoint: authorization_endpoint.clone(),
            token_endpoint: token_endpoint.clone(),
            userinfo_endpoint: userinfo_endpoint.clone(),
            subject_claim: subject_claim.clone(),
            identity_issuer: identity_issuer.clone(),
        },
    };
    let e = &p.endpoints;
    let stored = ProviderDoc {
        id: p.id.clone(),
        display_name: p.display_name.clone(),
        kind,
        client_id: p.client_id.clone(),
        client_secret: hider.text("clientSecret", &p.client_secret),
        scopes: p.scopes.clone(),
        claim_mapping: p.claim_mapping.0.clone(),
        endpoints: EndpointsDoc {
            issuer: e.issuer.clone(),
            authorization_endpoint: e.authorization_endpoint.clone(),
            token_endpoint: e.token_endpoint.clone(),
            userinfo_endpoint: e.userinfo_endpoint.clone(),
            emails_endpoint: e.emails_endpoint.clone(),
            jwks_uri: e.jwks_uri.clone(),
        },
        client_auth: p.client_auth.map(|m| match m {
            ClientAuthMethod::ClientSecretBasic => ClientAuthDoc::ClientSecretBasic,
            ClientAuthMethod::ClientSecretPost => ClientAuthDoc::ClientSecretPost,
        }),
    };
    let mut d = doc(
        IDENTITY_PROVIDER,
        &p.id,
        to_value(IDENTITY_PROVIDER, &p.id, &stored)?,
    );
    d.secrets = hider.hidden();
    Ok(d)
}

/// Every object of `snapshot`, in [`KINDS`] order and, within a kind, in the
/// snapshot's order. `Duplicate` if two objects of a kind share a key.
pub(crate) fn docs(snapshot: &TenantSnapshot, mode: &SecretMode) -> Result<Vec<Doc>, TenantError> {
    let Tenant {
        extensions_app_id,
        custom_attributes,
        user_flows,
        applications,
    } = &snapshot.tenant;
    let mut docs = vec![settings_doc(extensions_app_id)?];
    for a in custom_attributes {
        docs.push(attribute_doc(a)?);
    }
    for c in &snapshot.connectors {
        docs.push(connector_doc(c, mode)?);
    }
    for p in &snapshot.identity_providers {
        docs.push(provider_doc(p, mode)?);
    }
    for f in user_flows {
        docs.push(user_flow_doc(f)?);
    }
    for a in applications {
        docs.push(application_doc(a)?);
    }
    for l in &snapshot.event_listeners {
        docs.push(listener_doc(l)?);
    }
    let mut seen = HashSet::new();
    for d in &docs {
        if !seen.insert((d.kind, d.key.as_str())) {
            return Err(TenantError::Duplicate {
                kind: d.kind,
                id: d.id.clone(),
            });
        }
    }
    Ok(docs)
}

/// Reads stored objects back into a snapshot, decrypting their secrets.
pub(crate) fn snapshot(
    stored: TenantObjects,
    master: &MasterKey,
) -> Result<TenantSnapshot, TenantError> {
    let mut snapshot = TenantSnapshot::empty();
    snapshot.version = stored.version;
    for object in stored.objects {
        let TenantObject { kind, id, document } = object;
        let Some(kind) = KINDS.into_iter().find(|k| *k == kind) else {
            // Written by a newer Usher, most likely: leave it to that version.
            tracing::warn!(kind, id, "ignoring a stored tenant object of unknown kind");
            continue;
        };
        let checked = |doc_id: &str| {
            if key(doc_id) == id {
                Ok(())
            } else {
                Err(TenantError::Corrupt(format!(
                    "{kind} {id}: the document's id is {doc_id:?}"
                )))
            }
        };
        match kind {
            SETTINGS => {
                checked(SETTINGS_ID)?;
                let doc: SettingsDoc = from_value(kind, &id, document)?;
                snapshot.tenant.extensions_app_id = doc.extensions_app_id;
            }
            ATTRIBUTE => {
                let doc: AttributeDoc = from_value(kind, &id, document)?;
                checked(&doc.id)?;
                snapshot.tenant.custom_attributes.push(AttributeDefinition {
                    id: doc.id,
                    display_name: doc.display_name,
                    description: doc.description,
                    data_type: doc.data_type,
                    built_in: doc.built_in,
                });
            }
            USER_FLOW => {
                let flow: UserFlow = from_value(kind, &id, document)?;
                checked(&flow.id)?;
                snapshot.tenant.user_flows.push(flow);
            }
            APPLICATION => {
                let app: Application = from_value(kind, &id, document)?;
                checked(&app.client_id)?;
                snapshot.tenant.applications.push(app);
            }
            EVENT_LISTENER => {
                let listener: EventListener = from_value(kind, &id, document)?;
                checked(&listener.id)?;
                snapshot.event_listeners.push(listener);
            }
            CONNECTOR => {
                let doc: ConnectorDoc = from_value(kind, &id, document)?;
                checked(&doc.id)?;
                let opener = Opener {
                    master,
                    kind,
                    key: &id,
                };
                snapshot.connectors.push(connector(doc, &opener)?);
            }
            // IDENTITY_PROVIDER, the only kind left.
            _ => {
                let doc: ProviderDoc = from_value(kind, &id, document)?;
                checked(&doc.id)?;
                let opener = Opener {
                    master,
                    kind: IDENTITY_PROVIDER,
                    key: &id,
                };
                snapshot.identity_providers.push(provider(doc, &opener)?);
            }
        }
    }
    Ok(snapshot)
}

fn connector(doc: ConnectorDoc, opener: &Opener) -> Result<ConnectorDefinition, TenantError> {
    let authentication = match doc.authentication {
        AuthenticationDoc::None => ConnectorAuthentication::None,
        AuthenticationDoc::Basic { username, password } => ConnectorAuthentication::Basic {
            username,
            password: opener.text("authentication.password", &password)?,
        },
        AuthenticationDoc::ClientCertificate { certificates } => {
            ConnectorAuthentication::ClientCertificate {
                certificates: certificates
                    .into_iter()
                    .enumerate()
                    .map(|(i, cert)| certificate(opener, i, cert))
                    .collect::<Result<_, _>>()?,
            }
        }
        AuthenticationDoc::ApiKey { header, value } => ConnectorAuthentication::ApiKey {
            header,
            value: opener.text("authentication.value", &value)?,
        },
        AuthenticationDoc::OAuthClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } => ConnectorAuthentication::OAuthClientCredentials {
            token_url,
            client_id,
            client_secret: opener.text("authentication.clientSecret", &client_secret)?,
            scope,
        },
        AuthenticationDoc::IssuedToken {
            resource_id,
            caller_id,
        } => ConnectorAuthentication::IssuedToken {
            resource_id,
            caller_id,
        },
    };
    Ok(ConnectorDefinition {
        id: doc.id,
        contract: doc.contract,
        description: doc.description,
        display_name: doc.display_name,
        target_url: doc.target_url,
        authentication,
        signing_secrets: doc
            .signing_secrets
            .iter()
            .enumerate()
            .map(|(i, s)| opener.text(&format!("signingSecrets[{i}]"), s))
            .collect::<Result<_, _>>()?,
        timeout: Duration::from_millis(doc.timeout_ms),
        retries: doc.retries,
        budget: Duration::from_millis(doc.budget_ms),
        failure_policy: doc.failure_policy,
        lenient: doc.lenient,
        breaker: BreakerSettings {
            failure_threshold: doc.breaker.failure_threshold,
            open_for: Duration::from_millis(doc.breaker.open_for_ms),
        },
        extra_root_certificates: doc.extra_root_certificates,
    })
}

fn certificate(
    opener: &Opener,
    i: usize,
    doc: CertificateDoc,
) -> Result<ClientCertificate, TenantError> {
    let field = |name: &str| format!("authentication.certificates[{i}].{name}");
    let source = match doc.source {
        CertificateSourceDoc::Pkcs12 { der, password } => CertificateSource::Pkcs12 {
            der: opener.bytes(&field("der"), &der)?,
            password: opener.text(&field("password"), &password)?,
        },
        CertificateSourceDoc::Pem { chain, key } => CertificateSource::Pem {
            chain,
            key: opener.text(&field("key"), &key)?,
        },
    };
    Ok(ClientCertificate {
        source,
        uploaded_at: doc.uploaded_at,
    })
}

fn provider(doc: ProviderDoc, opener: &Opener) -> Result<ProviderConfig, TenantError> {
    let kind = match doc.kind {
        ProviderKindDoc::Oidc { issuer } => ProviderKind::Oidc { issuer },
        ProviderKindDoc::Google => ProviderKind::Google,
        ProviderKindDoc::Microsoft { tenant } => ProviderKind::Microsoft { tenant },
        ProviderKindDoc::Facebook => ProviderKind::Facebook,
        ProviderKindDoc::GitHub => ProviderKind::GitHub,
        ProviderKindDoc::OAuth2 {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            subject_claim,
            identity_issuer,
        } => ProviderKind::OAuth2 {
            authorization_endpoint,
            token_endpoint,
            userinfo_endpoint,
            subject_claim,
            identity_issuer,
        },
    };
    let e = doc.endpoints;
    Ok(ProviderConfig {
        id: doc.id,
        display_name: doc.display_name,
        kind,
        client_id: doc.client_id,
        client_secret: opener.text("clientSecret", &doc.client_secret)?,
        scopes: doc.scopes,
        claim_mapping: ClaimMapping(doc.claim_mapping),
        endpoints: EndpointOverrides {
            issuer: e.issuer,
            authorization_endpoint: e.authorization_endpoint,
            token_endpoint: e.token_endpoint,
            userinfo_endpoint: e.userinfo_endpoint,
            emails_endpoint: e.emails_endpoint,
            jwks_uri: e.jwks_uri,
        },
        client_auth: doc.client_auth.map(|m| match m {
            ClientAuthDoc::ClientSecretBasic => ClientAuthMethod::ClientSecretBasic,
            ClientAuthDoc::ClientSecretPost => ClientAuthMethod::ClientSecretPost,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector_with_every_secret() -> ConnectorDefinition {
        let mut c = ConnectorDefinition::new("Approval", "https://api.example/approve");
        c.authentication = ConnectorAuthentication::ClientCertificate {
            certificates: vec![
                ClientCertificate {
                    source: CertificateSource::Pkcs12 {
                        der: b"pkcs12-bytes".to_vec(),
                        password: Secret::new("p12-password"),
                    },
                    uploaded_at: DateTime::from_timestamp(1_800_000_000, 5).unwrap_or_default(),
                },
                ClientCertificate {
                    source: CertificateSource::Pem {
                        chain: "-----BEGIN CERTIFICATE-----".into(),
                        key: Secret::new("pem-key"),
                    },
                    uploaded_at: DateTime::from_timestamp(1_800_000_100, 0).unwrap_or_default(),
                },
            ],
        };
        c.signing_secrets = vec![Secret::new("whsec_one"), Secret::new("whsec_two")];
        c
    }

    #[test]
    fn extra_roots_are_left_out_until_set() {
        let master = MasterKey::generate();
        let mut c = ConnectorDefinition::new("c", "https://api.example/c");
        let doc = connector_doc(&c, &SecretMode::Seal(&master)).unwrap();
        assert!(doc.document.get("extraRootCertificates").is_none());
        c.extra_root_certificates = vec!["-----BEGIN CERTIFICATE-----\n".into()];
        let doc = connector_doc(&c, &SecretMode::Seal(&master)).unwrap();
        assert_eq!(
            doc.document["extraRootCertificates"][0],
            "-----BEGIN CERTIFICATE-----\n"
        );
        assert_eq!(open(doc, &master).unwrap(), c);
    }

    fn open(doc: Doc, master: &MasterKey) -> Result<ConnectorDefinition, TenantError> {
        let stored: ConnectorDoc = from_value(CONNECTOR, &doc.key, doc.document)?;
        connector(
            stored,
            &Opener {
                master,
                kind: CONNECTOR,
                key: &doc.key,
            },
        )
    }

    #[test]
    fn extensions_round_trip_and_1_0_0_documents_are_unchanged() {
        let master = MasterKey::generate();
        let plain = ConnectorDefinition::new("c", "https://api.example/c");
        let doc = connector_doc(&plain, &SecretMode::Seal(&master)).unwrap();
        assert!(
            doc.document.get("contract").is_none(),
            "stored as before the field existed"
        );
        let mut ext =
            ConnectorDefinition::extension("x", "https://api.example/x", "api://api.example/app");
        ext.contract = ConnectorContract::CustomAuthenticationExtension {
            claims_for_token: vec!["tier".into()],
            event: Some(usher_domain::ConnectorStep::PreTokenIssuance),
        };
        ext.description = "Adds the tier".into();
        let doc = connector_doc(&ext, &SecretMode::Seal(&master)).unwrap();
        assert_eq!(
            doc.document["contract"],
            serde_json::json!({"kind": "customAuthenticationExtension", "claimsForToken": ["tier"], "event": "PreTokenIssuance"})
        );
        assert_eq!(doc.document["authentication"]["type"], "issuedToken");
        assert_eq!(open(doc, &master).unwrap(), ext);
    }

    #[test]
    fn sealed_secrets_round_trip_and_are_bound_to_their_field() {
        let master = MasterKey::generate();
        let c = connector_with_every_secret();
        let sealed = connector_doc(&c, &SecretMode::Seal(&master)).unwrap();
        assert_eq!(sealed.key, "approval");
        let text = sealed.document.to_string();
        for secret in ["p12-password", "pem-key", "whsec_one", "whsec_two"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(!text.contains(&STANDARD.encode(b"pkcs12-bytes")));
        assert_eq!(open(sealed.clone(), &master).unwrap(), c);

        // Swapping two sealed values between fields is detected, not silently accepted.
        let mut swapped = sealed.clone();
        let secrets = swapped.document["signingSecrets"].as_array_mut().unwrap();
        secrets.swap(0, 1);
        assert!(matches!(
            open(swapped, &master),
            Err(TenantError::Decrypt { .. })
        ));

        // Garbage where a ciphertext belongs is corrupt data, not a key problem.
        let mut garbled = sealed;
        garbled.document["signingSecrets"][0] = Value::String("not base64!".into());
        assert!(matches!(
            open(garbled, &master),
            Err(TenantError::Corrupt(_))
        ));
    }

    #[test]
    fn fingerprints_are_stable_and_secret_free() {
        let master = MasterKey::generate();
        let hmac = master.hmac_key("test");
        let c = connector_with_every_secret();
        let a = connector_doc(&c, &SecretMode::Fingerprint(&hmac)).unwrap();
        let b = connector_doc(&c, &SecretMode::Fingerprint(&hmac)).unwrap();
        assert_eq!(a.document, b.document);
        assert!(!a.document.to_string().contains("whsec_one"));
        let mut other = c;
        other.signing_secrets[1] = Secret::new("whsec_three");
        let c2 = connector_doc(&other, &SecretMode::Fingerprint(&hmac)).unwrap();
        assert_ne!(a.document, c2.document);
    }
}
