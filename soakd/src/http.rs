//! The HTTP endpoint: `/metrics`, `/healthz`, `/epochs` and a landing page.
//!
//! `GET /epochs` answers the completed epochs kept in memory (the last
//! `[output] history`), `GET /epochs?since=K` the next page of at most
//! [`PAGE`] completed epochs numbered above K, from the results file when
//! memory no longer holds them. Both are a JSON array, oldest first; an
//! empty page means there is nothing newer.
//!
//! hyper answers malformed requests with a 4xx and closes the connection; no
//! handler can fail, so a bad client never disturbs the daemon.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
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
        "<li><a href=\"/epochs\">/epochs</a>: recent completed epochs as JSON ",
        "(<code>/epochs?since=K</code>: the next page after epoch K)</li>",
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

/// The most epochs one `/epochs?since=K` answer holds.
pub const PAGE: usize = 100;

async fn epochs(State(s): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let since = match query.as_deref().map(parse_since).transpose() {
        Ok(since) => since,
        Err(message) => return (StatusCode::BAD_REQUEST, message + "\n").into_response(),
    };
    let Some(since) = since else {
        return Json(s.epochs()).into_response();
    };
    // Older pages come from the file: off the async workers.
    let page = tokio::task::spawn_blocking(move || s.epochs_since(since, PAGE)).await;
    match page {
        Ok(Ok(page)) => Json::<Vec<EpochRecord>>(page).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the results file: {e}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// `since=K`, the one parameter `/epochs` takes; an error names what is wrong.
fn parse_since(query: &str) -> Result<u64, String> {
    match query.split_once('=') {
        Some(("since", k)) => k
            .parse()
            .map_err(|_| format!("since: expected an epoch number, got {k:?}")),
        _ => Err(format!(
            "unknown query {query:?}: /epochs takes only since=EPOCH"
        )),
    }
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
            10,
            "/nonexistent/epochs.jsonl".into(),
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
        let r = get(addr, "/epochs?since=0").await;
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: Vec<EpochRecord> = serde_json::from_str(body).unwrap();
        assert_eq!(v.len(), 1);
        assert!(get(addr, "/epochs?since=1").await.ends_with("\r\n\r\n[]"));
        for bad in ["since=x", "since=-1", "from=3", "since"] {
            let r = get(addr, &format!("/epochs?{bad}")).await;
            assert!(r.starts_with("HTTP/1.1 400"), "{bad}: {r}");
            assert!(r.contains("since"), "{bad}: {r}");
        }
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
