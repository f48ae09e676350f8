//! `soakd run`: puts the parts together in the order that makes failures
//! cheap: the listen address and the output folder are claimed before any
//! workload starts, so a busy port or an unwritable folder fails in
//! milliseconds, and nothing is written for a bad configuration.

use std::future::Future;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::error::Error;
use crate::http;
use crate::metrics::Metrics;
use crate::results::Results;
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
    if existing.truncated_tail > 0 {
        warn!(
            bytes = existing.truncated_tail,
            "cut a partial last line off {}",
            results.path().display()
        );
    }
    for (line, err) in &existing.bad_lines {
        warn!(
            line,
            "{}: skipping unparsable line: {err}",
            results.path().display()
        );
    }
    let rss = RssReader::open().map_err(Error::OpenRss)?;
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
        let shutdown = shutdown_signal().map_err(Error::Signals)?;
        let workload = Arc::new(workload::start(&cfg));
        let weak = Arc::downgrade(&workload);
        let state = Arc::new(AppState::new(
            Metrics::new(
                &cfg.name,
                cfg.backend.name(),
                Box::new(move || weak.upgrade().map(|w| w.ops())),
            ),
            existing
                .records
                .iter()
                .filter(|r| r.complete)
                .cloned()
                .collect(),
        ));
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
        let first_epoch = existing.next_epoch();
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
            Ended::EpochLimit => info!("ran the requested epochs; exiting"),
            Ended::Signal(name) => info!("{name}: wrote the running epoch; exiting"),
        }
        Ok(())
    })
}

/// Resolves, with the signal's name, at the first SIGTERM or SIGINT.
fn shutdown_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
