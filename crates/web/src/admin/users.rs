//! Users — Graph's `user` at `/v1.0/users`. Built-in attributes keep Graph's names
//! (`mail` is the verified email; `displayName`, `city`, …), custom attributes appear
//! under their full names (`extension_<appId>_<Name>`), and `identities` lists how the
//! user signs in. This is how an approval system creates an approved user (contract
//! §7): `POST /v1.0/users` with the `identities`, `mail` and attributes it collected.
//!
//! A local account is an `emailAddress` identity whose issuer is the issuer URL's host,
//! with a password set through `passwordProfile` (the password policy applies; the
//! hash is computed on the blocking pool). Identities are unique across users: 409.
//! Usher's extension `usherRoles` (administrative roles such as `Usher.Admin`) is
//! answered by `GET /v1.0/users/{id}`; administrators are granted on the server.
//!
//! The bodies Microsoft's approval samples send are taken as they are: Graph's
//! directory properties Usher holds without using (`userPrincipalName`,
//! `mailNickname`, `userType` with `Guest` kept as `Guest`, and the simple string
//! properties of [`PROFILE_STRINGS`]) are stored and read back; any other property
//! gets Graph's error. `usherEmailVerified` (read-only) tells whether Usher saw the
//! address proven, which is what the `email_verified` claim then says: for a user
//! created here only when an open sign-up request holds the address (its code proved
//! it, or its provider vouched for it), never because a caller says so.
//!
//! `GET /v1.0/users/{id}` answers an `ETag` (the user's stored version); a PATCH or
//! DELETE with a stale `If-Match` gets 412 ([`super::etag`]). A PATCH is written in
//! one transaction ([`apply_edit`]).

use axum::http::HeaderMap;
use axum::{
    extract::{Path, State},
    http::Uri,
    response::Response,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use usher_domain::{
    attribute::{check_text, is_plausible_email, normalize_email},
    password::check_new_password,
    AttributeValue, AttributeValues, BuiltInAttribute, DataType, Identity, NewUser, SignInType,
    SignUpRequestStatus, Tenant, User, UserProfile, UserType,
};
use usher_storage::{StorageError, UserEdit, UserQuery};

use super::etag::{self, IfMatch};

use super::auth::{Access, Area};
use super::errors::{ApiError, ApiResult};
use super::json::{Body, JsonBody};
use super::odata::{self, Condition, Op, QueryOptions};
use super::{created, no_content, ok, path_segment, Route};
use crate::state::AppState;

const RESOURCE: &str = "user";
const TAG: &str = "Users";
const LIST_OPTIONS: &[&str] = &["$filter", "$top", "$select", "$skiptoken"];
const SUPPORTED: &str = "mail eq, startswith(displayName,…) and identities/any(c:c/issuerAssignedId eq … and c/issuer eq …), joined by and";
/// The issuer of email one-time passcode identities.
const MAIL_ISSUER: &str = "mail";
/// Graph's simple string properties of a user that Usher keeps as given (beside
/// `userPrincipalName` and `mailNickname`), with Graph's maximum lengths.
pub const PROFILE_STRINGS: &[(&str, usize)] = &[
    ("companyName", 64),
    ("department", 64),
    ("employeeId", 16),
    ("employeeType", 64),
    ("mobilePhone", 64),
    ("officeLocation", 128),
    ("preferredLanguage", 64),
    ("usageLocation", 2),
];

pub fn routes() -> Vec<Route> {
    let read = Access::Read(Area::Users);
    let write = Access::Write(Area::Users);
    vec![
        Route::get("/v1.0/users", list)
            .access(read)
            .doc(TAG, "List users ($filter, $top, $select, paging with @odata.nextLink)")
            .lists(RESOURCE, LIST_OPTIONS),
        Route::post("/v1.0/users", create)
            .access(write)
            .doc(TAG, "Create a user (an approval system's approved user)")
            .body(RESOURCE)
            .answers(201, RESOURCE),
        Route::get("/v1.0/users/{id}", get)
            .access(read)
            .doc(TAG, "Get a user")
            .answers(200, RESOURCE)
            .query(&["$select"]),
        Route::patch("/v1.0/users/{id}", update)
            .access(write)
            .doc(TAG, "Update a user: attributes, mail, accountEnabled, identities (replaced), passwordProfile")
            .body(RESOURCE)
            .no_content(),
        Route::delete("/v1.0/users/{id}", delete)
            .access(write)
            .doc(TAG, "Delete a user (their sessions end and their grants are revoked)"),
        Route::post("/v1.0/users/{id}/usherSendPasswordResetLink", send_reset_link)
            .access(write)
            .doc(TAG, "Usher: email the user a one-time link (valid an hour) that resets their password in an application's user flow")
            .body(RESET_LINK_REQUEST)
            .no_content(),
    ]
}

/// The body of `usherSendPasswordResetLink`.
pub const RESET_LINK_REQUEST: &str = "usherPasswordResetLinkRequest";

/// `POST /v1.0/users/{id}/usherSendPasswordResetLink` with `{"clientId": …}`.
async fn send_reset_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    body: JsonBody,
) -> ApiResult<Response> {
    use usher_signup::reset_link::ResetLinkError;
    let mut body = body.object(RESET_LINK_REQUEST)?;
    let client_id = body.required_string("clientId")?;
    finish(body)?;
    let user = find(&state, &id).await?;
    let app = state
        .tenant()
        .application(&client_id)
        .cloned()
        .ok_or_else(|| {
            ApiError::invalid_property(
                "clientId",
                RESET_LINK_REQUEST,
                format!("there is no application {client_id}"),
            )
        })?;
    match state
        .engine
        .send_reset_link(&user, &app, crate::i18n::DEFAULT_LOCALE, &caller.client_id)
        .await
    {
        Ok(()) => Ok(no_content()),
        Err(ResetLinkError::Storage(e)) => Err(e.into()),
        Err(ResetLinkError::Mail(e)) => {
            tracing::warn!(error = %e, user_id = %user.id, "could not mail a password reset link");
            Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The email could not be sent; try again shortly.",
            ))
        }
        Err(
            e @ (ResetLinkError::NoPassword
            | ResetLinkError::NoLocalAccounts
            | ResetLinkError::Disabled),
        ) => Err(ApiError::bad_request(format!(
            "No reset link was sent: {e}."
        ))),
    }
}

/// Graph's date-time form: `2026-11-22T10:00:00Z`.
pub fn datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The built-in attributes as user properties (`email` is `mail`).
fn built_ins() -> impl Iterator<Item = BuiltInAttribute> {
    BuiltInAttribute::ALL
        .into_iter()
        .filter(|b| *b != BuiltInAttribute::Email)
}

pub fn identity_json(i: &Identity) -> Value {
    json!({
        "signInType": i.sign_in_type.as_str(),
        "issuer": i.issuer,
        "issuerAssignedId": i.issuer_assigned_id,
    })
}

/// The user as Graph shows one.
pub fn to_json(user: &User) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(user.id));
    m.insert("mail".into(), json!(user.email));
    for b in built_ins() {
        m.insert(
            b.id().into(),
            user.attributes
                .get(b.id())
                .map_or(Value::Null, AttributeValue::to_json),
        );
    }
    for (k, v) in &user.attributes {
        if k.starts_with("extension_") {
            m.insert(k.clone(), v.to_json());
        }
    }
    m.insert("accountEnabled".into(), json!(user.account_enabled));
    m.insert("createdDateTime".into(), json!(datetime(user.created_at)));
    m.insert(
        "lastPasswordChangeDateTime".into(),
        json!(user.password_changed_at.map(datetime)),
    );
    m.insert("userType".into(), json!(user.profile.user_type.as_str()));
    m.insert(
        "userPrincipalName".into(),
        json!(user.profile.user_principal_name),
    );
    m.insert("mailNickname".into(), json!(user.profile.mail_nickname));
    for (name, _) in PROFILE_STRINGS {
        m.insert((*name).into(), json!(user.profile.strings.get(*name)));
    }
    m.insert("usherEmailVerified".into(), json!(user.email_verified));
    m.insert(
        "identities".into(),
        Value::Array(user.identities.iter().map(identity_json).collect()),
    );
    Value::Object(m)
}

fn is_property(tenant: &Tenant, name: &str) -> bool {
    [
        "id",
        "mail",
        "accountEnabled",
        "createdDateTime",
        "lastPasswordChangeDateTime",
        "userType",
        "userPrincipalName",
        "mailNickname",
        "identities",
        "usherRoles",
        "usherEmailVerified",
    ]
    .iter()
    .chain(PROFILE_STRINGS.iter().map(|(p, _)| p))
    .any(|p| p.eq_ignore_ascii_case(name))
        || BuiltInAttribute::from_id(name).is_some_and(|b| b != BuiltInAttribute::Email)
        || (name.starts_with("extension_") && tenant.attribute(name).is_some())
}

async fn list(State(state): State<AppState>, uri: Uri) -> ApiResult<Response> {
    let options = QueryOptions::parse(&uri, LIST_OPTIONS)?;
    let tenant = state.tenant();
    options.check_select(RESOURCE, &|p| is_property(&tenant, p))?;
    let top = options.page_size();
    let mut query = UserQuery {
        after: options.cursor()?,
        limit: top + 1,
        ..UserQuery::default()
    };
    for condition in options.filter.iter().flatten() {
        filter(&state, &mut query, condition)?;
    }
    let mut users = state.store.list_users(&query).await?;
    let next_link = if users.len() > top as usize {
        users.truncate(top as usize);
        users
            .last()
            .map(|u| options.next_link(&state, "/v1.0/users", &u.id))
    } else {
        None
    };
    let values = users
        .iter()
        .map(|u| options.apply_select(to_json(u)))
        .collect();
    Ok(ok(odata::collection(&state, "users", values, next_link)))
}

fn filter(state: &AppState, query: &mut UserQuery, condition: &Condition) -> ApiResult<()> {
    let twice = || {
        ApiError::unsupported_query(format!(
            "Unsupported $filter: '{}' is filtered on twice.",
            condition.property()
        ))
    };
    match condition {
        Condition::Compare {
            property,
            op: Op::Eq,
            value,
        } if property.eq_ignore_ascii_case("mail") => {
            let mail = value
                .as_string()
                .ok_or_else(|| ApiError::unsupported_query("mail takes a quoted string."))?;
            if query.email.replace(normalize_email(mail)).is_some() {
                return Err(twice());
            }
        }
        Condition::StartsWith { property, prefix }
            if property.eq_ignore_ascii_case("displayName") =>
        {
            if query.display_name_prefix.replace(prefix.clone()).is_some() {
                return Err(twice());
            }
        }
        Condition::Any {
            collection,
            conditions,
        } if collection.eq_ignore_ascii_case("identities") => {
            let mut issuer = None;
            let mut assigned = None;
            for (property, value) in conditions {
                let slot = if property.eq_ignore_ascii_case("issuer") {
                    &mut issuer
                } else if property.eq_ignore_ascii_case("issuerAssignedId") {
                    &mut assigned
                } else {
                    return Err(ApiError::unsupported_query(format!(
                        "Unsupported $filter on identities/{property}: use issuerAssignedId and issuer."
                    )));
                };
                let v = value.as_string().ok_or_else(|| {
                    ApiError::unsupported_query("identities/any takes quoted strings.")
                })?;
                if slot.replace(v.to_owned()).is_some() {
                    return Err(twice());
                }
            }
            let (Some(issuer), Some(assigned)) = (issuer, assigned) else {
                return Err(ApiError::unsupported_query(
                    "identities/any needs both c/issuerAssignedId eq '…' and c/issuer eq '…'.",
                ));
            };
            // Email identities are stored lower case, as the flows store them.
            let assigned = if is_email_issuer(state, &issuer) {
                normalize_email(&assigned)
            } else {
                assigned
            };
            if query.identity.replace((issuer, assigned)).is_some() {
                return Err(twice());
            }
        }
        other => return Err(odata::unsupported_condition(other, SUPPORTED)),
    }
    Ok(())
}

fn is_email_issuer(state: &AppState, issuer: &str) -> bool {
    issuer.eq_ignore_ascii_case(MAIL_ISSUER)
        || issuer.eq_ignore_ascii_case(&state.settings.local_issuer())
}

async fn find(state: &AppState, id: &str) -> ApiResult<User> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::no_such("user", id))
}

async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let options = QueryOptions::parse(&uri, &["$select"])?;
    let tenant = state.tenant();
    options.check_select(RESOURCE, &|p| is_property(&tenant, p))?;
    let user = find(&state, &id).await?;
    let mut value = to_json(&user);
    value["usherRoles"] = json!(state.store.user_roles(&user.id).await?);
    value["@odata.context"] = json!(odata::context_url(&state, "users/$entity"));
    let mut value = options.apply_select(value);
    let tag = user.version.to_string();
    etag::annotate(&mut value, &tag);
    Ok(etag::header(ok(value), &tag))
}

/// What a POST or PATCH body asks for, read and checked before anything is written.
#[derive(Default)]
struct Changes {
    mail: Option<Option<String>>,
    /// `None` value: remove the attribute.
    attributes: Vec<(String, Option<AttributeValue>)>,
    account_enabled: Option<bool>,
    identities: Option<Vec<Identity>>,
    password: Option<String>,
    /// A `forceChangePassword…` flag set to true, which Usher cannot honour.
    forced_change: Option<&'static str>,
    user_type: Option<UserType>,
    /// `None` value: remove the property.
    profile_strings: Vec<(String, Option<String>)>,
}

fn read_changes(state: &AppState, tenant: &Tenant, body: &mut Body) -> ApiResult<Changes> {
    let mut changes = Changes::default();
    body.take("@odata.type");
    // Graph's password policies (expiry, strength) do not apply: Usher's policy is
    // its own and its passwords do not expire.
    body.ignore(&["passwordPolicies"]);
    if let Some(t) = body.string("userType")? {
        changes.user_type = Some(
            UserType::parse(&t).ok_or_else(|| body.error("userType", "must be Member or Guest"))?,
        );
    }
    changes.profile_strings = read_profile_strings(body)?;
    if body.has("usherEmailVerified") {
        return Err(body.error(
            "usherEmailVerified",
            "is read-only: Usher records it when it sees the address proven",
        ));
    }
    if let Some(mail) = body.nullable_string("mail")? {
        changes.mail = Some(match mail {
            None => None,
            Some(m) => {
                let m = normalize_email(&m);
                if !is_plausible_email(&m) {
                    return Err(body.error("mail", "must be an email address"));
                }
                Some(m)
            }
        });
    }
    changes.attributes = read_built_in_attributes(body)?;
    read_custom_attributes(tenant, body, &mut changes.attributes)?;
    if let Some(enabled) = body.bool("accountEnabled")? {
        changes.account_enabled = Some(enabled);
    }
    changes.identities = read_identities(state, body)?;
    if let Some(profile) = body.object("passwordProfile")? {
        let (password, forced) = read_password_profile(profile)?;
        changes.password = Some(password);
        changes.forced_change = forced;
    }
    // Administrators are made on the server (`usher admin grant`), never through the
    // API: a user-writing client could otherwise make itself a console administrator
    // with a password it chose, and reach what its permissions do not cover.
    if body.strings("usherRoles")?.is_some() {
        return Err(body.error(
            "usherRoles",
            "is read-only: administrators are granted with `usher admin grant EMAIL` on the server",
        ));
    }
    Ok(changes)
}

/// Graph's directory strings Usher keeps as given: `userPrincipalName`,
/// `mailNickname` and the [`PROFILE_STRINGS`]; `None` removes one.
fn read_profile_strings(body: &mut Body) -> ApiResult<Vec<(String, Option<String>)>> {
    let mut strings: Vec<(String, Option<String>)> = Vec::new();
    if let Some(upn) = body.nullable_string("userPrincipalName")? {
        if let Some(u) = &upn {
            let (local, domain) = u.split_once('@').unwrap_or_default();
            if local.is_empty()
                || domain.is_empty()
                || u.len() > 113
                || u.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(body.error(
                    "userPrincipalName",
                    "must be alias@domain, at most 113 characters without spaces",
                ));
            }
        }
        strings.push(("userPrincipalName".into(), upn));
    }
    if let Some(nick) = body.nullable_string("mailNickname")? {
        if let Some(n) = &nick {
            if n.is_empty()
                || n.chars().count() > 64
                || n.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '@')
            {
                return Err(body.error(
                    "mailNickname",
                    "must be 1 to 64 characters without spaces or @",
                ));
            }
        }
        strings.push(("mailNickname".into(), nick));
    }
    for (name, max) in PROFILE_STRINGS {
        if let Some(v) = body.nullable_string(name)? {
            let v = v.filter(|v| !v.is_empty());
            if let Some(v) = &v {
                check_text(v, *max).map_err(|e| body.error(name, e))?;
            }
            strings.push(((*name).into(), v));
        }
    }
    Ok(strings)
}

/// The built-in attributes a body sets under Graph's names (`None`: remove it).
fn read_built_in_attributes(body: &mut Body) -> ApiResult<Vec<(String, Option<AttributeValue>)>> {
    let mut attributes = Vec::new();
    for b in built_ins() {
        // Graph's names are camelCase; accept them in any case, as built-in ids are.
        let Some(key) = body
            .remaining_keys()
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(b.id()))
        else {
            continue;
        };
        let value = match body.nullable_string(&key)? {
            Some(Some(s)) if !s.is_empty() => {
                check_text(&s, b.max_length()).map_err(|e| body.error(&key, e))?;
                Some(AttributeValue::String(s))
            }
            _ => None,
        };
        attributes.push((b.id().to_owned(), value));
    }
    Ok(attributes)
}

/// The custom attributes a body sets (`extension_<appId>_<Name>`), each of its
/// definition's type, added to `attributes`; one given twice is refused.
fn read_custom_attributes(
    tenant: &Tenant,
    body: &mut Body,
    attributes: &mut Vec<(String, Option<AttributeValue>)>,
) -> ApiResult<()> {
    for key in body.remaining_keys() {
        if !key.starts_with("extension_") {
            continue;
        }
        let def = tenant
            .attribute(&key)
            .filter(|d| !d.built_in)
            .ok_or_else(|| body.error(&key, "is not a custom attribute of this tenant"))?;
        let value = match (body.take(&key), def.data_type) {
            (None | Some(Value::Null), _) => None,
            (Some(Value::String(s)), DataType::String) if s.is_empty() => None,
            (Some(Value::String(s)), DataType::String) => {
                check_text(&s, def.max_length()).map_err(|e| body.error(&key, e))?;
                Some(AttributeValue::String(s))
            }
            (Some(Value::Bool(b)), DataType::Boolean) => Some(AttributeValue::Boolean(b)),
            (Some(v), DataType::Int) if v.as_i64().is_some() => {
                Some(AttributeValue::Int(v.as_i64().unwrap_or_default()))
            }
            (Some(_), t) => {
                return Err(body.error(
                    &key,
                    match t {
                        DataType::String => "must be a string",
                        DataType::Boolean => "must be true or false",
                        DataType::Int => "must be a whole number",
                    },
                ))
            }
        };
        if attributes.iter().any(|(k, _)| *k == def.id) {
            return Err(body.error(&key, "is given twice"));
        }
        attributes.push((def.id, value));
    }
    Ok(())
}

/// The `identities` of a body, when it has them: at least one, none twice.
fn read_identities(state: &AppState, body: &mut Body) -> ApiResult<Option<Vec<Identity>>> {
    if let Some(list) = body.objects("identities")? {
        let mut identities: Vec<Identity> = Vec::new();
        for mut i in list {
            let identity = read_identity(state, &mut i)?;
            i.finish()?;
            if identities.iter().any(|x| {
                x.sign_in_type == identity.sign_in_type
                    && x.issuer.eq_ignore_ascii_case(&identity.issuer)
                    && x.issuer_assigned_id == identity.issuer_assigned_id
            }) {
                return Err(body.error("identities", "lists the same identity twice"));
            }
            identities.push(identity);
        }
        if identities.is_empty() {
            return Err(body.error("identities", "must list at least one way to sign in"));
        }
        Ok(Some(identities))
    } else if body.has("identities") {
        body.take("identities");
        Err(body.error("identities", "must list at least one way to sign in"))
    } else {
        Ok(None)
    }
}

/// `passwordProfile`: the password, and the `forceChangePassword…` flag set to true,
/// if one is (Usher cannot honour it).
fn read_password_profile(mut profile: Body) -> ApiResult<(String, Option<&'static str>)> {
    let password = profile.required_string("password")?;
    let mut forced = None;
    for key in [
        "forceChangePasswordNextSignIn",
        "forceChangePasswordNextSignInWithMfa",
    ] {
        if profile.bool(key)? == Some(true) {
            forced = Some(key);
        }
    }
    profile.finish()?;
    Ok((password, forced))
}

/// Graph's answer to a property a user does not have.
fn finish(body: Body) -> ApiResult<()> {
    match body
        .remaining_keys()
        .into_iter()
        .find(|k| !k.starts_with('@'))
    {
        None => Ok(()),
        Some(k) => Err(ApiError::bad_request(format!(
            "Property '{k}' does not exist as a declared property or extension property."
        ))),
    }
}

/// Applies the profile changes of a body to `profile`.
fn apply_profile(profile: &mut UserProfile, changes: &Changes) {
    if let Some(t) = changes.user_type {
        profile.user_type = t;
    }
    for (name, value) in &changes.profile_strings {
        match name.as_str() {
            "userPrincipalName" => profile.user_principal_name.clone_from(value),
            "mailNickname" => profile.mail_nickname.clone_from(value),
            _ => {
                match value {
                    Some(v) => profile.strings.insert(name.clone(), v.clone()),
                    None => profile.strings.remove(name),
                };
            }
        }
    }
}

/// Whether Usher itself saw `email` proven: an open (pending) sign-up request holds
/// it, and requests only ever hold an address a code proved or a provider vouched
/// for. A caller's word is not proof.
async fn address_proven(
    state: &AppState,
    email: Option<&str>,
    identities: &[Identity],
) -> ApiResult<bool> {
    let Some(email) = email else {
        return Ok(false);
    };
    Ok(state
        .store
        .open_sign_up_requests_for(Some(email), identities)
        .await?
        .iter()
        .any(|r| r.status == SignUpRequestStatus::Pending && r.email == email))
}

fn read_identity(state: &AppState, i: &mut Body) -> ApiResult<Identity> {
    let kind = i.required_string("signInType")?;
    let sign_in_type = SignInType::parse(&kind).ok_or_else(|| {
        i.error(
            "signInType",
            "must be emailAddress (a local account) or federated (userName is not supported by Usher)",
        )
    })?;
    let issuer = i.required_string("issuer")?;
    let assigned = i.required_string("issuerAssignedId")?;
    if issuer.is_empty() || issuer.len() > 255 || issuer.chars().any(char::is_control) {
        return Err(i.error("issuer", "must be 1 to 255 characters"));
    }
    if assigned.is_empty() || assigned.len() > 512 || assigned.chars().any(char::is_control) {
        return Err(i.error("issuerAssignedId", "must be 1 to 512 characters"));
    }
    let local = state.settings.local_issuer();
    let (issuer, assigned) = match sign_in_type {
        SignInType::EmailAddress => {
            if !issuer.eq_ignore_ascii_case(&local) {
                return Err(i.error(
                    "issuer",
                    format!("a local account's issuer is {local}, this service's host"),
                ));
            }
            (local, email_id(i, &assigned)?)
        }
        SignInType::Federated if issuer.eq_ignore_ascii_case(MAIL_ISSUER) => {
            (MAIL_ISSUER.to_owned(), email_id(i, &assigned)?)
        }
        SignInType::Federated => (issuer, assigned),
    };
    Ok(Identity {
        sign_in_type,
        issuer,
        issuer_assigned_id: assigned,
        exact_issuer: None,
    })
}

/// An identity whose subject is an email address, normalised as the flows store it.
fn email_id(i: &Body, assigned: &str) -> ApiResult<String> {
    let email = normalize_email(assigned);
    if !is_plausible_email(&email) {
        return Err(i.error(
            "issuerAssignedId",
            "must be an email address for this issuer",
        ));
    }
    Ok(email)
}

fn local_identity(identities: &[Identity]) -> Option<&Identity> {
    identities
        .iter()
        .find(|i| i.sign_in_type == SignInType::EmailAddress)
}

/// The email the user has: `mail`, else the local account's or passcode identity's
/// address. A local account's address must be `mail`, as sign-in finds it that way.
fn settle_email(
    body_mail: Option<Option<String>>,
    current: Option<String>,
    identities: &[Identity],
) -> ApiResult<Option<String>> {
    let from_identity = local_identity(identities)
        .or_else(|| identities.iter().find(|i| i.issuer == MAIL_ISSUER))
        .map(|i| i.issuer_assigned_id.clone());
    let email = match body_mail {
        Some(m) => m,
        None => current.or_else(|| from_identity.clone()),
    };
    if let Some(local) = local_identity(identities) {
        if email.as_deref() != Some(local.issuer_assigned_id.as_str()) {
            return Err(ApiError::invalid_property(
                "mail",
                RESOURCE,
                "must be the address of the emailAddress identity (a local account signs in with it)",
            ));
        }
    }
    Ok(email)
}

async fn password_hash(
    state: &AppState,
    password: String,
    email: Option<&str>,
    identities: &[Identity],
) -> ApiResult<String> {
    if local_identity(identities).is_none() {
        return Err(ApiError::invalid_property(
            "passwordProfile",
            RESOURCE,
            "a password is for a local account: add an identity with signInType emailAddress",
        ));
    }
    check_new_password(&password, email.unwrap_or(""))
        .map_err(|e| ApiError::invalid_property("passwordProfile.password", RESOURCE, e))?;
    state
        .engine
        .hasher
        .hash(password)
        .await
        .map_err(|_| ApiError::busy())
}

async fn create(State(state): State<AppState>, body: JsonBody) -> ApiResult<Response> {
    let mut body = body.object(RESOURCE)?;
    let tenant = state.tenant();
    if body.has("id") {
        return Err(body.error("id", "is assigned by Usher"));
    }
    let changes = read_changes(&state, &tenant, &mut body)?;
    body.ignore(&["createdDateTime", "lastPasswordChangeDateTime"]);
    finish(body)?;
    let identities = changes.identities.clone().ok_or_else(|| {
        ApiError::invalid_property("identities", RESOURCE, "is required: how the user signs in")
    })?;
    let email = settle_email(changes.mail.clone(), None, &identities)?;
    let local = local_identity(&identities).is_some();
    if local && changes.password.is_none() {
        return Err(ApiError::invalid_property(
            "passwordProfile",
            RESOURCE,
            "is required for a local account (an emailAddress identity)",
        ));
    }
    // Graph wants a password profile for every user it creates, so approval
    // systems send one for federated users too; it applies only to a local account,
    // and is not kept otherwise (it would open a way in that nobody signs in with).
    let hash = match changes.password.clone().filter(|_| local) {
        Some(p) => {
            refuse_forced_change(&changes)?;
            Some(password_hash(&state, p, email.as_deref(), &identities).await?)
        }
        None => None,
    };
    let mut attributes = AttributeValues::new();
    for (k, v) in changes.attributes.clone() {
        if let Some(v) = v {
            attributes.insert(k, v);
        }
    }
    let mut profile = UserProfile::default();
    apply_profile(&mut profile, &changes);
    let email_verified = address_proven(&state, email.as_deref(), &identities).await?;
    let user = state
        .store
        .create_user(NewUser {
            id: state.new_id(),
            email,
            attributes,
            identities,
            password_hash: hash,
            created_at: state.clock.now(),
            account_enabled: changes.account_enabled.unwrap_or(true),
            email_verified,
            profile,
        })
        .await?;
    let mut value = to_json(&user);
    value["usherRoles"] = json!([]);
    let tag = user.version.to_string();
    etag::annotate(&mut value, &tag);
    let location = format!("/v1.0/users/{}", path_segment(&user.id));
    Ok(etag::header(created(&state, &location, value), &tag))
}

/// Usher cannot make a user change their password at the next sign-in.
fn refuse_forced_change(changes: &Changes) -> ApiResult<()> {
    match changes.forced_change {
        Some(key) => Err(ApiError::invalid_property(
            &format!("passwordProfile.{key}"),
            RESOURCE,
            "is not supported by Usher: the password is the user's from the start",
        )),
        None => Ok(()),
    }
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    let mut body = body.object(RESOURCE)?;
    let tenant = state.tenant();
    let mut user = find(&state, &id).await?;
    if_match.check(&user.version.to_string())?;
    body.read_only("id", &json!(user.id))?;
    body.read_only("createdDateTime", &json!(datetime(user.created_at)))?;
    body.read_only(
        "lastPasswordChangeDateTime",
        &json!(user.password_changed_at.map(datetime)),
    )?;
    let changes = read_changes(&state, &tenant, &mut body)?;
    finish(body)?;
    let identities = changes
        .identities
        .clone()
        .unwrap_or_else(|| user.identities.clone());
    let email = settle_email(changes.mail.clone(), user.email.clone(), &identities)?;
    let hash = match changes.password.clone() {
        Some(p) => {
            refuse_forced_change(&changes)?;
            Some(password_hash(&state, p, email.as_deref(), &identities).await?)
        }
        None => None,
    };
    let password_hash = match (&hash, &changes.identities) {
        (Some(h), _) => Some(Some(h.as_str())),
        // No local account any more: its password must not linger.
        (None, Some(new)) if local_identity(new).is_none() => Some(None),
        (None, _) => None,
    };
    if email != user.email {
        // An address typed in by an administrator was not proven to Usher.
        user.email_verified = false;
    }
    user.email = email;
    for (k, v) in changes.attributes.clone() {
        match v {
            Some(v) => user.attributes.insert(k, v),
            None => user.attributes.remove(&k),
        };
    }
    if let Some(enabled) = changes.account_enabled {
        user.account_enabled = enabled;
    }
    apply_profile(&mut user.profile, &changes);
    let replace_identities = changes.identities.is_some();
    user.identities = identities;
    let edit = UserEdit {
        user: &user,
        replace_identities,
        password_hash,
        expected_version: if_match.user_version(),
        now: state.clock.now(),
    };
    match apply_edit(&state, &edit).await {
        Ok(true) => Ok(no_content()),
        Ok(false) => Err(ApiError::no_such("user", &id)),
        Err(StorageError::Conflict) => Err(ApiError::precondition_failed()),
        Err(e) => Err(e.into()),
    }
}

/// Writes a checked edit of a user, in one transaction: the one place every
/// administrative change of a user goes through once it is decided, and so the
/// place for what must follow one (such as ending the user's sessions when the
/// password or the account's state changes). `Ok(false)` if the user is gone;
/// `Conflict` if `If-Match` named an older version.
pub async fn apply_edit(state: &AppState, edit: &UserEdit<'_>) -> Result<bool, StorageError> {
    let Some(version) = state.store.edit_user(edit).await? else {
        return Ok(false);
    };
    tracing::info!(user_id = %edit.user.id, version, "user changed through the admin API");
    Ok(true)
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let if_match = IfMatch::from_headers(&headers)?;
    if if_match.is_given() {
        let user = find(&state, &id).await?;
        if_match.check(&user.version.to_string())?;
    }
    if state.store.delete_user(&id, state.clock.now()).await? {
        Ok(no_content())
    } else {
        Err(ApiError::no_such("user", &id))
    }
}
