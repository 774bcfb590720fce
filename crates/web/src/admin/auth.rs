//! Who is calling: an admin application with an access token from Usher's own token
//! endpoint (client credentials), and what its Graph-named permissions allow.
//!
//! A token is accepted only if it is one of ours and meant for the API: signed by a
//! published key, `typ` `at+jwt`, `iss` and `aud` the issuer, not expired, and without
//! `grant_id` (tokens issued to users carry one and are never admin tokens). The
//! application must still exist, and only the permissions it still holds count: an
//! administrator who takes a permission away, or deletes the application, does not
//! have to wait an hour for its tokens to expire.

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::Value;
use usher_oidc::jose::{decode_unverified, verify_jwt, Algorithm};

use super::errors::{ApiError, ApiResult};
use crate::state::AppState;

/// What the API manages, each guarded by a Read and a ReadWrite permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Users and sign-up requests.
    Users,
    /// API connectors and their call records.
    Connectors,
    /// User flows, attributes, identity providers and applications.
    UserFlows,
    /// Custom authentication extensions (External ID's connectors).
    Extensions,
    /// Where extensions run: authentication event listeners and the user flows'
    /// event handlers.
    EventListeners,
}

impl Area {
    pub fn read_permission(self) -> &'static str {
        match self {
            Area::Users => "User.Read.All",
            Area::Connectors => "APIConnectors.Read.All",
            Area::UserFlows => "IdentityUserFlow.Read.All",
            Area::Extensions => "CustomAuthenticationExtension.Read.All",
            Area::EventListeners => "EventListener.Read.All",
        }
    }

    pub fn write_permission(self) -> &'static str {
        match self {
            Area::Users => "User.ReadWrite.All",
            Area::Connectors => "APIConnectors.ReadWrite.All",
            Area::UserFlows => "IdentityUserFlow.ReadWrite.All",
            Area::Extensions => "CustomAuthenticationExtension.ReadWrite.All",
            Area::EventListeners => "EventListener.ReadWrite.All",
        }
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (the OpenAPI document).
    Public,
    Read(Area),
    Write(Area),
}

impl Access {
    /// The permissions any one of which grants this access: ReadWrite implies Read.
    pub fn permissions(self) -> Vec<&'static str> {
        match self {
            Access::Public => Vec::new(),
            Access::Read(a) => vec![a.read_permission(), a.write_permission()],
            Access::Write(a) => vec![a.write_permission()],
        }
    }

    pub fn allows(self, roles: &[String]) -> bool {
        match self {
            Access::Public => true,
            _ => self
                .permissions()
                .iter()
                .any(|p| roles.iter().any(|r| r.eq_ignore_ascii_case(p))),
        }
    }
}

/// The authenticated caller, put in the request's extensions by [`guard`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    /// The permissions the token carries that the application still holds.
    pub roles: Vec<String>,
}

/// What [`guard`] needs for one route.
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub access: Access,
}

/// Authenticates the caller and checks the route's permission before the handler
/// runs, so no handler can forget to.
pub async fn guard(State(g): State<Guard>, mut request: Request, next: Next) -> Response {
    if g.access == Access::Public {
        return next.run(request).await;
    }
    let caller = match authenticate(&g.state, request.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !g.access.allows(&caller.roles) {
        return ApiError::forbidden(&g.access.permissions().join(" or ")).into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn invalid(reason: &str) -> ApiError {
    ApiError::unauthenticated(format!("Access token validation failure: {reason}."), true)
}

/// Verifies the bearer token (see the module documentation).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> ApiResult<Caller> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthenticated("Access token is empty.", false));
    };
    let value = value.to_str().map_err(|_| invalid("malformed header"))?;
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => {
            return Err(ApiError::unauthenticated(
                "The Authorization header must be Bearer <access token>.",
                false,
            ))
        }
    };
    if token.is_empty() {
        return Err(ApiError::unauthenticated("Access token is empty.", false));
    }
    let (header, _) = decode_unverified(token).map_err(|_| invalid("not a JWT"))?;
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
    if !(typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")) {
        return Err(invalid("not an access token"));
    }
    let keyring = state.keys.keyring().await.map_err(ApiError::internal)?;
    let claims = verify_jwt(
        token,
        &keyring.published,
        &[Algorithm::ES256, Algorithm::RS256],
    )
    .map_err(|_| invalid("the signature does not verify"))?;
    let issuer = state.settings.issuer.as_str();
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(invalid("invalid issuer"));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == issuer,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer)),
        _ => false,
    };
    if !audience_ok {
        return Err(invalid("invalid audience"));
    }
    let now = state.clock.now().timestamp();
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        _ => return Err(invalid("the token is expired")),
    }
    // A minute of leeway for clocks of instances that differ a little.
    if claims
        .get("nbf")
        .and_then(Value::as_i64)
        .is_some_and(|nbf| nbf > now + 60)
    {
        return Err(invalid("the token is not valid yet"));
    }
    if claims.contains_key("grant_id") {
        return Err(invalid(
            "a user's access token is not an application's: use the client credentials grant",
        ));
    }
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no client_id"))?;
    // An application's own token names the application as its subject; a token about
    // a user never does.
    if claims.get("sub").and_then(Value::as_str) != Some(client_id) {
        return Err(invalid("the token is not an application's"));
    }
    let tenant = state.tenant();
    let Some(app) = tenant.application(client_id) else {
        return Err(invalid("the application no longer exists"));
    };
    if app.is_public() {
        return Err(invalid("a public client has no application permissions"));
    }
    let token_roles: Vec<&str> = claims
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let roles = app
        .roles
        .iter()
        .filter(|r| token_roles.iter().any(|t| t.eq_ignore_ascii_case(r)))
        .cloned()
        .collect();
    Ok(Caller {
        client_id: app.client_id.clone(),
        roles,
    })
}
