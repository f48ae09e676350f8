//! The HTTP endpoint: `/metrics`, `/healthz`, `/epochs` and a landing page.
//!
//! hyper answers malformed requests with a 4xx and closes the connection; no
//! handler can fail, so a bad client never disturbs the daemon.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;

use crate::results::EpochRecord;
use crate::state::AppState;

/// Serves until the runtime shuts down.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/epochs", get(epochs))
        .with_state(state)
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>soakd</title></head><body>",
        "<h1>soakd ",
        env!("CARGO_PKG_VERSION"),
        "</h1><ul>",
        "<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>",
        "<li><a href=\"/healthz\">/healthz</a>: liveness</li>",
        "<li><a href=\"/epochs\">/epochs</a>: completed epochs as JSON</li>",
        "</ul></body></html>\n"
    ))
}

async fn metrics(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn epochs(State(s): State<Arc<AppState>>) -> Json<Vec<EpochRecord>> {
    Json(s.epochs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(request).await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        exchange(addr, req.as_bytes()).await
    }

    #[tokio::test]
    async fn routes_answer() {
        let state = Arc::new(AppState::new(
            Metrics::new("t", "hakmem", Box::new(|| None)),
            vec![crate::results::tests::record(1, true)],
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, state));

        let r = get(addr, "/").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        for link in ["href=\"/metrics\"", "href=\"/healthz\"", "href=\"/epochs\""] {
            assert!(r.contains(link), "{r}");
        }
        let r = get(addr, "/metrics").await;
        assert!(r.starts_with("HTTP/1.1 200"));
        assert!(r.contains("content-type: text/plain; version=0.0.4"), "{r}");
        assert!(r.contains(crate::metrics::metric::build_info.name));
        assert!(get(addr, "/healthz").await.ends_with("ok\n"));
        let r = get(addr, "/epochs").await;
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: Vec<EpochRecord> = serde_json::from_str(body).unwrap();
        assert_eq!(v[0].epoch, 1);
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        let r = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let r = exchange(addr, b"\x16\x03\x01 garbage\r\n\r\n").await;
        assert!(r.is_empty() || r.starts_with("HTTP/1.1 4"), "{r}");
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
    }
}
