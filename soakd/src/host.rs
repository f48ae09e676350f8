//! The machine a result was measured on, read with `sysinfo`: who and what
//! ran it (recorded at start and with every epoch), and how busy the machine
//! was per sample, so that a noisy epoch can be told from a slow allocator.
//!
//! "Others' CPU" is the share of all logical CPUs busy with anything but
//! soakd: the system's busy share (`/proc/stat`, through sysinfo) minus
//! soakd's own (its CPU time over the same interval). The 1-minute load
//! average counts soakd's own runnable threads too, so it is shown beside
//! it, not instead.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::config::Backend;
use crate::version;

/// Facts about the machine and the build, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub host_name: String,
    /// Distribution and release, e.g. `Debian GNU/Linux 12`.
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    /// `None` where the kernel does not say.
    pub physical_cores: Option<usize>,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub soakd_version: String,
    pub hakmem_version: String,
    /// hakmem's cargo features, comma-separated, or `none`.
    pub hakmem_features: String,
    /// For the `libc` backend, the library whose `malloc` the workload calls
    /// (the C library, or what `LD_PRELOAD` put first); `None` for hakmem,
    /// which is linked in.
    pub allocator_library: Option<String>,
}

/// What "unknown" reads as, rather than an empty field.
const UNKNOWN: &str = "unknown";

impl Machine {
    /// Reads the machine now; `backend` decides whether the malloc library matters.
    pub fn read(backend: Backend) -> Machine {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let known = |v: Option<String>| v.unwrap_or_else(|| UNKNOWN.to_string());
        Machine {
            host_name: known(System::host_name()),
            os: match (System::name(), System::os_version()) {
                (Some(n), Some(v)) => format!("{n} {v}"),
                (n, _) => known(n),
            },
            kernel: known(System::kernel_version()),
            cpu_model: sys
                .cpus()
                .first()
                .map(|c| c.brand().trim().to_string())
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| UNKNOWN.to_string()),
            logical_cores: sys.cpus().len(),
            physical_cores: System::physical_core_count(),
            memory_total_bytes: sys.total_memory(),
            memory_available_bytes: sys.available_memory(),
            soakd_version: version::SOAKD.to_string(),
            hakmem_version: hakmem::VERSION.to_string(),
            hakmem_features: version::hakmem_features(),
            allocator_library: (backend == Backend::Libc).then(malloc_library).flatten(),
        }
    }

    /// The label values of `soakd_host_info`, in the row's label order:
    /// facts that do not change while the machine runs.
    pub fn info_labels(&self) -> [String; 6] {
        [
            self.host_name.clone(),
            self.os.clone(),
            self.kernel.clone(),
            self.cpu_model.clone(),
            self.logical_cores.to_string(),
            self.physical_cores
                .map_or_else(|| UNKNOWN.to_string(), |n| n.to_string()),
        ]
    }

    /// The same machine and build, whatever its free memory: epochs with
    /// equal identities ran on one setup.
    pub fn identity(&self) -> Machine {
        Machine {
            memory_available_bytes: 0,
            ..self.clone()
        }
    }

    /// Lines for people and for SCORECARD entries.
    pub fn describe(&self) -> String {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        let physical = self
            .physical_cores
            .map_or_else(|| UNKNOWN.to_string(), |n| n.to_string());
        let mut s = String::new();
        let _ = writeln!(s, "host:    {}", self.host_name);
        let _ = writeln!(s, "os:      {}, kernel {}", self.os, self.kernel);
        let _ = writeln!(
            s,
            "cpu:     {} ({} logical, {physical} physical cores)",
            self.cpu_model, self.logical_cores
        );
        let _ = writeln!(
            s,
            "memory:  {:.1} GiB total, {:.1} GiB available",
            gib(self.memory_total_bytes),
            gib(self.memory_available_bytes)
        );
        let _ = writeln!(
            s,
            "build:   soakd {}, hakmem {} (features: {})",
            self.soakd_version, self.hakmem_version, self.hakmem_features
        );
        if let Some(lib) = &self.allocator_library {
            let _ = writeln!(s, "malloc:  {lib}");
        }
        s
    }
}

/// `soakd host`: this machine and build as the libc backend would record
/// them (so an `LD_PRELOAD`ed malloc shows), and the load averages now.
pub fn now() -> String {
    let mut s = Machine::read(Backend::Libc).describe();
    let l = System::load_average();
    let _ = writeln!(
        s,
        "load:    {:.2} {:.2} {:.2} (1, 5, 15 min)",
        l.one, l.five, l.fifteen
    );
    s
}

/// The file of the library whose `malloc` this process calls, found the way
/// the dynamic linker finds it (so an `LD_PRELOAD`ed one comes first).
fn malloc_library() -> Option<String> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks
    // the symbol up; a null result is handled below.
    let malloc = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
    if malloc.is_null() {
        return None;
    }
    // SAFETY: Dl_info is plain data that dladdr fills; all-zero is a valid start.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: `malloc` is an address inside a loaded object and `info` is ours.
    if unsafe { libc::dladdr(malloc, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set dli_fname to a NUL-terminated string owned by the
    // dynamic linker, alive as long as the object stays loaded (for good).
    let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy();
    let path = std::fs::canonicalize(name.as_ref())
        .map_or_else(|_| name.to_string(), |p| p.display().to_string());
    Some(path)
}

/// The machine's load at one sample.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// The sample's time, as the throughput sample's `t_secs`.
    pub t_secs: f64,
    /// 1-minute load average.
    pub load1: f64,
    /// Share (0..1) of all logical CPUs busy with other processes since the
    /// previous sample.
    pub others_cpu_busy: f64,
}

/// Reads the load per sample; each reading covers the time since the last.
pub struct LoadSampler {
    sys: System,
    /// Wall clock and soakd's CPU time at the last reading.
    last: (Instant, Duration),
}

impl LoadSampler {
    /// Starts counting from now.
    pub fn start() -> LoadSampler {
        let mut sys = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_cpu_usage()),
        );
        sys.refresh_cpu_usage();
        LoadSampler {
            sys,
            last: (Instant::now(), own_cpu_time()),
        }
    }

    /// The load at `t_secs` into the epoch.
    pub fn sample(&mut self, t_secs: f64) -> Load {
        self.sys.refresh_cpu_usage();
        let now = (Instant::now(), own_cpu_time());
        let wall = now.0.duration_since(self.last.0).as_secs_f64();
        let own_cpus = if wall > 0.0 {
            now.1.saturating_sub(self.last.1).as_secs_f64() / wall
        } else {
            0.0
        };
        self.last = now;
        Load {
            t_secs,
            load1: System::load_average().one,
            others_cpu_busy: others_share(
                self.sys.global_cpu_usage(),
                own_cpus,
                self.sys.cpus().len(),
            ),
        }
    }
}

/// CPU time this process has used, all threads.
fn own_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The share of `cpus` CPUs busy with other processes, from the system's busy
/// percentage (of all CPUs) and the CPUs this process kept busy (1.5 = one
/// and a half); clamped, as the two readings are a few ticks apart.
fn others_share(system_pct: f32, own_cpus: f64, cpus: usize) -> f64 {
    let system = f64::from(system_pct) / 100.0;
    let own = own_cpus / cpus.max(1) as f64;
    (system - own).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let m = Machine::read(Backend::Hakmem);
        let want_host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(m.host_name, want_host.trim());
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(m.kernel, release.trim());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let processors = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        assert_eq!(m.logical_cores, processors);
        assert!(m.physical_cores.is_some_and(|p| p >= 1 && p <= processors));
        assert!(m.memory_total_bytes >= m.memory_available_bytes);
        assert!(m.memory_available_bytes > 0);
        assert_eq!(m.soakd_version, version::SOAKD);
        assert_eq!(m.allocator_library, None, "hakmem is linked in");
        let text = m.describe();
        assert!(
            text.contains(&m.cpu_model) && text.contains(&m.kernel),
            "{text}"
        );
        assert_eq!(m.info_labels()[4], processors.to_string());
    }

    #[test]
    fn the_libc_backend_names_the_c_library() {
        let lib = Machine::read(Backend::Libc).allocator_library.unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(maps.contains(&lib), "{lib} is not mapped");
        assert!(lib.contains("libc"), "{lib}");
    }

    #[test]
    fn identity_ignores_free_memory_only() {
        let m = Machine::read(Backend::Hakmem);
        let mut later = m.clone();
        later.memory_available_bytes += 1 << 20;
        assert_eq!(m.identity(), later.identity());
        later.kernel.push('+');
        assert_ne!(m.identity(), later.identity());
    }

    #[test]
    fn others_share_leaves_our_own_cpu_out() {
        // 2 CPUs 75% busy, soakd on one full CPU: others use a quarter.
        assert_eq!(others_share(75.0, 1.0, 2), 0.25);
        assert_eq!(others_share(50.0, 1.0, 2), 0.0);
        assert_eq!(others_share(60.0, 1.3, 2), 0.0, "clamped at 0");
        assert_eq!(others_share(100.0, 0.0, 4), 1.0);
        assert_eq!(
            others_share(10.0, 0.0, 0),
            0.1,
            "no CPU list: no division by 0"
        );
    }

    #[test]
    fn samples_are_in_range() {
        let mut s = LoadSampler::start();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let l = s.sample(0.4);
        assert_eq!(l.t_secs, 0.4);
        assert!(l.load1 >= 0.0 && l.load1.is_finite(), "{l:?}");
        assert!((0.0..=1.0).contains(&l.others_cpu_busy), "{l:?}");
    }
}
