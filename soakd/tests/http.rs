//! The HTTP endpoint under load and abuse, and promtool's view of /metrics.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Daemon;
use hakmem_e2e::{exchange, http_get, promtool};
use soakd::metrics::metric;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

fn start() -> (Daemon, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::spawn_ci(&dir.path().join("out"));
    let addr = d.wait_started();
    (d, addr, dir)
}

#[test]
fn fifty_concurrent_scrapers_for_ten_seconds() {
    let (mut d, addr, _dir) = start();
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let scrapers: Vec<_> = (0..50)
        .map(|_| {
            let (stop, ok, errors) = (stop.clone(), ok.clone(), errors.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http_get(addr, "/metrics") {
                        Ok((200, body)) if body.contains(metric::ops.name) => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Ok((status, _)) => {
                            eprintln!("status {status}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => {
                            eprintln!("error {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    scrapers.into_iter().for_each(|s| s.join().unwrap());
    let (ok, errors) = (ok.load(Ordering::Relaxed), errors.load(Ordering::Relaxed));
    assert_eq!(errors, 0, "{errors} failed scrapes of {}", ok + errors);
    assert!(ok >= 50, "only {ok} scrapes");
    assert!(d.is_running(), "soakd died:\n{}", d.log());
    assert_eq!(http_get(addr, "/healthz").unwrap(), (200, "ok\n".into()));
}

#[test]
fn malformed_requests_get_4xx_or_a_close() {
    let (mut d, addr, _dir) = start();
    let mut huge_header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 512 * 1024));
    huge_header.extend(b"\r\n\r\n");
    let cases: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec(),
        huge_header,
    ];
    for req in &cases {
        let shown = String::from_utf8_lossy(&req[..req.len().min(40)]).into_owned();
        match exchange(addr, req) {
            Ok(resp) => {
                let text = String::from_utf8_lossy(&resp);
                assert!(
                    resp.is_empty() || text.starts_with("HTTP/1.1 4"),
                    "{shown:?} got {text:?}"
                );
            }
            // Closed on us mid-send: acceptable.
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ),
                "{shown:?}: {e}"
            ),
        }
    }
    // A connection opened and dropped without a byte.
    drop(std::net::TcpStream::connect(addr).unwrap());
    assert!(d.is_running(), "soakd died:\n{}", d.log());
    assert_eq!(http_get(addr, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(addr, "/metrics").unwrap().0, 200);
    assert_eq!(http_get(addr, "/no-such-page").unwrap().0, 404);
}

#[test]
fn landing_page_epochs_and_promtool() {
    let (_d, addr, _dir) = start();
    let (status, page) = http_get(addr, "/").unwrap();
    assert_eq!(status, 200);
    for link in ["/metrics", "/healthz", "/epochs"] {
        assert!(page.contains(&format!("href=\"{link}\"")), "{page}");
    }
    let (status, epochs) = http_get(addr, "/epochs").unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&epochs).unwrap();
    assert!(v.is_array(), "{epochs}");

    std::thread::sleep(Duration::from_millis(2200)); // a sample in, gauges set
    let (status, metrics) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let t = Instant::now();
    let out = check.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {findings}\n{metrics}");
    assert!(findings.trim().is_empty(), "promtool findings: {findings}");
    assert!(t.elapsed() < Duration::from_secs(30));
}
