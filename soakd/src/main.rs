//! soakd's command line: parses it and hands over to the library (see
//! `lib.rs`), which holds every part.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use soakd::config::{self, Overrides};
use soakd::error::{Error, EXIT_CONFIG};
use soakd::logging::{self, LogFormat};
use soakd::{compare, daemon, host, report, version};

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

#[derive(Parser)]
#[command(name = "soakd", about = "Soak daemon for the hakmem allocator")]
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
    /// Run one profile for hakmem (libhakmem.so) and other allocators, epochs
    /// alternating; write each one's epochs.jsonl and a side-by-side table.
    Compare(compare::Request),
    /// Validate a profile file and print the effective configuration.
    CheckConfig { file: PathBuf },
    /// Print a table of a results file's epochs (a file or its folder).
    Report {
        file: PathBuf,
        /// Also write a self-contained HTML page with plots here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Print this machine and build (the lines a result records), and the load.
    Host,
}

fn main() -> ExitCode {
    // The version names hakmem's features, known only at run time.
    let matches = Cli::command().version(version::long()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Err(e) = logging::init(cli.log_format) {
        eprintln!("soakd: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let fail = |e: Error| {
        tracing::error!("{e}");
        ExitCode::from(e.exit_code())
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
            let run = loaded
                .and_then(|c| c.apply(&overrides))
                .map_err(Error::from)
                .and_then(|cfg| daemon::run(cfg, epochs));
            match run {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Compare(req) => printed(compare::run(&req), fail),
        Command::CheckConfig { file } => match config::load_file(&file) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.into()),
        },
        Command::Report { file, html } => printed(report::run(&file, html.as_deref()), fail),
        Command::Host => {
            print!("{}", host::now());
            ExitCode::SUCCESS
        }
    }
}

/// Prints a command's text, or fails with its error.
fn printed(result: Result<String, Error>, fail: impl Fn(Error) -> ExitCode) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
