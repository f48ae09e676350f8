//! Logs through tracing: text or JSON lines on stderr, level from `SOAKD_LOG`
//! (an EnvFilter directive, `info` when unset).

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. An unparsable `SOAKD_LOG` is an error.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("SOAKD_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| format!("SOAKD_LOG={v:?}: {e}"))?
        }
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    }
    .map_err(|e| format!("cannot install the logger: {e}"))
}
