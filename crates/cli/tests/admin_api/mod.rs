//! The admin API end to end, on SQLite and PostgreSQL: every resource and method
//! through HTTP with client-credentials tokens, permissions, errors in Graph's shape,
//! filters and paging, changes reaching running instances (this one and a second one
//! on the same database), the OpenAPI document against the routes, and the external
//! approval pattern of the connector contract (§7) with a small approval system that
//! knows only the Graph shapes.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{self, *};
use crate::{both, paste_tests};

/// Two admin applications: one with every permission, one that only reads; and
/// connectors may call loopback (the test APIs).
const ADMINS: &str = r#"
[connector_settings]
allow_insecure_targets = true
record_bodies = true

[[applications]]
client_id = "admin-all"
name = "Admin"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["User.ReadWrite.All", "APIConnectors.ReadWrite.All", "IdentityUserFlow.ReadWrite.All", "CustomAuthenticationExtension.ReadWrite.All", "EventListener.ReadWrite.All"]

[[applications]]
client_id = "reader"
name = "Reader"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["User.Read.All", "APIConnectors.Read.All", "IdentityUserFlow.Read.All", "CustomAuthenticationExtension.Read.All", "EventListener.Read.All"]
"#;

const PASSWORD: &str = "a long enough pass phrase";

/// A client of the admin API, with or without a token.
struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn anonymous(usher: &Instance) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: usher.base.clone(),
            token: None,
        }
    }

    fn with_token(usher: &Instance, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..Self::anonymous(usher)
        }
    }

    /// Signs in as `client` (secret `CONFIDENTIAL_SECRET`) with client credentials.
    async fn as_client(usher: &Instance, client: &str) -> Self {
        Self::with_token(
            usher,
            &client_token(usher, client, CONFIDENTIAL_SECRET).await,
        )
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.http.request(method, url);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        request.send().await.unwrap()
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = self.send(method, path, body).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: 500: {text}"
        );
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        };
        (status, value)
    }

    /// A GET that must answer 200.
    /// `method` with `If-Match: if_match`: the status, the body and the `ETag`.
    async fn conditional(
        &self,
        method: Method,
        path: &str,
        if_match: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("If-Match", if_match);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {text}"
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// GET of one object: its body and its `ETag` header.
    async fn tagged(&self, path: &str) -> (Value, String) {
        let r = self.send(Method::GET, path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        let tag = r
            .headers()
            .get("etag")
            .unwrap_or_else(|| panic!("GET {path}: no ETag"))
            .to_str()
            .unwrap()
            .to_owned();
        (json(r).await, tag)
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// A POST that must answer 201; returns the created object.
    async fn create(&self, path: &str, body: Value) -> Value {
        let (s, v) = self.post(path, body).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path}: {v}");
        v
    }

    /// A write that must answer 204.
    async fn done(&self, method: Method, path: &str, body: Value) {
        let (s, v) = self.call(method.clone(), path, Some(body)).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{method} {path}: {v}");
    }
}

/// A client-credentials access token.
pub(crate) async fn client_token(usher: &Instance, client: &str, secret: &str) -> String {
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body = json(r).await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {client}: {body}"))
        .to_owned()
}

/// Asserts an answer is an error in Graph's shape with this status and code.
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) -> String {
    let (s, v) = answer;
    assert_eq!(*s, status, "{v}");
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    assert!(e["innerError"]["request-id"].is_string(), "{v}");
    assert!(e["innerError"]["date"].is_string(), "{v}");
    let message = e["message"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(!message.is_empty());
    message.to_owned()
}

/// The ids of a collection's values.
fn ids(collection: &Value) -> Vec<String> {
    collection["value"]
        .as_array()
        .unwrap_or_else(|| panic!("not a collection: {collection}"))
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ext(name: &str) -> String {
    format!("extension_{EXT}_{name}")
}

/// Walks a new browser through a local sign-up at `client` up to the attribute page;
/// returns the flow's path and the page.
async fn to_attributes(
    env: &TestEnv,
    usher: &Instance,
    b: &Browser,
    client: &str,
    email: &str,
) -> (String, Page) {
    let flow = b
        .start_flow(&usher.authorize_url(client, &[("prompt", "create")]))
        .await;
    let page = b.get(&usher.url(&flow)).await;
    b.submit(
        &usher.url(&format!("{flow}/email")),
        &page,
        &[("email", email)],
    )
    .await;
    let page = b.get(&usher.url(&flow)).await;
    let code = env.code_for(email);
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = b.get(&usher.url(&flow)).await;
    let r = b
        .submit(
            &usher.url(&format!("{flow}/password")),
            &page,
            &[("password", PASSWORD), ("confirmPassword", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = b.get(&usher.url(&flow)).await;
    (flow, page)
}

/// Email one-time passcode at `client`: chooses the passcode, gives the address and
/// the code; returns the flow and the answer to the code.
async fn passcode(
    env: &TestEnv,
    usher: &Instance,
    b: &Browser,
    client: &str,
    email: &str,
) -> (String, Page) {
    let flow = b.start_flow(&usher.authorize_url(client, &[])).await;
    let page = b.get(&usher.url(&flow)).await;
    if page.body.contains("name=\"provider\"") {
        let r = b
            .submit(
                &usher.url(&format!("{flow}/provider")),
                &page,
                &[("provider", "EmailOtpSignup-OAUTH")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    }
    let page = b.get(&usher.url(&flow)).await;
    assert!(page.body.contains("name=\"email\""), "{}", page.body);
    b.submit(
        &usher.url(&format!("{flow}/email")),
        &page,
        &[("email", email)],
    )
    .await;
    let page = b.get(&usher.url(&flow)).await;
    let code = env.code_for(email);
    let r = b
        .submit(
            &usher.url(&format!("{flow}/code")),
            &page,
            &[("code", &code)],
        )
        .await;
    (flow, r)
}

/// Follows a redirect within the flow to the page it shows.
async fn settle(usher: &Instance, b: &Browser, r: Page) -> Page {
    if r.status == StatusCode::SEE_OTHER && r.location().starts_with("/flow/") {
        b.get(&usher.url(r.location())).await
    } else {
        r
    }
}
/// Two PKCS#12 client certificates (EC P-256, password `pfx-pass`), valid from 2020 and
/// 2021 to 2120 and 2121, and their SHA-1 thumbprints.
const PFX_1: &str = concat!(
    "MIIEGQIBAzCCA88GCSqGSIb3DQEHAaCCA8AEggO8MIIDuDCCAkoGCSqGSIb3DQEHBqCCAjswggI3AgEA",
    "MIICMAYJKoZIhvcNAQcBMF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBBAUz2uE2XwpwLarWLN",
    "5epfAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQTWk+qfDXgdBkmUGhCu8eTICCAcDdosve",
    "tq95Yhnnib5qGgYuVJnQ8QvhvQPzs7eyLaZFLDefwwuX6wukk+g1yUNBkrpaIh7yceLAJrd8CMnwEbsG",
    "mgZW8kzo4/OACrQUAtpwgJninSw0EXj1K0TgcOf5bRUUteoBHrMkJbkROESQjHuDNMi2+TKmsyJgngN8",
    "H34hRoEkHTLtOoSylYF/0em7XWGm3vLFWBW19EXSuUUX9dKYSeLzMr1An1fljdFyt18F+M0mfvnhJRHs",
    "HHC+pEEDh8IPzXpIlmLiAk4fgx8BhHkXw2ENN0w9gMDQs5VkLR0qNbRRc46y/vQOG9z4hdHCEbKpzTNL",
    "7in2t12wKbVaJ8TyOvZtH9gy9xu7WF8CwkOpko0cc3Qz27h+JniLh2w4HkD5+vI7hiRIKCvAUjGg2Crk",
    "2FqvTqaSTmcBTt7uAVQsiubcrL8ncnoSOJ3MRwy2q2nge3fbsno2KhtyWLA/8Pzi5B03zg0+dyL0okQi",
    "wbqBYePpEg/vh+IL7JMOF2OeakuCUqbAuhzOFO1tR6ZNjiDI/S5GSjfnPR7+E7qdEJrIURBLAYWS8vD3",
    "3lyGCczhT5eOIY4RGICbeehLvFyMCrLJMIIBZgYJKoZIhvcNAQcBoIIBVwSCAVMwggFPMIIBSwYLKoZI",
    "hvcNAQwKAQKggfcwgfQwXwYJKoZIhvcNAQUNMFIwMQYJKoZIhvcNAQUMMCQEEMzA/hNpqMeXrt9lbWAS",
    "vW4CAggAMAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBCfOL2LeJzsLIFATy2EU49nBIGQJJ85Xkp1",
    "F/fPOnQmOCH+pDl0y9fOQkBVmf+iNal8V/uqtYueT1L7bO182wzptkxK3Et5Lwn8uU/bsZCq6bKmCeW2",
    "5OjhCrOGTTv0K57DbGmSACczBN1UyU8iad84Ee5jgYWtbVpuUa7L/h59TDjxiyvKmZgRcKiuOy208UWf",
    "mHqi5l+7l3Eb8hqqlyT6tBDPMUIwGwYJKoZIhvcNAQkUMQ4eDABjAGwAaQBlAG4AdDAjBgkqhkiG9w0B",
    "CRUxFgQUpjj4BvyX5nvlbSzQSyvEkNSAyYAwQTAxMA0GCWCGSAFlAwQCAQUABCDNA6o5GIcOz1i4OqrU",
    "ocw1kK5ZsrfD+DsDhz7jrwOQgwQIpH+tg/BfQYYCAggA",
);
const PFX_2: &str = concat!(
    "MIIEGQIBAzCCA88GCSqGSIb3DQEHAaCCA8AEggO8MIIDuDCCAkoGCSqGSIb3DQEHBqCCAjswggI3AgEA",
    "MIICMAYJKoZIhvcNAQcBMF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBCOxE2zAhsKWzGAIxG7",
    "FDPAAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQFx2DteTYCFJ3cZylKc1Ye4CCAcBdwNLE",
    "ml8XSfcWmXKiPapkvl7uLEL5+GvfhQ9wJcYG3/IxHsCsYCukc3+Leq4dPolWCamFl4VXbkVJAFCOd1b1",
    "t1rsSctg+zW0GKUVbeRyiEWEKhmuHH3d8GZxim9+FlHC8RzVhU55oFyej7KrCZWTRauVg3HVKU5kds5a",
    "dbxsLxBanDPlUMpDSS7jTOLqMSF9XaFQJiie8X82iAWUuiS6mbYFuWs1hikcdPMPtKAeXBPMIHwA6uKa",
    "+XW1d6h+Gz3u5MJaA4SrIHpmOA+EDJCjO+yU7nsEDT9BmUqPHQupZKmk8s9EyUdBpyGkdtXK+CmaCu8v",
    "XOKhq8IfGUdO4uH6fXD6A7HpotG768Fo6bL+4iPbM0t6SXN9Dx2jt75qJq/8ZEu55+otPCjpWcZOXekm",
    "DmQBEyURRP/7lLcUF72hSrMA6jK8dmE5canRclSA39/RKFHWQ0SPTOGWCu8uh/1oscf6o6bKa7a1cfEr",
    "ari9bMW84NPB1eT8JCQtZfUP5LJ0VjZFJ4Lqk9FbExpfY0e/Gjg26eglRpmtJbDKcTYWh4xRY02/QYHx",
    "hOxTsIhCIuHYmQ6NipgLSaihO1p9VktHMIIBZgYJKoZIhvcNAQcBoIIBVwSCAVMwggFPMIIBSwYLKoZI",
    "hvcNAQwKAQKggfcwgfQwXwYJKoZIhvcNAQUNMFIwMQYJKoZIhvcNAQUMMCQEEEi7COnFal6boDSm6/Tr",
    "UeoCAggAMAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBAgec10g65zRMlLbsrnCajRBIGQ+1oVlTXA",
    "KKMwHB+kNbq4cqo6zbKYBDYmACCpihPYs8LNwifYkofimx3k9Z5mVQR5jJ0nuvSUjZtrg3IcLYwQkNEU",
    "8mW+HOTYnYbwy+JfL/eAmKOGIEX1LkU/A2kggW/k+X5E6KNB1kKFschI54nVnR69EH308K2oSANOxGRk",
    "4dQmEL8LL4J3dWH++kWrvL9XMUIwGwYJKoZIhvcNAQkUMQ4eDABjAGwAaQBlAG4AdDAjBgkqhkiG9w0B",
    "CRUxFgQU3sXdCJH0+crcOuH2DMcoOO99988wQTAxMA0GCWCGSAFlAwQCAQUABCCSiVTf6jVDDGBxhKdD",
    "NmLOWsI/KLTtSn8ynSgum6zBxgQIMMoYR0grMv4CAggA",
);
const THUMBPRINT_1: &str = "A638F806FC97E67BE56D2CD04B2BC490D480C980";
const THUMBPRINT_2: &str = "DEC5DD0891F4F9CADC3AE1F60CC72838EF7DF7CF";

both!(admin_api_authenticates_and_answers_errors_in_graph_shape);
async fn admin_api_authenticates_and_answers_errors_in_graph_shape(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;

    // No token: 401 with a Bearer challenge.
    let r = Api::anonymous(&usher)
        .send(Method::GET, "/v1.0/users", None)
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    assert!(r.headers().get("request-id").is_some());
    let answer = (r.status(), json(r).await);
    assert_error(
        &answer,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );
    let garbage = Api::with_token(&usher, "not.a.token");
    assert_error(
        &garbage.call(Method::GET, "/v1.0/users", None).await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );

    // A token whose signature was altered.
    let token = client_token(&usher, "admin-all", CONFIDENTIAL_SECRET).await;
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_error(
        &Api::with_token(&usher, &tampered)
            .call(Method::GET, "/v1.0/users", None)
            .await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );

    // A user's tokens from a sign-up are not admin tokens.
    let callback = Browser::new()
        .sign_up(
            &usher,
            &usher.authorize_url(PUBLIC_CLIENT, &[]),
            "someone@example.com",
            PASSWORD,
            &[("displayName", "Someone")],
        )
        .await;
    let tokens = usher.redeem_public(&query(&callback)["code"]).await;
    for t in ["access_token", "id_token"] {
        let user = Api::with_token(&usher, tokens[t].as_str().unwrap());
        let answer = user.call(Method::GET, "/v1.0/users", None).await;
        assert_error(
            &answer,
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
        );
    }

    // Read permissions read; writing needs ReadWrite: 403.
    let admin = Api::with_token(&usher, &token);
    let reader = Api::as_client(&usher, "reader").await;
    reader.get("/v1.0/identity/apiConnectors").await;
    reader.get("/v1.0/users").await;
    reader.get("/v1.0/identity/b2xUserFlows").await;
    let message = assert_error(
        &reader
            .post(
                "/v1.0/identity/apiConnectors",
                json!({"displayName": "x", "targetUrl": "https://api.example.com/x"}),
            )
            .await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    assert!(message.contains("APIConnectors.ReadWrite.All"), "{message}");
    assert_error(
        &reader.delete("/v1.0/users/whoever").await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    // The test configuration's confidential client may only read users.
    let users_only = Api::as_client(&usher, CONFIDENTIAL_CLIENT).await;
    users_only.get("/v1.0/users").await;
    assert_error(
        &users_only
            .call(Method::GET, "/v1.0/identity/apiConnectors", None)
            .await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    // A permission taken away counts at once, not when the token expires.
    admin
        .done(
            Method::PATCH,
            "/v1.0/applications/reader",
            json!({"roles": ["User.Read.All"]}),
        )
        .await;
    assert_error(
        &reader
            .call(Method::GET, "/v1.0/identity/apiConnectors", None)
            .await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    reader.get("/v1.0/users").await;

    // Bad bodies: 400 naming what is wrong, never a 500.
    let r = admin
        .http
        .post(usher.url("/v1.0/identity/apiConnectors"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let answer = (r.status(), json(r).await);
    assert_error(&answer, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let message = assert_error(
        &admin
            .post("/v1.0/identity/apiConnectors", json!([1, 2]))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert!(message.contains("JSON object"), "{message}");
    let message = assert_error(
        &admin
            .post(
                "/v1.0/identity/apiConnectors",
                json!({"displayName": "x", "targetUrl": "https://api.example.com/x", "colour": "red"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert!(message.contains("'colour'"), "{message}");
    let message = assert_error(
        &admin
            .post(
                "/v1.0/identity/apiConnectors",
                json!({"displayName": 5, "targetUrl": "https://api.example.com/x"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert!(message.contains("'displayName'"), "{message}");
    let message = assert_error(
        &admin
            .post("/v1.0/users", json!({"accountEnabled": "yes"}))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert!(message.contains("'accountEnabled'"), "{message}");
    // Not JSON at all, and too large.
    let r = admin
        .http
        .post(usher.url("/v1.0/users"))
        .bearer_auth(&token)
        .form(&[("mail", "a@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json(r).await["error"]["code"].is_string());
    let big = json!({"displayName": "x".repeat(200_000)});
    let (s, v) = admin.post("/v1.0/users", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"]["code"].is_string());

    // Unknown resources and methods, in Graph's shape too.
    assert_error(
        &admin.call(Method::GET, "/v1.0/nothing/here", None).await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    assert_error(
        &admin
            .call(Method::GET, "/v1.0/identity/apiConnectors/x/bogus", None)
            .await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    let r = admin
        .send(Method::DELETE, "/v1.0/identity/apiConnectors", None)
        .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().get("allow").is_some());
    assert!(json(r).await["error"]["code"].is_string());
    assert_error(
        &admin
            .call(Method::GET, "/v1.0/users/no-such-user", None)
            .await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    // Query options Usher does not implement are refused, not ignored.
    for q in [
        "$orderby=displayName",
        "$count=true",
        "$top=0",
        "$top=1000",
        "$filter=mail eq 'a@example.com' or mail eq 'b@example.com'",
        "$filter=jobTitle eq 'x'",
        "$filter=mail eq",
        "$select=nonsense",
    ] {
        let (s, v) = admin
            .call(Method::GET, &format!("/v1.0/users?{q}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert!(
            v["error"]["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("Request_")),
            "{q}: {v}"
        );
    }
    env.finish(usher).await;
}

both!(api_connectors_are_managed_and_their_calls_listed);
async fn api_connectors_are_managed_and_their_calls_listed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(
        200,
        json!({"version": "1.0.0", "action": "Continue"}),
    )])
    .await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;

    // Basic authentication: created, read back masked.
    let created = admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({
                "displayName": "Check",
                "targetUrl": api.url,
                "authenticationConfiguration": {
                    "@odata.type": "#microsoft.graph.basicAuthentication",
                    "username": "usher", "password": "s3cret-pass-1"},
            }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["displayName"], "Check");
    assert_eq!(
        created["authenticationConfiguration"]["@odata.type"],
        "#microsoft.graph.basicAuthentication"
    );
    assert_eq!(created["authenticationConfiguration"]["password"], "******");
    let path = format!("/v1.0/identity/apiConnectors/{id}");
    let read = admin.get(&path).await;
    assert!(!read.to_string().contains("s3cret-pass-1"), "{read}");
    assert_eq!(read["usherTimeoutMs"], 10_000);
    assert_eq!(read["usherRetries"], 1);
    assert!(ids(&admin.get("/v1.0/identity/apiConnectors").await).contains(&id));
    let selected = admin
        .get("/v1.0/identity/apiConnectors?$select=id,displayName")
        .await;
    assert!(
        selected["value"][0].get("targetUrl").is_none(),
        "{selected}"
    );

    // PATCH: ****** keeps the stored password; the other changes are made.
    admin
        .done(
            Method::PATCH,
            &path,
            json!({
                "displayName": "Checker", "usherTimeoutMs": 3000, "usherBudgetMs": 3000,
                "usherRetries": 0,
                "authenticationConfiguration": {
                    "@odata.type": "#microsoft.graph.basicAuthentication",
                    "username": "usher2", "password": "******"},
            }),
        )
        .await;
    let read = admin.get(&path).await;
    assert_eq!(read["displayName"], "Checker");
    assert_eq!(read["usherRetries"], 0);
    assert_eq!(read["authenticationConfiguration"]["username"], "usher2");
    // …but not while the connector moves: the secret would go somewhere new.
    let (status, error) = admin
        .patch(
            &path,
            json!({"targetUrl": "https://elsewhere.example.com/api",
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.basicAuthentication",
                    "username": "usher2", "password": "******"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(admin.get(&path).await["targetUrl"], read["targetUrl"]);

    // On the e2e flow's postAttributeCollection step, the next sign-up calls it with
    // the kept password.
    let step = "/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration/postAttributeCollection/$ref";
    admin
        .done(
            Method::PUT,
            step,
            json!({"@odata.id": format!("{}/v1.0/identity/apiConnectors/{id}", usher.issuer)}),
        )
        .await;
    let configuration = admin
        .get("/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration?$expand=postFederationSignup,postAttributeCollection")
        .await;
    assert_eq!(configuration["postAttributeCollection"]["id"], id.as_str());
    assert!(configuration["postFederationSignup"].is_null());
    assert_eq!(
        configuration["usherConnectors"]["postAttributeCollection"],
        json!([id])
    );
    Browser::new()
        .sign_up(
            &usher,
            &usher.authorize_url(PUBLIC_CLIENT, &[]),
            "called@example.com",
            PASSWORD,
            &[("displayName", "Called")],
        )
        .await;
    let headers = api.headers();
    assert_eq!(headers.len(), 1, "the connector was called once");
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("usher2:s3cret-pass-1")
    );
    assert_eq!(headers[0]["authorization"], expected.as_str());

    // Its call records.
    let calls = admin.get(&format!("{path}/calls")).await;
    let records = calls["value"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{calls}");
    assert_eq!(records[0]["connectorId"], id.as_str());
    assert_eq!(records[0]["outcome"], "continue");
    assert_eq!(records[0]["step"], "PostAttributeCollection");
    assert_eq!(records[0]["userFlowId"], "B2X_1_e2e");
    assert!(records[0]["createdDateTime"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let later = (chrono::Utc::now() + chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let earlier = (chrono::Utc::now() - chrono::Duration::hours(2))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (filter, expected) in [
        (format!("connectorId eq '{id}'"), 1),
        (
            format!("connectorId eq '{id}' and outcome eq 'continue'"),
            1,
        ),
        ("outcome eq 'failed'".to_owned(), 0),
        (
            format!("createdDateTime ge {earlier} and createdDateTime lt {later}"),
            1,
        ),
        (format!("createdDateTime ge {later}"), 0),
        (format!("createdDateTime lt {earlier}"), 0),
    ] {
        let page = admin
            .get(&format!("/v1.0/usher/connectorCalls?$filter={filter}"))
            .await;
        assert_eq!(
            page["value"].as_array().unwrap().len(),
            expected,
            "{filter}: {page}"
        );
    }
    let page = admin.get("/v1.0/usher/connectorCalls?$top=1").await;
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    assert_error(
        &admin
            .call(
                Method::GET,
                "/v1.0/usher/connectorCalls?$filter=outcome eq 'maybe'",
                None,
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
    );

    // In use: 409 naming the flow; cleared with {}, then it can go.
    let message = assert_error(
        &admin.delete(&path).await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(message.contains("B2X_1_e2e"), "{message}");
    admin.done(Method::PUT, step, json!({})).await;
    admin.done(Method::DELETE, &path, Value::Null).await;
    assert_error(
        &admin.call(Method::GET, &path, None).await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );

    // Client certificates: the list, the newest valid one active.
    let cert = admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({
                "id": "cert-api", "displayName": "Cert", "targetUrl": api.url,
                "authenticationConfiguration": {
                    "@odata.type": "#microsoft.graph.pkcs12Certificate",
                    "pkcs12Value": PFX_1, "password": "pfx-pass"},
            }),
        )
        .await;
    assert_eq!(cert["id"], "cert-api");
    let auth = &cert["authenticationConfiguration"];
    assert_eq!(
        auth["@odata.type"],
        "#microsoft.graph.clientCertificateAuthentication"
    );
    assert_eq!(auth["certificateList"][0]["thumbprint"], THUMBPRINT_1);
    assert_eq!(auth["certificateList"][0]["notBefore"], 1_577_836_800);
    assert_eq!(auth["certificateList"][0]["isActive"], true);
    assert!(!cert.to_string().contains(PFX_1), "the file is write-only");
    let (s, updated) = admin
        .post(
            "/v1.0/identity/apiConnectors/CERT-API/uploadClientCertificate",
            json!({"pkcs12Value": PFX_2, "password": "pfx-pass"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{updated}");
    let list = updated["authenticationConfiguration"]["certificateList"]
        .as_array()
        .unwrap();
    assert_eq!(list.len(), 2);
    let active: Vec<&Value> = list.iter().filter(|c| c["isActive"] == true).collect();
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0]["thumbprint"], THUMBPRINT_2,
        "the newest one is used"
    );
    let message = assert_error(
        &admin
            .post(
                "/v1.0/identity/apiConnectors/cert-api/uploadClientCertificate",
                json!({"pkcs12Value": PFX_2, "password": "wrong"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert!(message.contains("pkcs12Value"), "{message}");
    assert_error(
        &admin
            .post(
                "/v1.0/identity/apiConnectors/cert-api/uploadClientCertificate",
                json!({"pkcs12Value": "%%%", "password": ""}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );

    // Usher's extensions: API key, client-credentials bearer, signing, policies.
    let keyed = admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({
                "id": "keyed", "displayName": "Keyed", "targetUrl": api.url,
                "usherApiKey": {"header": "x-api-key", "value": "k-123456"},
                "usherSigningSecrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "usherFailurePolicy": "continue", "usherLenient": true,
                "usherBreaker": {"failureThreshold": 3, "openSeconds": 10},
            }),
        )
        .await;
    assert_eq!(
        keyed["usherApiKey"],
        json!({"header": "x-api-key", "value": "******"})
    );
    assert_eq!(keyed["usherSigningSecrets"], json!(["******"]));
    assert!(keyed["authenticationConfiguration"].is_null());
    assert_eq!(keyed["usherFailurePolicy"], "continue");
    assert_eq!(keyed["usherLenient"], true);
    assert_eq!(keyed["usherBreaker"]["failureThreshold"], 3);
    assert!(!keyed.to_string().contains("k-123456"));
    // Secrets sent back as read keep their values; null removes the key.
    admin
        .done(
            Method::PATCH,
            "/v1.0/identity/apiConnectors/keyed",
            json!({"usherSigningSecrets": ["******", "whsec_c2Vjb25kIHNlY3JldCB3aXRoIDI0IGJ5dGVzIG9r"]}),
        )
        .await;
    let read = admin.get("/v1.0/identity/apiConnectors/keyed").await;
    assert_eq!(read["usherSigningSecrets"], json!(["******", "******"]));
    admin
        .done(
            Method::PATCH,
            "/v1.0/identity/apiConnectors/keyed",
            json!({"usherApiKey": null}),
        )
        .await;
    let read = admin.get("/v1.0/identity/apiConnectors/keyed").await;
    assert!(read["usherApiKey"].is_null() && read["authenticationConfiguration"].is_null());
    let bearer = admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({
                "displayName": "Bearer", "targetUrl": "https://api.example.com/check",
                "usherOAuthClientCredentials": {
                    "tokenUrl": "https://login.example.com/token", "clientId": "usher",
                    "clientSecret": "oauth-secret-1", "scope": "api://check/.default"},
            }),
        )
        .await;
    assert_eq!(
        bearer["usherOAuthClientCredentials"]["clientSecret"],
        "******"
    );
    assert_eq!(
        bearer["usherOAuthClientCredentials"]["scope"],
        "api://check/.default"
    );

    // What is refused, by name.
    for (body, property) in [
        (
            json!({"displayName": "x", "targetUrl": "ftp://api.example.com/x"}),
            "targetUrl",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x", "usherTimeoutMs": 5000, "usherBudgetMs": 1000}),
            "usherBudgetMs",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x", "usherRetries": 9}),
            "usherRetries",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x", "usherFailurePolicy": "maybe"}),
            "usherFailurePolicy",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x",
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.basicAuthentication", "username": "u"}}),
            "authenticationConfiguration.password",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x",
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.basicAuthentication", "username": "u", "password": "p"},
                "usherApiKey": {"header": "x-api-key", "value": "v"}}),
            "give only one",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x", "usherApiKey": {"header": "Authorization", "value": "v"}}),
            "usherApiKey.header",
        ),
        (
            json!({"displayName": "x", "targetUrl": "https://api.example.com/x", "usherSigningSecrets": ["short"]}),
            "usherSigningSecrets",
        ),
        (
            json!({"targetUrl": "https://api.example.com/x"}),
            "displayName",
        ),
    ] {
        let message = assert_error(
            &admin
                .post("/v1.0/identity/apiConnectors", body.clone())
                .await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }
    assert_error(
        &admin
            .post(
                "/v1.0/identity/apiConnectors",
                json!({"id": "Keyed", "displayName": "x", "targetUrl": "https://api.example.com/x"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    env.finish(usher).await;
}

both!(a_connector_behind_a_private_ca_gets_its_root_through_the_api);
async fn a_connector_behind_a_private_ca_gets_its_root_through_the_api(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let mtls = harness::mtls::MtlsApi::start().await;
    // The connector (mutual TLS, from the file) does not trust the test CA yet; only
    // loopback is opened, for the test server.
    let admins = ADMINS.replace(
        "allow_insecure_targets = true",
        "allow_loopback_targets = true",
    );
    let (settings, rest) = admins.split_once("[[applications]]").unwrap();
    let usher = env
        .start_with(&format!(
            r#"{settings}
[[connectors]]
id = "company"
target_url = "{url}"
retries = 0
[connectors.authentication]
type = "clientCertificate"
[[connectors.authentication.certificates]]
pem = """
{cert}"""
key = {{ value = """
{key}""" }}

[user_flows.connectors]
post_attribute_collection = ["company"]

[[applications]]{rest}"#,
            url = mtls.url,
            cert = mtls.client_cert_pem,
            key = mtls.client_key_pem,
        ))
        .await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let path = "/v1.0/identity/apiConnectors/company";
    assert_eq!(
        admin.get(path).await["usherExtraRootCertificates"],
        json!([])
    );

    // Wrong material is refused in Graph's shape, and nothing changes.
    for (pem, why) in [
        (
            "not a certificate".to_owned(),
            "at least one PEM certificate",
        ),
        (mtls.client_key_pem.clone(), "private key"),
    ] {
        let answer = admin
            .patch(path, json!({"usherExtraRootCertificates": [pem]}))
            .await;
        let message = assert_error(&answer, StatusCode::BAD_REQUEST, "Request_BadRequest");
        assert!(
            message.contains("usherExtraRootCertificates") && message.contains(why),
            "{message}"
        );
        assert!(!message.contains("PRIVATE KEY"), "{message}");
    }
    let answer = admin
        .patch(path, json!({"usherExtraRootCertificates": "one string"}))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert_eq!(
        admin.get(path).await["usherExtraRootCertificates"],
        json!([])
    );

    // With the CA as the connector's root, the next sign-up calls it over mutual TLS.
    admin
        .done(
            Method::PATCH,
            path,
            json!({"usherExtraRootCertificates": [format!("Contoso root\n{}", mtls.ca_pem)]}),
        )
        .await;
    let read = admin.get(path).await;
    let roots = read["usherExtraRootCertificates"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{read}");
    assert!(roots[0]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----\n"));
    Browser::new()
        .sign_up(
            &usher,
            &usher.authorize_url(PUBLIC_CLIENT, &[]),
            "company@example.com",
            PASSWORD,
            &[("displayName", "Company")],
        )
        .await;
    assert_eq!(mtls.mutual_tls_connections(), 1);
    let calls = admin.get(&format!("{path}/calls")).await;
    assert_eq!(calls["value"][0]["outcome"], "continue", "{calls}");

    // null clears it.
    admin
        .done(
            Method::PATCH,
            path,
            json!({"usherExtraRootCertificates": null}),
        )
        .await;
    assert_eq!(
        admin.get(path).await["usherExtraRootCertificates"],
        json!([])
    );
    env.finish(usher).await;
}

both!(user_flows_attributes_and_their_page_are_managed);
async fn user_flows_attributes_and_their_page_are_managed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;

    // Attributes: built-in ones listed, a custom one created.
    let all = admin.get("/v1.0/identity/userFlowAttributes").await;
    let city = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "city")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(city["userFlowAttributeType"], "builtIn");
    assert_eq!(city["dataType"], "string");
    let shoe = admin
        .get(&format!(
            "/v1.0/identity/userFlowAttributes/{}",
            ext("ShoeSize")
        ))
        .await;
    assert_eq!(shoe["dataType"], "int64");
    assert_eq!(shoe["userFlowAttributeType"], "custom");
    admin.get("/v1.0/identity/userFlowAttributes/City").await;
    let hobby = admin
        .create(
            "/v1.0/identity/userFlowAttributes",
            json!({"displayName": "Hobby", "description": "Your hobby", "dataType": "string"}),
        )
        .await;
    assert_eq!(hobby["id"], ext("Hobby"));
    assert_eq!(hobby["userFlowAttributeType"], "custom");
    let custom = admin
        .get("/v1.0/identity/userFlowAttributes?$filter=userFlowAttributeType eq 'custom'")
        .await;
    assert!(ids(&custom).contains(&ext("Hobby")));
    assert!(!ids(&custom).contains(&"city".to_owned()));
    assert_error(
        &admin
            .post(
                "/v1.0/identity/userFlowAttributes",
                json!({"displayName": "hobby", "dataType": "string"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    for (body, property) in [
        (
            json!({"displayName": "Shoe Size", "dataType": "string"}),
            "displayName",
        ),
        (
            json!({"displayName": "Age", "dataType": "decimal"}),
            "dataType",
        ),
        (json!({"displayName": "Age"}), "dataType"),
    ] {
        let message = assert_error(
            &admin
                .post("/v1.0/identity/userFlowAttributes", body.clone())
                .await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }
    let hobby_path = format!("/v1.0/identity/userFlowAttributes/{}", ext("Hobby"));
    admin
        .done(
            Method::PATCH,
            &hobby_path,
            json!({"description": "What you do for fun"}),
        )
        .await;
    assert_eq!(
        admin.get(&hobby_path).await["description"],
        "What you do for fun"
    );
    assert_error(
        &admin
            .patch(&hobby_path, json!({"dataType": "boolean"}))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert_error(
        &admin
            .patch(
                "/v1.0/identity/userFlowAttributes/city",
                json!({"description": "x"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert_error(
        &admin.delete("/v1.0/identity/userFlowAttributes/city").await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    // In use by the e2e flow's page.
    let message = assert_error(
        &admin
            .delete(&format!(
                "/v1.0/identity/userFlowAttributes/{}",
                ext("Team")
            ))
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(message.contains("B2X_1_e2e"), "{message}");

    // A user flow, as Graph creates one.
    let flow = admin
        .create(
            "/v1.0/identity/b2xUserFlows",
            json!({"id": "Partner", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1,
                "identityProviders": [{"id": "emailotpsignup-oauth"}]}),
        )
        .await;
    assert_eq!(
        flow,
        json!({"id": "B2X_1_Partner", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1,
            "usherRequiresApproval": false, "usherClaims": ["email"]})
    );
    assert!(
        ids(&admin.get("/v1.0/identity/b2xUserFlows").await).contains(&"B2X_1_Partner".to_owned())
    );
    let partner = "/v1.0/identity/b2xUserFlows/B2X_1_Partner";
    assert_eq!(admin.get(partner).await["id"], "B2X_1_Partner");
    assert_eq!(
        admin.get("/v1.0/identity/b2xUserFlows/b2x_1_partner").await["id"],
        "B2X_1_Partner",
        "ids ignore case"
    );
    assert_error(
        &admin
            .post(
                "/v1.0/identity/b2xUserFlows",
                json!({"id": "B2X_1_partner", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    for (body, property) in [
        (
            json!({"id": "X", "userFlowType": "signIn", "userFlowTypeVersion": 1}),
            "userFlowType",
        ),
        (
            json!({"id": "X", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 3}),
            "userFlowTypeVersion",
        ),
        (json!({"id": "a b", "userFlowType": "signUpOrSignIn"}), "id"),
        (
            json!({"id": "X", "userFlowType": "signUpOrSignIn", "identityProviders": [{"id": "Nope-OAUTH"}]}),
            "identityProviders",
        ),
        (
            json!({"id": "X", "userFlowType": "signUpOrSignIn", "apiConnectorConfiguration": {
            "postAttributeCollection": {"@odata.id": "https://x/v1.0/identity/apiConnectors/none"}}}),
            "@odata.id",
        ),
    ] {
        let message = assert_error(
            &admin
                .post("/v1.0/identity/b2xUserFlows", body.clone())
                .await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }

    // Its identity providers.
    let providers = admin.get(&format!("{partner}/identityProviders")).await;
    assert_eq!(ids(&providers), ["EmailOtpSignup-OAUTH"]);
    assert_eq!(
        providers["value"][0]["@odata.type"],
        "#microsoft.graph.builtInIdentityProvider"
    );
    admin
        .done(
            Method::POST,
            &format!("{partner}/identityProviders/$ref"),
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/identity/identityProviders/EmailPassword-OAUTH"}),
        )
        .await;
    assert_eq!(
        ids(&admin.get(&format!("{partner}/identityProviders")).await),
        ["EmailOtpSignup-OAUTH", "EmailPassword-OAUTH"]
    );
    assert_error(
        &admin
            .post(
                &format!("{partner}/identityProviders/$ref"),
                json!({"@odata.id": "identityProviders/EmailPassword-OAUTH"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert_error(
        &admin
            .post(
                &format!("{partner}/identityProviders/$ref"),
                json!({"@odata.id": "identityProviders/Nope-OAUTH"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    admin
        .done(
            Method::DELETE,
            &format!("{partner}/identityProviders/emailotpsignup-oauth/$ref"),
            Value::Null,
        )
        .await;
    assert_error(
        &admin
            .delete(&format!(
                "{partner}/identityProviders/EmailPassword-OAUTH/$ref"
            ))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert_error(
        &admin
            .delete(&format!(
                "{partner}/identityProviders/EmailOtpSignup-OAUTH/$ref"
            ))
            .await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );

    // The attribute page: Graph's default, then assignments added, changed, ordered.
    let assignments = format!("{partner}/userAttributeAssignments");
    assert_eq!(ids(&admin.get(&assignments).await), ["displayName"]);
    let added = admin
        .create(
            &assignments,
            json!({"isOptional": false, "requiresVerification": false, "userInputType": "TextBox",
                "displayName": "Your hobby", "userAttributeValues": [],
                "userAttribute": {"id": ext("Hobby")}}),
        )
        .await;
    assert_eq!(added["id"], ext("Hobby"));
    assert_eq!(added["userInputType"], "textBox");
    assert_eq!(added["displayName"], "Your hobby");
    admin
        .create(
            &assignments,
            json!({"userInputType": "dropdownSingleSelect", "isOptional": true,
                "userAttributeValues": [{"name": "Oslo", "value": "OSL", "isDefault": true},
                    {"name": "Bergen", "value": "BGO", "isDefault": false}],
                "userAttribute": {"id": "City"}, "usherLabels": {"en": "City", "nb": "By"}}),
        )
        .await;
    let city = admin
        .get(&format!("{assignments}/city?$expand=userAttribute"))
        .await;
    assert_eq!(city["userAttributeValues"][1]["value"], "BGO");
    assert_eq!(city["usherLabels"]["nb"], "By");
    assert_eq!(city["userAttribute"]["userFlowAttributeType"], "builtIn");
    assert_eq!(
        ids(&admin.get(&assignments).await),
        ["displayName", ext("Hobby").as_str(), "city"]
    );
    admin
        .done(
            Method::PATCH,
            &format!("{assignments}/{}", ext("Hobby")),
            json!({"isOptional": true, "usherIsClaim": false}),
        )
        .await;
    let hobby_on_page = admin.get(&format!("{assignments}/extension_Hobby")).await;
    assert_eq!(hobby_on_page["isOptional"], true);
    assert_eq!(hobby_on_page["usherIsClaim"], false);
    for (body, property) in [
        (json!({"userAttribute": {"id": "email"}}), "userAttribute"),
        (json!({"userAttribute": {"id": "nothing"}}), "userAttribute"),
        (
            json!({"userAttribute": {"id": ext("ShoeSize")}, "userInputType": "textBox"}),
            "userInputType",
        ),
        (
            json!({"userAttribute": {"id": "jobTitle"}, "userInputType": "radioSingleSelect"}),
            "userAttributeValues",
        ),
        (
            json!({"userAttribute": {"id": "jobTitle"}, "requiresVerification": true}),
            "requiresVerification",
        ),
        (
            json!({"userAttribute": {"id": "jobTitle"}, "userInputType": "dateTimeDropdown"}),
            "userInputType",
        ),
        (
            json!({"userAttribute": {"id": ext("ShoeSize")}, "userInputType": "dropdownSingleSelect",
            "userAttributeValues": [{"name": "Big", "value": "XL"}]}),
            "value",
        ),
    ] {
        let message = assert_error(
            &admin.post(&assignments, body.clone()).await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }
    assert_error(
        &admin
            .post(&assignments, json!({"userAttribute": {"id": "CITY"}}))
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    let order = format!("{assignments}/setOrder");
    admin
        .done(
            Method::PUT,
            &order,
            json!({"newAssignmentOrder": {"order": ["City", "displayName", ext("Hobby")]}}),
        )
        .await;
    assert_eq!(
        ids(&admin.get(&assignments).await),
        ["city", "displayName", ext("Hobby").as_str()]
    );
    for order_list in [
        json!(["City", "displayName"]),
        json!(["City", "city", "displayName"]),
        json!(["City", "displayName", "surname"]),
    ] {
        assert_error(
            &admin
                .put(&order, json!({"newAssignmentOrder": {"order": order_list}}))
                .await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
    }
    admin
        .done(Method::DELETE, &format!("{assignments}/City"), Value::Null)
        .await;
    assert_eq!(
        ids(&admin.get(&assignments).await),
        ["displayName", ext("Hobby").as_str()]
    );
    // Now the custom attribute is in use.
    assert_error(
        &admin.delete(&hobby_path).await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );

    // Connector configuration: Graph's one per step, Usher's ordered lists.
    for id in ["first", "second"] {
        admin
            .create(
                "/v1.0/identity/apiConnectors",
                json!({"id": id, "displayName": id, "targetUrl": "https://api.example.com/check"}),
            )
            .await;
    }
    admin
        .done(
            Method::PUT,
            &format!("{partner}/apiConnectorConfiguration/postFederationSignup/$ref"),
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/identity/apiConnectors/FIRST"}),
        )
        .await;
    admin
        .done(
            Method::PATCH,
            &format!("{partner}/apiConnectorConfiguration"),
            json!({"usherConnectors": {"postAttributeCollection": ["second", "first"], "preTokenIssuance": ["second"]}}),
        )
        .await;
    let configuration = admin
        .get(&format!("{partner}/apiConnectorConfiguration?$expand=postFederationSignup,postAttributeCollection,preTokenIssuance"))
        .await;
    assert_eq!(configuration["postFederationSignup"]["id"], "first");
    assert_eq!(configuration["postAttributeCollection"]["id"], "second");
    assert_eq!(
        configuration["usherConnectors"],
        json!({"postFederationSignup": ["first"], "attributeCollectionStart": [], "postAttributeCollection": ["second", "first"], "preTokenIssuance": ["second"], "emailOtpSend": [], "preAccountRecovery": [], "onProfileUpdate": []})
    );
    let plain = admin
        .get(&format!("{partner}/apiConnectorConfiguration"))
        .await;
    assert!(
        plain.get("postFederationSignup").is_none(),
        "only with $expand"
    );
    assert_error(
        &admin
            .put(
                &format!("{partner}/apiConnectorConfiguration/preTokenIssuance/$ref"),
                json!({"@odata.id": "https://x/v1.0/identity/apiConnectors/none"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    admin
        .done(
            Method::PUT,
            &format!("{partner}/apiConnectorConfiguration/preTokenIssuance/$ref"),
            json!({}),
        )
        .await;
    assert_eq!(
        admin
            .get(&format!("{partner}/apiConnectorConfiguration"))
            .await["usherConnectors"]["preTokenIssuance"],
        json!([])
    );

    // Usher's extensions on the flow.
    admin
        .done(
            Method::PATCH,
            partner,
            json!({"usherRequiresApproval": true, "usherClaims": ["email", "jobTitle"]}),
        )
        .await;
    let read = admin.get(partner).await;
    assert_eq!(read["usherRequiresApproval"], true);
    assert_eq!(read["usherClaims"], json!(["email", "jobTitle"]));
    for body in [
        json!({"userFlowType": "signIn"}),
        json!({"usherClaims": ["displayName"]}),
        json!({"usherClaims": ["nothing"]}),
        json!({"usherRequiresApproval": "yes"}),
    ] {
        assert_error(
            &admin.patch(partner, body).await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
    }

    // A flow an application uses cannot go; one no application uses can.
    let message = assert_error(
        &admin.delete("/v1.0/identity/b2xUserFlows/B2X_1_e2e").await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(message.contains("application"), "{message}");
    admin.done(Method::DELETE, partner, Value::Null).await;
    assert_error(
        &admin.call(Method::GET, partner, None).await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    // With the flow gone, the attribute is free to go.
    admin.done(Method::DELETE, &hobby_path, Value::Null).await;
    env.finish(usher).await;
}

/// The positions of each field on a page, in page order.
fn field_order(body: &str, ids: &[String]) -> Vec<usize> {
    ids.iter()
        .map(|id| {
            body.find(&format!("name=\"{id}\""))
                .unwrap_or_else(|| panic!("no field {id} on the page"))
        })
        .collect()
}

both!(changes_reach_the_next_step_on_every_instance);
async fn changes_reach_the_next_step_on_every_instance(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let api = harness::api::TestApi::start(vec![(
        200,
        json!({"version": "1.0.0", "action": "Continue", "jobTitle": "ignored"}),
    )])
    .await;
    let one = env.start_with(ADMINS).await;
    let two = env.start_with(ADMINS).await;
    let admin_one = Api::as_client(&one, "admin-all").await;
    let admin_two = Api::as_client(&two, "admin-all").await;

    // Both instances serve a page before the change: the configured order.
    let b = Browser::new();
    let (_, page) = to_attributes(&env, &two, &b, PUBLIC_CLIENT, "before@example.com").await;
    let configured: Vec<String> = ["displayName", "givenName", "surname", "city"]
        .map(str::to_owned)
        .to_vec();
    let at = field_order(&page.body, &configured);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");

    // A connector through instance one; a sign-up on instance two calls it.
    admin_one
        .create(
            "/v1.0/identity/apiConnectors",
            json!({"id": "gate", "displayName": "Gate", "targetUrl": api.url, "usherRetries": 0}),
        )
        .await;
    admin_one
        .done(
            Method::PUT,
            "/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration/postAttributeCollection/$ref",
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/identity/apiConnectors/gate"}),
        )
        .await;
    let b = Browser::new();
    let (flow, page) = to_attributes(&env, &two, &b, PUBLIC_CLIENT, "gated@example.com").await;
    let r = b
        .submit(
            &two.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Gated")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK));
    let bodies = api.bodies();
    assert_eq!(
        bodies.len(),
        1,
        "instance two ran the connector set on instance one"
    );
    assert_eq!(bodies[0]["email"], "gated@example.com");
    assert_eq!(bodies[0]["step"], "PostAttributeCollection");
    // And instance one too, on its next step.
    let b = Browser::new();
    let (flow, page) = to_attributes(&env, &one, &b, PUBLIC_CLIENT, "gated2@example.com").await;
    b.submit(
        &one.url(&format!("{flow}/attributes")),
        &page,
        &[("displayName", "Gated 2")],
    )
    .await;
    assert_eq!(api.bodies().len(), 2);

    // A page order set through instance two shows on instance one, mid-flow: the page
    // was reached before the change and is shown again after it.
    let b = Browser::new();
    let (flow, _) = to_attributes(&env, &one, &b, PUBLIC_CLIENT, "order@example.com").await;
    let order = vec![
        "City".to_owned(),
        ext("Team"),
        "surname".to_owned(),
        "displayName".to_owned(),
        "givenName".to_owned(),
        ext("Newsletter"),
        ext("ShoeSize"),
    ];
    admin_two
        .done(
            Method::PUT,
            "/v1.0/identity/b2xUserFlows/B2X_1_e2e/userAttributeAssignments/setOrder",
            json!({"newAssignmentOrder": {"order": order}}),
        )
        .await;
    let page = b.get(&one.url(&flow)).await;
    let expected: Vec<String> = [
        "city".to_owned(),
        ext("Team"),
        "surname".to_owned(),
        "displayName".to_owned(),
        "givenName".to_owned(),
    ]
    .to_vec();
    let at = field_order(&page.body, &expected);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}: {}", page.body);
    // The assignments read through either instance agree.
    let listed = admin_one
        .get("/v1.0/identity/b2xUserFlows/B2X_1_e2e/userAttributeAssignments")
        .await;
    assert_eq!(ids(&listed)[0], "city");

    // A field taken off the page through instance one is gone on instance two.
    admin_one
        .done(
            Method::DELETE,
            &format!(
                "/v1.0/identity/b2xUserFlows/B2X_1_e2e/userAttributeAssignments/{}",
                ext("Team")
            ),
            Value::Null,
        )
        .await;
    let b = Browser::new();
    let (_, page) = to_attributes(&env, &two, &b, PUBLIC_CLIENT, "after@example.com").await;
    assert!(!page.body.contains(&format!("name=\"{}\"", ext("Team"))));
    env.finish_instance(two).await;
    env.finish(one).await;
}

both!(users_are_created_found_paged_changed_and_deleted);
async fn users_are_created_found_paged_changed_and_deleted(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let host = url::Url::parse(&usher.issuer)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();

    // A local account with a password: it signs in.
    let local = admin
        .create(
            "/v1.0/users",
            json!({
                "displayName": "Ada Lovelace", "givenName": "Ada", "city": "Oslo",
                ext("ShoeSize"): 38, ext("Newsletter"): true, ext("Team"): "Blue",
                "identities": [{"signInType": "emailAddress", "issuer": host, "issuerAssignedId": "Ada@Example.com"}],
                "passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": false},
                "passwordPolicies": "DisablePasswordExpiration",
            }),
        )
        .await;
    let ada = local["id"].as_str().unwrap().to_owned();
    // Administrators are made on the server, never through the API.
    let (status, error) = admin
        .post(
            "/v1.0/users",
            json!({"displayName": "Mallory", "usherRoles": ["Usher.Admin"],
                "identities": [{"signInType": "emailAddress", "issuer": host, "issuerAssignedId": "mallory@example.com"}],
                "passwordProfile": {"password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("usherRoles"));
    assert_eq!(
        local["mail"], "ada@example.com",
        "mail from the local identity"
    );
    assert_eq!(
        local["identities"][0]["issuerAssignedId"],
        "ada@example.com"
    );
    assert_eq!(local["userType"], "Member");
    assert_eq!(local["accountEnabled"], true);
    assert_eq!(local[ext("ShoeSize")], 38);
    assert!(local.get("passwordProfile").is_none());
    let callback = Browser::new()
        .sign_in(
            &usher.authorize_url(PUBLIC_CLIENT, &[]),
            "ada@example.com",
            PASSWORD,
        )
        .await;
    assert!(callback.starts_with(CALLBACK), "{callback}");
    let tokens = usher.redeem_public(&query(&callback)["code"]).await;
    let claims = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], ada.as_str());
    assert_eq!(claims["name"], "Ada Lovelace");
    // The administrator typed the address in; nobody proved it to Usher.
    assert_eq!(claims["email"], "ada@example.com", "{claims}");
    assert_eq!(claims["email_verified"], false, "{claims}");
    let read = admin.get(&format!("/v1.0/users/{ada}")).await;
    assert_eq!(read["usherRoles"], json!([]));
    assert_eq!(read["city"], "Oslo");
    assert!(read["createdDateTime"].as_str().unwrap().ends_with('Z'));
    // Its password was set when it was made; a federated user has none.
    assert_eq!(
        read["lastPasswordChangeDateTime"], read["createdDateTime"],
        "{read}"
    );
    let selected = admin
        .get(&format!("/v1.0/users/{ada}?$select=id,mail"))
        .await;
    assert_eq!(
        selected
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with('@'))
            .count(),
        2,
        "{selected}"
    );

    // Federated identities; the same identity twice is a conflict.
    let fed = json!({"displayName": "Fay Facebook", "mail": "fay@example.com",
        "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "0123456789"}]});
    let fay = admin.create("/v1.0/users", fed.clone()).await;
    assert_eq!(fay["lastPasswordChangeDateTime"], Value::Null, "{fay}");
    let fay_id = fay["id"].as_str().unwrap().to_owned();
    // A reset link for the local account is emailed; none for the federated one.
    admin
        .done(
            Method::POST,
            &format!("/v1.0/users/{ada}/usherSendPasswordResetLink"),
            json!({"clientId": PUBLIC_CLIENT}),
        )
        .await;
    let mail = env.last_mail_to("ada@example.com");
    assert!(mail.contains("/reset?token="), "{mail}");
    for (user, body, needle) in [
        (
            fay_id.as_str(),
            json!({"clientId": PUBLIC_CLIENT}),
            "no email and password account",
        ),
        (ada.as_str(), json!({"clientId": "nope"}), "clientId"),
        (ada.as_str(), json!({}), "clientId"),
    ] {
        let message = assert_error(
            &admin
                .post(
                    &format!("/v1.0/users/{user}/usherSendPasswordResetLink"),
                    body,
                )
                .await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(needle), "{message}");
    }
    let message = assert_error(
        &admin.post("/v1.0/users", fed).await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(message.contains("identities"), "{message}");
    admin
        .create(
            "/v1.0/users",
            json!({"displayName": "Otto Passcode",
                "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": "OTTO@example.com"}]}),
        )
        .await;

    // Refused, by name.
    for (body, property) in [
        (json!({"identities": []}), "identities"),
        (json!({"displayName": "x"}), "identities"),
        (
            json!({"identities": [{"signInType": "userName", "issuer": host, "issuerAssignedId": "x"}]}),
            "signInType",
        ),
        (
            json!({"identities": [{"signInType": "emailAddress", "issuer": "other.example", "issuerAssignedId": "x@example.com"}],
            "passwordProfile": {"password": PASSWORD}}),
            "issuer",
        ),
        (
            json!({"identities": [{"signInType": "emailAddress", "issuer": host, "issuerAssignedId": "x@example.com"}]}),
            "passwordProfile",
        ),
        (
            json!({"identities": [{"signInType": "emailAddress", "issuer": host, "issuerAssignedId": "x@example.com"}],
            "passwordProfile": {"password": "password"}}),
            "passwordProfile.password",
        ),
        (
            json!({"identities": [{"signInType": "emailAddress", "issuer": host, "issuerAssignedId": "x@example.com"}],
            "mail": "y@example.com", "passwordProfile": {"password": PASSWORD}}),
            "mail",
        ),
        (
            json!({"identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "9"}],
            ext("ShoeSize"): "forty"}),
            "ShoeSize",
        ),
        (
            json!({"identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "9"}],
            ext("Unknown"): "x"}),
            "Unknown",
        ),
        (
            json!({"identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "9"}],
            "givenName": "x".repeat(65)}),
            "givenName",
        ),
        (
            json!({"identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "9"}],
            "mail": "not an address"}),
            "mail",
        ),
        (
            json!({"identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "9"}],
            "nickname": "x"}),
            "nickname",
        ),
        (
            json!({"id": "chosen", "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "9"}]}),
            "id",
        ),
    ] {
        let message = assert_error(
            &admin.post("/v1.0/users", body.clone()).await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }

    // Each $filter form, and their combination.
    let found = |v: &Value| ids(v);
    assert_eq!(
        found(
            &admin
                .get("/v1.0/users?$filter=mail eq 'ADA@example.com'")
                .await
        ),
        [ada.as_str()]
    );
    assert_eq!(
        found(
            &admin
                .get("/v1.0/users?$filter=startswith(displayName,'Fay')")
                .await
        ),
        [fay_id.as_str()]
    );
    assert_eq!(
        found(&admin
            .get("/v1.0/users?$filter=identities/any(c:c/issuerAssignedId eq '0123456789' and c/issuer eq 'facebook.com')")
            .await),
        [fay_id.as_str()]
    );
    assert_eq!(
        found(&admin
            .get("/v1.0/users?$filter=identities/any(c:c/issuer eq 'mail' and c/issuerAssignedId eq 'otto@example.com')")
            .await)
        .len(),
        1
    );
    assert_eq!(
        found(&admin
            .get("/v1.0/users?$filter=startswith(displayName,'Ada') and mail eq 'ada@example.com'")
            .await),
        [ada.as_str()]
    );
    assert!(found(
        &admin
            .get("/v1.0/users?$filter=startswith(displayName,'Fay') and mail eq 'ada@example.com'")
            .await
    )
    .is_empty());
    let selected = admin
        .get("/v1.0/users?$filter=mail eq 'fay@example.com'&$select=displayName")
        .await;
    assert_eq!(selected["value"][0], json!({"displayName": "Fay Facebook"}));

    // Paging: five users, two a page.
    for i in 1..=5 {
        admin
            .create(
                "/v1.0/users",
                json!({"displayName": format!("Paged {i}"),
                    "identities": [{"signInType": "federated", "issuer": "paging.example", "issuerAssignedId": format!("p{i}")}]}),
            )
            .await;
    }
    let mut seen = Vec::new();
    let mut next = Some(format!(
        "{}/v1.0/users?$filter=startswith(displayName,'Paged')&$top=2",
        usher.base
    ));
    let mut pages = 0;
    while let Some(url) = next {
        let page = admin.get(&url).await;
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2);
        seen.extend(page_ids);
        next = page["@odata.nextLink"].as_str().map(str::to_owned);
        if let Some(n) = &next {
            assert!(n.contains("$skiptoken="), "{n}");
            assert!(n.contains("Paged"), "the filter is carried: {n}");
        }
        pages += 1;
        assert!(pages <= 3, "too many pages");
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    assert_error(
        &admin
            .call(Method::GET, "/v1.0/users?$skiptoken=%%%", None)
            .await,
        StatusCode::BAD_REQUEST,
        "Request_UnsupportedQuery",
    );

    // PATCH: attributes (null removes), disabled accounts cannot sign in.
    let ada_path = format!("/v1.0/users/{ada}");
    admin
        .done(
            Method::PATCH,
            &ada_path,
            json!({"jobTitle": "Analyst", "city": null, ext("Team"): null, "accountEnabled": false}),
        )
        .await;
    let read = admin.get(&ada_path).await;
    assert_eq!(read["jobTitle"], "Analyst");
    assert!(read["city"].is_null());
    assert!(read.get(ext("Team")).is_none());
    assert_eq!(read["accountEnabled"], false);
    let r = Browser::new()
        .try_sign_in(&usher, "ada@example.com", PASSWORD)
        .await;
    assert!(
        r.status != StatusCode::SEE_OTHER || !r.location().starts_with(CALLBACK),
        "a disabled account does not sign in"
    );
    // A new password, and enabled again.
    admin
        .done(
            Method::PATCH,
            &ada_path,
            json!({"accountEnabled": true, "passwordProfile": {"password": "another long pass phrase"}}),
        )
        .await;
    let callback = Browser::new()
        .sign_in(
            &usher.authorize_url(PUBLIC_CLIENT, &[("prompt", "login")]),
            "ada@example.com",
            "another long pass phrase",
        )
        .await;
    assert!(callback.starts_with(CALLBACK), "{callback}");
    assert_error(
        &admin
            .patch(
                &ada_path,
                json!({"createdDateTime": "2020-01-01T00:00:00Z"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );

    // Identities replaced; taking another user's is a conflict.
    let fay_path = format!("/v1.0/users/{fay_id}");
    admin
        .done(
            Method::PATCH,
            &fay_path,
            json!({"identities": [
                {"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "0123456789"},
                {"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "g-42"}]}),
        )
        .await;
    assert_eq!(
        admin.get(&fay_path).await["identities"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_error(
        &admin
            .patch(
                &fay_path,
                json!({"identities": [{"signInType": "federated", "issuer": "paging.example", "issuerAssignedId": "p1"}]}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert_eq!(
        admin.get(&fay_path).await["identities"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing changed"
    );

    // Deleted: gone, and cannot sign in.
    admin.done(Method::DELETE, &ada_path, Value::Null).await;
    assert_error(
        &admin.call(Method::GET, &ada_path, None).await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    assert_error(
        &admin.delete(&ada_path).await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    let r = Browser::new()
        .try_sign_in(&usher, "ada@example.com", "another long pass phrase")
        .await;
    assert!(r.status != StatusCode::SEE_OTHER || !r.location().starts_with(CALLBACK));
    env.finish(usher).await;
}

both!(applications_and_identity_providers_are_managed);
async fn applications_and_identity_providers_are_managed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;

    // A confidential application: its secret once, then only its use.
    let app = admin
        .create(
            "/v1.0/applications",
            json!({"clientId": "reporting", "displayName": "Reporting", "type": "confidential",
                "redirectUris": ["https://reports.example.com/callback"], "userFlowId": "e2e",
                "roles": ["user.read.all"]}),
        )
        .await;
    let secret = app["clientSecret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    assert_eq!(app["userFlowId"], "B2X_1_e2e");
    assert_eq!(app["roles"], json!(["User.Read.All"]));
    let read = admin.get("/v1.0/applications/reporting").await;
    assert_eq!(read["clientSecret"], "******");
    assert_eq!(read["type"], "confidential");
    let reporting = Api::with_token(&usher, &client_token(&usher, "reporting", &secret).await);
    reporting.get("/v1.0/users").await;
    assert!(ids(&admin.get("/v1.0/applications").await).contains(&"reporting".to_owned()));

    // Rotation: the new secret works, the old one no longer does.
    let (s, rotated) = admin
        .post(
            "/v1.0/applications/reporting/addPassword",
            json!({"passwordCredential": {"displayName": "2027"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secretText"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    client_token(&usher, "reporting", &new_secret).await;

    // Writing applications is no way to more permissions than the caller holds.
    let flows_only = admin
        .create(
            "/v1.0/applications",
            json!({"clientId": "flows-only", "displayName": "Flows", "type": "confidential",
                "userFlowId": "e2e", "roles": ["IdentityUserFlow.ReadWrite.All"]}),
        )
        .await;
    let flows = Api::with_token(
        &usher,
        &client_token(
            &usher,
            "flows-only",
            flows_only["clientSecret"].as_str().unwrap(),
        )
        .await,
    );
    let (s, e) = flows
        .post(
            "/v1.0/applications",
            json!({"clientId": "escalate", "displayName": "E", "type": "confidential",
                "userFlowId": "e2e", "roles": ["User.ReadWrite.All"]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let (s, e) = flows
        .post("/v1.0/applications/reporting/addPassword", json!({}))
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a secret of an app with User.Read.All: {e}"
    );
    let (s, e) = flows
        .patch(
            "/v1.0/applications/flows-only",
            json!({"roles": ["IdentityUserFlow.ReadWrite.All", "User.ReadWrite.All"]}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .basic_auth("reporting", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // PATCH, and the rules.
    admin
        .done(
            Method::PATCH,
            "/v1.0/applications/reporting",
            json!({"displayName": "Reports", "roles": ["User.Read.All", "APIConnectors.Read.All"], "clientSecret": "******"}),
        )
        .await;
    assert_eq!(
        admin.get("/v1.0/applications/reporting").await["roles"],
        json!(["User.Read.All", "APIConnectors.Read.All"])
    );
    let public = admin
        .create(
            "/v1.0/applications",
            json!({"displayName": "SPA", "type": "public", "redirectUris": ["http://127.0.0.1:9/callback"], "userFlowId": "B2X_1_e2e"}),
        )
        .await;
    assert!(public["clientSecret"].is_null());
    let spa = public["clientId"].as_str().unwrap().to_owned();
    assert_error(
        &admin
            .post(&format!("/v1.0/applications/{spa}/addPassword"), json!({}))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    for (body, property) in [
        (
            json!({"type": "public", "userFlowId": "B2X_1_e2e"}),
            "redirectUris",
        ),
        (
            json!({"type": "public", "redirectUris": ["https://a.example/cb"], "userFlowId": "B2X_1_e2e", "roles": ["User.Read.All"]}),
            "roles",
        ),
        (
            json!({"type": "confidential", "redirectUris": ["http://a.example/cb"], "userFlowId": "B2X_1_e2e"}),
            "redirectUris",
        ),
        (
            json!({"type": "confidential", "redirectUris": ["javascript:alert(1)"], "userFlowId": "B2X_1_e2e"}),
            "redirectUris",
        ),
        (
            json!({"type": "confidential", "userFlowId": "B2X_1_nothing"}),
            "userFlowId",
        ),
        (json!({"type": "confidential"}), "userFlowId"),
        (json!({"type": "web", "userFlowId": "B2X_1_e2e"}), "type"),
        (
            json!({"type": "confidential", "userFlowId": "B2X_1_e2e", "roles": ["Directory.ReadWrite.All"]}),
            "roles",
        ),
        (
            json!({"type": "confidential", "userFlowId": "B2X_1_e2e", "clientSecret": "mine"}),
            "clientSecret",
        ),
        (
            json!({"type": "confidential", "userFlowId": "B2X_1_e2e", "clientId": "has space"}),
            "clientId",
        ),
    ] {
        let message = assert_error(
            &admin.post("/v1.0/applications", body.clone()).await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }
    assert_error(
        &admin
            .post(
                "/v1.0/applications",
                json!({"clientId": "REPORTING", "type": "confidential", "userFlowId": "B2X_1_e2e"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert_error(
        &admin
            .patch("/v1.0/applications/reporting", json!({"type": "public"}))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    admin
        .done(Method::DELETE, "/v1.0/applications/reporting", Value::Null)
        .await;
    // Its tokens stop working with it.
    assert_error(
        &reporting.call(Method::GET, "/v1.0/users", None).await,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
    );

    // Identity providers: built-in ones and configured ones, secrets masked.
    let listed = admin.get("/v1.0/identity/identityProviders").await;
    let listed_ids = ids(&listed);
    assert!(listed_ids.contains(&"EmailPassword-OAUTH".to_owned()));
    assert!(listed_ids.contains(&"EmailOtpSignup-OAUTH".to_owned()));
    let google = admin
        .create(
            "/v1.0/identity/identityProviders",
            json!({"id": "Google-OAUTH", "identityProviderType": "Google", "displayName": "Google",
                "clientId": "google-client", "clientSecret": "google-secret-1"}),
        )
        .await;
    assert_eq!(
        google["@odata.type"],
        "#microsoft.graph.socialIdentityProvider"
    );
    assert_eq!(google["clientSecret"], "******");
    assert_eq!(google["scope"], "openid email profile");
    let oidc = admin
        .create(
            "/v1.0/identity/identityProviders",
            json!({"id": "contoso", "identityProviderType": "OpenIDConnect", "displayName": "Contoso",
                "clientId": "c", "clientSecret": "s",
                "metadataUrl": "https://login.contoso.com/.well-known/openid-configuration",
                "usherClaimsMapping": {"city": "locality"}}),
        )
        .await;
    assert_eq!(
        oidc["@odata.type"],
        "#microsoft.graph.openIdConnectIdentityProvider"
    );
    assert_eq!(oidc["usherClaimsMapping"]["city"], "locality");
    assert_eq!(
        oidc["usherClaimsMapping"]["displayName"], "name",
        "over the defaults"
    );
    // A second provider with the same issuer (however it is typed): a user of one
    // could sign in as a user of the other. Refused, on create and on update.
    let message = assert_error(
        &admin
            .post(
                "/v1.0/identity/identityProviders",
                json!({"id": "contoso-2", "identityProviderType": "OpenIDConnect", "clientId": "c",
                    "clientSecret": "s",
                    "metadataUrl": "https://LOGIN.contoso.com/.well-known/openid-configuration"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(
        message.contains("\"contoso\" and \"contoso-2\"")
            && message.contains("have the same issuer"),
        "{message}"
    );
    // Another issuer on the same host is another population of users: accepted.
    admin
        .create(
            "/v1.0/identity/identityProviders",
            json!({"id": "contoso-2", "identityProviderType": "OpenIDConnect", "clientId": "c",
                "clientSecret": "s",
                "metadataUrl": "https://login.contoso.com:8443/other/.well-known/openid-configuration"}),
        )
        .await;
    admin
        .done(
            Method::DELETE,
            "/v1.0/identity/identityProviders/contoso-2",
            Value::Null,
        )
        .await;
    admin
        .create(
            "/v1.0/identity/identityProviders",
            json!({"id": "fabrikam", "identityProviderType": "OpenIDConnect", "clientId": "c",
                "clientSecret": "s",
                "metadataUrl": "https://login.fabrikam.com/.well-known/openid-configuration"}),
        )
        .await;
    let message = assert_error(
        &admin
            .patch(
                "/v1.0/identity/identityProviders/fabrikam",
                json!({"clientSecret": "s2",
                    "metadataUrl": "https://LOGIN.contoso.com/.well-known/openid-configuration"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(message.contains("have the same issuer"), "{message}");
    admin
        .done(
            Method::DELETE,
            "/v1.0/identity/identityProviders/fabrikam",
            Value::Null,
        )
        .await;
    admin
        .done(
            Method::PATCH,
            "/v1.0/identity/identityProviders/google-oauth",
            json!({"displayName": "Sign in with Google", "clientSecret": "******"}),
        )
        .await;
    let read = admin
        .get("/v1.0/identity/identityProviders/Google-OAUTH")
        .await;
    assert_eq!(read["displayName"], "Sign in with Google");
    assert!(!read.to_string().contains("google-secret-1"));
    assert_eq!(
        admin
            .get("/v1.0/identity/identityProviders/emailpassword-oauth")
            .await["@odata.type"],
        "#microsoft.graph.builtInIdentityProvider"
    );
    for (body, property) in [
        (
            json!({"id": "EmailOtpSignup-OAUTH", "identityProviderType": "Google", "clientId": "c", "clientSecret": "s"}),
            "id",
        ),
        (
            json!({"id": "x", "identityProviderType": "Twitter", "clientId": "c", "clientSecret": "s"}),
            "identityProviderType",
        ),
        (
            json!({"id": "x", "identityProviderType": "Google", "clientId": "c"}),
            "clientSecret",
        ),
        (
            json!({"id": "x", "identityProviderType": "OpenIDConnect", "clientId": "c", "clientSecret": "s"}),
            "metadataUrl",
        ),
        (
            json!({"id": "x", "identityProviderType": "OpenIDConnect", "clientId": "c", "clientSecret": "s",
            "metadataUrl": "http://127.0.0.1:1/.well-known/openid-configuration"}),
            "metadataUrl",
        ),
        (
            json!({"id": "x", "identityProviderType": "Google", "clientId": "c", "clientSecret": "s", "usherTenant": "common"}),
            "usherTenant",
        ),
        (
            json!({"id": "x", "identityProviderType": "Google", "clientId": "c", "clientSecret": "s", "scope": "email"}),
            "scope",
        ),
        (
            json!({"id": "x", "identityProviderType": "OAuth2", "clientId": "c", "clientSecret": "s",
            "usherAuthorizationEndpoint": "https://a.example/auth", "usherTokenEndpoint": "https://a.example/token",
            "usherUserinfoEndpoint": "https://a.example/me", "usherSubjectClaim": "id", "usherIdentityIssuer": "google.com"}),
            "usherIdentityIssuer",
        ),
        (
            json!({"id": "x", "identityProviderType": "Google", "clientId": "c", "clientSecret": "s",
            "usherClaimsMapping": {ext("ShoeSize"): "shoe"}}),
            "usherClaimsMapping",
        ),
    ] {
        let message = assert_error(
            &admin
                .post("/v1.0/identity/identityProviders", body.clone())
                .await,
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
        );
        assert!(message.contains(property), "{body}: {message}");
    }
    assert_error(
        &admin
            .post(
                "/v1.0/identity/identityProviders",
                json!({"id": "google-oauth", "identityProviderType": "Google", "clientId": "c", "clientSecret": "s"}),
            )
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert_error(
        &admin
            .patch(
                "/v1.0/identity/identityProviders/EmailPassword-OAUTH",
                json!({"displayName": "x"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    // Offered by a flow: the sign-in page shows it, and it cannot be deleted.
    admin
        .done(
            Method::POST,
            "/v1.0/identity/b2xUserFlows/B2X_1_e2e/identityProviders/$ref",
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/identity/identityProviders/Google-OAUTH"}),
        )
        .await;
    let b = Browser::new();
    let flow = b.start_flow(&usher.authorize_url(PUBLIC_CLIENT, &[])).await;
    let page = b.get(&usher.url(&flow)).await;
    assert!(page.body.contains("Sign in with Google"), "{}", page.body);
    let message = assert_error(
        &admin
            .delete("/v1.0/identity/identityProviders/Google-OAUTH")
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    assert!(message.contains("B2X_1_e2e"), "{message}");
    admin
        .done(
            Method::DELETE,
            "/v1.0/identity/b2xUserFlows/B2X_1_e2e/identityProviders/Google-OAUTH/$ref",
            Value::Null,
        )
        .await;
    admin
        .done(
            Method::DELETE,
            "/v1.0/identity/identityProviders/Google-OAUTH",
            Value::Null,
        )
        .await;
    assert_error(
        &admin
            .call(
                Method::GET,
                "/v1.0/identity/identityProviders/Google-OAUTH",
                None,
            )
            .await,
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
    );
    assert_error(
        &admin
            .delete("/v1.0/identity/identityProviders/EmailOtpSignup-OAUTH")
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    env.finish(usher).await;
}

/// A tiny external approval system (contract §7), written against the Graph shapes
/// only: a status check for `postFederationSignup`, a request recorder for
/// `postAttributeCollection`, and, when a person approves, a user created through
/// `POST /v1.0/users`.
#[derive(Clone, Default)]
struct ApprovalSystem {
    /// The requests recorded, as the request connector received them.
    requests: Arc<Mutex<Vec<Value>>>,
    /// Identities approved (`issuer/issuerAssignedId`).
    approved: Arc<Mutex<Vec<String>>>,
}

fn identity_key(claims: &Value) -> String {
    let i = &claims["identities"][0];
    format!(
        "{}/{}",
        i["issuer"].as_str().unwrap_or(""),
        i["issuerAssignedId"].as_str().unwrap_or("")
    )
}

impl ApprovalSystem {
    async fn start(&self) -> String {
        use axum::{extract::State, routing::post, Json, Router};
        async fn status(State(s): State<ApprovalSystem>, Json(claims): Json<Value>) -> Json<Value> {
            let key = identity_key(&claims);
            let pending = s
                .requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| identity_key(r) == key)
                && !s.approved.lock().unwrap().contains(&key);
            Json(if pending {
                json!({"version": "1.0.0", "action": "ShowBlockPage",
                    "userMessage": "Your access request is already processing. You'll be notified when your request has been approved."})
            } else {
                json!({"version": "1.0.0", "action": "Continue"})
            })
        }
        async fn request(
            State(s): State<ApprovalSystem>,
            Json(claims): Json<Value>,
        ) -> Json<Value> {
            s.requests.lock().unwrap().push(claims);
            Json(json!({"version": "1.0.0", "action": "ShowBlockPage",
                "userMessage": "Your account is now waiting for approval. You'll be notified when your request has been approved."}))
        }
        let app = Router::new()
            .route("/status", post(status))
            .route("/request", post(request))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// A person approves the first request: the user is created from what the request
    /// connector received, through the admin API.
    async fn approve_first(&self, admin: &Api) -> Value {
        let request = self.requests.lock().unwrap()[0].clone();
        let mut user = serde_json::Map::new();
        user.insert("mail".into(), request["email"].clone());
        user.insert("identities".into(), request["identities"].clone());
        for (k, v) in request.as_object().unwrap() {
            // The rest of the request is the attributes collected, under Graph's names.
            if !["email", "identities", "ui_locales", "step", "client_id"].contains(&k.as_str()) {
                user.insert(k.clone(), v.clone());
            }
        }
        let created = admin.create("/v1.0/users", Value::Object(user)).await;
        self.approved.lock().unwrap().push(identity_key(&request));
        created
    }
}

both!(an_external_approval_system_holds_and_approves_passcode_sign_ups);
async fn an_external_approval_system_holds_and_approves_passcode_sign_ups(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let approvals = ApprovalSystem::default();
    let approvals_url = approvals.start().await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;

    // Everything set up through the API, in Graph's shapes.
    let mut connectors = Vec::new();
    for (name, path) in [
        ("Check approval status", "status"),
        ("Request approval", "request"),
    ] {
        let c = admin
            .create(
                "/v1.0/identity/apiConnectors",
                json!({"displayName": name, "targetUrl": format!("{approvals_url}/{path}"),
                    "authenticationConfiguration": {"@odata.type": "#microsoft.graph.basicAuthentication",
                        "username": "usher", "password": "approval-secret"}}),
            )
            .await;
        connectors.push(c["id"].as_str().unwrap().to_owned());
    }
    admin
        .create(
            "/v1.0/identity/userFlowAttributes",
            json!({"displayName": "Hobby", "description": "Your hobby", "dataType": "string"}),
        )
        .await;
    let reference = |id: &str| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/identity/apiConnectors/{id}")});
    admin
        .create(
            "/v1.0/identity/b2xUserFlows",
            json!({"id": "Partner", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1,
                "identityProviders": [{"id": "EmailOtpSignup-OAUTH"}],
                "apiConnectorConfiguration": {
                    "postFederationSignup": reference(&connectors[0]),
                    "postAttributeCollection": reference(&connectors[1])}}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/b2xUserFlows/B2X_1_Partner/userAttributeAssignments",
            json!({"isOptional": false, "requiresVerification": false, "userInputType": "TextBox",
                "displayName": "Hobby", "userAttributeValues": [], "userAttribute": {"id": ext("Hobby")}}),
        )
        .await;
    let app = admin
        .create(
            "/v1.0/applications",
            json!({"displayName": "Partner portal", "type": "public", "redirectUris": [CALLBACK],
                "userFlowId": "B2X_1_Partner"}),
        )
        .await;
    let client = app["clientId"].as_str().unwrap().to_owned();

    // Sign-up with a passcode: status check continues, the attribute page, then the
    // request is recorded and the user waits. No user exists.
    let b = Browser::new();
    let (flow, r) = passcode(&env, &usher, &b, &client, "otto@partner.example").await;
    let page = settle(&usher, &b, r).await;
    assert!(
        page.body.contains(&format!("name=\"{}\"", ext("Hobby"))),
        "{}",
        page.body
    );
    let r = b
        .submit(
            &usher.url(&format!("{flow}/attributes")),
            &page,
            &[("displayName", "Otto Partner"), (&ext("Hobby"), "Chess")],
        )
        .await;
    let page = settle(&usher, &b, r).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("waiting for approval"), "{}", page.body);
    let requests = approvals.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["email"], "otto@partner.example");
    assert_eq!(
        requests[0]["identities"],
        json!([{"signInType": "federated", "issuer": "mail", "issuerAssignedId": "otto@partner.example"}])
    );
    assert_eq!(requests[0][ext("Hobby")], "Chess");
    let found = admin
        .get("/v1.0/users?$filter=identities/any(c:c/issuerAssignedId eq 'otto@partner.example' and c/issuer eq 'mail')")
        .await;
    assert!(ids(&found).is_empty(), "no user while waiting");

    // Coming back before the decision: the status check says it is processing.
    let b = Browser::new();
    let (_, r) = passcode(&env, &usher, &b, &client, "otto@partner.example").await;
    let page = settle(&usher, &b, r).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("already processing"), "{}", page.body);
    assert_eq!(
        approvals.requests.lock().unwrap().len(),
        1,
        "no second request"
    );

    // A person approves: the approval system creates the user through the API.
    let user = approvals.approve_first(&admin).await;
    assert_eq!(user["mail"], "otto@partner.example");
    assert_eq!(user["displayName"], "Otto Partner");
    assert_eq!(user[ext("Hobby")], "Chess");
    let found = admin
        .get("/v1.0/users?$filter=identities/any(c:c/issuerAssignedId eq 'otto@partner.example' and c/issuer eq 'mail')")
        .await;
    assert_eq!(ids(&found), [user["id"].as_str().unwrap()]);

    // The user signs in with the passcode, straight to the application, as that user.
    let b = Browser::new();
    let (_, r) = passcode(&env, &usher, &b, &client, "otto@partner.example").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with(CALLBACK), "{}", r.location());
    let tokens = usher
        .redeem_public_for(&client, &query(r.location())["code"])
        .await;
    let claims = payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["name"], "Otto Partner");
    assert_eq!(claims["email"], "otto@partner.example");
    assert_eq!(claims["extension_Hobby"], "Chess");
    // Connectors run on sign-up only: the sign-in made no further calls.
    let calls = admin
        .get(&format!(
            "/v1.0/usher/connectorCalls?$filter=connectorId eq '{}'",
            connectors[0]
        ))
        .await;
    assert_eq!(calls["value"].as_array().unwrap().len(), 2, "{calls}");
    env.finish(usher).await;
}

both!(microsofts_approval_bodies_create_users_as_given);
async fn microsofts_approval_bodies_create_users_as_given(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;

    // The body of Entra's "add approvals to self-service sign-up" article.
    let guest = admin
        .create(
            "/v1.0/users",
            json!({
                "userPrincipalName": "johnsmith_fabrikam.com#EXT@contoso.onmicrosoft.com",
                "accountEnabled": true,
                "mail": "johnsmith@fabrikam.com",
                "userType": "Guest",
                "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "0123456789"}],
                "displayName": "John Smith",
                "givenName": "John",
                "surname": "Smith",
                ext("Team"): "Blue",
            }),
        )
        .await;
    let id = guest["id"].as_str().unwrap().to_owned();
    let read = admin.get(&format!("/v1.0/users/{id}")).await;
    for v in [&guest, &read] {
        assert_eq!(v["userType"], "Guest", "{v}");
        assert_eq!(
            v["userPrincipalName"],
            "johnsmith_fabrikam.com#EXT@contoso.onmicrosoft.com"
        );
        assert_eq!(v["mail"], "johnsmith@fabrikam.com");
        assert_eq!(v[ext("Team")], "Blue");
        // Nobody proved the address to Usher: a caller saying so is not proof.
        assert_eq!(v["usherEmailVerified"], false);
    }

    // The .NET approvals sample's: mailNickname, and a password profile Graph wants
    // for every user, which a federated user has no use for.
    let sample = admin
        .create(
            "/v1.0/users",
            json!({
                "accountEnabled": true,
                "displayName": "Jane Doe",
                "mailNickname": "jane.doe",
                "userPrincipalName": "jane.doe_example.com#EXT#@contoso.onmicrosoft.com",
                "mail": "jane.doe@example.com",
                "userType": "Guest",
                "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy-9a1b2c3d4e5f6"},
                "passwordPolicies": "DisablePasswordExpiration",
                "identities": [{"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "jane@gmail.com"}],
            }),
        )
        .await;
    assert_eq!(sample["mailNickname"], "jane.doe");
    assert_eq!(sample["userType"], "Guest");
    assert!(sample.get("passwordProfile").is_none());

    // Changes of those properties stick; a property a user does not have is Graph's
    // error, and so is a userType Graph does not know.
    let path = format!("/v1.0/users/{id}");
    admin
        .done(
            Method::PATCH,
            &path,
            json!({"userType": "Member", "department": "Sales"}),
        )
        .await;
    let read = admin.get(&path).await;
    assert_eq!(read["userType"], "Member");
    assert_eq!(read["department"], "Sales");
    let message = assert_error(
        &admin
            .post(
                "/v1.0/users",
                json!({"favouriteColour": "green",
                    "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "42"}]}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert_eq!(
        message,
        "Property 'favouriteColour' does not exist as a declared property or extension property."
    );
    assert_error(
        &admin.patch(&path, json!({"userType": "Alien"})).await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert_error(
        &admin
            .patch(&path, json!({"usherEmailVerified": true}))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    env.finish(usher).await;
}

both!(user_writes_are_whole_and_checked_against_the_etag);
async fn user_writes_are_whole_and_checked_against_the_etag(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let taken =
        json!([{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "taken"}]);
    admin
        .create(
            "/v1.0/users",
            json!({"displayName": "Other", "identities": taken}),
        )
        .await;
    let user = admin
        .create(
            "/v1.0/users",
            json!({"displayName": "Before",
                "identities": [{"signInType": "federated", "issuer": "facebook.com", "issuerAssignedId": "mine"}]}),
        )
        .await;
    let path = format!("/v1.0/users/{}", user["id"].as_str().unwrap());

    // A PATCH whose identities clash changes nothing else either.
    assert_error(
        &admin
            .patch(&path, json!({"displayName": "After", "identities": taken}))
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    let (read, tag) = admin.tagged(&path).await;
    assert_eq!(read["displayName"], "Before");
    assert_eq!(read["@odata.etag"], tag.as_str());

    // The ETag read allows one write; after it, the old one is stale.
    let (s, v) = admin
        .conditional(
            Method::PATCH,
            &path,
            &tag,
            Some(json!({"displayName": "One"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = admin
        .conditional(
            Method::PATCH,
            &path,
            &tag,
            Some(json!({"displayName": "Two"})),
        )
        .await;
    assert_error(
        &(s, v),
        StatusCode::PRECONDITION_FAILED,
        "Request_PreconditionFailed",
    );
    let (s, v) = admin.conditional(Method::DELETE, &path, &tag, None).await;
    assert_error(
        &(s, v),
        StatusCode::PRECONDITION_FAILED,
        "Request_PreconditionFailed",
    );
    let (read, fresh) = admin.tagged(&path).await;
    assert_eq!(read["displayName"], "One");
    assert_ne!(fresh, tag);
    // Without If-Match, as before, the write goes through.
    admin
        .done(Method::PATCH, &path, json!({"displayName": "Three"}))
        .await;
    assert_error(
        &admin
            .conditional(Method::PATCH, &path, "not-a-tag", Some(json!({})))
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    let (_, current) = admin.tagged(&path).await;
    let (s, v) = admin
        .conditional(Method::DELETE, &path, &current, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    env.finish(usher).await;
}

both!(tenant_objects_refuse_stale_writes);
async fn tenant_objects_refuse_stale_writes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let connector = admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({"displayName": "Approvals", "targetUrl": "https://approvals.example/check",
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.basicAuthentication",
                    "username": "usher", "password": "first secret"}}),
        )
        .await;
    let path = format!(
        "/v1.0/identity/apiConnectors/{}",
        connector["id"].as_str().unwrap()
    );
    let (read, tag) = admin.tagged(&path).await;
    assert_eq!(read["@odata.etag"], tag.as_str());
    assert!(!tag.contains("secret"), "{tag}");

    // A change of another object leaves this one's tag alone.
    let attribute = admin
        .create(
            "/v1.0/identity/userFlowAttributes",
            json!({"displayName": "Tier", "description": "Tier", "dataType": "string"}),
        )
        .await;
    assert_eq!(admin.tagged(&path).await.1, tag);

    // Two administrators read the same version; the second write is refused.
    let (s, v) = admin
        .conditional(
            Method::PATCH,
            &path,
            &tag,
            Some(json!({"displayName": "First"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = admin
        .conditional(
            Method::PATCH,
            &path,
            &tag,
            Some(json!({"displayName": "Second"})),
        )
        .await;
    assert_error(
        &(s, v),
        StatusCode::PRECONDITION_FAILED,
        "Request_PreconditionFailed",
    );
    let (read, fresh) = admin.tagged(&path).await;
    assert_eq!(read["displayName"], "First");
    assert_ne!(fresh, tag);
    // Only the secret changes: the tag does too.
    admin
        .done(
            Method::PATCH,
            &path,
            json!({"authenticationConfiguration": {"@odata.type": "#microsoft.graph.basicAuthentication",
                "username": "usher", "password": "second secret"}}),
        )
        .await;
    let (_, after_secret) = admin.tagged(&path).await;
    assert_ne!(after_secret, fresh);
    let (s, v) = admin.conditional(Method::DELETE, &path, &fresh, None).await;
    assert_error(
        &(s, v),
        StatusCode::PRECONDITION_FAILED,
        "Request_PreconditionFailed",
    );
    let (s, v) = admin
        .conditional(Method::DELETE, &path, &after_secret, None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // The same on an attribute, and without If-Match a write goes through.
    let attribute_path = format!(
        "/v1.0/identity/userFlowAttributes/{}",
        attribute["id"].as_str().unwrap()
    );
    let (_, tag) = admin.tagged(&attribute_path).await;
    admin
        .done(
            Method::PATCH,
            &attribute_path,
            json!({"description": "Level"}),
        )
        .await;
    let (s, v) = admin
        .conditional(
            Method::PATCH,
            &attribute_path,
            &tag,
            Some(json!({"description": "Rank"})),
        )
        .await;
    assert_error(
        &(s, v),
        StatusCode::PRECONDITION_FAILED,
        "Request_PreconditionFailed",
    );
    assert_eq!(admin.get(&attribute_path).await["description"], "Level");
    env.finish(usher).await;
}

both!(the_openapi_document_matches_the_routes);
async fn the_openapi_document_matches_the_routes(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let reader = Api::as_client(&usher, "reader").await;
    let anonymous = Api::anonymous(&usher);

    // Served without a token.
    let doc = anonymous.get("/v1.0/$metadata/openapi.json").await;
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(
        doc["components"]["securitySchemes"]["clientCredentials"]["flows"]["clientCredentials"]
            ["tokenUrl"],
        format!("{}/token", usher.issuer)
    );
    let paths = doc["paths"].as_object().unwrap();
    // Everything the admin API is meant to have is documented.
    let expected: &[(&str, &[&str])] = &[
        ("/v1.0/identity/apiConnectors", &["get", "post"]),
        ("/v1.0/identity/apiConnectors/{id}", &["get", "patch", "delete"]),
        ("/v1.0/identity/apiConnectors/{id}/uploadClientCertificate", &["post"]),
        ("/v1.0/identity/apiConnectors/{id}/calls", &["get"]),
        ("/v1.0/usher/connectorCalls", &["get"]),
        ("/v1.0/identity/b2xUserFlows", &["get", "post"]),
        ("/v1.0/identity/b2xUserFlows/{id}", &["get", "patch", "delete"]),
        ("/v1.0/identity/b2xUserFlows/{id}/identityProviders", &["get"]),
        ("/v1.0/identity/b2xUserFlows/{id}/identityProviders/$ref", &["post"]),
        ("/v1.0/identity/b2xUserFlows/{id}/identityProviders/{idpId}/$ref", &["delete"]),
        ("/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration", &["get", "patch"]),
        ("/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration/postFederationSignup/$ref", &["put"]),
        ("/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration/postAttributeCollection/$ref", &["put"]),
        ("/v1.0/identity/b2xUserFlows/{id}/apiConnectorConfiguration/preTokenIssuance/$ref", &["put"]),
        ("/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments", &["get", "post"]),
        ("/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments/setOrder", &["put"]),
        ("/v1.0/identity/b2xUserFlows/{id}/userAttributeAssignments/{attributeId}", &["get", "patch", "delete"]),
        ("/v1.0/identity/userFlowAttributes", &["get", "post"]),
        ("/v1.0/identity/userFlowAttributes/{id}", &["get", "patch", "delete"]),
        ("/v1.0/identity/identityProviders", &["get", "post"]),
        ("/v1.0/identity/identityProviders/{id}", &["get", "patch", "delete"]),
        ("/v1.0/applications", &["get", "post"]),
        ("/v1.0/applications/{id}", &["get", "patch", "delete"]),
        ("/v1.0/applications/{id}/addPassword", &["post"]),
        ("/v1.0/users", &["get", "post"]),
        ("/v1.0/users/{id}", &["get", "patch", "delete"]),
        ("/v1.0/users/{id}/usherSendPasswordResetLink", &["post"]),
        ("/v1.0/usher/signUpRequests", &["get"]),
        ("/v1.0/usher/signUpRequests/{id}", &["get", "delete"]),
        ("/v1.0/usher/signUpRequests/{id}/approve", &["post"]),
        ("/v1.0/usher/signUpRequests/{id}/deny", &["post"]),
        ("/v1.0/$metadata/openapi.json", &["get"]),
        ("/v1.0/identity/customAuthenticationExtensions", &["get", "post"]),
        ("/v1.0/identity/customAuthenticationExtensions/{id}", &["get", "patch", "delete"]),
        ("/v1.0/identity/customAuthenticationExtensions/{id}/validateAuthenticationConfiguration", &["post"]),
        ("/v1.0/identity/authenticationEventsFlows", &["get"]),
        ("/v1.0/identity/authenticationEventsFlows/{id}", &["get", "patch"]),
        ("/v1.0/identity/authenticationEventListeners", &["get", "post"]),
        ("/v1.0/identity/authenticationEventListeners/{id}", &["get", "patch", "delete"]),
    ];
    for (path, methods) in expected {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for m in *methods {
            assert!(item.get(*m).is_some(), "{m} {path} is not documented");
        }
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    let expected_count: usize = expected.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        documented, expected_count,
        "undocumented extras or missing routes"
    );

    // Real objects for the path parameters.
    admin
        .create(
            "/v1.0/identity/customAuthenticationExtensions",
            json!({"@odata.type": "#microsoft.graph.onAttributeCollectionSubmitCustomExtension",
                "id": "doc-extension", "displayName": "Doc",
                "endpointConfiguration": {"targetUrl": "https://api.example.com/ext"},
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.azureAdTokenAuthentication", "resourceId": "api://api.example.com/doc"}}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/customAuthenticationExtensions",
            json!({"@odata.type": "#microsoft.graph.onTokenIssuanceStartCustomExtension",
                "id": "doc-token-extension", "displayName": "Doc",
                "endpointConfiguration": {"targetUrl": "https://api.example.com/ext"},
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.azureAdTokenAuthentication", "resourceId": "api://api.example.com/doc"}}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/authenticationEventListeners",
            json!({"@odata.type": "#microsoft.graph.onTokenIssuanceStartListener", "id": "doc-listener",
                "conditions": {"applications": {"includeApplications": [{"appId": "e2e-public"}]}},
                "handler": {"@odata.type": "#microsoft.graph.onTokenIssuanceStartCustomExtensionHandler", "customExtension": {"id": "doc-token-extension"}}}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({"id": "doc-connector", "displayName": "Doc", "targetUrl": "https://api.example.com/doc"}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/b2xUserFlows",
            json!({"id": "Doc", "userFlowType": "signUpOrSignIn", "userFlowTypeVersion": 1,
                "identityProviders": [{"id": "EmailPassword-OAUTH"}, {"id": "EmailOtpSignup-OAUTH"}]}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/userFlowAttributes",
            json!({"displayName": "DocAttribute", "dataType": "string"}),
        )
        .await;
    admin
        .create(
            "/v1.0/identity/identityProviders",
            json!({"id": "doc-github", "identityProviderType": "GitHub", "clientId": "c", "clientSecret": "s"}),
        )
        .await;
    admin
        .create(
            "/v1.0/applications",
            json!({"clientId": "doc-app", "type": "confidential", "userFlowId": "B2X_1_Doc"}),
        )
        .await;
    let user = admin
        .create(
            "/v1.0/users",
            json!({"displayName": "Doc", "identities": [{"signInType": "federated", "issuer": "doc.example", "issuerAssignedId": "1"}]}),
        )
        .await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let store = env.store().await;
    let host = url::Url::parse(&usher.issuer)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    store
        .insert_sign_up_request(&usher_domain::SignUpRequest {
            id: "doc-request".into(),
            user_flow_id: "B2X_1_e2e".into(),
            client_id: PUBLIC_CLIENT.into(),
            email: "held@example.com".into(),
            identities: vec![usher_domain::Identity {
                sign_in_type: usher_domain::SignInType::EmailAddress,
                issuer: host,
                issuer_assigned_id: "held@example.com".into(),
                exact_issuer: None,
            }],
            attributes: std::collections::BTreeMap::default(),
            password_hash: None,
            status: usher_domain::SignUpRequestStatus::Pending,
            created_at: chrono::Utc::now(),
            decided_by: None,
            decided_at: None,
            user_id: None,
        })
        .await
        .unwrap();
    let fill = |path: &str| -> String {
        let id = if path.starts_with("/v1.0/identity/apiConnectors/") {
            "doc-connector"
        } else if path.starts_with("/v1.0/identity/customAuthenticationExtensions/") {
            "doc-extension"
        } else if path.starts_with("/v1.0/identity/authenticationEventListeners/") {
            "doc-listener"
        } else if path.starts_with("/v1.0/identity/b2xUserFlows/")
            || path.starts_with("/v1.0/identity/authenticationEventsFlows/")
        {
            "B2X_1_Doc"
        } else if path.starts_with("/v1.0/identity/userFlowAttributes/") {
            "extension_0123456789abcdef0123456789abcdef_DocAttribute"
        } else if path.starts_with("/v1.0/identity/identityProviders/") {
            "doc-github"
        } else if path.starts_with("/v1.0/applications/") {
            "doc-app"
        } else if path.starts_with("/v1.0/users/") {
            user_id.as_str()
        } else {
            "doc-request"
        };
        path.replace("{id}", id)
            .replace("{attributeId}", "displayName")
            .replace("{idpId}", "EmailOtpSignup-OAUTH")
    };

    // Every documented operation answers (deletions last), and asks for the permission
    // it documents: no token 401, the reader 403 on writes.
    let mut operations: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations.push((method.clone(), path.clone(), op.clone()));
        }
    }
    // Deletions last, the deepest first, so each finds what it deletes.
    operations.sort_by_key(|(m, p, _)| {
        if m == "delete" {
            (1, usize::MAX - p.matches('/').count())
        } else {
            (0, 0)
        }
    });
    for (method, path, op) in &operations {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = fill(path);
        let body = op.get("requestBody").map(|_| json!({}));
        let permissions: Vec<String> = op["x-permissions"]
            .as_array()
            .map(|p| p.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        if !permissions.is_empty() {
            let (s, v) = anonymous.call(method.clone(), &url, body.clone()).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {url} without a token: {v}"
            );
            let (s, v) = reader.call(method.clone(), &url, body.clone()).await;
            let writes = permissions.iter().all(|p| p.contains("ReadWrite"));
            if writes {
                assert_eq!(s, StatusCode::FORBIDDEN, "{method} {url} as a reader: {v}");
            } else {
                assert_ne!(s, StatusCode::FORBIDDEN, "{method} {url} as a reader: {v}");
            }
        }
        let (s, v) = admin.call(method.clone(), &url, body).await;
        assert!(
            s != StatusCode::NOT_FOUND && s != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {url} ({path}): {s} {v}"
        );
    }
    // And something undocumented is not there.
    let (s, _) = admin
        .call(
            Method::GET,
            "/v1.0/identity/apiConnectors/doc-connector/secrets",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    env.finish(usher).await;
}

both!(sign_up_requests_are_listed_paged_and_decided);
async fn sign_up_requests_are_listed_paged_and_decided(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let reader = Api::as_client(&usher, "reader").await;
    let store = env.store().await;
    let start = chrono::Utc::now() - chrono::Duration::minutes(10);
    for i in 1..=3 {
        let email = format!("held{i}@example.com");
        store
            .insert_sign_up_request(&usher_domain::SignUpRequest {
                id: format!("request-{i}"),
                user_flow_id: "B2X_1_e2e".into(),
                client_id: PUBLIC_CLIENT.into(),
                email: email.clone(),
                identities: vec![usher_domain::Identity {
                    sign_in_type: usher_domain::SignInType::Federated,
                    issuer: "mail".into(),
                    issuer_assigned_id: email,
                    exact_issuer: None,
                }],
                attributes: [(
                    "displayName".to_owned(),
                    usher_domain::AttributeValue::String(format!("Held {i}")),
                )]
                .into(),
                password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
                status: usher_domain::SignUpRequestStatus::Pending,
                created_at: start + chrono::Duration::minutes(i),
                decided_by: None,
                decided_at: None,
                user_id: None,
            })
            .await
            .unwrap();
    }

    // Newest first, two a page, the filter carried into the next page.
    let first = reader
        .get("/v1.0/usher/signUpRequests?$filter=status eq 'pending'&$top=2")
        .await;
    assert_eq!(ids(&first), ["request-3", "request-2"]);
    assert!(!first.to_string().contains("argon2"), "{first}");
    let next = first["@odata.nextLink"].as_str().unwrap();
    let second = reader.get(next).await;
    assert_eq!(ids(&second), ["request-1"]);
    assert!(second.get("@odata.nextLink").is_none());
    let one = reader.get("/v1.0/usher/signUpRequests/request-1").await;
    assert_eq!(one["status"], "pending");
    assert_eq!(one["email"], "held1@example.com");
    assert_eq!(one["displayName"], "Held 1");
    assert_eq!(one["identities"][0]["issuer"], "mail");
    assert!(one["decidedBy"].is_null());

    // Deciding needs ReadWrite.
    assert_error(
        &reader
            .post("/v1.0/usher/signUpRequests/request-1/approve", json!({}))
            .await,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    let (s, approved) = admin
        .call(
            Method::POST,
            "/v1.0/usher/signUpRequests/request-1/approve",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    // An application decided, in the form that tells it from an administrator.
    assert_eq!(approved["decidedBy"], "application:admin-all");
    let user = admin
        .get(&format!(
            "/v1.0/users/{}",
            approved["userId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(user["mail"], "held1@example.com");
    assert_eq!(user["displayName"], "Held 1");
    assert_eq!(user["usherEmailVerified"], true);

    // An approval whose identity belongs to a user by now creates nobody and leaves
    // the request pending: the user and the decision are one write.
    let twin = admin
        .create(
            "/v1.0/users",
            json!({"mail": "held3@example.com",
                "identities": [{"signInType": "federated", "issuer": "mail", "issuerAssignedId": "held3@example.com"}]}),
        )
        .await;
    // Its address is one a pending request proved, so Usher vouches for it.
    assert_eq!(twin["usherEmailVerified"], true, "{twin}");
    assert_error(
        &admin
            .post("/v1.0/usher/signUpRequests/request-3/approve", json!({}))
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    let three = admin.get("/v1.0/usher/signUpRequests/request-3").await;
    assert_eq!(three["status"], "pending", "{three}");
    assert!(three["userId"].is_null());
    assert_eq!(
        ids(&admin
            .get("/v1.0/users?$filter=mail eq 'held3@example.com'")
            .await),
        [twin["id"].as_str().unwrap()]
    );
    assert_error(
        &admin
            .post("/v1.0/usher/signUpRequests/request-1/deny", json!({}))
            .await,
        StatusCode::CONFLICT,
        "ObjectConflict",
    );
    // A reason, if given, is a string of at most 500 characters, and nothing else
    // may be in the body.
    assert_error(
        &admin
            .post(
                "/v1.0/usher/signUpRequests/request-2/deny",
                json!({ "reason": "x".repeat(501) }),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    assert_error(
        &admin
            .post(
                "/v1.0/usher/signUpRequests/request-2/deny",
                json!({ "why": "no" }),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    let (s, denied) = admin
        .post(
            "/v1.0/usher/signUpRequests/request-2/deny",
            json!({ "reason": "Outside the pilot." }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{denied}");
    assert_eq!(denied["status"], "denied");
    assert_eq!(
        ids(&admin
            .get("/v1.0/usher/signUpRequests?$filter=status eq 'denied'")
            .await),
        ["request-2"]
    );
    assert_error(
        &admin
            .post(
                "/v1.0/usher/signUpRequests/request-3/approve",
                json!({"note": "x"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "Request_BadRequest",
    );
    // Cleared, the denial is gone.
    admin
        .done(
            Method::DELETE,
            "/v1.0/usher/signUpRequests/request-2",
            Value::Null,
        )
        .await;
    for answer in [
        admin
            .call(Method::GET, "/v1.0/usher/signUpRequests/request-2", None)
            .await,
        admin.delete("/v1.0/usher/signUpRequests/request-2").await,
        admin
            .post("/v1.0/usher/signUpRequests/nothing/approve", json!({}))
            .await,
    ] {
        assert_error(&answer, StatusCode::NOT_FOUND, "Request_ResourceNotFound");
    }
    for q in [
        "$filter=status eq 'maybe'",
        "$filter=email eq 'x'",
        "$select=id",
    ] {
        let (s, v) = admin
            .call(
                Method::GET,
                &format!("/v1.0/usher/signUpRequests?{q}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
    env.finish(usher).await;
}

/// Redeems a refresh token of the public client: the status and the answer.
async fn refresh_public(usher: &Instance, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(usher.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", PUBLIC_CLIENT),
        ])
        .send()
        .await
        .unwrap();
    (r.status(), json(r).await)
}

async fn userinfo_status(usher: &Instance, access_token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(usher.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
}

/// Where `/authorize` sends a browser: to the application (single sign-on) or to a
/// sign-in page.
async fn single_sign_on_answers(b: &Browser, authorize: &str) -> bool {
    let r = b.get(authorize).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.location().starts_with(CALLBACK)
}

both!(a_new_password_a_role_change_or_a_deletion_ends_sessions_and_tokens);
async fn a_new_password_a_role_change_or_a_deletion_ends_sessions_and_tokens(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let host = url::Url::parse(&usher.issuer)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let email = "grace@example.com";
    let user = admin
        .create(
            "/v1.0/users",
            json!({"displayName": "Grace",
                "identities": [{"signInType": "emailAddress", "issuer": host, "issuerAssignedId": email}],
                "passwordProfile": {"password": PASSWORD}}),
        )
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let authorize = usher.authorize_url(PUBLIC_CLIENT, &[("scope", "openid offline_access")]);
    let b = Browser::new();
    let sign_in = |password: &'static str| {
        let (b, authorize, usher) = (&b, &authorize, &usher);
        async move {
            let callback = b.sign_in(authorize, email, password).await;
            usher.redeem_public(&query(&callback)["code"]).await
        }
    };
    let live = |tokens: &Value| {
        (
            tokens["access_token"].as_str().unwrap().to_owned(),
            tokens["refresh_token"].as_str().unwrap().to_owned(),
        )
    };

    // Signed in: single sign-on, userinfo and refresh all work.
    let (access, refresh) = live(&sign_in(PASSWORD).await);
    assert!(single_sign_on_answers(&b, &authorize).await);
    assert_eq!(userinfo_status(&usher, &access).await, StatusCode::OK);
    let (status, refreshed) = refresh_public(&usher, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();

    // A new password (through the admin API) ends all three.
    const NEW_PASSWORD: &str = "an entirely different pass phrase";
    admin
        .done(
            Method::PATCH,
            &format!("/v1.0/users/{id}"),
            json!({"passwordProfile": {"password": NEW_PASSWORD}}),
        )
        .await;
    let (status, body) = refresh_public(&usher, &refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        userinfo_status(&usher, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(
        !single_sign_on_answers(&b, &authorize).await,
        "the browser must sign in again"
    );

    // A role change (as `usher admin grant` makes it) ends them too.
    let (access, refresh) = live(&sign_in(NEW_PASSWORD).await);
    assert!(single_sign_on_answers(&b, &authorize).await);
    let store = env.store().await;
    let changed = usher_cli::set_admin_role(&*store, email, true)
        .await
        .unwrap();
    assert_eq!(changed, std::slice::from_ref(&id));
    assert_eq!(
        refresh_public(&usher, &refresh).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo_status(&usher, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!single_sign_on_answers(&b, &authorize).await);

    // Disabling the account ends them for good: enabling it again brings none back.
    let (access, refresh) = live(&sign_in(NEW_PASSWORD).await);
    for enabled in [false, true] {
        admin
            .done(
                Method::PATCH,
                &format!("/v1.0/users/{id}"),
                json!({ "accountEnabled": enabled }),
            )
            .await;
    }
    assert_eq!(
        refresh_public(&usher, &refresh).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo_status(&usher, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!single_sign_on_answers(&b, &authorize).await);

    // And so does a deletion.
    let (access, refresh) = live(&sign_in(NEW_PASSWORD).await);
    let (status, v) = admin.delete(&format!("/v1.0/users/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        refresh_public(&usher, &refresh).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        userinfo_status(&usher, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!single_sign_on_answers(&b, &authorize).await);
    env.finish(usher).await;
}

both!(the_console_says_when_its_application_was_removed);
async fn the_console_says_when_its_application_was_removed(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(ADMINS).await;
    let admin = Api::as_client(&usher, "admin-all").await;
    let (status, v) = admin.delete("/v1.0/applications/usher-console").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(usher.url("/console/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.unwrap();
    // The real cause, not "no user flow allows email and password" (two do).
    assert!(body.contains("usher-console"), "{body}");
    assert!(body.contains("Restart Usher"), "{body}");
    assert!(!body.contains("this tenant has none"), "{body}");
    // And a restart does make it again.
    let again = env.start_with(ADMINS).await;
    let r = http.get(again.url("/console/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    env.finish_instance(again).await;
    env.finish(usher).await;
}

/// Administrators of extensions (Graph's own permission names) beside `ADMINS`.
const EXTENSION_ADMINS: &str = r#"
[[applications]]
client_id = "ext-admin"
name = "Extension admin"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["CustomAuthenticationExtension.ReadWrite.All", "EventListener.ReadWrite.All"]

[[applications]]
client_id = "ext-reader"
name = "Extension reader"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["CustomAuthenticationExtension.Read.All", "EventListener.Read.All"]

[[applications]]
client_id = "connectors-only"
name = "1.0.0 connectors admin"
type = "confidential"
client_secret_env = "E2E_SECRET"
user_flow = "B2X_1_e2e"
roles = ["APIConnectors.ReadWrite.All", "IdentityUserFlow.ReadWrite.All"]
"#;

both!(custom_authentication_extensions_are_managed_with_graphs_bodies);
async fn custom_authentication_extensions_are_managed_with_graphs_bodies(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(&format!("{ADMINS}{EXTENSION_ADMINS}")).await;
    let admin = Api::as_client(&usher, "ext-admin").await;
    let reader = Api::as_client(&usher, "ext-reader").await;
    let connectors_admin = Api::as_client(&usher, "connectors-only").await;
    const EXTENSIONS: &str = "/v1.0/identity/customAuthenticationExtensions";

    // The body of Graph's "Create customAuthenticationExtension" example.
    let token = admin
        .create(
            EXTENSIONS,
            json!({
                "@odata.type": "#microsoft.graph.onTokenIssuanceStartCustomExtension",
                "displayName": "onTokenIssuanceStartCustomExtension",
                "description": "Fetch additional claims from custom user store",
                "endpointConfiguration": {
                    "@odata.type": "#microsoft.graph.httpRequestEndpoint",
                    "targetUrl": "https://authenticationeventsAPI.contoso.com"
                },
                "authenticationConfiguration": {
                    "@odata.type": "#microsoft.graph.azureAdTokenAuthentication",
                    "resourceId": "api://authenticationeventsAPI.contoso.com/a13d0fc1-04ab-4ede-b215-63de0174cbb4"
                },
                "clientConfiguration": {"timeoutInMilliseconds": 2000, "maximumRetries": 1},
                "claimsForTokenConfiguration": [
                    {"claimIdInApiResponse": "DateOfBirth"},
                    {"claimIdInApiResponse": "CustomRoles"}
                ]
            }),
        )
        .await;
    assert_eq!(
        token["@odata.type"],
        "#microsoft.graph.onTokenIssuanceStartCustomExtension"
    );
    let token_id = token["id"].as_str().unwrap().to_owned();
    assert_eq!(token_id.len(), 36, "a GUID, as Graph assigns");
    assert_eq!(token["clientConfiguration"]["timeoutInMilliseconds"], 2000);
    assert_eq!(
        token["claimsForTokenConfiguration"],
        json!([{"claimIdInApiResponse": "DateOfBirth"}, {"claimIdInApiResponse": "CustomRoles"}])
    );
    assert_eq!(
        token["authenticationConfiguration"]["resourceId"],
        "api://authenticationeventsAPI.contoso.com/a13d0fc1-04ab-4ede-b215-63de0174cbb4"
    );
    // Listed here, not among the 1.0.0 connectors.
    assert_eq!(
        ids(&reader.get(EXTENSIONS).await),
        std::slice::from_ref(&token_id)
    );
    let api_connectors = connectors_admin.get("/v1.0/identity/apiConnectors").await;
    assert!(!ids(&api_connectors).contains(&token_id));
    assert_eq!(
        connectors_admin
            .call(
                Method::GET,
                &format!("/v1.0/identity/apiConnectors/{token_id}"),
                None
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // PATCH as Graph's "Update customAuthenticationExtension" does.
    let one = format!("{EXTENSIONS}/{token_id}");
    admin
        .done(
            Method::PATCH,
            &one,
            json!({
                "@odata.type": "#microsoft.graph.onTokenIssuanceStartCustomExtension",
                "clientConfiguration": {"timeoutInMilliseconds": 1500, "maximumRetries": 0}
            }),
        )
        .await;
    let read = reader.get(&one).await;
    assert_eq!(
        read["clientConfiguration"],
        json!({"timeoutInMilliseconds": 1500, "maximumRetries": 0})
    );
    assert_eq!(
        read["description"],
        "Fetch additional claims from custom user store"
    );

    // The contract's limits and rules, as Graph errors.
    let refused = admin
        .patch(
            &one,
            json!({"clientConfiguration": {"timeoutInMilliseconds": 5000}}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "Request_BadRequest");
    let refused = admin
        .post(
            EXTENSIONS,
            json!({
                "@odata.type": "#microsoft.graph.onAttributeCollectionStartCustomExtension",
                "displayName": "elsewhere",
                "endpointConfiguration": {"@odata.type": "#microsoft.graph.httpRequestEndpoint", "targetUrl": "https://api.contoso.com/start"},
                "authenticationConfiguration": {"@odata.type": "#microsoft.graph.azureAdTokenAuthentication", "resourceId": "api://other.contoso.com/a13d0fc1"}
            }),
        )
        .await;
    let message = assert_error(&refused, StatusCode::BAD_REQUEST, "Request_BadRequest");
    assert!(message.contains("resourceId"), "{message}");
    let refused = admin
        .patch(
            &one,
            json!({"@odata.type": "#microsoft.graph.onOtpSendCustomExtension"}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "Request_BadRequest");

    // validateAuthenticationConfiguration: nothing in the way.
    let (status, validation) = admin
        .post(
            &format!("{one}/validateAuthenticationConfiguration"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{validation}");
    assert_eq!(validation["errors"], json!([]));

    // Attribute collection extensions, attached to the user flow as Graph's
    // externalUsersSelfServiceSignUpEventsFlow handlers.
    let create = |event: &str, path: &str| {
        json!({
            "@odata.type": format!("#microsoft.graph.on{event}CustomExtension"),
            "displayName": event,
            "endpointConfiguration": {"@odata.type": "#microsoft.graph.httpRequestEndpoint", "targetUrl": format!("https://api.contoso.com/{path}")},
            "authenticationConfiguration": {"@odata.type": "#microsoft.graph.azureAdTokenAuthentication", "resourceId": "api://api.contoso.com/b14e1fc2"},
            "clientConfiguration": {"timeoutInMilliseconds": 2000, "maximumRetries": 1}
        })
    };
    let start = admin
        .create(EXTENSIONS, create("AttributeCollectionStart", "start"))
        .await;
    let submit = admin
        .create(EXTENSIONS, create("AttributeCollectionSubmit", "submit"))
        .await;
    let flow = "/v1.0/identity/authenticationEventsFlows/B2X_1_e2e";
    admin
        .done(
            Method::PATCH,
            flow,
            json!({
                "@odata.type": "#microsoft.graph.externalUsersSelfServiceSignUpEventsFlow",
                "onAttributeCollectionStart": {
                    "@odata.type": "#microsoft.graph.onAttributeCollectionStartCustomExtensionHandler",
                    "customExtension": {"id": start["id"]}
                },
                "onAttributeCollectionSubmit": {
                    "@odata.type": "#microsoft.graph.onAttributeCollectionSubmitCustomExtensionHandler",
                    "customExtension": {"id": submit["id"]}
                }
            }),
        )
        .await;
    let read = reader.get(flow).await;
    assert_eq!(
        read["@odata.type"],
        "#microsoft.graph.externalUsersSelfServiceSignUpEventsFlow"
    );
    assert_eq!(
        read["onAttributeCollectionStart"]["customExtension"]["id"],
        start["id"]
    );
    assert_eq!(
        read["onAttributeCollectionSubmit"]["customExtension"]["id"],
        submit["id"]
    );
    assert!(read["conditions"]["applications"]["includeApplications"]
        .as_array()
        .unwrap()
        .contains(&json!({"appId": PUBLIC_CLIENT})));
    // The user flow's own slots say the same.
    let configuration = connectors_admin
        .get("/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration")
        .await;
    assert_eq!(
        configuration["usherConnectors"]["attributeCollectionStart"],
        json!([start["id"]])
    );
    assert_eq!(
        configuration["usherConnectors"]["postAttributeCollection"],
        json!([submit["id"]])
    );
    // Graph's one-connector-per-step writes replace the 1.0.0 connector only: the
    // extension attached as a handler stays.
    connectors_admin
        .create(
            "/v1.0/identity/apiConnectors",
            json!({"id": "legacy-check", "displayName": "Legacy", "targetUrl": "https://api.contoso.com/legacy"}),
        )
        .await;
    connectors_admin
        .done(
            Method::PUT,
            "/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration/postAttributeCollection/$ref",
            json!({"@odata.id": format!("{}/v1.0/identity/apiConnectors/legacy-check", usher.issuer)}),
        )
        .await;
    let configuration = connectors_admin
        .get("/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration")
        .await;
    assert_eq!(
        configuration["usherConnectors"]["postAttributeCollection"],
        json!(["legacy-check", submit["id"]])
    );
    // An extension is not an apiConnector reference.
    let refused = connectors_admin
        .put(
            "/v1.0/identity/b2xUserFlows/B2X_1_e2e/apiConnectorConfiguration/postAttributeCollection/$ref",
            json!({"@odata.id": format!("{}/v1.0/identity/apiConnectors/{}", usher.issuer, submit["id"].as_str().unwrap())}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "Request_BadRequest");
    // An extension for another event is refused at a handler.
    let refused = admin
        .patch(
            flow,
            json!({"onAttributeCollectionStart": {
                "@odata.type": "#microsoft.graph.onAttributeCollectionStartCustomExtensionHandler",
                "customExtension": {"id": submit["id"]}}}),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "Request_BadRequest");
    // In use, it cannot be deleted; detached, it can.
    let in_use = admin
        .delete(&format!("{EXTENSIONS}/{}", start["id"].as_str().unwrap()))
        .await;
    assert_eq!(in_use.0, StatusCode::CONFLICT, "{}", in_use.1);
    admin
        .done(
            Method::PATCH,
            flow,
            json!({"onAttributeCollectionStart": null}),
        )
        .await;
    assert_eq!(
        reader.get(flow).await["onAttributeCollectionStart"],
        Value::Null
    );
    let (status, _) = admin
        .delete(&format!("{EXTENSIONS}/{}", start["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Graph's permission names guard them.
    let denied = reader
        .patch(flow, json!({"onAttributeCollectionSubmit": null}))
        .await;
    assert_error(
        &denied,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    let denied = connectors_admin.call(Method::GET, EXTENSIONS, None).await;
    assert_error(
        &denied,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    env.finish(usher).await;
}

both!(authentication_event_listeners_are_managed_with_graphs_bodies);
async fn authentication_event_listeners_are_managed_with_graphs_bodies(backend: Backend) {
    let env = TestEnv::new(backend).await;
    let usher = env.start_with(&format!("{ADMINS}{EXTENSION_ADMINS}")).await;
    let admin = Api::as_client(&usher, "ext-admin").await;
    let reader = Api::as_client(&usher, "ext-reader").await;
    let extension = |event: &str| {
        json!({
            "@odata.type": format!("#microsoft.graph.on{event}CustomExtension"),
            "displayName": event,
            "endpointConfiguration": {"@odata.type": "#microsoft.graph.httpRequestEndpoint", "targetUrl": "https://api.contoso.com/events"},
            "authenticationConfiguration": {"@odata.type": "#microsoft.graph.azureAdTokenAuthentication", "resourceId": "api://api.contoso.com/b14e1fc2"}
        })
    };
    let token = admin
        .create(
            "/v1.0/identity/customAuthenticationExtensions",
            extension("TokenIssuanceStart"),
        )
        .await;
    let otp = admin
        .create(
            "/v1.0/identity/customAuthenticationExtensions",
            extension("OtpSend"),
        )
        .await;
    const LISTENERS: &str = "/v1.0/identity/authenticationEventListeners";
    // The body of Graph's "Create authenticationEventListener" example.
    let listener = admin
        .create(
            LISTENERS,
            json!({
                "@odata.type": "#microsoft.graph.onTokenIssuanceStartListener",
                "conditions": {
                    "applications": {
                        "includeAllApplications": false,
                        "includeApplications": [{"appId": PUBLIC_CLIENT}]
                    }
                },
                "priority": 500,
                "handler": {
                    "@odata.type": "#microsoft.graph.onTokenIssuanceStartCustomExtensionHandler",
                    "customExtension": {"id": token["id"]}
                }
            }),
        )
        .await;
    assert_eq!(
        listener["@odata.type"],
        "#microsoft.graph.onTokenIssuanceStartListener"
    );
    let id = listener["id"].as_str().unwrap().to_owned();
    assert_eq!(listener["handler"]["customExtension"]["id"], token["id"]);
    assert_eq!(
        listener["conditions"]["applications"]["includeApplications"],
        json!([{"appId": PUBLIC_CLIENT}])
    );
    let otp_listener = admin
        .create(
            LISTENERS,
            json!({
                "@odata.type": "#microsoft.graph.onEmailOtpSendListener",
                "conditions": {"applications": {"includeApplications": [{"appId": PUBLIC_CLIENT}]}},
                "priority": 10,
                "handler": {
                    "@odata.type": "#microsoft.graph.onOtpSendCustomExtensionHandler",
                    "customExtension": {"id": otp["id"]}
                },
                "behaviorOnError": {"@odata.type": "#microsoft.graph.fallbackToMicrosoftProviderOnError"}
            }),
        )
        .await;
    assert_eq!(
        otp_listener["behaviorOnError"]["@odata.type"],
        "#microsoft.graph.fallbackToMicrosoftProviderOnError"
    );
    assert_eq!(ids(&reader.get(LISTENERS).await).len(), 2);
    // PATCH with If-Match, as read.
    let one = format!("{LISTENERS}/{id}");
    let (_, tag) = reader.tagged(&one).await;
    let (status, v) = admin
        .conditional(Method::PATCH, &one, &tag, Some(json!({"priority": 7})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(reader.get(&one).await["priority"], 7);
    let (status, _) = admin
        .conditional(Method::PATCH, &one, &tag, Some(json!({"priority": 8})))
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "the tag is stale");
    // An extension for another event is refused at a handler.
    let refused = admin
        .post(
            LISTENERS,
            json!({
                "@odata.type": "#microsoft.graph.onTokenIssuanceStartListener",
                "conditions": {"applications": {"includeApplications": [{"appId": PUBLIC_CLIENT}]}},
                "handler": {
                    "@odata.type": "#microsoft.graph.onTokenIssuanceStartCustomExtensionHandler",
                    "customExtension": {"id": otp["id"]}
                }
            }),
        )
        .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "Request_BadRequest");
    // An extension a listener runs cannot be deleted.
    let in_use = admin
        .delete(&format!(
            "/v1.0/identity/customAuthenticationExtensions/{}",
            token["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(in_use.0, StatusCode::CONFLICT, "{}", in_use.1);
    let denied = reader.delete(&one).await;
    assert_error(
        &denied,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
    );
    let (status, _) = admin.delete(&one).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ids(&reader.get(LISTENERS).await).len(), 1);
    env.finish(usher).await;
}
