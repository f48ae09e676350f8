//! Runtime options and the profiles that bundle them.
//!
//! Every knob is declared once, in the `knobs!` table below: its Rust type,
//! valid range, value under each profile, `HAKMEM_*` variable, TOML key (in
//! soakd's `[allocator]` section), unit outside Rust, when a change takes
//! effect, and its documentation. Everything else is generated from that row:
//! the field of [`Options`], its atomic, [`Options::for_profile`],
//! [`set_options`] / [`options`], the environment parsing, and [`KNOBS`], the
//! public list that soakd's configuration loops over and that the knob table
//! in `docs/design.md` is checked against. See "How to add a knob" in
//! `docs/design.md`.
//!
//! Invariants:
//! - Options live in plain atomics: reading one on a slow path is a relaxed load,
//!   and no option is read on the alloc/free fast path.
//! - `HAKMEM_*` environment variables are read once, at the allocator's first use,
//!   with `getenv` and byte parsing only: nothing here allocates.
//! - Every policy knob belongs to exactly one "box" (release policy, prewarm); a
//!   profile is only a named set of knob values, so any profile can be undone by
//!   setting the knobs back.
//! - A knob takes effect when it is set ([`Applies`]): a `Live` knob at the
//!   next slow-path decision that reads it; a `OnceTurnedOn` knob (prewarm)
//!   runs its action when it turns on, at start-up or when [`set_options`]
//!   turns it on later, at most once per process.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};

/// A named bundle of options, the seed's presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Keeps freed memory mapped and committed: fewest syscalls, most RSS.
    SpeedFirst,
    /// Lean on, prewarm off: the seed's production default.
    Balanced,
    /// Gives memory back as soon as it is free.
    Lean,
    /// The misuse-detecting allocator (`hardened.rs`), with balanced's knob
    /// values. Only `HAKMEM_PROFILE=hardened` at process start turns it on
    /// (before the first allocation); [`set_profile`] later applies only its
    /// knob values.
    Hardened,
}

impl Profile {
    /// All profiles: the three with a column in the knob table, in order of
    /// increasing leanness, then `Hardened`.
    pub const ALL: [Profile; 4] = [
        Profile::SpeedFirst,
        Profile::Balanced,
        Profile::Lean,
        Profile::Hardened,
    ];

    /// The profile's name as written in TOML and `HAKMEM_PROFILE`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::SpeedFirst => "speed-first",
            Profile::Balanced => "balanced",
            Profile::Lean => "lean",
            Profile::Hardened => "hardened",
        }
    }

    /// Parses a profile name (`speed-first`, `balanced`, `lean`, `hardened`).
    pub fn parse(s: &str) -> Option<Profile> {
        Self::parse_bytes(s.as_bytes())
    }

    fn parse_bytes(s: &[u8]) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name().as_bytes() == s)
    }

    /// The profile's position in [`Profile::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Profile::SpeedFirst => 0,
            Profile::Balanced => 1,
            Profile::Lean => 2,
            Profile::Hardened => 3,
        }
    }

    /// The column of [`Knob::defaults`] holding the profile's values:
    /// hardened uses balanced's.
    pub const fn column(self) -> usize {
        match self {
            Profile::Hardened => Profile::Balanced.index(),
            p => p.index(),
        }
    }
}

/// The environment variable that selects the profile (read before the knobs'
/// own variables, which override single values).
pub const PROFILE_ENV: &str = "HAKMEM_PROFILE";
/// The key that selects the profile in soakd's `[allocator]` section.
pub const PROFILE_KEY: &str = "profile";

/// A knob's Rust type in [`Options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `bool`: 0 or 1 through [`Knob::get`] / [`Knob::set`]; `0|1|true|false|on|off|yes|no`
    /// in `HAKMEM_*`, a boolean in TOML.
    Bool,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
}

/// How a knob's value is written outside Rust (`HAKMEM_*` and TOML).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// As [`Options`] holds it.
    Same,
    /// [`Options`] holds bytes; `HAKMEM_*` and TOML give whole MiB.
    MiB,
}

impl Unit {
    /// Bytes (or counts) per unit written outside.
    pub const fn scale(self) -> u64 {
        match self {
            Unit::Same => 1,
            Unit::MiB => 1 << 20,
        }
    }
}

/// When a change made while the allocator runs takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// At the next slow-path decision that reads the knob.
    Live,
    /// The knob's action runs when it turns on: at start-up, or when
    /// [`set_options`] turns it on later; at most once per process. Turning
    /// it off again undoes nothing.
    OnceTurnedOn,
}

impl Applies {
    /// A few words for tables.
    pub fn describe(self) -> &'static str {
        match self {
            Applies::Live => "live",
            Applies::OnceTurnedOn => "when turned on, once",
        }
    }
}

/// One knob's declaration, as the rest of the world sees it. Values are `u64`
/// in [`Options`]' units (bytes, counts; 0 or 1 for flags).
#[derive(Clone, Copy)]
pub struct Knob {
    /// The field of [`Options`].
    pub name: &'static str,
    /// The field's type.
    pub ty: Type,
    /// Smallest valid value.
    pub min: u64,
    /// Largest valid value (no more than `i64::MAX` once written in [`Knob::unit`]).
    pub max: u64,
    /// The value under each profile, in [`Profile::column`] order
    /// (speed-first, balanced, lean).
    pub defaults: [u64; 3],
    /// The environment variable read at start-up.
    pub env: &'static str,
    /// The key in soakd's `[allocator]` section.
    pub toml: &'static str,
    /// How `env` and `toml` write the value.
    pub unit: Unit,
    /// One line of documentation.
    pub doc: &'static str,
    /// When a change takes effect.
    pub applies: Applies,
    env_c: &'static [u8],
    get: fn(&Options) -> u64,
    set: fn(&mut Options, u64),
}

impl fmt::Debug for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Knob").field("name", &self.name).finish()
    }
}

impl Knob {
    /// The knob's value in `o`.
    pub fn get(&self, o: &Options) -> u64 {
        (self.get)(o)
    }

    /// Sets the knob in `o`, clamped to its range.
    pub fn set(&self, o: &mut Options, v: u64) {
        (self.set)(o, v.clamp(self.min, self.max))
    }

    /// The knob's value under profile `p`.
    pub fn default_for(&self, p: Profile) -> u64 {
        self.defaults[p.column()]
    }

    /// The valid range as written outside (in [`Knob::unit`]).
    pub fn external_range(&self) -> (u64, u64) {
        let s = self.unit.scale();
        (self.min.div_ceil(s), self.max / s)
    }

    /// A value as written outside (in [`Knob::unit`], rounded down).
    pub fn to_external(&self, v: u64) -> u64 {
        v / self.unit.scale()
    }

    /// A value written outside, in [`Options`]' units; `None` out of range.
    pub fn from_external(&self, x: u64) -> Option<u64> {
        let (lo, hi) = self.external_range();
        (lo..=hi).contains(&x).then(|| x * self.unit.scale())
    }

    /// The value in words for documentation: `on`/`off`, `unlimited` for the
    /// type's maximum, `256 MiB`.
    pub fn display(&self, v: u64) -> impl fmt::Display + '_ {
        Shown(self, v)
    }

    /// Parses an environment value (the variable's bytes) and clamps it to
    /// the range; `None` if it does not parse.
    fn parse_env(&self, raw: &[u8]) -> Option<u64> {
        let x = match self.ty {
            Type::Bool => parse_bool(raw).map(u64::from)?,
            Type::U32 | Type::U64 => parse_u64(raw)?,
        };
        let (lo, hi) = self.external_range();
        Some(x.clamp(lo, hi).saturating_mul(self.unit.scale()))
    }
}

struct Shown<'a>(&'a Knob, u64);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, v) = (self.0, self.1);
        let type_max = match k.ty {
            Type::Bool => return f.write_str(if v != 0 { "on" } else { "off" }),
            Type::U32 => u32::MAX as u64,
            Type::U64 => u64::MAX,
        };
        if v == type_max {
            return f.write_str("unlimited");
        }
        match k.unit {
            Unit::MiB if v != 0 => write!(f, "{} MiB", v >> 20),
            _ => write!(f, "{v}"),
        }
    }
}

/// The knob with field name `name`.
pub fn knob(name: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.name == name)
}

/// The Rust types a knob may have.
trait Value: Copy {
    const TYPE: Type;
    const MAX: u64;
    fn from_u64(v: u64) -> Self;
}

impl Value for bool {
    const TYPE: Type = Type::Bool;
    const MAX: u64 = 1;
    fn from_u64(v: u64) -> bool {
        v != 0
    }
}

impl Value for u32 {
    const TYPE: Type = Type::U32;
    const MAX: u64 = u32::MAX as u64;
    fn from_u64(v: u64) -> u32 {
        v.min(u32::MAX as u64) as u32
    }
}

impl Value for u64 {
    const TYPE: Type = Type::U64;
    const MAX: u64 = u64::MAX;
    fn from_u64(v: u64) -> u64 {
        v
    }
}

/// `$given` if present, else `$default`.
macro_rules! or_default {
    (, $default:expr) => {
        $default
    };
    ($given:expr, $default:expr) => {
        $given
    };
}

/// The knob table: one row per knob, and everything else generated from it.
///
/// A row: doc comment (its first line is the one-line summary in
/// [`Knob::doc`]), `name: type = [speed-first, balanced, lean]`, then
/// `env "HAKMEM_..."`, `toml "key"`, optionally `unit MiB` and
/// `range MIN..=MAX` (default: the type's whole range), and `applies Live` or
/// `applies OnceTurnedOn`.
macro_rules! knobs {
    ($(
        #[doc = $summary:literal]
        $(#[doc = $more:literal])*
        $name:ident: $ty:ident = [$speed:expr, $balanced:expr, $lean:expr],
            env $env:literal, toml $toml:literal,
            $(unit $unit:ident,)?
            $(range $min:literal ..= $max:expr,)?
            applies $applies:ident;
    )*) => {
        /// Every runtime option. Build one with [`Options::for_profile`], adjust,
        /// then [`set_options`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct Options {
            /// The profile these options started from.
            pub profile: Profile,
            $(
                #[doc = $summary]
                $(#[doc = $more])*
                pub $name: $ty,
            )*
        }

        impl Options {
            /// The option values of a profile.
            pub const fn for_profile(profile: Profile) -> Options {
                match profile {
                    Profile::SpeedFirst => Options { profile, $($name: $speed,)* },
                    Profile::Balanced | Profile::Hardened => {
                        Options { profile, $($name: $balanced,)* }
                    }
                    Profile::Lean => Options { profile, $($name: $lean,)* },
                }
            }
        }

        /// Each knob's index in `VALUES` and `KNOBS`.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        enum Slot {
            $($name,)*
        }

        const BALANCED: Options = Options::for_profile(Profile::Balanced);

        /// The values in force, one atomic per knob, as `u64`.
        static VALUES: [AtomicU64; [$(Slot::$name),*].len()] =
            [$(AtomicU64::new(BALANCED.$name as u64)),*];

        /// The knobs in declaration order.
        pub static KNOBS: &[Knob] = &[$(
            Knob {
                name: stringify!($name),
                ty: <$ty as Value>::TYPE,
                min: or_default!($($min)?, 0),
                max: or_default!($($max)?, <$ty as Value>::MAX),
                defaults: [$speed as u64, $balanced as u64, $lean as u64],
                env: $env,
                toml: $toml,
                unit: or_default!($(Unit::$unit)?, Unit::Same),
                doc: $summary,
                applies: Applies::$applies,
                env_c: concat!($env, "\0").as_bytes(),
                get: |o| o.$name as u64,
                set: |o, v| o.$name = <$ty as Value>::from_u64(v),
            },
        )*];

        /// The value in force of each knob: one relaxed load, for the policy
        /// boxes (`release.rs`, `prewarm.rs`).
        #[allow(dead_code)] // a knob may be read only through `options()`
        pub(crate) mod now {
            use super::*;
            $(
                #[doc = $summary]
                #[inline]
                pub(crate) fn $name() -> $ty {
                    <$ty as Value>::from_u64(VALUES[Slot::$name as usize].load(Relaxed))
                }
            )*
        }

        fn store(o: &Options) {
            PROFILE.store(recorded(o.profile).index() as u8, Relaxed);
            $(VALUES[Slot::$name as usize].store(o.$name as u64, Relaxed);)*
        }

        /// The options in force.
        pub fn options() -> Options {
            Options {
                profile: Profile::ALL[PROFILE.load(Relaxed) as usize % Profile::ALL.len()],
                $($name: now::$name(),)*
            }
        }
    };
}

knobs! {
    /// Return free memory to the OS (the lean side of the release policy).
    ///
    /// Decommit slabs that go back to the shared pool (so the empty
    /// superslabs kept under `retain_superslabs` hold no memory), and let the
    /// large cache decay after a second unused instead of ten.
    ///
    /// Where the release thread runs, a pooled slab is decommitted after
    /// 100 ms in the pool unless a heap took it again meanwhile.
    mem_lean: bool = [false, true, true],
        env "HAKMEM_MEM_LEAN", toml "mem_lean",
        applies Live;
    /// Map and pre-fault one superslab, so the first allocations take no page fault.
    ///
    /// The prewarm box: runs at start-up when on there, or as soon as
    /// `set_options` turns it on later (soakd applies its profile's options
    /// after the allocator started); at most once per process.
    prewarm: bool = [true, false, false],
        env "HAKMEM_PREWARM", toml "prewarm",
        applies OnceTurnedOn;
    /// 64 KiB units of empty slabs a thread heap caches for reuse (release policy).
    ///
    /// The per-thread hysteresis: empty slabs beyond it go back to the shared
    /// pool; bursts may briefly take the cache to four times that.
    heap_empty_slabs: u32 = [64, 16, 8],
        env "HAKMEM_HEAP_EMPTY_SLABS", toml "heap_empty_slabs",
        applies Live;
    /// Empty superslabs kept mapped (decommitted when lean) before the rest go back.
    ///
    /// The global hysteresis of the release policy: beyond it an empty
    /// superslab's chunk goes back to its arena, decommitted.
    retain_superslabs: u32 = [u32::MAX, 4, 0],
        env "HAKMEM_RETAIN_SUPERSLABS", toml "retain_superslabs",
        applies Live;
    /// Bytes of freed large blocks kept committed for reuse (the large cache).
    ///
    /// Set in whole MiB outside Rust (`HAKMEM_LARGE_CACHE_MB`,
    /// `large_cache_mb`), at most 1 TiB.
    large_cache_bytes: u64 = [256 << 20, 64 << 20, 0],
        env "HAKMEM_LARGE_CACHE_MB", toml "large_cache_mb",
        unit MiB,
        range 0..=1 << 40,
        applies Live;
    /// Run the background release thread that returns idle and exited threads' memory.
    ///
    /// The thread (`hakmem-release`) starts when a second thread attaches a
    /// heap while this is on. Turned off, it ends at its next tick and does
    /// not start again in this process.
    release_thread: bool = [false, true, true],
        env "HAKMEM_RELEASE_THREAD", toml "release_thread",
        applies Live;
}

impl Default for Options {
    fn default() -> Self {
        Options::for_profile(Profile::Balanced)
    }
}

impl Options {
    /// The value of the knob named `name` (as `u64`; flags are 0 or 1).
    pub fn get(&self, name: &str) -> Option<u64> {
        knob(name).map(|k| k.get(self))
    }

    /// Sets the knob named `name` (clamped to its range); false if there is
    /// no such knob.
    pub fn set(&mut self, name: &str, v: u64) -> bool {
        knob(name).map(|k| k.set(self, v)).is_some()
    }
}

static PROFILE: AtomicU8 = AtomicU8::new(Profile::Balanced.index() as u8);

/// The profile `options()` reports for options set with profile `p`: it
/// names `Hardened` exactly when the hardened box is on, which only
/// `HAKMEM_PROFILE` at start-up decides (asked for later, hardened's knob
/// values apply under the name `balanced`).
fn recorded(p: Profile) -> Profile {
    if crate::hardened::on() {
        Profile::Hardened
    } else if p == Profile::Hardened {
        Profile::Balanced
    } else {
        p
    }
}
static PRINT_STATS: AtomicBool = AtomicBool::new(false);

/// Sets every option at once. `Live` knobs take effect at the next slow-path
/// decision (memory already cached is released lazily under the new policy);
/// turning `prewarm` on runs the prewarm now, unless it already ran in this
/// process.
pub fn set_options(o: Options) {
    store(&o);
    // The `OnceTurnedOn` knobs' actions (idempotent).
    if o.prewarm {
        crate::prewarm::run();
    }
}

/// Applies a profile's option values. `Hardened` gives balanced's values
/// (the hardened box itself is chosen only at start-up, by `HAKMEM_PROFILE`).
pub fn set_profile(p: Profile) {
    set_options(Options::for_profile(p));
}

/// Whether `HAKMEM_STATS=1` asked for a summary at exit.
pub fn print_stats_at_exit() -> bool {
    PRINT_STATS.load(Relaxed)
}

/// Reads `HAKMEM_*` from the environment. Called once at initialisation,
/// which then runs the prewarm if it is on.
///
/// Recognised: `HAKMEM_PROFILE` first, then each knob's variable ([`KNOBS`]),
/// and `HAKMEM_STATS`. Unparsable values are ignored (the allocator cannot
/// report errors before it exists), so the profile's value stays; values out
/// of a knob's range are clamped to it.
pub(crate) fn load_env() {
    let mut o = options();
    if let Some(p) = env(b"HAKMEM_PROFILE\0").and_then(Profile::parse_bytes) {
        if p == Profile::Hardened {
            crate::hardened::enable();
        }
        o = Options::for_profile(p);
    }
    for k in KNOBS {
        if let Some(v) = env(k.env_c).and_then(|raw| k.parse_env(raw)) {
            (k.set)(&mut o, v);
        }
    }
    store(&o);
    if let Some(v) = env(b"HAKMEM_STATS\0").and_then(parse_bool) {
        PRINT_STATS.store(v, Relaxed);
    }
}

/// The value of a NUL-terminated variable name, without allocating.
fn env(name: &'static [u8]) -> Option<&'static [u8]> {
    debug_assert_eq!(name.last(), Some(&0));
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
            assert_eq!(Profile::ALL[p.index()], p);
        }
        let hardened = Options::for_profile(Profile::Hardened);
        let balanced = Options::for_profile(Profile::Balanced);
        assert_eq!(
            Options {
                profile: Profile::Balanced,
                ..hardened
            },
            balanced
        );
        assert_eq!(Profile::parse("fast"), None);
        assert_eq!(PROFILE_ENV, "HAKMEM_PROFILE");
    }

    #[test]
    fn balanced_is_lean_without_prewarm() {
        let o = Options::for_profile(Profile::Balanced);
        assert!(o.mem_lean && !o.prewarm);
        assert!(!Options::for_profile(Profile::SpeedFirst).mem_lean);
        assert_eq!(Options::default(), o);
    }

    #[test]
    fn parsers_reject_garbage() {
        assert_eq!(parse_u64(b"42"), Some(42));
        assert_eq!(parse_u64(b"4x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_bool(b"on"), Some(true));
        assert_eq!(parse_bool(b"maybe"), None);
    }

    /// The table is consistent: names and keys unique, every profile value
    /// in range, the accessors by name agree with the fields, and every value
    /// can be written in TOML (an i64) in the knob's unit.
    #[test]
    fn the_knob_table_is_consistent() {
        let (mut names, mut envs, mut keys) = (vec![], vec![PROFILE_ENV], vec![PROFILE_KEY]);
        for k in KNOBS {
            assert!(!names.contains(&k.name), "{} twice", k.name);
            assert!(!envs.contains(&k.env), "{} twice", k.env);
            assert!(!keys.contains(&k.toml), "{} twice", k.toml);
            names.push(k.name);
            envs.push(k.env);
            keys.push(k.toml);
            assert!(k.env.starts_with("HAKMEM_"), "{}", k.name);
            assert!(k.min <= k.max && k.max / k.unit.scale() <= i64::MAX as u64);
            assert!(
                !k.doc.trim().is_empty() && !k.doc.contains('|'),
                "{}",
                k.name
            );
            assert_eq!(k.env_c, format!("{}\0", k.env).as_bytes());
            if k.ty == Type::Bool {
                assert_eq!((k.min, k.max), (0, 1), "{}", k.name);
            }
            for p in Profile::ALL {
                let o = Options::for_profile(p);
                let v = k.default_for(p);
                assert!((k.min..=k.max).contains(&v), "{} under {p:?}", k.name);
                assert_eq!(k.get(&o), v);
                assert_eq!(o.get(k.name), Some(v));
                let next = Profile::ALL[(p.index() + 1) % Profile::ALL.len()];
                let mut other = Options::for_profile(next);
                other.profile = p;
                assert!(other.set(k.name, v));
                assert_eq!(k.get(&other), v);
            }
            assert_eq!(k.from_external(k.external_range().1 + 1), None);
        }
        assert_eq!(Options::default().get("nope"), None);
    }

    #[test]
    fn environment_values_are_parsed_and_clamped() {
        let k = knob("large_cache_bytes").unwrap();
        assert_eq!(k.parse_env(b"7"), Some(7 << 20));
        assert_eq!(k.parse_env(b"9999999999"), Some(1 << 40));
        assert_eq!(k.parse_env(b"on"), None);
        let k = knob("retain_superslabs").unwrap();
        assert_eq!(k.parse_env(b"99999999999"), Some(u32::MAX as u64));
        let k = knob("mem_lean").unwrap();
        assert_eq!(k.parse_env(b"off"), Some(0));
        assert_eq!(k.parse_env(b"2"), None);
        assert_eq!(format!("{}", k.display(1)), "on");
        let k = knob("retain_superslabs").unwrap();
        assert_eq!(format!("{}", k.display(u32::MAX as u64)), "unlimited");
        let k = knob("large_cache_bytes").unwrap();
        assert_eq!(format!("{}", k.display(256 << 20)), "256 MiB");
        assert_eq!(format!("{}", k.display(0)), "0");
    }

    /// The knob table in docs/design.md, between its markers, as this test
    /// generates it from `KNOBS`. `HAKMEM_BLESS=1 cargo test -p hakmem --lib
    /// options` rewrites it.
    #[test]
    fn design_doc_knob_table_matches_the_declarations() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/design.md");
        let text = std::fs::read_to_string(path).unwrap();
        let (begin, end) = ("<!-- knobs:begin", "<!-- knobs:end -->");
        let start = text
            .find(begin)
            .expect("docs/design.md has the knobs:begin marker");
        let start = start + text[start..].find('\n').unwrap() + 1;
        let stop = text
            .find(end)
            .expect("docs/design.md has the knobs:end marker");
        let want = doc_table();
        if text[start..stop] == want {
            return;
        }
        if std::env::var_os("HAKMEM_BLESS").is_some() {
            std::fs::write(path, format!("{}{want}{}", &text[..start], &text[stop..])).unwrap();
            return;
        }
        panic!(
            "docs/design.md's knob table differs from options.rs's `knobs!` table; \
             rerun with HAKMEM_BLESS=1 to rewrite it. Expected:\n{want}"
        );
    }

    fn doc_table() -> String {
        let mut t = String::from(
            "| knob | speed-first | balanced (default; hardened too) | lean | `HAKMEM_*` | TOML `[allocator]` | range | applies | what |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for k in KNOBS {
            let (lo, hi) = k.external_range();
            let unit = match k.unit {
                Unit::Same => "",
                Unit::MiB => " (MiB)",
            };
            let range = match k.ty {
                Type::Bool => "on/off".to_string(),
                _ => format!("{lo}..={hi}{unit}"),
            };
            let [s, b, l] = k.defaults.map(|v| k.display(v).to_string());
            t += &format!(
                "| `{}` | {s} | {b} | {l} | `{}` | `{}` | {range} | {} | {} |\n",
                k.name,
                k.env,
                k.toml,
                k.applies.describe(),
                k.doc.trim(),
            );
        }
        t
    }
}
