//! A customer's custom authentication extension on loopback: one route per event,
//! each answering from its own script, and every call's bearer token checked the
//! way Microsoft tells extension authors to — signature against the issuer's JWKS
//! (read with the `openidconnect` library, not Usher's code), `iss`, `aud`, `azp`
//! and `exp`. A call whose token fails gets 401 and is counted.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use base64::Engine as _;
use openidconnect::{
    core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm},
    JsonWebKey as _,
};
use serde_json::Value;

/// The caller id Entra (and Usher) puts in extension tokens.
pub const CALLER: &str = "99045fe1-7639-4a75-9d4a-577b6ca3810f";
pub const APP_ID: &str = "4f1b7d6e-2c3a-4e5f-8a9b-0c1d2e3f4a5b";

/// One scripted answer: status, content type and body text.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn json(body: Value) -> Self {
        Self {
            status: 200,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    /// The one action of `event`'s answer (`data.@odata.type` is
    /// `microsoft.graph.<data_type>`).
    pub fn action(data_type: &str, action: Value) -> Self {
        Self::json(serde_json::json!({
            "data": {"@odata.type": format!("microsoft.graph.{data_type}"), "actions": [action]}
        }))
    }
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, VecDeque<Answer>>,
    received: Vec<(String, HeaderMap, Value)>,
    refused: Vec<String>,
    /// Set once Usher runs: its issuer and JWKS.
    issuer: Option<String>,
    jwks: Option<CoreJsonWebKeySet>,
}

#[derive(Clone)]
pub struct ExtensionApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl ExtensionApi {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{event}", post(answer))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, inner }
    }

    /// `api://<this host>/<app id>`: the audience its tokens must name.
    pub fn resource_id(&self) -> String {
        format!("api://{}/{APP_ID}", self.base.trim_start_matches("http://"))
    }

    pub fn url(&self, event: &str) -> String {
        format!("{}/{event}", self.base)
    }

    /// Trusts tokens of `issuer`, with the keys its JWKS publishes now.
    pub async fn trust(&self, issuer: &str) {
        let jwks: CoreJsonWebKeySet = reqwest::get(format!("{issuer}/jwks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut inner = self.inner.lock().unwrap();
        inner.issuer = Some(issuer.to_owned());
        inner.jwks = Some(jwks);
    }

    /// Queues `answer` for the next call of `event`.
    pub fn then(&self, event: &str, answer: Answer) {
        self.inner
            .lock()
            .unwrap()
            .scripts
            .entry(event.to_owned())
            .or_default()
            .push_back(answer);
    }

    /// The bodies `event` received, in order.
    pub fn bodies(&self, event: &str) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|(e, _, _)| e == event)
            .map(|(_, _, b)| b.clone())
            .collect()
    }

    pub fn headers(&self, event: &str) -> Vec<HeaderMap> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|(e, _, _)| e == event)
            .map(|(_, h, _)| h.clone())
            .collect()
    }

    /// Why calls were refused (an empty list: every token was good).
    pub fn refused(&self) -> Vec<String> {
        self.inner.lock().unwrap().refused.clone()
    }
}

fn b64(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| e.to_string())
}

/// The checks of Microsoft's guidance for extension APIs.
fn check_token(inner: &Inner, headers: &HeaderMap, audience: &str) -> Result<Value, String> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no bearer token")?;
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err("not a JWS".into());
    };
    let header: Value = serde_json::from_slice(&b64(header)?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&b64(payload)?).map_err(|e| e.to_string())?;
    let alg = match header["alg"].as_str() {
        Some("ES256") => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        Some("RS256") => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        other => return Err(format!("unexpected alg {other:?}")),
    };
    let jwks = inner.jwks.as_ref().ok_or("the issuer is not trusted yet")?;
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwks
        .keys()
        .iter()
        .find(|k| k.key_id().map(|id| id.as_str()) == Some(kid))
        .ok_or("no key with that kid in the JWKS")?;
    let message = format!("{}.{}", parts[0], parts[1]);
    key.verify_signature(&alg, message.as_bytes(), &b64(signature)?)
        .map_err(|e| format!("bad signature: {e}"))?;
    if claims["iss"].as_str() != inner.issuer.as_deref() {
        return Err(format!("iss {}", claims["iss"]));
    }
    if claims["aud"].as_str() != Some(audience) {
        return Err(format!("aud {}", claims["aud"]));
    }
    if claims["azp"].as_str() != Some(CALLER) || claims["appid"].as_str() != Some(CALLER) {
        return Err(format!("azp {} appid {}", claims["azp"], claims["appid"]));
    }
    let now = chrono::Utc::now().timestamp();
    // Usher's clock in the tests is the test's: near now, and standing still.
    if claims["exp"].as_i64().is_none_or(|exp| exp < now - 3600) {
        return Err(format!("exp {}", claims["exp"]));
    }
    Ok(claims)
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let audience = format!("api://{host}/{APP_ID}");
    if let Err(why) = check_token(&inner, &headers, &audience) {
        inner.refused.push(why);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.received.push((event.clone(), headers, body));
    let answer = inner
        .scripts
        .get_mut(&event)
        .and_then(VecDeque::pop_front)
        .unwrap_or_else(|| Answer {
            status: 500,
            content_type: "text/plain",
            body: format!("nothing scripted for {event}"),
        });
    (
        StatusCode::from_u16(answer.status).unwrap(),
        [("content-type", answer.content_type)],
        answer.body,
    )
        .into_response()
}
