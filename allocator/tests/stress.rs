//! Multi-thread stress: 8 threads for 3 seconds allocate, resize and free
//! blocks of mixed sizes and alignments; 30% of frees are handed to another
//! thread, which frees them. Every block carries a pattern that is checked
//! when it is freed, wherever that happens.

mod common;

use common::Block;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hakmem::Hakmem;
use hakmem_workload::SplitMix64;

#[global_allocator]
static A: Hakmem = Hakmem;

static H: Hakmem = Hakmem;

const THREADS: usize = 8;
const DURATION: Duration = Duration::from_secs(3);
const REMOTE_SHARE: f64 = 0.3;
/// Blocks a thread keeps live at most.
const MAX_LIVE: usize = 2000;

/// A block of a random size (mostly tiny, some up to 256 KiB) and alignment.
fn random_block(rng: &mut SplitMix64, seed: u64) -> Block {
    let r = rng.next_u64();
    let size = match r % 100 {
        0..=69 => 1 + (r >> 8) as usize % 256,
        70..=89 => 257 + (r >> 8) as usize % 768,
        90..=97 => 1025 + (r >> 8) as usize % 31_744,
        _ => 32_769 + (r >> 8) as usize % 229_376,
    };
    let align = match (r >> 40) % 16 {
        0..=9 => 8,
        10..=12 => 16,
        13 | 14 => 64,
        _ => 4096,
    };
    Block::alloc(Layout::from_size_align(size, align).unwrap(), seed)
}

/// Resizes a block (growing or shrinking) and checks the kept prefix.
fn realloc(b: &mut Block, rng: &mut SplitMix64) {
    let old = b.layout.size();
    let new = match rng.next_u64() % 4 {
        0 => (old / 2).max(1),
        1 => old + 1,
        _ => old * 2,
    };
    // SAFETY: the block is live with `b.layout`; `new` > 0 and small.
    let q = unsafe { H.realloc(b.p, b.layout, new) };
    assert!(!q.is_null(), "realloc {old} -> {new} failed");
    assert_eq!(q as usize % b.layout.align(), 0);
    // SAFETY: `q` is live with `new` bytes, the first min(old, new) kept.
    unsafe {
        common::check(q, old.min(new), b.seed);
        common::fill(q, new, b.seed);
    }
    b.p = q;
    b.layout = Layout::from_size_align(new, b.layout.align()).unwrap();
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    allocs: u64,
    reallocs: u64,
    local_frees: u64,
    sent: u64,
    received: u64,
}

fn worker(
    t: usize,
    inbox: Receiver<Block>,
    peers: Vec<Sender<Block>>,
    barrier: Arc<Barrier>,
    deadline: Instant,
) -> Counts {
    let mut rng = SplitMix64::new(0x57e5_5000 + t as u64);
    let mut c = Counts::default();
    let mut live: Vec<Block> = Vec::with_capacity(MAX_LIVE);
    let mut next_seed = (t as u64) << 48;
    'run: loop {
        for _ in 0..64 {
            let r = rng.next_u64();
            match r % 100 {
                0..=49 if live.len() < MAX_LIVE => {
                    next_seed += 1;
                    live.push(random_block(&mut rng, next_seed));
                    c.allocs += 1;
                }
                50..=54 if !live.is_empty() => {
                    let i = (r >> 8) as usize % live.len();
                    realloc(&mut live[i], &mut rng);
                    c.reallocs += 1;
                }
                _ if !live.is_empty() => {
                    let b = live.swap_remove((r >> 8) as usize % live.len());
                    if unit(rng.next_u64()) < REMOTE_SHARE {
                        let to = (t + 1 + (r >> 32) as usize % (THREADS - 1)) % THREADS;
                        peers[to].send(b).expect("peer inbox open");
                        c.sent += 1;
                    } else {
                        b.free();
                        c.local_frees += 1;
                    }
                }
                _ => {}
            }
        }
        for b in inbox.try_iter() {
            b.free();
            c.received += 1;
        }
        if Instant::now() >= deadline {
            break 'run;
        }
    }
    // Every send happened before this barrier, so the drain below is complete.
    barrier.wait();
    for b in inbox.try_iter() {
        b.free();
        c.received += 1;
    }
    live.into_iter().for_each(Block::free);
    c
}

/// A float uniform in [0, 1) from 64 random bits.
fn unit(r: u64) -> f64 {
    (r >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn eight_threads_with_remote_frees_keep_every_block_intact() {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| channel()).unzip();
    let barrier = Arc::new(Barrier::new(THREADS));
    let deadline = Instant::now() + DURATION;
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, inbox)| {
            let (peers, barrier) = (senders.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || worker(t, inbox, peers, barrier, deadline))
        })
        .collect();
    drop(senders);
    let counts: Vec<Counts> = handles
        .into_iter()
        .map(|h| h.join().expect("worker panicked"))
        .collect();
    for (t, c) in counts.iter().enumerate() {
        assert!(c.allocs > 1000, "thread {t} barely ran: {c:?}");
    }
    let sent: u64 = counts.iter().map(|c| c.sent).sum();
    let received: u64 = counts.iter().map(|c| c.received).sum();
    let local: u64 = counts.iter().map(|c| c.local_frees).sum();
    assert_eq!(sent, received, "blocks handed over but never freed");
    let share = sent as f64 / (sent + local) as f64;
    assert!(
        (0.25..=0.35).contains(&share),
        "remote share of frees {share:.3}, want about {REMOTE_SHARE}: {counts:?}"
    );
}
