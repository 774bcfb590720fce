//! Servers on loopback for the tests to talk to.

use axum::Router;
use tokio::net::TcpListener;

/// A loopback listener on a free port and its base URL (`http://127.0.0.1:<port>`).
pub async fn bind() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// Serves `router` on loopback in the background; its base URL.
pub async fn serve(router: Router) -> String {
    let (listener, url) = bind().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// A port nothing listens on (it was free a moment ago): a server that is down.
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
