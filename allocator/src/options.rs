//! Runtime options and the profiles that bundle them.
//!
//! Invariants:
//! - Options live in plain atomics: reading one on a slow path is a relaxed load,
//!   and no option is read on the alloc/free fast path.
//! - `HAKMEM_*` environment variables are read once, at the allocator's first use,
//!   with `getenv` and byte parsing only: nothing here allocates.
//! - Every policy knob belongs to exactly one "box" (release policy, prewarm); a
//!   profile is only a named set of knob values, so any profile can be undone by
//!   setting the knobs back.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

/// A named bundle of options, the seed's presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Keeps freed memory mapped and committed: fewest syscalls, most RSS.
    SpeedFirst,
    /// Lean on, prewarm off: the seed's production default.
    Balanced,
    /// Gives memory back as soon as it is free.
    Lean,
}

impl Profile {
    /// All profiles, in order of increasing leanness.
    pub const ALL: [Profile; 3] = [Profile::SpeedFirst, Profile::Balanced, Profile::Lean];

    /// The profile's name as written in TOML and `HAKMEM_PROFILE`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::SpeedFirst => "speed-first",
            Profile::Balanced => "balanced",
            Profile::Lean => "lean",
        }
    }

    /// Parses a profile name (`speed-first`, `balanced`, `lean`).
    pub fn parse(s: &str) -> Option<Profile> {
        Self::parse_bytes(s.as_bytes())
    }

    fn parse_bytes(s: &[u8]) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name().as_bytes() == s)
    }
}

/// Every runtime option. Build one with [`Options::for_profile`], adjust, then [`set_options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The profile these options started from.
    pub profile: Profile,
    /// Return free memory to the OS: decommit slabs that go back to the shared pool
    /// and unmap empty superslabs beyond `retain_superslabs`.
    pub mem_lean: bool,
    /// Map and pre-fault one superslab at start-up (the prewarm box).
    pub prewarm: bool,
    /// Release policy: 64 KiB units of empty slabs a thread heap keeps for reuse
    /// before handing them back to the shared pool (the per-thread hysteresis;
    /// bursts may briefly take it to four times that).
    pub heap_empty_slabs: u32,
    /// Release policy: empty superslabs kept mapped (decommitted when lean) before
    /// the rest are unmapped (the global hysteresis).
    pub retain_superslabs: u32,
    /// Bytes of freed large mappings kept for reuse instead of being unmapped.
    pub large_cache_bytes: u64,
    /// Run the background release thread (named `hakmem-release`, started
    /// when a second thread allocates) that returns the memory of idle and
    /// exited threads.
    pub release_thread: bool,
}

impl Options {
    /// The option values of a profile.
    pub const fn for_profile(profile: Profile) -> Options {
        match profile {
            Profile::SpeedFirst => Options {
                profile,
                mem_lean: false,
                prewarm: true,
                heap_empty_slabs: 64,
                retain_superslabs: u32::MAX,
                large_cache_bytes: 256 << 20,
                release_thread: false,
            },
            Profile::Balanced => Options {
                profile,
                mem_lean: true,
                prewarm: false,
                heap_empty_slabs: 16,
                retain_superslabs: 4,
                large_cache_bytes: 32 << 20,
                release_thread: true,
            },
            Profile::Lean => Options {
                profile,
                mem_lean: true,
                prewarm: false,
                heap_empty_slabs: 8,
                retain_superslabs: 0,
                large_cache_bytes: 0,
                release_thread: true,
            },
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::for_profile(Profile::Balanced)
    }
}

static PROFILE: AtomicU8 = AtomicU8::new(1);
static MEM_LEAN: AtomicBool = AtomicBool::new(true);
static PREWARM: AtomicBool = AtomicBool::new(false);
static HEAP_EMPTY_SLABS: AtomicU32 = AtomicU32::new(16);
static RETAIN_SUPERSLABS: AtomicU32 = AtomicU32::new(4);
static LARGE_CACHE_BYTES: AtomicU64 = AtomicU64::new(32 << 20);
static RELEASE_THREAD: AtomicBool = AtomicBool::new(true);
static PRINT_STATS: AtomicBool = AtomicBool::new(false);

/// Sets every option at once. Takes effect on the next slow-path decision; memory
/// already cached is released lazily under the new policy.
pub fn set_options(o: Options) {
    PROFILE.store(
        Profile::ALL
            .iter()
            .position(|p| *p == o.profile)
            .unwrap_or(1) as u8,
        Relaxed,
    );
    MEM_LEAN.store(o.mem_lean, Relaxed);
    PREWARM.store(o.prewarm, Relaxed);
    HEAP_EMPTY_SLABS.store(o.heap_empty_slabs, Relaxed);
    RETAIN_SUPERSLABS.store(o.retain_superslabs, Relaxed);
    LARGE_CACHE_BYTES.store(o.large_cache_bytes, Relaxed);
    RELEASE_THREAD.store(o.release_thread, Relaxed);
}

/// Applies a profile's option values.
pub fn set_profile(p: Profile) {
    set_options(Options::for_profile(p));
}

/// The options in force.
pub fn options() -> Options {
    Options {
        profile: Profile::ALL[PROFILE.load(Relaxed) as usize % 3],
        mem_lean: MEM_LEAN.load(Relaxed),
        prewarm: PREWARM.load(Relaxed),
        heap_empty_slabs: HEAP_EMPTY_SLABS.load(Relaxed),
        retain_superslabs: RETAIN_SUPERSLABS.load(Relaxed),
        large_cache_bytes: LARGE_CACHE_BYTES.load(Relaxed),
        release_thread: RELEASE_THREAD.load(Relaxed),
    }
}

/// Whether `HAKMEM_STATS=1` asked for a summary at exit.
pub fn print_stats_at_exit() -> bool {
    PRINT_STATS.load(Relaxed)
}

/// Reads `HAKMEM_*` from the environment. Called once at initialisation.
///
/// Recognised: `HAKMEM_PROFILE`, `HAKMEM_MEM_LEAN`, `HAKMEM_PREWARM`,
/// `HAKMEM_HEAP_EMPTY_SLABS`, `HAKMEM_RETAIN_SUPERSLABS`, `HAKMEM_LARGE_CACHE_MB`,
/// `HAKMEM_RELEASE_THREAD`, `HAKMEM_STATS`. Unparsable values are ignored (the allocator cannot report
/// errors before it exists), so the profile's value stays.
pub(crate) fn load_env() {
    let mut o = options();
    if let Some(p) = env(b"HAKMEM_PROFILE\0").and_then(Profile::parse_bytes) {
        o = Options::for_profile(p);
    }
    if let Some(v) = env(b"HAKMEM_MEM_LEAN\0").and_then(parse_bool) {
        o.mem_lean = v;
    }
    if let Some(v) = env(b"HAKMEM_PREWARM\0").and_then(parse_bool) {
        o.prewarm = v;
    }
    if let Some(v) = env(b"HAKMEM_HEAP_EMPTY_SLABS\0").and_then(parse_u64) {
        o.heap_empty_slabs = v.min(u32::MAX as u64) as u32;
    }
    if let Some(v) = env(b"HAKMEM_RETAIN_SUPERSLABS\0").and_then(parse_u64) {
        o.retain_superslabs = v.min(u32::MAX as u64) as u32;
    }
    if let Some(v) = env(b"HAKMEM_LARGE_CACHE_MB\0").and_then(parse_u64) {
        o.large_cache_bytes = v.saturating_mul(1 << 20);
    }
    if let Some(v) = env(b"HAKMEM_RELEASE_THREAD\0").and_then(parse_bool) {
        o.release_thread = v;
    }
    set_options(o);
    if let Some(v) = env(b"HAKMEM_STATS\0").and_then(parse_bool) {
        PRINT_STATS.store(v, Relaxed);
    }
}

/// The value of a NUL-terminated variable name, without allocating.
fn env(name: &'static [u8]) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; getenv returns null or a NUL-terminated
    // string owned by the environment, which lives as long as the process unless
    // the program itself rewrites it (the C library's own caveat).
    unsafe {
        let p = libc::getenv(name.as_ptr().cast());
        if p.is_null() {
            return None;
        }
        Some(core::ffi::CStr::from_ptr(p).to_bytes())
    }
}

fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"1" | b"true" | b"on" | b"yes" => Some(true),
        b"0" | b"false" | b"off" | b"no" => Some(false),
        _ => None,
    }
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + (b - b'0') as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.name()), Some(p));
        }
        assert_eq!(Profile::parse("fast"), None);
    }

    #[test]
    fn balanced_is_lean_without_prewarm() {
        let o = Options::for_profile(Profile::Balanced);
        assert!(o.mem_lean && !o.prewarm);
        assert!(!Options::for_profile(Profile::SpeedFirst).mem_lean);
    }

    #[test]
    fn parsers_reject_garbage() {
        assert_eq!(parse_u64(b"42"), Some(42));
        assert_eq!(parse_u64(b"4x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_bool(b"on"), Some(true));
        assert_eq!(parse_bool(b"maybe"), None);
    }
}
