//! The admin console at `/console`: server-rendered pages for administrators (users
//! with the role [`ADMIN_ROLE`]) to decide held sign-ups, look after users, read the
//! user flows and watch the API connectors.
//!
//! The console is an OpenID Connect client of Usher itself (the built-in public
//! application [`CLIENT_ID`], see [`login`]): people sign in to it exactly as to any
//! application, and the console then keeps its own short session, a
//! `BrowserSession` row whose random token is in the `usher_console` cookie
//! (HttpOnly, SameSite=Strict, path `/console`). Every request checks that session
//! and the role again, so a revoked role or a deleted account takes effect at once.
//!
//! Pages follow the sign-up pages' rules: no JavaScript, labelled inputs, errors tied
//! to their field and summarised, escaped output, both languages. Every form carries
//! a CSRF token, an HMAC of the session token with the cookie key, checked before
//! anything changes.

pub mod call;
pub mod connector;
pub mod connectors;
pub mod flows;
pub mod login;
pub mod overview;
pub mod requests;
pub mod user;
pub mod users;

use std::collections::BTreeMap;

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::Response,
    routing::{get, post},
    Router,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use usher_domain::{attribute::BuiltInAttribute, Identity, User};
use usher_oidc::crypto::sha256_hex;

use crate::{
    cookies,
    pages::{self, SummaryError},
    state::AppState,
};

/// The role that lets a user into the console.
pub const ADMIN_ROLE: &str = "Usher.Admin";
/// The console's own application (a public client with PKCE).
pub const CLIENT_ID: &str = usher_domain::application::CONSOLE_CLIENT_ID;
/// The console session's cookie: its random token.
pub const SESSION_COOKIE: &str = "usher_console";
/// The sign-in in progress: state, nonce and PKCE verifier, sealed.
pub const LOGIN_COOKIE: &str = "usher_console_login";
/// How long a console session lasts, however active: an administrator signs in
/// again at least once a working day.
pub const SESSION_HOURS: i64 = 8;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/login", get(login::start))
        .route("/console/callback", get(login::callback))
        .route("/console/logout", post(login::logout))
        .route("/console/signed-out", get(login::signed_out))
        .route("/console/requests", get(requests::page))
        .route("/console/requests/{id}/approve", post(requests::approve))
        .route(
            "/console/requests/{id}/deny",
            get(requests::confirm_deny).post(requests::deny),
        )
        .route("/console/requests/{id}/clear", post(requests::clear))
        .route("/console/users", get(users::page))
        .route("/console/users/{id}", get(user::page))
        .route("/console/users/{id}/enabled", post(user::set_enabled))
        .route(
            "/console/users/{id}/reset-link",
            post(user::send_reset_link),
        )
        .route(
            "/console/users/{id}/delete",
            get(user::confirm_delete).post(user::delete),
        )
        .route("/console/flows", get(flows::page))
        .route("/console/connectors", get(connectors::page))
        .route("/console/connectors/{id}", get(connector::page))
        .route("/console/calls", get(call::find))
        .route("/console/calls/{call_id}", get(call::page))
}

/// The signed-in administrator of a console request.
pub struct Admin {
    pub user: User,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
    session_hash: String,
}

impl Admin {
    /// How the console names the administrator: the display name, else the email.
    pub fn name(&self) -> String {
        display_name(&self.user)
    }
}

/// The store's key of a console session token. Salted with the purpose, so an SSO
/// session cookie is never a console session and the other way round.
fn session_hash(token: &str) -> String {
    sha256_hex(format!("console:{token}").as_bytes())
}

fn csrf_for(state: &AppState, token: &str) -> String {
    state
        .cookie_key
        .sign_hex(format!("console-csrf:{token}").as_bytes())
}

/// Why a request does not reach the console.
enum Refused {
    /// No live session: sign in.
    SignIn,
    /// Signed in as someone who may not use the console (role revoked, account
    /// disabled or deleted since).
    Forbidden(&'static str),
    Internal(Response),
}

async fn check(state: &AppState, headers: &HeaderMap) -> Result<Admin, Refused> {
    let Some(token) = cookies::get(headers, SESSION_COOKIE) else {
        return Err(Refused::SignIn);
    };
    let hash = session_hash(token);
    let internal = |e: usher_storage::StorageError| {
        Refused::Internal(message_page(
            state,
            pages::request_locale(headers, None),
            None,
            StatusCode::INTERNAL_SERVER_ERROR,
            "console.error.title",
            internal_message(state, pages::request_locale(headers, None), e),
            None,
        ))
    };
    let session = match state.store.session(&hash).await {
        Ok(Some(s)) if s.ended_at.is_none() && s.expires_at > state.clock.now() => s,
        Ok(_) => return Err(Refused::SignIn),
        Err(e) => return Err(internal(e)),
    };
    let user = match state.store.user_by_id(&session.user_id).await {
        Ok(Some(u)) => u,
        // Deleted meanwhile (which ends the sessions too): as good as signed out.
        Ok(None) => return Err(Refused::SignIn),
        Err(e) => return Err(internal(e)),
    };
    if !user.account_enabled {
        return Err(Refused::Forbidden("console.forbidden.disabled"));
    }
    match state.store.user_roles(&user.id).await {
        Ok(roles) if roles.iter().any(|r| r == ADMIN_ROLE) => {}
        Ok(_) => return Err(Refused::Forbidden("console.forbidden.not_admin")),
        Err(e) => return Err(internal(e)),
    }
    Ok(Admin {
        user,
        csrf: csrf_for(state, token),
        session_hash: hash,
    })
}

/// The administrator of a page request, or the response that replaces the page: to
/// the sign-in (coming back to `back_to` afterwards) or a 403.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    back_to: &str,
) -> Result<Admin, Response> {
    let locale = pages::request_locale(headers, None);
    match check(state, headers).await {
        Ok(admin) => Ok(admin),
        Err(Refused::SignIn) => {
            let url = crate::oauth::append_query("/console/login", &[("next", back_to)]);
            let mut r = pages::see_other(&url);
            r.headers_mut().append(
                header::SET_COOKIE,
                clear_cookie(SESSION_COOKIE, state.settings.secure_cookies()),
            );
            Err(r)
        }
        Err(Refused::Forbidden(key)) => Err(forbidden(state, headers, locale, key).await),
        Err(Refused::Internal(r)) => Err(r),
    }
}

/// The administrator and the form of a POST, its CSRF token checked. A missing or
/// wrong token changes nothing and says so.
pub async fn require_form(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    back_to: &str,
) -> Result<(Admin, BTreeMap<String, Vec<String>>), Response> {
    let admin = require(state, headers, back_to).await?;
    let form = pages::parse_form(body);
    let sent = pages::first(&form, "csrf");
    if !usher_domain::flow::constant_time_eq(sent.as_bytes(), admin.csrf.as_bytes()) {
        let locale = pages::request_locale(headers, None);
        tracing::warn!(admin = %admin.user.id, path = back_to, "console form refused: bad CSRF token");
        return Err(message_page(
            state,
            locale,
            Some(&admin),
            StatusCode::FORBIDDEN,
            "console.csrf.title",
            msg(state, locale, "console.csrf.body"),
            Some(Link {
                href: back_to.to_owned(),
                label: msg(state, locale, "console.csrf.back"),
            }),
        ));
    }
    Ok((admin, form))
}

/// The 403 page for a signed-in person who may not use the console. Their console
/// session ends, so the next visit starts with a sign-in.
async fn forbidden(
    state: &AppState,
    headers: &HeaderMap,
    locale: &str,
    key: &'static str,
) -> Response {
    if let Some(token) = cookies::get(headers, SESSION_COOKIE) {
        if let Err(e) = state
            .store
            .end_session(&session_hash(token), state.clock.now())
            .await
        {
            tracing::warn!(error = %e, "could not end a refused console session");
        }
    }
    let mut r = forbidden_page(state, locale, key);
    r.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(SESSION_COOKIE, state.settings.secure_cookies()),
    );
    r
}

/// "This account is not an administrator" (or disabled), with a way to sign in as
/// someone else.
pub fn forbidden_page(state: &AppState, locale: &str, key: &str) -> Response {
    message_page(
        state,
        locale,
        None,
        StatusCode::FORBIDDEN,
        "console.forbidden.title",
        msg(state, locale, key),
        Some(Link {
            href: "/console/login?prompt=login".into(),
            label: msg(state, locale, "console.forbidden.other_account"),
        }),
    )
}

/// A `Set-Cookie` for the console: HttpOnly, only sent to `/console`, and SameSite
/// as given (Strict for the session, Lax for the sign-in in progress, which comes
/// back by a redirect from the sign-in pages).
pub fn cookie(name: &str, value: &str, max_age: i64, same_site: &str, secure: bool) -> HeaderValue {
    let mut s =
        format!("{name}={value}; Path=/console; HttpOnly; SameSite={same_site}; Max-Age={max_age}");
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    cookie(name, "", 0, "Strict", secure)
}

/// The navigation's sections.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    None,
    Overview,
    Requests,
    Users,
    Flows,
    Connectors,
}

impl Section {
    fn id(self) -> &'static str {
        match self {
            Section::None => "",
            Section::Overview => "overview",
            Section::Requests => "requests",
            Section::Users => "users",
            Section::Flows => "flows",
            Section::Connectors => "connectors",
        }
    }
}

/// What every console page shows around its content: the navigation, who is signed
/// in, and the sign-out form (with its CSRF token).
#[derive(Serialize)]
struct Chrome {
    section: &'static str,
    admin: Option<String>,
    csrf: Option<String>,
}

#[derive(Serialize)]
struct Context<'a, P: Serialize> {
    title_key: &'static str,
    errors: Vec<SummaryError>,
    notice: Option<String>,
    console: Chrome,
    page: &'a P,
}

/// How one page is rendered besides its data.
pub struct View {
    pub template: &'static str,
    pub title_key: &'static str,
    pub section: Section,
    pub status: StatusCode,
    pub errors: Vec<SummaryError>,
    pub notice: Option<String>,
}

impl View {
    pub fn new(template: &'static str, title_key: &'static str, section: Section) -> Self {
        Self {
            template,
            title_key,
            section,
            status: StatusCode::OK,
            errors: Vec::new(),
            notice: None,
        }
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn notice(mut self, notice: Option<String>) -> Self {
        self.notice = notice;
        self
    }

    pub fn errors(mut self, errors: Vec<SummaryError>) -> Self {
        self.errors = errors;
        self
    }
}

pub fn render<P: Serialize>(
    state: &AppState,
    locale: &str,
    admin: Option<&Admin>,
    view: View,
    page: &P,
) -> Response {
    let ctx = Context {
        title_key: view.title_key,
        errors: view.errors,
        notice: view.notice,
        console: Chrome {
            section: view.section.id(),
            admin: admin.map(Admin::name),
            csrf: admin.map(|a| a.csrf.clone()),
        },
        page,
    };
    let mut r = pages::render(state, view.status, view.template, locale, &ctx);
    // Nobody's console in a shared cache, nor in another site's frame.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Serialize)]
pub struct Link {
    pub href: String,
    pub label: String,
}

#[derive(Serialize)]
struct Message {
    message: String,
    link: Option<Link>,
    /// Seconds before the browser goes to the link by itself.
    refresh: Option<u32>,
}

/// A page with one message and perhaps a link onwards.
pub fn message_page(
    state: &AppState,
    locale: &str,
    admin: Option<&Admin>,
    status: StatusCode,
    title_key: &'static str,
    message: String,
    link: Option<Link>,
) -> Response {
    let page = Message {
        message,
        link,
        refresh: None,
    };
    render(
        state,
        locale,
        admin,
        View::new("console_message.html", title_key, Section::None).status(status),
        &page,
    )
}

/// A page that goes on to `link` at once (and says where, for a browser that does
/// not follow the refresh).
pub fn continue_page(
    state: &AppState,
    locale: &str,
    title_key: &'static str,
    link: Link,
) -> Response {
    let page = Message {
        message: msg(state, locale, "console.signed_in.body"),
        link: Some(link),
        refresh: Some(0),
    };
    render(
        state,
        locale,
        None,
        View::new("console_message.html", title_key, Section::None),
        &page,
    )
}

/// A 404 inside the console.
pub fn not_found(state: &AppState, locale: &str, admin: &Admin, key: &str) -> Response {
    message_page(
        state,
        locale,
        Some(admin),
        StatusCode::NOT_FOUND,
        "console.not_found.title",
        msg(state, locale, key),
        None,
    )
}

/// Logs a storage (or other) failure with a reference and names the reference.
pub fn internal_message(state: &AppState, locale: &str, error: impl std::fmt::Display) -> String {
    let reference = state.new_id();
    tracing::error!(%reference, %error, "console: internal error");
    msg(state, locale, "console.error.body").replace("{reference}", &reference)
}

pub fn internal(
    state: &AppState,
    locale: &str,
    admin: Option<&Admin>,
    error: impl std::fmt::Display,
) -> Response {
    let message = internal_message(state, locale, error);
    message_page(
        state,
        locale,
        admin,
        StatusCode::INTERNAL_SERVER_ERROR,
        "console.error.title",
        message,
        None,
    )
}

pub fn msg(state: &AppState, locale: &str, key: &str) -> String {
    state.templates.catalogue().message(locale, key, &[])
}

pub fn msg_with(state: &AppState, locale: &str, key: &str, args: &[(&str, String)]) -> String {
    state.templates.catalogue().message(locale, key, args)
}

/// The notice of a `?done=` after a redirect: only known outcomes, so the query
/// cannot put words on the page.
pub fn done_notice(
    state: &AppState,
    locale: &str,
    query: &BTreeMap<String, String>,
) -> Option<String> {
    let key = match query.get("done").map(String::as_str)? {
        "approved" => "console.done.approved",
        "denied" => "console.done.denied",
        "cleared" => "console.done.cleared",
        "enabled" => "console.done.enabled",
        "disabled" => "console.done.disabled",
        "deleted" => "console.done.deleted",
        "reset_link_sent" => "console.done.reset_link_sent",
        _ => return None,
    };
    Some(msg(state, locale, key))
}

/// A time as the pages show it, and as `<time datetime>` wants it.
#[derive(Serialize, Clone)]
pub struct Time {
    pub iso: String,
    pub text: String,
}

pub fn time(t: DateTime<Utc>) -> Time {
    Time {
        iso: t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        text: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    }
}

/// A label and a value, for definition lists and tables.
#[derive(Serialize, Clone)]
pub struct Pair {
    pub label: String,
    pub value: String,
}

/// An attribute's name as an administrator knows it: the catalogue's label of a
/// built-in attribute, the display name of a custom one.
pub fn attribute_label(state: &AppState, locale: &str, id: &str) -> String {
    match BuiltInAttribute::from_id(id) {
        Some(b) => msg(state, locale, &format!("attribute.{}", b.id())),
        None => state
            .tenant()
            .attribute(id)
            .map_or_else(|| id.to_owned(), |d| d.display_name.clone()),
    }
}

/// Attribute values with their labels, in the stored (alphabetical) order.
pub fn attribute_pairs(
    state: &AppState,
    locale: &str,
    values: &usher_domain::AttributeValues,
) -> Vec<Pair> {
    values
        .iter()
        .map(|(id, v)| Pair {
            label: attribute_label(state, locale, id),
            value: v.to_form_string(),
        })
        .collect()
}

/// One identity of a user, as a table row shows it.
#[derive(Serialize, Clone)]
pub struct IdentityRow {
    pub sign_in_type: &'static str,
    pub issuer: String,
    pub issuer_assigned_id: String,
}

pub fn identity_rows(identities: &[Identity]) -> Vec<IdentityRow> {
    identities
        .iter()
        .map(|i| IdentityRow {
            sign_in_type: i.sign_in_type.as_str(),
            issuer: i.issuer.clone(),
            issuer_assigned_id: i.issuer_assigned_id.clone(),
        })
        .collect()
}

pub fn display_name(user: &User) -> String {
    user.attributes
        .get("displayName")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| user.email.clone())
        .unwrap_or_else(|| user.id.clone())
}

/// The query string of a request as a map (first value of each key).
pub fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// A path segment as it goes into a link: everything but the unreserved characters
/// percent-encoded.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_cookies_are_strict_and_scoped() {
        let c = cookie(SESSION_COOKIE, "t", 60, "Strict", true);
        let s = c.to_str().unwrap();
        assert!(s.contains("Path=/console"));
        assert!(s.contains("HttpOnly"));
        assert!(s.contains("SameSite=Strict"));
        assert!(s.ends_with("; Secure"));
        assert!(!cookie(SESSION_COOKIE, "t", 60, "Strict", false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("a-b_c.d~1"), "a-b_c.d~1");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
    }

    #[test]
    fn console_and_sso_sessions_never_share_a_key() {
        assert_ne!(session_hash("x"), sha256_hex(b"x"));
    }
}
