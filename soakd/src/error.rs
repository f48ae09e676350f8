//! soakd's errors: one enum for everything `soakd run` and `soakd report` can
//! fail on, each variant keeping the `io::Error` it came from as its
//! `source()`. The messages are what users read on stderr (and what the tests
//! match), so they name the address, the path or the config key and line.
//!
//! A configuration error is `config::ConfigError` inside `config`; it becomes
//! `Error::Config` only at the boundary (`main`), which also picks the exit
//! status from the variant.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Exit status for a configuration or usage error (as clap uses).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status for every other failure.
pub const EXIT_FAILURE: u8 = 1;

/// Why soakd could not do what it was asked.
#[derive(Debug)]
pub enum Error {
    /// The profile file or a flag is wrong (key and, for TOML, line named).
    Config(ConfigError),
    /// The listen address cannot be bound (in use, not ours, ...).
    Listen { addr: SocketAddr, source: io::Error },
    /// The output folder or its `epochs.jsonl` cannot be prepared.
    Output {
        step: OutputStep,
        path: PathBuf,
        source: io::Error,
    },
    /// Another soakd holds the output folder's lock (its pid when known).
    Locked { dir: PathBuf, holder: Option<u32> },
    /// A file cannot be read (a results file given to `soakd report`).
    Read { path: PathBuf, source: io::Error },
    /// A file cannot be written (an epoch record, a report page).
    Write { path: PathBuf, source: io::Error },
    /// `/proc/self/statm` cannot be opened at start.
    OpenRss(io::Error),
    /// A sample's RSS cannot be read.
    ReadRss(io::Error),
    /// The tokio runtime cannot start.
    Runtime(io::Error),
    /// The SIGTERM/SIGINT handlers cannot be installed.
    Signals(io::Error),
    /// `soakd compare` was asked for something it cannot do (the flag named).
    Compare(String),
    /// A `soakd compare` child run cannot start.
    Spawn {
        allocator: String,
        source: io::Error,
    },
    /// A `soakd compare` child run failed; its log says why.
    Child {
        allocator: String,
        status: std::process::ExitStatus,
        log: PathBuf,
    },
}

/// What `Results::open` was doing when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStep {
    CreateFolder,
    OpenFile,
    ReadFile,
    RepairFile,
    SyncFolder,
    Lock,
}

impl OutputStep {
    /// ("folder" or "file", what failed).
    fn words(self) -> (&'static str, &'static str) {
        match self {
            OutputStep::CreateFolder => ("folder", "cannot create"),
            OutputStep::OpenFile => ("file", "cannot open for writing"),
            OutputStep::ReadFile => ("file", "cannot read"),
            OutputStep::RepairFile => ("file", "cannot repair"),
            OutputStep::SyncFolder => ("folder", "cannot sync"),
            OutputStep::Lock => ("lock file", "cannot lock"),
        }
    }
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            // Two daemons on one folder is a usage error, like a bad flag.
            Error::Config(_) | Error::Locked { .. } | Error::Compare(_) => EXIT_CONFIG,
            _ => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Output { step, path, source } => {
                let (what, failed) = step.words();
                write!(f, "output {what} {}: {failed}: {source}", path.display())
            }
            Error::Locked { dir, holder } => {
                let by = holder.map_or("another soakd".to_string(), |p| format!("soakd pid {p}"));
                write!(
                    f,
                    "output folder {} is in use by {by} (lock file {}); stop it or choose another --out",
                    dir.display(),
                    dir.join(crate::results::LOCK_FILE).display()
                )
            }
            Error::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            Error::OpenRss(e) => write!(f, "cannot open /proc/self/statm: {e}"),
            Error::ReadRss(e) => write!(f, "cannot read RSS: {e}"),
            Error::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            Error::Signals(e) => write!(f, "cannot catch signals: {e}"),
            Error::Compare(m) => write!(f, "{m}"),
            Error::Spawn { allocator, source } => {
                write!(f, "cannot start soakd for {allocator}: {source}")
            }
            Error::Child {
                allocator,
                status,
                log,
            } => write!(
                f,
                "soakd for {allocator} failed ({status}); see {}",
                log.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Locked { .. } => None,
            Error::Listen { source, .. }
            | Error::Output { source, .. }
            | Error::Read { source, .. }
            | Error::Write { source, .. }
            | Error::OpenRss(source)
            | Error::ReadRss(source)
            | Error::Runtime(source)
            | Error::Signals(source)
            | Error::Spawn { source, .. } => Some(source),
            Error::Compare(_) | Error::Child { .. } => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_failed() {
        let busy = || io::Error::from(io::ErrorKind::AddrInUse);
        let e = Error::Listen {
            addr: "127.0.0.1:9464".parse().unwrap(),
            source: busy(),
        };
        assert!(e
            .to_string()
            .starts_with("cannot listen on 127.0.0.1:9464: "));
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let e = Error::Output {
            step: OutputStep::CreateFolder,
            path: "/x/out".into(),
            source: busy(),
        };
        assert!(e
            .to_string()
            .starts_with("output folder /x/out: cannot create: "));
        let e = Error::Output {
            step: OutputStep::OpenFile,
            path: "/x/out/epochs.jsonl".into(),
            source: busy(),
        };
        assert!(e
            .to_string()
            .starts_with("output file /x/out/epochs.jsonl: cannot open for writing: "));
        assert!(std::error::Error::source(&e).is_some());
    }
}
