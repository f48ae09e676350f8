//! The mixed tiny workload of SPEC section 4: the one definition that soakd
//! and the allocator benchmarks both run, so their figures are comparable.
//!
//! Per worker thread: `working_set` slots and a SplitMix64 PRNG seeded with
//! `seed + thread index`. Each step draws r; slot k = r mod working_set; a full
//! slot is freed, an empty one gets a block whose size is drawn from
//! `[min_size, max_size]`, with its first and last byte written. Every
//! allocation and every free is one operation. With `remote_free_ratio` > 0,
//! that share of frees is handed (round robin) to another worker's lock-free
//! inbox, and that worker frees it and counts the operation.
//!
//! Draw order within a step (part of the definition, so seeds reproduce):
//! slot draw; then, for an allocation, one size draw; for a free with remote
//! frees enabled, one remote-or-local draw.

mod inbox;
mod libc_malloc;
mod rng;

use core::alloc::{GlobalAlloc, Layout};
use core::fmt;
use core::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inbox::{Inbox, Padded};
pub use libc_malloc::LibcMalloc;
pub use rng::SplitMix64;

/// Steps between two publications of a worker's op counts (and checks of the
/// stop flag): rare enough that the relaxed stores cost well under 1%, often
/// enough that a reader is at most a few microseconds behind.
const PUBLISH_EVERY: u32 = 512;

/// Cells per inbox. A worker drains its inbox every `PUBLISH_EVERY` steps and
/// receives at most about half that many frees per period on average, so a
/// full ring (then the sender frees locally) means a worker stalled.
const INBOX_CAPACITY: usize = 4096;

/// How block sizes are drawn from `[min_size, max_size]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SizeDistribution {
    /// Every size equally likely (SPEC's default).
    #[default]
    Uniform,
    /// Every power-of-two range equally likely: many small blocks, few large.
    LogUniform,
}

impl SizeDistribution {
    /// Both distributions.
    pub const ALL: [SizeDistribution; 2] =
        [SizeDistribution::Uniform, SizeDistribution::LogUniform];

    /// The name used in configuration files (`uniform`, `log-uniform`).
    pub fn name(self) -> &'static str {
        match self {
            SizeDistribution::Uniform => "uniform",
            SizeDistribution::LogUniform => "log-uniform",
        }
    }

    /// Parses [`SizeDistribution::name`]'s output.
    pub fn parse(s: &str) -> Option<SizeDistribution> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// The workload's parameters. Defaults are SPEC section 4's.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    /// Worker OS threads.
    pub threads: usize,
    /// Slots per worker.
    pub working_set: usize,
    /// Smallest block size in bytes (>= 1).
    pub min_size: usize,
    /// Largest block size in bytes (inclusive).
    pub max_size: usize,
    /// How sizes are drawn.
    pub size_distribution: SizeDistribution,
    /// Share of frees handed to another worker, in [0, 1]. Ignored with one thread.
    pub remote_free_ratio: f64,
    /// PRNG seed; worker i uses `seed + i`.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            threads: 1,
            working_set: 400,
            min_size: 16,
            max_size: 1024,
            size_distribution: SizeDistribution::Uniform,
            remote_free_ratio: 0.0,
            seed: 0x5eed_4a4b_6d65_6d00,
        }
    }
}

/// Limits beyond which a configuration is a typo rather than a workload.
pub const MAX_THREADS: usize = 1024;
/// Largest accepted `working_set`.
pub const MAX_WORKING_SET: usize = 1 << 24;
/// Largest accepted `max_size` (1 GiB).
pub const MAX_BLOCK_SIZE: usize = 1 << 30;

/// A configuration value out of range: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidConfig {
    /// The field's name as in [`WorkloadConfig`] (and in soakd's `[workload]`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidConfig {}

impl WorkloadConfig {
    /// Checks every field's range; the first problem found, by field.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let bad = |field, message: String| Err(InvalidConfig { field, message });
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return bad(
                "threads",
                format!("must be in 1..={MAX_THREADS}, got {}", self.threads),
            );
        }
        if !(1..=MAX_WORKING_SET).contains(&self.working_set) {
            return bad(
                "working_set",
                format!("must be in 1..={MAX_WORKING_SET}, got {}", self.working_set),
            );
        }
        if !(1..=MAX_BLOCK_SIZE).contains(&self.min_size) {
            return bad(
                "min_size",
                format!("must be in 1..={MAX_BLOCK_SIZE}, got {}", self.min_size),
            );
        }
        if !(1..=MAX_BLOCK_SIZE).contains(&self.max_size) {
            return bad(
                "max_size",
                format!("must be in 1..={MAX_BLOCK_SIZE}, got {}", self.max_size),
            );
        }
        if self.min_size > self.max_size {
            return bad(
                "min_size",
                format!(
                    "must not exceed max_size ({}), got {}",
                    self.max_size, self.min_size
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.remote_free_ratio) {
            return bad(
                "remote_free_ratio",
                format!("must be in [0, 1], got {}", self.remote_free_ratio),
            );
        }
        Ok(())
    }

    /// The mean size of the blocks the workload draws, in bytes (exact for
    /// `uniform`; for `log-uniform` the continuous mean less the half byte
    /// the draw's rounding down takes off).
    pub fn mean_block_size(&self) -> f64 {
        let (min, max) = (self.min_size as f64, self.max_size as f64);
        match self.size_distribution {
            SizeDistribution::Uniform => (min + max) / 2.0,
            // min * R^u for u uniform in [0, 1), R = (max + 1) / min, has mean
            // min * (R - 1) / ln R.
            SizeDistribution::LogUniform => {
                ((max + 1.0 - min) / ((max + 1.0) / min).ln() - 0.5).max(min)
            }
        }
    }
}

/// Operations counted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Blocks allocated.
    pub allocs: u64,
    /// Blocks freed (locally or as a remote free's receiver).
    pub frees: u64,
}

impl OpCounts {
    /// Allocations plus frees.
    pub fn total(&self) -> u64 {
        self.allocs + self.frees
    }
}

impl core::ops::Add for OpCounts {
    type Output = OpCounts;
    fn add(self, o: OpCounts) -> OpCounts {
        OpCounts {
            allocs: self.allocs + o.allocs,
            frees: self.frees + o.frees,
        }
    }
}

/// A live block: owned exclusively by whoever holds this value.
pub(crate) struct Block {
    pub(crate) ptr: NonNull<u8>,
    pub(crate) size: usize,
}

// SAFETY: a Block is the only handle to its allocation, so moving it to another
// thread moves ownership; GlobalAlloc blocks have no thread affinity.
unsafe impl Send for Block {}

/// The Layout SPEC 4 asks for: align 8, or 16 (C's max_align_t) from 16 bytes.
fn layout_for(size: usize) -> Layout {
    let align = if size >= 16 { 16 } else { 8 };
    // `size` is at most MAX_BLOCK_SIZE (validated), far from overflowing.
    Layout::from_size_align(size, align).expect("validated block size")
}

/// Draws sizes in `[min, max]`.
#[derive(Clone, Copy, Debug)]
struct SizeSampler {
    min: usize,
    span: u64,
    dist: SizeDistribution,
    /// ln((max + 1) / min), for the log-uniform draw.
    log_range: f64,
}

impl SizeSampler {
    fn new(cfg: &WorkloadConfig) -> Self {
        SizeSampler {
            min: cfg.min_size,
            span: (cfg.max_size - cfg.min_size) as u64 + 1,
            dist: cfg.size_distribution,
            log_range: ((cfg.max_size as f64 + 1.0) / cfg.min_size as f64).ln(),
        }
    }

    #[inline]
    fn sample(&self, r: u64) -> usize {
        match self.dist {
            SizeDistribution::Uniform => self.min + (r % self.span) as usize,
            SizeDistribution::LogUniform => {
                // min * ((max+1)/min)^u lies in [min, max+1); the clamp covers rounding.
                let x = self.min as f64 * (rng::unit_f64(r) * self.log_range).exp();
                (x as usize).clamp(self.min, self.min + self.span as usize - 1)
            }
        }
    }
}

/// State shared by the workers and the controlling handle.
struct Shared {
    stop: AtomicBool,
    /// Per-worker (allocs, frees), each pair on its own cache lines, written
    /// only by its worker.
    counts: Box<[Padded<[AtomicU64; 2]>]>,
    inboxes: Box<[Inbox]>,
}

impl Shared {
    fn ops(&self) -> OpCounts {
        self.counts.iter().fold(OpCounts::default(), |acc, c| {
            acc + OpCounts {
                allocs: c.0[0].load(Ordering::Relaxed),
                frees: c.0[1].load(Ordering::Relaxed),
            }
        })
    }
}

/// One worker's loop. Returns the blocks it still holds when told to stop.
fn worker(
    idx: usize,
    cfg: WorkloadConfig,
    shared: Arc<Shared>,
    alloc: &'static (dyn GlobalAlloc + Sync),
) -> Vec<Block> {
    let mut rng = SplitMix64::new(cfg.seed.wrapping_add(idx as u64));
    let sizes = SizeSampler::new(&cfg);
    let ws = cfg.working_set as u64;
    let remote = cfg.remote_free_ratio > 0.0 && cfg.threads > 1;
    let others = cfg.threads - 1;
    let mut next_target = 0usize;
    let mut slots: Vec<Option<Block>> = (0..cfg.working_set).map(|_| None).collect();
    // Plain locals in the loop; the shared atomics see them once per period.
    let mut allocs = 0u64;
    let mut frees = 0u64;
    let free = |b: Block| {
        // SAFETY: `b` was allocated by `alloc` with `layout_for(b.size)` and is
        // owned here, so it is freed exactly once.
        unsafe { alloc.dealloc(b.ptr.as_ptr(), layout_for(b.size)) }
    };
    loop {
        for _ in 0..PUBLISH_EVERY {
            let k = (rng.next_u64() % ws) as usize;
            match slots[k].take() {
                Some(b) => {
                    if remote && rng::unit_f64(rng.next_u64()) < cfg.remote_free_ratio {
                        // Round robin over the other workers, skipping ourselves.
                        let target = (idx + 1 + next_target) % cfg.threads;
                        next_target = (next_target + 1) % others;
                        if let Err(b) = shared.inboxes[target].push(b) {
                            free(b);
                            frees += 1;
                        }
                    } else {
                        free(b);
                        frees += 1;
                    }
                }
                None => {
                    let size = sizes.sample(rng.next_u64());
                    let l = layout_for(size);
                    // SAFETY: `l` has a non-zero size (validated min_size >= 1).
                    let p = unsafe { alloc.alloc(l) };
                    let Some(ptr) = NonNull::new(p) else {
                        std::alloc::handle_alloc_error(l)
                    };
                    // SAFETY: the block is `size` >= 1 bytes and ours.
                    unsafe {
                        ptr.as_ptr().write(k as u8);
                        ptr.as_ptr().add(size - 1).write(k as u8);
                    }
                    allocs += 1;
                    slots[k] = Some(Block { ptr, size });
                }
            }
        }
        if remote {
            // SAFETY: a worker is its own inbox's only consumer while it runs.
            while let Some(b) = unsafe { shared.inboxes[idx].pop() } {
                free(b);
                frees += 1;
            }
        }
        let c = &shared.counts[idx].0;
        c[0].store(allocs, Ordering::Relaxed);
        c[1].store(frees, Ordering::Relaxed);
        if shared.stop.load(Ordering::Relaxed) {
            return slots.into_iter().flatten().collect();
        }
    }
}

/// A running workload.
pub struct Workload {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<Vec<Block>>>,
    alloc: &'static (dyn GlobalAlloc + Sync),
}

/// What the workers left when they stopped.
struct Stopped {
    ops: OpCounts,
    /// When the last worker had stopped.
    at: Instant,
    /// Blocks still held in slots or waiting in inboxes.
    held: Vec<Block>,
}

impl Workload {
    /// Spawns `cfg.threads` OS threads running the workload through `alloc` until [`Workload::stop`].
    ///
    /// # Panics
    /// If `cfg` fails [`WorkloadConfig::validate`], or a thread cannot be spawned.
    pub fn start(cfg: &WorkloadConfig, alloc: &'static (dyn GlobalAlloc + Sync)) -> Workload {
        if let Err(e) = cfg.validate() {
            panic!("invalid workload configuration: {e}");
        }
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            counts: (0..cfg.threads)
                .map(|_| Padded([AtomicU64::new(0), AtomicU64::new(0)]))
                .collect(),
            inboxes: (0..cfg.threads)
                .map(|_| Inbox::new(if cfg.threads > 1 { INBOX_CAPACITY } else { 1 }))
                .collect(),
        });
        let workers = (0..cfg.threads)
            .map(|i| {
                let (cfg, shared) = (cfg.clone(), Arc::clone(&shared));
                std::thread::Builder::new()
                    .name(format!("workload-{i}"))
                    .spawn(move || worker(i, cfg, shared, alloc))
                    .expect("spawn workload thread")
            })
            .collect();
        Workload {
            shared,
            workers,
            alloc,
        }
    }

    /// Operations so far (all threads): cheap, callable from any thread at any
    /// time, at most a few hundred operations per worker behind.
    pub fn ops(&self) -> OpCounts {
        self.shared.ops()
    }

    /// Stops and joins the workers, without freeing what they hold. Idempotent.
    fn stop_workers(&mut self) -> Stopped {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut held = Vec::new();
        for w in self.workers.drain(..) {
            match w.join() {
                Ok(blocks) => held.extend(blocks),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        let at = Instant::now();
        for inbox in self.shared.inboxes.iter() {
            // SAFETY: every worker has been joined, so this thread is the only consumer.
            while let Some(b) = unsafe { inbox.pop() } {
                held.push(b);
            }
        }
        Stopped {
            ops: self.shared.ops(),
            at,
            held,
        }
    }

    /// Stops the workers, joins them, frees every block still held (not counted
    /// as operations) and returns the operation totals.
    pub fn stop(mut self) -> OpCounts {
        let stopped = self.stop_workers();
        free_all(self.alloc, stopped.held);
        stopped.ops
    }
}

impl Drop for Workload {
    /// A workload dropped without `stop` still stops its threads (they would
    /// otherwise spin forever) and frees what they held.
    fn drop(&mut self) {
        let stopped = self.stop_workers();
        free_all(self.alloc, stopped.held);
    }
}

fn free_all(alloc: &dyn GlobalAlloc, blocks: Vec<Block>) {
    for b in blocks {
        // SAFETY: every held block came from `alloc` with `layout_for(size)` and
        // is owned by this list alone.
        unsafe { alloc.dealloc(b.ptr.as_ptr(), layout_for(b.size)) }
    }
}

/// Runs the workload for `d` and returns (ops, elapsed), elapsed running from
/// before the threads start until the last one has stopped.
pub fn run_for(
    cfg: &WorkloadConfig,
    alloc: &'static (dyn GlobalAlloc + Sync),
    d: Duration,
) -> (OpCounts, Duration) {
    let t0 = Instant::now();
    let mut w = Workload::start(cfg, alloc);
    std::thread::sleep(d);
    let stopped = w.stop_workers();
    free_all(alloc, stopped.held);
    (stopped.ops, stopped.at - t0)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;
