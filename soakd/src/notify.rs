//! systemd's service notification (sd_notify(3)) for `Type=notify` units:
//! one datagram per state change to the socket named by `NOTIFY_SOCKET`, a
//! path or, after `@`, an abstract address. Without the variable (not run by
//! systemd) nothing is sent. A failed send is logged, never fatal: the
//! soak matters more than its supervisor's view of it.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::warn;

/// The HTTP listener is bound and the first epoch has started.
pub const READY: &str = "READY=1";
/// soakd is shutting down (writing the running epoch, then exiting).
pub const STOPPING: &str = "STOPPING=1";

/// Tells systemd `state`, if systemd is listening.
pub fn send(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(&socket, state) {
        warn!(
            "cannot notify systemd ({state}) at NOTIFY_SOCKET={}: {e}",
            socket.to_string_lossy()
        );
    }
}

/// Sends `state` to the notification socket `socket`.
fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(socket)?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither an absolute path nor an @abstract name",
            ))
        }
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    if sent == state.len() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "sent {sent} of {} bytes",
            state.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(listener: &UnixDatagram) -> String {
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), READY).unwrap();
        send_to(path.as_os_str(), STOPPING).unwrap();
        assert_eq!(received(&listener), "READY=1");
        assert_eq!(received(&listener), "STOPPING=1");
    }

    #[test]
    fn sends_to_an_abstract_address() {
        let name = format!("soakd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), READY).unwrap();
        assert_eq!(received(&listener), "READY=1");
    }

    #[test]
    fn a_bad_address_is_an_error_naming_why() {
        let e = send_to(OsStr::new("relative/path"), READY).unwrap_err();
        assert!(e.to_string().contains("absolute path"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let nobody = dir.path().join("nobody-listens");
        assert!(send_to(nobody.as_os_str(), READY).is_err());
    }
}
