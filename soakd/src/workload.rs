//! The workload as soakd runs it: SPEC 4's definition from `hakmem_workload`,
//! on the allocator the configuration's `backend` names.

use core::alloc::GlobalAlloc;

use hakmem_workload::{LibcMalloc, Workload};

use crate::config::{Backend, Config};

/// The allocator a backend calls. Both are the real thing, not wrappers:
/// hakmem directly, or the C library's malloc (so `LD_PRELOAD` can swap it).
pub fn allocator(b: Backend) -> &'static (dyn GlobalAlloc + Sync) {
    match b {
        Backend::Hakmem => &hakmem::Hakmem,
        Backend::Libc => &LibcMalloc,
    }
}

/// Starts the configured workload on its threads.
pub fn start(cfg: &Config) -> Workload {
    Workload::start(&cfg.workload, allocator(cfg.backend))
}

/// The allocator in words, for logs: hakmem's profile, and `prewarmed` once
/// the `prewarm` option took effect (`hakmem::Stats::prewarmed`); the libc
/// backend says what `LD_PRELOAD` put in.
pub fn describe(cfg: &Config) -> String {
    match cfg.backend {
        Backend::Hakmem => {
            let prewarmed = if hakmem::stats().prewarmed > 0 {
                ", prewarmed"
            } else {
                ""
            };
            format!("hakmem ({}{prewarmed})", allocator_profile(cfg))
        }
        Backend::Libc => match std::env::var("LD_PRELOAD") {
            Ok(p) if !p.is_empty() => format!("libc malloc (LD_PRELOAD={p})"),
            _ => "libc malloc".to_string(),
        },
    }
}

/// The allocator profile the workload runs under: hakmem's own word for the
/// hakmem backend (`hardened` when `HAKMEM_PROFILE=hardened` chose it at
/// start-up, whatever the config's `[allocator] profile`), else the config's.
pub fn allocator_profile(cfg: &Config) -> String {
    match cfg.backend {
        Backend::Hakmem => hakmem::options().profile.name().into(),
        Backend::Libc => cfg.allocator.profile.name().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn both_backends_run_the_workload() {
        for backend in [Backend::Hakmem, Backend::Libc] {
            let cfg = Config {
                backend,
                workload: hakmem_workload::WorkloadConfig {
                    threads: 2,
                    remote_free_ratio: 0.5,
                    ..Default::default()
                },
                ..Config::default()
            };
            let w = start(&cfg);
            std::thread::sleep(Duration::from_millis(50));
            let ops = w.stop();
            assert!(
                ops.allocs > 1000 && ops.frees > 1000,
                "{backend:?}: {ops:?}"
            );
        }
        assert!(describe(&Config::default()).starts_with("hakmem (balanced"));
    }
}
