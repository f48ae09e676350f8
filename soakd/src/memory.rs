//! Whether a workload can fit in the machine: a configuration whose
//! workload needs more memory than the machine has can only end in an
//! out-of-memory abort, perhaps hours into a soak, so `check-config` and
//! `run` refuse it up front.
//!
//! The estimate is a lower bound, so that only what surely cannot fit is
//! refused: each worker draws a slot at random and frees its block or fills
//! it, so in the steady state about half of the `working_set` slots hold a
//! block; those blocks (at the size distribution's mean size, allocator
//! overhead left out) plus every worker's slot table are the least the
//! workload needs at its peak.

use hakmem_workload::WorkloadConfig;

/// A slot of a worker's table (`Option<Block>`: pointer and size).
const SLOT_BYTES: f64 = 16.0;

/// The least memory, in bytes, the workload holds in its steady state.
pub fn peak_bytes(w: &WorkloadConfig) -> f64 {
    let slots = w.threads as f64 * w.working_set as f64;
    slots / 2.0 * w.mean_block_size() + slots * SLOT_BYTES
}

/// The machine's memory (`MemTotal` of /proc/meminfo), in bytes, when readable.
pub fn total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_total(&text)
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kib.checked_mul(1024)
}

/// Refuses a workload whose estimate exceeds `total` bytes, saying which
/// keys make it that large.
pub fn check(w: &WorkloadConfig, total: u64) -> Result<(), String> {
    let need = peak_bytes(w);
    if need <= total as f64 {
        return Ok(());
    }
    Err(format!(
        "the workload needs at least {} (workload.threads {} x workload.working_set {} / 2 \
         live blocks x {:.0} bytes, the mean size of workload.min_size..=workload.max_size \
         {}..={} drawn {}), more than this machine's {} (MemTotal); lower workload.threads, \
         workload.working_set or workload.max_size",
        bytes(need),
        w.threads,
        w.working_set,
        w.mean_block_size(),
        w.min_size,
        w.max_size,
        w.size_distribution.name(),
        bytes(total as f64),
    ))
}

/// Bytes in binary units, for messages.
fn bytes(b: f64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakmem_workload::SizeDistribution;

    #[test]
    fn reads_mem_total() {
        let text = "MemTotal:       16318496 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(text), Some(16318496 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert!(total().is_some_and(|t| t > 1 << 26), "this machine's");
    }

    #[test]
    fn refuses_only_what_cannot_fit() {
        let gib = 1u64 << 30;
        let huge = WorkloadConfig {
            threads: 1024,
            working_set: 1 << 24,
            max_size: 1 << 30,
            ..WorkloadConfig::default()
        };
        let e = check(&huge, 64 * gib).unwrap_err();
        for key in [
            "workload.threads 1024",
            "workload.working_set 16777216",
            "workload.max_size",
        ] {
            assert!(e.contains(key), "{key}: {e}");
        }
        assert!(e.contains("64.0 GiB (MemTotal)"), "{e}");
        // SPEC 4's default workload needs a few hundred KiB.
        let spec = WorkloadConfig::default();
        assert!(peak_bytes(&spec) < (1 << 20) as f64);
        assert!(check(&spec, gib).is_ok());
        // 1 thread x 1M slots / 2 x ~1 MiB mean = ~512 GiB: on the edge.
        let edge = WorkloadConfig {
            working_set: 1 << 20,
            min_size: 1 << 20,
            max_size: 1 << 20,
            size_distribution: SizeDistribution::LogUniform,
            ..WorkloadConfig::default()
        };
        assert!(check(&edge, 513 * gib).is_ok());
        assert!(check(&edge, 511 * gib).is_err());
    }
}
