//! soakd as a systemd service: the unit in `dist/` passes
//! `systemd-analyze verify`, and soakd speaks the notify protocol to a real
//! datagram socket standing in for systemd: READY=1 once it serves HTTP and
//! runs its first epoch, STOPPING=1 on SIGTERM or at its epoch limit, in
//! that order and nothing else.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{write_config, Daemon, FAST_EPOCHS, SOAKD};
use hakmem_e2e::{http_get, read_repo_file, require_tool};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

const UNIT: &str = "dist/soakd.service";

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let analyze = require_tool("systemd-analyze", "apt-get install -y systemd");
    let unit = read_repo_file(UNIT);
    for setting in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=soakd",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "ExecStart=/usr/bin/soakd run --config /etc/soakd/soakd.toml --out /var/lib/soakd",
    ] {
        assert!(unit.lines().any(|l| l == setting), "{UNIT} lacks {setting}");
    }
    // verify checks that ExecStart's program exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("soakd.service");
    std::fs::write(&copy, unit.replace("/usr/bin/soakd", SOAKD)).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown keys and bad values are only warnings: none is allowed either.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns:\n{stderr}"
    );
}

/// The next notification, waiting up to 30 s.
fn next_message(socket: &UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn assert_nothing_more(socket: &UnixDatagram) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    match socket.recv(&mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("unexpected notification: {other:?}"),
    }
}

/// Starts `soakd run --config <config> --out <dir>/out <extra>` with
/// `NOTIFY_SOCKET=<notify_socket>`.
fn run_notifying(config: &Path, dir: &Path, extra: &[&str], notify_socket: &str) -> Daemon {
    let out = dir.join("out");
    let mut args = vec![
        "run",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    Daemon::spawn_with_env(&args, &[("NOTIFY_SOCKET", notify_socket)])
}

fn assert_exits_0(d: &mut Daemon, limit: Duration) {
    let status = d.wait_exit(limit).expect("soakd exits");
    assert!(status.success(), "{}", d.log());
}

#[test]
fn ready_when_serving_then_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let ci = common::config_dir().join("ci.toml");
    let mut d = run_notifying(&ci, dir.path(), &[], path.to_str().unwrap());
    assert_eq!(next_message(&socket), "READY=1", "{}", d.log());
    // Ready means serving, with the first epoch running.
    let addr = d.wait_started();
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let index = soakd::metrics::metric::epoch_index.name;
    assert!(
        body.lines()
            .any(|l| l.starts_with(index) && l.ends_with(" 1")),
        "{body}"
    );
    d.signal(libc::SIGTERM);
    assert_eq!(next_message(&socket), "STOPPING=1", "{}", d.log());
    assert_exits_0(&mut d, Duration::from_secs(5));
    assert_nothing_more(&socket);
}

#[test]
fn an_abstract_socket_hears_ready_then_stopping_at_the_epoch_limit() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("soakd-service-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    let cfg = write_config(dir.path(), "fast.toml", FAST_EPOCHS);
    let mut d = run_notifying(&cfg, dir.path(), &["--epochs", "1"], &format!("@{name}"));
    assert_eq!(next_message(&socket), "READY=1", "{}", d.log());
    assert_eq!(next_message(&socket), "STOPPING=1", "{}", d.log());
    assert_exits_0(&mut d, Duration::from_secs(10));
    assert_nothing_more(&socket);
}
