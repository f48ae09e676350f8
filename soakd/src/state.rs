//! What the runner publishes and the HTTP handlers read: the metrics and the
//! completed epochs. The runner writes, `http` only reads; neither depends on
//! the other.
//!
//! Only the last `[output] history` completed epochs stay in memory, so a
//! daemon that runs for months does not grow; older ones are read back from
//! the results file when asked for.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::RwLock;

use crate::metrics::Metrics;
use crate::results::{self, EpochRecord};

/// State shared between the runner and the HTTP handlers.
pub struct AppState {
    pub metrics: Metrics,
    epochs: RwLock<Recent>,
    /// The results file, for epochs no longer in memory.
    results: PathBuf,
}

/// The last completed epochs.
struct Recent {
    kept: VecDeque<EpochRecord>,
    capacity: usize,
    /// The highest epoch number dropped from memory (0: none).
    dropped_through: u64,
}

impl Recent {
    fn push(&mut self, r: EpochRecord) {
        self.kept.push_back(r);
        while self.kept.len() > self.capacity {
            if let Some(old) = self.kept.pop_front() {
                self.dropped_through = old.epoch;
            }
        }
    }
}

impl AppState {
    /// `completed` oldest first; only the last `history` (at least 1) are kept.
    pub fn new(
        metrics: Metrics,
        completed: Vec<EpochRecord>,
        history: usize,
        results: PathBuf,
    ) -> AppState {
        let mut recent = Recent {
            kept: VecDeque::with_capacity(history.min(completed.len())),
            capacity: history.max(1),
            dropped_through: 0,
        };
        completed.into_iter().for_each(|r| recent.push(r));
        AppState {
            metrics,
            epochs: RwLock::new(recent),
            results,
        }
    }

    /// A panic elsewhere cannot leave the queue half-pushed: the data stay valid.
    fn recent(&self) -> std::sync::RwLockReadGuard<'_, Recent> {
        self.epochs.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The completed epochs kept in memory, oldest first.
    pub fn epochs(&self) -> Vec<EpochRecord> {
        self.recent().kept.iter().cloned().collect()
    }

    /// Up to `max` completed epochs numbered above `since`, oldest first:
    /// from memory when it holds them all, else from the results file (so
    /// this may block on disk).
    pub fn epochs_since(&self, since: u64, max: usize) -> io::Result<Vec<EpochRecord>> {
        {
            let recent = self.recent();
            if since >= recent.dropped_through {
                let newer = recent.kept.iter().filter(|r| r.epoch > since);
                return Ok(newer.take(max).cloned().collect());
            }
        }
        results::completed_since(&self.results, since, max)
    }

    /// Publishes a completed epoch.
    pub fn push_epoch(&self, record: EpochRecord) {
        self.epochs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// How many completed epochs are in memory.
    pub fn epoch_count(&self) -> usize {
        self.recent().kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{tests::record, Results};

    #[test]
    fn memory_keeps_the_last_epochs_and_the_file_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, _) = Results::open(dir.path()).unwrap();
        let all: Vec<EpochRecord> = (1..=5).map(|n| record(n, true)).collect();
        all.iter().for_each(|r| file.append(r).unwrap());
        let state = AppState::new(
            Metrics::new("t", "hakmem", Box::new(|| None)),
            all[..4].to_vec(),
            2,
            file.path().to_path_buf(),
        );
        state.push_epoch(all[4].clone());
        let numbers = |v: Vec<EpochRecord>| v.iter().map(|r| r.epoch).collect::<Vec<_>>();
        assert_eq!(state.epoch_count(), 2);
        assert_eq!(numbers(state.epochs()), [4, 5]);
        assert_eq!(numbers(state.epochs_since(3, 10).unwrap()), [4, 5]);
        assert_eq!(
            numbers(state.epochs_since(0, 2).unwrap()),
            [1, 2],
            "from the file"
        );
        assert_eq!(numbers(state.epochs_since(2, 10).unwrap()), [3, 4, 5]);
        assert_eq!(
            numbers(state.epochs_since(5, 10).unwrap()),
            Vec::<u64>::new()
        );
    }
}
