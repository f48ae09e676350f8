//! The soakd configuration: TOML profile files, embedded defaults, flags.
//!
//! Precedence: flags over the file, the file over SPEC 5's defaults. Every
//! error names the key, and for a file also the file and the line, so a typo in
//! a 60-minute soak's profile costs seconds, not an hour.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hakmem::options::{Knob, Type, KNOBS, PROFILE_KEY};
use hakmem::{Options, Profile};
use hakmem_workload::{SizeDistribution, WorkloadConfig};
use serde::{Deserialize, Serialize};

use crate::epoch::Thresholds;
use crate::memory;

/// The profile `soakd run` uses without `--config`: SPEC's defaults with short
/// epochs, so a first run shows results within minutes.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

/// Longest accepted epoch, sample or warm-up: 30 days.
const MAX_SECS: u64 = 30 * 24 * 3600;

/// Most completed epochs `[output] history` may keep in memory.
const MAX_HISTORY: usize = 100_000;

/// Which allocator the workload calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// hakmem, directly (soakd's global allocator too).
    Hakmem,
    /// The C library's malloc, or whatever `LD_PRELOAD` puts in its place.
    Libc,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Hakmem => "hakmem",
            Backend::Libc => "libc",
        }
    }

    fn parse(s: &str) -> Option<Backend> {
        [Backend::Hakmem, Backend::Libc]
            .into_iter()
            .find(|b| b.name() == s)
    }
}

/// Epoch timing, in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochTiming {
    pub length_secs: u64,
    pub sample_secs: u64,
    pub warmup_secs: u64,
}

/// The effective configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The profile's name: the `profile` label on every metric.
    pub name: String,
    pub allocator: Options,
    pub backend: Backend,
    pub workload: WorkloadConfig,
    pub epoch: EpochTiming,
    pub thresholds: Thresholds,
    pub listen: SocketAddr,
    pub out_dir: PathBuf,
    /// Completed epochs kept in memory (for `/epochs`); the file keeps all.
    pub history: usize,
}

impl Default for Config {
    /// SPEC 5's defaults.
    fn default() -> Self {
        Config {
            name: "default".into(),
            allocator: Options::for_profile(Profile::Balanced),
            backend: Backend::Hakmem,
            workload: WorkloadConfig::default(),
            epoch: EpochTiming {
                length_secs: 3600,
                sample_secs: 10,
                warmup_secs: 60,
            },
            thresholds: Thresholds::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            out_dir: PathBuf::from("soak-results"),
            history: 100,
        }
    }
}

/// Values given on the command line, which win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub epoch_secs: Option<u64>,
    pub out: Option<PathBuf>,
}

/// Where a bad value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file (or the embedded defaults), at a 1-based line when known.
    File { name: String, line: Option<usize> },
    /// A command-line flag.
    Flag(&'static str),
}

/// A configuration error: where, which key, what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub origin: Origin,
    /// Dotted key path, e.g. `workload.threads`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File {
                name,
                line: Some(l),
            } => write!(f, "{name}: line {l}: key `{}`: {}", self.key, self.message),
            Origin::File { name, line: None } => {
                write!(f, "{name}: key `{}`: {}", self.key, self.message)
            }
            Origin::Flag(flag) => write!(f, "{flag} (key `{}`): {}", self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

// The file's shape. Every field optional; unknown keys are errors.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    /// Read key by key from `hakmem::options::KNOBS` (see `resolve_allocator`).
    allocator: Option<toml::Table>,
    workload: Option<RawWorkload>,
    epoch: Option<RawEpoch>,
    thresholds: Option<RawThresholds>,
    server: Option<RawServer>,
    output: Option<RawOutput>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    backend: Option<String>,
    /// A count or `"auto"`; read by `resolve_threads`.
    threads: Option<toml::Value>,
    working_set: Option<usize>,
    min_size: Option<usize>,
    max_size: Option<usize>,
    size_distribution: Option<String>,
    remote_free_ratio: Option<f64>,
    seed: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEpoch {
    length_secs: Option<u64>,
    sample_secs: Option<u64>,
    warmup_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    max_cv: Option<f64>,
    max_rss_drift: Option<f64>,
    max_rss_growth_per_hour: Option<f64>,
    max_throughput_decline_per_hour: Option<f64>,
    max_syscalls_per_op: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    dir: Option<String>,
    history: Option<usize>,
}

/// A parsed source, able to say on which line a key sits.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
    table: Option<toml::de::DeTable<'a>>,
}

impl Source<'_> {
    fn line_of_offset(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1
    }

    /// The line of a dotted key, if present.
    fn line_of_key(&self, key: &str) -> Option<usize> {
        let mut table = self.table.as_ref()?;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
            if parts.peek().is_none() {
                return Some(self.line_of_offset(k.span().start));
            }
            table = v.get_ref().as_table()?;
        }
        None
    }

    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: Origin::File {
                name: self.name.to_string(),
                line: self.line_of_key(key),
            },
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// Reads and validates a profile file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: Origin::File {
            name: name.clone(),
            line: None,
        },
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&name, &text)
}

/// Parses and validates TOML text named `name` (for messages) over SPEC's defaults.
pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
    let mut src = Source {
        name,
        text,
        table: None,
    };
    src.table = Some(
        toml::de::DeTable::parse(text)
            .map_err(|e| syntax_error(&src, &e))?
            .into_inner(),
    );
    let de = toml::Deserializer::parse(text).map_err(|e| syntax_error(&src, &e))?;
    let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let mut key = e.path().to_string();
        let inner = e.into_inner();
        // An unknown key's path stops at its table; the key itself is in the message.
        if let Some(unknown) = inner
            .message()
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if !key.ends_with(unknown) {
                key = if key == "." || key.is_empty() {
                    unknown.to_string()
                } else {
                    format!("{key}.{unknown}")
                };
            }
        }
        let line = inner
            .span()
            .map(|s| src.line_of_offset(s.start))
            .or_else(|| src.line_of_key(&key));
        ConfigError {
            origin: Origin::File {
                name: name.to_string(),
                line,
            },
            key,
            message: inner.message().to_string(),
        }
    })?;
    resolve(&src, raw)
}

fn syntax_error(src: &Source<'_>, e: &toml::de::Error) -> ConfigError {
    ConfigError {
        origin: Origin::File {
            name: src.name.to_string(),
            line: e.span().map(|s| src.line_of_offset(s.start)),
        },
        key: "(syntax)".into(),
        message: format!("invalid TOML: {}", e.message()),
    }
}

/// Applies the file's values over the defaults and checks each one's range.
fn resolve(src: &Source<'_>, raw: RawFile) -> Result<Config, ConfigError> {
    let mut c = Config::default();
    if let Some(n) = raw.name {
        if n.is_empty() || n.len() > 64 || !n.chars().all(|ch| ch.is_ascii_graphic()) {
            return Err(src.error(
                "name",
                "must be 1 to 64 printable ASCII characters without spaces",
            ));
        }
        c.name = n;
    }

    c.allocator = resolve_allocator(src, raw.allocator.unwrap_or_default())?;

    let w = raw.workload.unwrap_or_default();
    if let Some(b) = w.backend {
        c.backend = Backend::parse(&b).ok_or_else(|| {
            src.error(
                "workload.backend",
                format!("unknown backend {b:?}, expected \"hakmem\" or \"libc\""),
            )
        })?;
    }
    let wc = &mut c.workload;
    if let Some(t) = &w.threads {
        wc.threads =
            resolve_threads(t, available_cores()).map_err(|m| src.error("workload.threads", m))?;
    }
    wc.working_set = w.working_set.unwrap_or(wc.working_set);
    wc.min_size = w.min_size.unwrap_or(wc.min_size);
    wc.max_size = w.max_size.unwrap_or(wc.max_size);
    wc.remote_free_ratio = w.remote_free_ratio.unwrap_or(wc.remote_free_ratio);
    wc.seed = w.seed.unwrap_or(wc.seed);
    if let Some(d) = w.size_distribution {
        wc.size_distribution = SizeDistribution::parse(&d).ok_or_else(|| {
            src.error(
                "workload.size_distribution",
                format!("unknown distribution {d:?}, expected \"uniform\" or \"log-uniform\""),
            )
        })?;
    }
    c.workload
        .validate()
        .map_err(|e| src.error(&format!("workload.{}", e.field), e.message))?;
    if let Some(total) = memory::total() {
        memory::check(&c.workload, total).map_err(|m| {
            // Blame the first size-making key the file sets.
            let key = ["threads", "working_set", "max_size", "min_size"]
                .map(|k| format!("workload.{k}"))
                .into_iter()
                .find(|k| src.line_of_key(k).is_some())
                .unwrap_or_else(|| "workload".into());
            src.error(&key, m)
        })?;
    }

    let e = raw.epoch.unwrap_or_default();
    c.epoch.length_secs = e.length_secs.unwrap_or(c.epoch.length_secs);
    c.epoch.sample_secs = e.sample_secs.unwrap_or(c.epoch.sample_secs);
    c.epoch.warmup_secs = e.warmup_secs.unwrap_or(c.epoch.warmup_secs);
    check_epoch(&c.epoch).map_err(|(key, m)| src.error(key, m))?;

    let t = raw.thresholds.unwrap_or_default();
    let th = &mut c.thresholds;
    th.max_cv = t.max_cv.unwrap_or(th.max_cv);
    th.max_rss_drift = t.max_rss_drift.unwrap_or(th.max_rss_drift);
    th.max_rss_growth_per_hour = t
        .max_rss_growth_per_hour
        .unwrap_or(th.max_rss_growth_per_hour);
    th.max_throughput_decline_per_hour = t
        .max_throughput_decline_per_hour
        .unwrap_or(th.max_throughput_decline_per_hour);
    th.max_syscalls_per_op = t.max_syscalls_per_op.unwrap_or(th.max_syscalls_per_op);
    for (key, v, max) in [
        ("thresholds.max_cv", th.max_cv, 1.0),
        ("thresholds.max_rss_drift", th.max_rss_drift, 1.0),
        (
            "thresholds.max_rss_growth_per_hour",
            th.max_rss_growth_per_hour,
            f64::MAX,
        ),
        (
            "thresholds.max_throughput_decline_per_hour",
            th.max_throughput_decline_per_hour,
            f64::MAX,
        ),
        (
            "thresholds.max_syscalls_per_op",
            th.max_syscalls_per_op,
            f64::MAX,
        ),
    ] {
        if !(0.0..=max).contains(&v) {
            let range = if max == 1.0 { "[0, 1]" } else { "[0, inf)" };
            return Err(src.error(key, format!("must be in {range}, got {v}")));
        }
    }

    if let Some(l) = raw.server.unwrap_or_default().listen {
        c.listen = parse_listen(&l).map_err(|m| src.error("server.listen", m))?;
    }
    let o = raw.output.unwrap_or_default();
    if let Some(d) = o.dir {
        if d.is_empty() {
            return Err(src.error("output.dir", "must not be empty"));
        }
        c.out_dir = PathBuf::from(d);
    }
    if let Some(h) = o.history {
        if !(1..=MAX_HISTORY).contains(&h) {
            return Err(src.error(
                "output.history",
                format!("must be in 1..={MAX_HISTORY}, got {h}"),
            ));
        }
        c.history = h;
    }
    Ok(c)
}

/// The `[allocator]` section: `profile` first, then every knob of
/// `hakmem::options::KNOBS` present, each type- and range-checked. Unknown
/// keys are errors like everywhere else.
fn resolve_allocator(src: &Source<'_>, table: toml::Table) -> Result<Options, ConfigError> {
    let key = |k: &str| format!("allocator.{k}");
    let mut o = Options::default();
    if let Some(v) = table.get(PROFILE_KEY) {
        let name = v.as_str().ok_or_else(|| {
            src.error(
                &key(PROFILE_KEY),
                format!("invalid type: {}, expected a string", v.type_str()),
            )
        })?;
        let profile = Profile::parse(name).ok_or_else(|| {
            src.error(
                &key(PROFILE_KEY),
                format!("unknown profile {name:?}, expected speed-first, balanced or lean"),
            )
        })?;
        if profile == Profile::Hardened {
            // The hardened box is chosen before the first allocation; soakd
            // applies its options to an allocator that is running already.
            return Err(src.error(
                &key(PROFILE_KEY),
                "profile \"hardened\" cannot be set here: it is chosen at process start, \
                 with HAKMEM_PROFILE=hardened in soakd's environment"
                    .to_string(),
            ));
        }
        o = Options::for_profile(profile);
    }
    // Unknown keys, in file order so the first one is named.
    let mut unknown: Vec<&String> = table
        .keys()
        .filter(|k| *k != PROFILE_KEY && !KNOBS.iter().any(|n| n.toml == k.as_str()))
        .collect();
    unknown.sort_by_key(|k| src.line_of_key(&key(k)));
    if let Some(k) = unknown.first() {
        let expected: Vec<String> = std::iter::once(PROFILE_KEY)
            .chain(KNOBS.iter().map(|n| n.toml))
            .map(|n| format!("`{n}`"))
            .collect();
        return Err(src.error(
            &key(k),
            format!(
                "unknown field `{k}`, expected one of {}",
                expected.join(", ")
            ),
        ));
    }
    for k in KNOBS {
        if let Some(v) = table.get(k.toml) {
            let x = knob_value(k, v).map_err(|m| src.error(&key(k.toml), m))?;
            k.set(&mut o, x);
        }
    }
    Ok(o)
}

/// A knob's TOML value in `Options`' units, or why it is refused.
fn knob_value(k: &Knob, v: &toml::Value) -> Result<u64, String> {
    match (k.ty, v) {
        (Type::Bool, toml::Value::Boolean(b)) => Ok(u64::from(*b)),
        (Type::Bool, _) => Err(format!(
            "invalid type: {}, expected a boolean",
            v.type_str()
        )),
        (Type::U32 | Type::U64, toml::Value::Integer(i)) => {
            let (lo, hi) = k.external_range();
            u64::try_from(*i)
                .ok()
                .and_then(|x| k.from_external(x))
                .ok_or_else(|| format!("must be in {lo}..={hi}{}, got {i}", unit_suffix(k)))
        }
        (Type::U32 | Type::U64, _) => Err(format!(
            "invalid type: {}, expected an integer",
            v.type_str()
        )),
    }
}

fn unit_suffix(k: &Knob) -> &'static str {
    match k.unit {
        hakmem::options::Unit::Same => "",
        hakmem::options::Unit::MiB => " (MiB)",
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IP:PORT address (e.g. \"127.0.0.1:9464\")"))
}

/// The CPU cores this process may run on (its affinity mask, cgroup quota).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// `threads = "auto"`: every core but one, which soakd's own threads
/// (sampler, HTTP) need so that workers do not fight them; at least 1.
pub fn auto_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// `workload.threads`: a positive count or `"auto"`.
fn resolve_threads(v: &toml::Value, cores: usize) -> Result<usize, String> {
    match v {
        toml::Value::String(s) if s == "auto" => Ok(auto_threads(cores)),
        toml::Value::Integer(i) => usize::try_from(*i)
            .map_err(|_| format!("must be a positive count or \"auto\", got {i}")),
        other => Err(format!(
            "invalid value: {other}, expected a positive count or \"auto\""
        )),
    }
}

/// Checks epoch timing; on error, the key to blame and why.
fn check_epoch(e: &EpochTiming) -> Result<(), (&'static str, String)> {
    for (key, v, min) in [
        ("epoch.length_secs", e.length_secs, 1),
        ("epoch.sample_secs", e.sample_secs, 1),
        ("epoch.warmup_secs", e.warmup_secs, 0),
    ] {
        if !(min..=MAX_SECS).contains(&v) {
            return Err((key, format!("must be in {min}..={MAX_SECS}, got {v}")));
        }
    }
    if e.sample_secs > e.length_secs {
        return Err((
            "epoch.sample_secs",
            format!(
                "must not exceed epoch.length_secs ({}), got {}",
                e.length_secs, e.sample_secs
            ),
        ));
    }
    if e.warmup_secs >= e.length_secs {
        return Err((
            "epoch.warmup_secs",
            format!(
                "must be less than epoch.length_secs ({}) so that some samples count, got {}",
                e.length_secs, e.warmup_secs
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// Applies command-line overrides and re-checks what they touch.
    pub fn apply(mut self, o: &Overrides) -> Result<Config, ConfigError> {
        let flag_error = |flag, key: &str, message: String| ConfigError {
            origin: Origin::Flag(flag),
            key: key.to_string(),
            message,
        };
        if let Some(l) = &o.listen {
            self.listen =
                parse_listen(l).map_err(|m| flag_error("--listen", "server.listen", m))?;
        }
        if let Some(s) = o.epoch_secs {
            self.epoch.length_secs = s;
            check_epoch(&self.epoch).map_err(|(key, m)| flag_error("--epoch-secs", key, m))?;
        }
        if let Some(d) = &o.out {
            if d.as_os_str().is_empty() {
                return Err(flag_error(
                    "--out",
                    "output.dir",
                    "must not be empty".into(),
                ));
            }
            self.out_dir = d.clone();
        }
        Ok(self)
    }

    /// The effective configuration as a complete profile file (it parses back
    /// to the same configuration).
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        struct File<'a> {
            name: &'a str,
            allocator: Alloc<'a>,
            workload: Work,
            epoch: Ep,
            thresholds: Thresholds,
            server: Srv,
            output: Out,
        }
        /// `profile`, then every knob in `KNOBS` order.
        struct Alloc<'a>(&'a Options);
        impl Serialize for Alloc<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(KNOBS.len() + 1))?;
                m.serialize_entry(PROFILE_KEY, self.0.profile.name())?;
                for k in KNOBS {
                    let v = k.to_external(k.get(self.0));
                    match k.ty {
                        Type::Bool => m.serialize_entry(k.toml, &(v != 0))?,
                        Type::U32 | Type::U64 => m.serialize_entry(k.toml, &v)?,
                    }
                }
                m.end()
            }
        }
        #[derive(Serialize)]
        struct Work {
            backend: &'static str,
            threads: usize,
            working_set: usize,
            min_size: usize,
            max_size: usize,
            size_distribution: &'static str,
            remote_free_ratio: f64,
            seed: u64,
        }
        #[derive(Serialize)]
        struct Ep {
            length_secs: u64,
            sample_secs: u64,
            warmup_secs: u64,
        }
        #[derive(Serialize)]
        struct Srv {
            listen: String,
        }
        #[derive(Serialize)]
        struct Out {
            dir: String,
            history: usize,
        }
        let (a, w, e) = (&self.allocator, &self.workload, &self.epoch);
        let file = File {
            name: &self.name,
            allocator: Alloc(a),
            workload: Work {
                backend: self.backend.name(),
                threads: w.threads,
                working_set: w.working_set,
                min_size: w.min_size,
                max_size: w.max_size,
                size_distribution: w.size_distribution.name(),
                remote_free_ratio: w.remote_free_ratio,
                seed: w.seed,
            },
            epoch: Ep {
                length_secs: e.length_secs,
                sample_secs: e.sample_secs,
                warmup_secs: e.warmup_secs,
            },
            thresholds: self.thresholds,
            server: Srv {
                listen: self.listen.to_string(),
            },
            output: Out {
                dir: self.out_dir.display().to_string(),
                history: self.history,
            },
        };
        toml::to_string(&file).expect("plain data serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        parse("t.toml", text).unwrap_err()
    }

    fn line(e: &ConfigError) -> Option<usize> {
        match e.origin {
            Origin::File { line, .. } => line,
            Origin::Flag(_) => None,
        }
    }

    #[test]
    fn empty_file_is_spec_defaults() {
        let c = parse("t.toml", "").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.epoch.length_secs, 3600);
        assert_eq!(c.thresholds.max_syscalls_per_op, 1e-4);
    }

    #[test]
    fn every_section_is_read() {
        let c = parse(
            "t.toml",
            r#"
name = "x"
[allocator]
profile = "lean"
prewarm = true
large_cache_mb = 8
[workload]
backend = "libc"
threads = 3
working_set = 10
min_size = 8
max_size = 64
size_distribution = "log-uniform"
remote_free_ratio = 0.25
seed = 7
[epoch]
length_secs = 20
sample_secs = 2
warmup_secs = 4
[thresholds]
max_cv = 0.1
max_rss_drift = 0.2
max_syscalls_per_op = 0.001
[server]
listen = "127.0.0.1:0"
[output]
dir = "out"
history = 7
"#,
        )
        .unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.allocator.profile, Profile::Lean);
        assert!(c.allocator.prewarm, "a key overrides its profile's value");
        assert_eq!(c.allocator.retain_superslabs, 0, "from the lean profile");
        assert_eq!(c.allocator.large_cache_bytes, 8 << 20);
        assert_eq!(c.backend, Backend::Libc);
        assert_eq!(
            c.workload,
            WorkloadConfig {
                threads: 3,
                working_set: 10,
                min_size: 8,
                max_size: 64,
                size_distribution: SizeDistribution::LogUniform,
                remote_free_ratio: 0.25,
                seed: 7
            }
        );
        assert_eq!(
            c.epoch,
            EpochTiming {
                length_secs: 20,
                sample_secs: 2,
                warmup_secs: 4
            }
        );
        assert_eq!(c.thresholds.max_cv, 0.1);
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.out_dir, Path::new("out"));
        assert_eq!(c.history, 7);
        // The printed effective configuration parses back to itself.
        assert_eq!(parse("again", &c.to_toml()).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = err("name = \"a\"\n[workload]\nthreads = 2\nthread = 3\n");
        assert_eq!((e.key.as_str(), line(&e)), ("workload.thread", Some(4)));
        assert!(e.message.contains("unknown field"), "{e}");
        let e = err("\n\nbogus = 1\n");
        assert_eq!((e.key.as_str(), line(&e)), ("bogus", Some(3)));
        let e = err("[nope]\nx = 1\n");
        assert_eq!((e.key.as_str(), line(&e)), ("nope", Some(1)));
        let shown = e.to_string();
        assert!(shown.contains("t.toml") && shown.contains("line 1") && shown.contains("`nope`"));
    }

    #[test]
    fn wrong_types_are_named_with_their_line() {
        let e = err("[workload]\n\nthreads = \"four\"\n");
        assert_eq!((e.key.as_str(), line(&e)), ("workload.threads", Some(3)));
        let e = err("[epoch]\nlength_secs = -5\n");
        assert_eq!((e.key.as_str(), line(&e)), ("epoch.length_secs", Some(2)));
        let e = err("[allocator]\nmem_lean = 1\n");
        assert_eq!((e.key.as_str(), line(&e)), ("allocator.mem_lean", Some(2)));
        let e = err("workload = 3\n");
        assert_eq!((e.key.as_str(), line(&e)), ("workload", Some(1)));
    }

    #[test]
    fn out_of_range_values_are_named_with_their_line() {
        let cases = [
            ("[workload]\nthreads = 0\n", "workload.threads", 2),
            (
                "[workload]\nmin_size = 100\nmax_size = 50\n",
                "workload.min_size",
                2,
            ),
            (
                "[workload]\n\nremote_free_ratio = 1.5\n",
                "workload.remote_free_ratio",
                3,
            ),
            (
                "[workload]\nremote_free_ratio = -0.5\n",
                "workload.remote_free_ratio",
                2,
            ),
            (
                "[workload]\nbackend = \"jemalloc\"\n",
                "workload.backend",
                2,
            ),
            (
                "[workload]\nsize_distribution = \"zipf\"\n",
                "workload.size_distribution",
                2,
            ),
            ("[allocator]\nprofile = \"fast\"\n", "allocator.profile", 2),
            (
                "[allocator]\nprofile = \"hardened\"\n",
                "allocator.profile",
                2,
            ),
            ("[epoch]\nlength_secs = 0\n", "epoch.length_secs", 2),
            (
                "[epoch]\nlength_secs = 10\nsample_secs = 20\n",
                "epoch.sample_secs",
                3,
            ),
            (
                "[epoch]\nlength_secs = 10\nwarmup_secs = 10\n",
                "epoch.warmup_secs",
                3,
            ),
            ("[thresholds]\nmax_cv = 2.0\n", "thresholds.max_cv", 2),
            (
                "[thresholds]\nmax_rss_drift = -0.1\n",
                "thresholds.max_rss_drift",
                2,
            ),
            (
                "[thresholds]\nmax_syscalls_per_op = nan\n",
                "thresholds.max_syscalls_per_op",
                2,
            ),
            ("[server]\nlisten = \"localhost\"\n", "server.listen", 2),
            ("[output]\ndir = \"\"\n", "output.dir", 2),
            ("[output]\ndir = \"x\"\nhistory = 0\n", "output.history", 3),
            ("name = \"two words\"\n", "name", 1),
        ];
        for (text, key, l) in cases {
            let e = err(text);
            assert_eq!((e.key.as_str(), line(&e)), (key, Some(l)), "{text}: {e}");
        }
    }

    /// Every knob of `hakmem::options::KNOBS` is read from `[allocator]`,
    /// printed by `to_toml` (check-config) in its unit, and range-checked
    /// with its key and line.
    #[test]
    fn every_allocator_knob_is_read_printed_and_checked() {
        let base = Options::for_profile(Profile::Lean);
        let mut text = String::from("[allocator]\nprofile = \"lean\"\n");
        let mut want = base;
        for k in KNOBS {
            let (lo, hi) = k.external_range();
            // A valid value the lean profile does not have.
            let x = match k.ty {
                Type::Bool => 1 - k.default_for(Profile::Lean),
                Type::U32 | Type::U64 => (k.to_external(k.default_for(Profile::Lean)) + 1).min(hi),
            };
            assert!((lo..=hi).contains(&x));
            let shown = if k.ty == Type::Bool {
                (x == 1).to_string()
            } else {
                x.to_string()
            };
            text += &format!("{} = {shown}\n", k.toml);
            k.set(&mut want, k.from_external(x).unwrap());
        }
        let c = parse("t.toml", &text).unwrap();
        assert_eq!(c.allocator, want);
        assert_ne!(c.allocator, base, "every key overrides the profile");
        let printed = c.to_toml();
        for k in KNOBS {
            assert!(
                printed.contains(&format!("\n{} = ", k.toml)),
                "{}:\n{printed}",
                k.toml
            );
        }
        let alloc = &printed[printed.find("[allocator]").unwrap()..];
        assert!(
            alloc.starts_with("[allocator]\nprofile = \"lean\"\n"),
            "{printed}"
        );
        assert_eq!(parse("again", &printed).unwrap(), c);

        for k in KNOBS {
            let (_, hi) = k.external_range();
            let mut bad = vec![format!("\"{}\"", k.name)];
            match k.ty {
                Type::Bool => bad.push("1".into()),
                Type::U32 | Type::U64 => {
                    bad.push("-1".into());
                    bad.push("1.5".into());
                    if hi < i64::MAX as u64 {
                        bad.push((hi + 1).to_string());
                    }
                }
            }
            for v in bad {
                let e = err(&format!("name = \"x\"\n[allocator]\n\n{} = {v}\n", k.toml));
                let key = format!("allocator.{}", k.toml);
                assert_eq!(
                    (e.key.as_str(), line(&e)),
                    (key.as_str(), Some(4)),
                    "{v}: {e}"
                );
            }
        }
        let e =
            err("[allocator]\nprofile = \"lean\"\nmem_lean = true\nlarge_cache = 1\nbogus = 2\n");
        assert_eq!(
            (e.key.as_str(), line(&e)),
            ("allocator.large_cache", Some(4))
        );
        assert!(
            e.message.contains("unknown field") && e.message.contains("`large_cache_mb`"),
            "{e}"
        );
        let e = err("[allocator]\nprofile = 1\n");
        assert_eq!((e.key.as_str(), line(&e)), ("allocator.profile", Some(2)));
    }

    #[test]
    fn a_workload_larger_than_the_machine_is_refused_naming_its_keys() {
        let e = err("name = \"oom\"\n[workload]\nworking_set = 16777216\nthreads = 1024\nmax_size = 1073741824\n");
        assert_eq!((e.key.as_str(), line(&e)), ("workload.threads", Some(4)));
        for part in [
            "workload.working_set 16777216",
            "workload.max_size",
            "MemTotal",
        ] {
            assert!(e.message.contains(part), "{part}: {e}");
        }
        let e = err(
            "[workload]\nmin_size = 1073741824\nmax_size = 1073741824\nworking_set = 16777216\n",
        );
        assert_eq!(
            (e.key.as_str(), line(&e)),
            ("workload.working_set", Some(4))
        );
    }

    #[test]
    fn threads_auto_leaves_a_core_for_soakd() {
        assert_eq!(auto_threads(1), 1);
        assert_eq!(auto_threads(2), 1);
        assert_eq!(auto_threads(16), 15);
        let auto = toml::Value::String("auto".into());
        assert_eq!(resolve_threads(&auto, 4), Ok(3));
        assert_eq!(resolve_threads(&toml::Value::Integer(6), 4), Ok(6));
        let c = parse("t.toml", "[workload]\nthreads = \"auto\"\n").unwrap();
        assert_eq!(c.workload.threads, auto_threads(available_cores()));
        for bad in ["\"many\"", "-2", "1.5", "0"] {
            let e = err(&format!("[workload]\n\nthreads = {bad}\n"));
            assert_eq!(
                (e.key.as_str(), line(&e)),
                ("workload.threads", Some(3)),
                "{e}"
            );
        }
    }

    #[test]
    fn trend_thresholds_are_read_and_checked() {
        let c = parse(
            "t.toml",
            "[thresholds]\nmax_rss_growth_per_hour = 0.5\nmax_throughput_decline_per_hour = 3\n",
        )
        .unwrap();
        assert_eq!(c.thresholds.max_rss_growth_per_hour, 0.5);
        assert_eq!(c.thresholds.max_throughput_decline_per_hour, 3.0);
        assert_eq!(parse("again", &c.to_toml()).unwrap(), c);
        for key in ["max_rss_growth_per_hour", "max_throughput_decline_per_hour"] {
            let e = err(&format!("[thresholds]\n{key} = -0.1\n"));
            let want = format!("thresholds.{key}");
            assert_eq!((e.key.as_str(), line(&e)), (want.as_str(), Some(2)), "{e}");
        }
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let e = err("[workload]\nthreads = = 2\n");
        assert_eq!(line(&e), Some(2), "{e}");
    }

    #[test]
    fn flags_override_the_file_and_are_checked() {
        let c = parse(
            "t.toml",
            "[epoch]\nlength_secs = 100\nsample_secs = 1\nwarmup_secs = 10\n",
        )
        .unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:1234".into()),
            epoch_secs: Some(30),
            out: Some("elsewhere".into()),
        };
        let c = c.apply(&o).unwrap();
        assert_eq!(c.listen.port(), 1234);
        assert_eq!(c.epoch.length_secs, 30);
        assert_eq!(c.out_dir, Path::new("elsewhere"));

        let e = c
            .clone()
            .apply(&Overrides {
                epoch_secs: Some(5),
                ..Overrides::default()
            })
            .unwrap_err();
        assert_eq!(e.origin, Origin::Flag("--epoch-secs"));
        assert_eq!(e.key, "epoch.warmup_secs");
        assert!(e.to_string().starts_with("--epoch-secs"), "{e}");
        let e = c
            .apply(&Overrides {
                listen: Some("nowhere".into()),
                ..Overrides::default()
            })
            .unwrap_err();
        assert_eq!(e.origin, Origin::Flag("--listen"));
    }

    #[test]
    fn shipped_profiles_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        for name in [
            "default",
            "speed-first",
            "balanced",
            "balanced-1m",
            "lean",
            "ci",
        ] {
            let c = load_file(&dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(c.name, name);
        }
        let c = parse("embedded", EMBEDDED_DEFAULT).unwrap();
        assert!(
            c.epoch.length_secs <= 120,
            "the embedded defaults use short epochs"
        );
        let e = load_file(&dir.join("missing.toml")).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
