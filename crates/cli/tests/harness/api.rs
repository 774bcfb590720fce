//! A customer's API connector endpoint on loopback: answers with a script of
//! responses (the last one repeats) and keeps every request it received.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{extract::State, http::HeaderMap, http::StatusCode, routing::post, Json, Router};
use serde_json::Value;

#[derive(Clone, Default)]
struct Script {
    responses: Arc<Mutex<VecDeque<(u16, Value)>>>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

pub struct TestApi {
    pub url: String,
    script: Script,
}

impl TestApi {
    pub async fn start(responses: Vec<(u16, Value)>) -> Self {
        let script = Script {
            responses: Arc::new(Mutex::new(responses.into())),
            ..Script::default()
        };
        let app = Router::new()
            .route("/connector", post(answer))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/connector", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, script }
    }

    /// The request bodies received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.script
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn headers(&self) -> Vec<HeaderMap> {
        self.script
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
}

async fn answer(
    State(script): State<Script>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    script.requests.lock().unwrap().push((headers, body));
    let mut responses = script.responses.lock().unwrap();
    let (status, body) = if responses.len() > 1 {
        responses.pop_front().unwrap()
    } else {
        responses.front().cloned().unwrap_or((
            200,
            serde_json::json!({"version": "1.0.0", "action": "Continue"}),
        ))
    };
    (StatusCode::from_u16(status).unwrap(), Json(body))
}
