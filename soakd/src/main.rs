//! soakd: drives SPEC 4's mixed tiny workload in epochs and reports each
//! epoch's throughput, CV, RSS drift and syscalls per operation through
//! Prometheus and durable JSON lines. This file only wires the modules.

mod config;
mod daemon;
mod epoch;
mod http;
mod logging;
mod metrics;
mod report;
mod results;
mod rss;
mod runner;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Overrides;
use crate::logging::LogFormat;

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

#[derive(Parser)]
#[command(
    name = "soakd",
    version,
    about = "Soak daemon for the hakmem allocator"
)]
struct Cli {
    /// Log line format on stderr (level from SOAKD_LOG, default info).
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the workload in epochs, serve metrics, append results.
    Run {
        /// Profile file (TOML); without it, the embedded defaults (1-minute epochs).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address for HTTP (IP:PORT; port 0 picks a free one).
        #[arg(long)]
        listen: Option<String>,
        /// Epoch length in seconds.
        #[arg(long)]
        epoch_secs: Option<u64>,
        /// Exit after this many epochs (default: run until SIGTERM/SIGINT).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        epochs: Option<u64>,
        /// Output folder for epochs.jsonl.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validate a profile file and print the effective configuration.
    CheckConfig { file: PathBuf },
    /// Print a table of a results file's epochs (a file or its folder).
    Report {
        file: PathBuf,
        /// Also write a self-contained HTML page with plots here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

/// Exit status for a configuration or usage error (as clap uses).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format) {
        eprintln!("soakd: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let fail = |code: u8, e: String| {
        tracing::error!("{e}");
        ExitCode::from(code)
    };
    match cli.command {
        Command::Run {
            config,
            listen,
            epoch_secs,
            epochs,
            out,
        } => {
            let loaded = match &config {
                Some(path) => config::load_file(path),
                None => config::parse("(embedded defaults)", config::EMBEDDED_DEFAULT),
            };
            let overrides = Overrides {
                listen,
                epoch_secs,
                out,
            };
            match loaded.and_then(|c| c.apply(&overrides)) {
                Err(e) => fail(EXIT_CONFIG, e.to_string()),
                Ok(cfg) => match daemon::run(cfg, epochs) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(1, e),
                },
            }
        }
        Command::CheckConfig { file } => match config::load_file(&file) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_CONFIG, e.to_string()),
        },
        Command::Report { file, html } => match report::run(&file, html.as_deref()) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, e),
        },
    }
}
