//! What the runner publishes and the HTTP handlers read: the metrics and the
//! completed epochs. The runner writes, `http` only reads; neither depends on
//! the other.

use std::sync::RwLock;

use crate::metrics::Metrics;
use crate::results::EpochRecord;

/// State shared between the runner and the HTTP handlers.
pub struct AppState {
    pub metrics: Metrics,
    /// Completed epochs, from the results file and this run.
    epochs: RwLock<Vec<EpochRecord>>,
}

impl AppState {
    pub fn new(metrics: Metrics, completed: Vec<EpochRecord>) -> AppState {
        AppState {
            metrics,
            epochs: RwLock::new(completed),
        }
    }

    /// The completed epochs so far.
    pub fn epochs(&self) -> Vec<EpochRecord> {
        // A panic elsewhere cannot leave a Vec half-pushed: the data stay valid.
        self.epochs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Publishes a completed epoch.
    pub fn push_epoch(&self, record: EpochRecord) {
        self.epochs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// How many epochs have completed.
    pub fn epoch_count(&self) -> usize {
        self.epochs.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
