//! `soakd run`: puts the parts together in the order that makes failures
//! cheap: the listen address and the output folder (its lock) are claimed
//! before any workload starts, so a busy port, a folder another soakd uses
//! or an unwritable folder fails in milliseconds, and nothing is written for
//! a bad configuration.
//!
//! The first SIGTERM or SIGINT asks for an orderly stop (the running epoch is
//! written as partial); a second one during that stop exits at once.

use std::future::Future;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::error::Error;
use crate::host::Machine;
use crate::http;
use crate::metrics::Metrics;
use crate::notify;
use crate::results::{Results, Tail};
use crate::rss::RssReader;
use crate::runner::{Ended, Runner};
use crate::state::AppState;
use crate::workload;

/// Runs the daemon until `max_epochs` epochs ran or SIGTERM/SIGINT arrived.
pub fn run(cfg: Config, max_epochs: Option<u64>) -> Result<(), Error> {
    hakmem::set_options(cfg.allocator);
    let listen_error = |source| Error::Listen {
        addr: cfg.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let (results, existing) = Results::open(&cfg.out_dir)?;
    match existing.tail {
        Tail::Clean => {}
        Tail::Completed => warn!(
            "{}: the last record lacked its newline (soakd stopped mid-write); kept it and added one",
            results.path().display()
        ),
        Tail::Cut(bytes) => warn!(
            bytes,
            "cut a partial last line off {}",
            results.path().display()
        ),
    }
    for (line, err) in &existing.bad_lines {
        warn!(
            line,
            "{}: skipping unparsable line: {err}",
            results.path().display()
        );
    }
    let rss = RssReader::open().map_err(Error::OpenRss)?;
    // Past a file-size limit a write fails with EFBIG (counted and retried
    // like a full disk) instead of killing the process.
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("soakd-io")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| Error::Listen { addr, source })?;
        // Handlers go in before the start line, which tests wait for.
        let shutdown = shutdown_signals().map_err(Error::Signals)?;
        let shutdown = async {
            let name = shutdown.await;
            notify::send(notify::STOPPING);
            name
        };
        let workload = Arc::new(workload::start(&cfg));
        let weak = Arc::downgrade(&workload);
        let first_epoch = existing.next_epoch();
        let state = Arc::new(AppState::new(
            Metrics::new(
                &cfg.name,
                cfg.backend.name(),
                Box::new(move || weak.upgrade().map(|w| w.ops())),
            ),
            existing
                .records
                .into_iter()
                .filter(|r| r.complete)
                .collect(),
            cfg.history,
            results.path().to_path_buf(),
        ));
        let machine = Machine::read(cfg.backend);
        state.metrics.host(&machine);
        tokio::spawn({
            let state = Arc::clone(&state);
            async move {
                if let Err(e) = http::serve(listener, state).await {
                    error!("HTTP server stopped: {e}");
                }
            }
        });
        state.metrics.thresholds(&cfg.thresholds);
        let cores = config::available_cores();
        if cfg.workload.threads >= cores {
            warn!(
                threads = cfg.workload.threads,
                cores,
                "{} workload threads on {cores} cores: they compete with soakd's own threads, \
                 which shows as throughput noise; consider threads = \"auto\"",
                cfg.workload.threads
            );
        }
        info!(
            listen = %addr,
            metrics = %format!("http://{addr}/metrics"),
            results = %results.path().display(),
            profile = %cfg.name,
            allocator = %workload::describe(&cfg),
            epoch_secs = cfg.epoch.length_secs,
            sample_secs = cfg.epoch.sample_secs,
            warmup_secs = cfg.epoch.warmup_secs,
            threads = cfg.workload.threads,
            first_epoch,
            host = %machine.host_name,
            cpu = %machine.cpu_model,
            cores = machine.logical_cores,
            kernel = %machine.kernel,
            version = %crate::version::long(),
            "soakd running: metrics at http://{addr}/metrics, results in {}",
            results.path().display()
        );
        let runner = Runner {
            cfg,
            state,
            results,
            workload,
            rss,
            first_epoch,
            max_epochs,
        };
        match runner.run(shutdown).await? {
            Ended::EpochLimit => {
                notify::send(notify::STOPPING);
                info!("ran the requested epochs; exiting")
            }
            Ended::Signal(name) => info!("{name}: stopped; exiting"),
        }
        Ok(())
    })
}

/// Resolves, with the signal's name, at the first SIGTERM or SIGINT; a second
/// one after it exits the process at once with status 128 + its number (the
/// epoch being written is lost; earlier lines are whole, see `results`).
fn shutdown_signals() -> std::io::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (first, _) = next_signal(&mut term, &mut int).await;
        // Both may have arrived together (a resumed process): exit at once then too.
        let pending = tokio::select! {
            biased;
            second = next_signal(&mut term, &mut int) => Some(second),
            () = std::future::ready(()) => None,
        };
        if pending.is_none() {
            // The runner may have gone already; then the process is ending anyway.
            let _ = first_tx.send(first);
        }
        let (name, number) = match pending {
            Some(second) => second,
            None => next_signal(&mut term, &mut int).await,
        };
        error!("{name} during shutdown: exiting now; the running epoch is not written");
        std::process::exit(128 + number);
    });
    Ok(async move {
        match first_rx.await {
            Ok(name) => name,
            // The watcher ended without a first signal: only at runtime shutdown.
            Err(_) => std::future::pending().await,
        }
    })
}

/// The next SIGTERM or SIGINT: its name and number.
async fn next_signal(term: &mut Signal, int: &mut Signal) -> (&'static str, i32) {
    tokio::select! {
        _ = term.recv() => ("SIGTERM", libc::SIGTERM),
        _ = int.recv() => ("SIGINT", libc::SIGINT),
    }
}
