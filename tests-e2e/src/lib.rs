//! Helpers for hakmem's end-to-end tests (`tests/`) and soakd's integration
//! tests (`soakd/tests/`, a dev-dependency there), kept in this one place:
//! locating and starting soakd and Prometheus, free ports, a minimal HTTP
//! client, required tools, reading the dashboard and the rules, and pulling
//! metric names out of PromQL.
//!
//! Everything here panics with a message that says what to do: these are test
//! helpers, and a clear failure beats an error type nobody handles.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod chromium;

#[cfg(test)]
#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// The workspace root (this package lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests-e2e sits inside the workspace")
        .to_path_buf()
}

/// Reads a file given relative to the workspace root.
pub fn read_repo_file(rel: &str) -> String {
    let path = workspace_root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Finds `name` on PATH. CI installs these tools; a missing one is a failed
/// test, never a skipped one.
pub fn require_tool(name: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not on PATH; install it: {install_hint}"))
}

/// `promtool`, from Debian's `prometheus` package.
pub fn promtool() -> PathBuf {
    require_tool("promtool", "apt-get install -y prometheus")
}

/// The Prometheus server, from Debian's `prometheus` package.
pub fn prometheus_bin() -> PathBuf {
    require_tool("prometheus", "apt-get install -y prometheus")
}

/// Path of the soakd binary, built once per test process.
///
/// Cargo exposes only a package's own binaries to its tests
/// (`CARGO_BIN_EXE_*`), so this runs `cargo build -p soakd` with the same
/// profile as this test and takes the executable's path from cargo's JSON
/// messages: right in a clean clone, and never a stale binary. The build
/// reuses the target dir (CARGO_TARGET_DIR is inherited), so after
/// `cargo test --workspace` it is a no-op. `HAKMEM_E2E_SOAKD=/path/to/soakd`
/// uses a prebuilt binary instead.
pub fn soakd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("HAKMEM_E2E_SOAKD") {
            return PathBuf::from(p);
        }
        build_soakd()
    })
}

fn build_soakd() -> PathBuf {
    cargo_build(&["-p", "soakd", "--bin", "soakd"], |m| {
        (m["target"]["name"] == "soakd")
            .then(|| m["executable"].as_str().map(PathBuf::from))
            .flatten()
    })
}

/// Path of libhakmem.so (package `hakmem-capi`), built once per test process
/// with the same profile as the test, like [`soakd_bin`].
pub fn libhakmem() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        cargo_build(&["-p", "hakmem-capi", "--lib"], |m| {
            m["filenames"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with("/libhakmem.so"))
                .map(PathBuf::from)
        })
    })
}

/// Runs `cargo build ARGS` with this test's profile and returns the artifact
/// `pick` finds in cargo's JSON messages.
fn cargo_build(args: &[&str], pick: impl Fn(&Value) -> Option<PathBuf>) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .arg("build")
        .args(args)
        .arg("--message-format=json-render-diagnostics");
    // The test executable sits in <target>/<profile dir>/deps/.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|s| s.to_str())
        .unwrap_or("debug");
    match profile_dir {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let what = args.join(" ");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running cargo build {what}: {e}"));
    assert!(out.status.success(), "cargo build {what} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .find_map(|m| pick(&m))
        .unwrap_or_else(|| panic!("cargo build {what} reported no such artifact"))
}

/// A loopback port that was free a moment ago. The tiny race with other
/// processes is acceptable in tests; a clash shows as a failed start.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// A child process whose output goes to a log file, killed when dropped so a
/// failing test leaves nothing running.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr appended to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = fs::File::create(&log).expect("creating log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// What the process has printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, showing the log, if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited early ({status}); its output:\n{}",
                self.name,
                self.log()
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retries `f` every 250 ms until it returns `Ok` or `timeout` passes; the
/// last error goes into the panic message.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// How long the helpers wait for a connection, a read or a write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends raw bytes to `addr` and reads the whole answer, until the server
/// closes (each read waits at most 10 s). A reset after the server answered
/// and closed still counts as the answer: a server that gives up on garbage
/// may close that way.
pub fn exchange(addr: impl ToSocketAddrs + Display, request: &[u8]) -> io::Result<Vec<u8>> {
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr} names no address")))?;
    let mut s = TcpStream::connect_timeout(&target, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// A plain HTTP/1.0 GET: enough for soakd and Prometheus on loopback, with no
/// client library to pull in. Returns the status code and the body.
pub fn http_get(
    addr: impl ToSocketAddrs + Display,
    path_and_query: &str,
) -> Result<(u16, String), String> {
    let request =
        format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = exchange(&addr, request.as_bytes())
        .map_err(|e| format!("GET {path_and_query} from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in response from {addr}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line from {addr}: {head:.80}"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("truncated chunk size")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size:?}: {e}"))?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(after.get(..size).ok_or("truncated chunk")?);
        rest = after.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running soakd on a loopback port, with its output folder.
pub struct Soakd {
    proc: Proc,
    /// `host:port` it listens on; also Prometheus's `instance` label.
    pub addr: String,
    /// Its `--out` folder.
    pub out: PathBuf,
}

impl Soakd {
    /// Starts `soakd run --config CONFIG --listen ADDR --out DIR/out EXTRA...`
    /// and waits until /metrics answers.
    pub fn start(dir: &Path, config: &Path, extra: &[&str]) -> Soakd {
        let addr = format!("127.0.0.1:{}", free_port());
        let out = dir.join("out");
        let mut cmd = Command::new(soakd_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .args(["--listen", &addr])
            .arg("--out")
            .arg(&out)
            .args(extra);
        let mut soakd = Soakd {
            proc: Proc::spawn("soakd", cmd, dir),
            addr,
            out,
        };
        wait_for("soakd's /metrics", Duration::from_secs(30), || {
            soakd.proc.assert_running();
            match http_get(&soakd.addr, "/metrics")? {
                (200, body) => Ok(body),
                (code, _) => Err(format!("HTTP {code}")),
            }
        });
        soakd
    }

    /// The current /metrics text; panics if soakd died.
    pub fn metrics(&mut self) -> String {
        self.proc.assert_running();
        match http_get(&self.addr, "/metrics") {
            Ok((200, body)) => body,
            other => panic!("GET /metrics from soakd: {other:?}\n{}", self.proc.log()),
        }
    }

    /// Panics, showing soakd's log, if it has exited.
    pub fn assert_running(&mut self) {
        self.proc.assert_running();
    }
}

/// A Prometheus server on a loopback port, loaded with the repository's
/// `dashboards/prometheus/` config and rules, rewritten to scrape one target
/// every second and evaluate rules every second.
pub struct Prometheus {
    proc: Proc,
    /// `host:port` of its HTTP API.
    pub addr: String,
}

impl Prometheus {
    /// Copies `dashboards/prometheus/` into `dir/prometheus/` (rule_files are
    /// relative to the config, so they come along), points the soakd job at
    /// `target`, starts Prometheus and waits until it is ready.
    pub fn start(dir: &Path, target: &str) -> Prometheus {
        let conf_dir = dir.join("prometheus");
        copy_dir(&workspace_root().join("dashboards/prometheus"), &conf_dir);
        let conf_path = conf_dir.join("prometheus.yml");
        let mut conf: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(&conf_path).expect("reading prometheus.yml"))
                .expect("prometheus.yml is YAML");
        conf["global"]["scrape_interval"] = "1s".into();
        conf["global"]["evaluation_interval"] = "1s".into();
        let job = conf["scrape_configs"]
            .as_sequence_mut()
            .expect("prometheus.yml has scrape_configs")
            .iter_mut()
            .find(|j| j["job_name"] == "soakd")
            .expect("prometheus.yml has a scrape config with job_name: soakd");
        job["static_configs"] = serde_yaml::from_str(&format!("[{{targets: [\"{target}\"]}}]"))
            .expect("static_configs literal");
        fs::write(&conf_path, serde_yaml::to_string(&conf).expect("YAML out"))
            .expect("writing prometheus.yml");

        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(prometheus_bin());
        cmd.arg(format!("--config.file={}", conf_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let mut prom = Prometheus {
            proc: Proc::spawn("prometheus", cmd, dir),
            addr,
        };
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            prom.proc.assert_running();
            match http_get(&prom.addr, "/-/ready")? {
                (200, _) => Ok(()),
                (code, body) => Err(format!("HTTP {code}: {body}")),
            }
        });
        prom
    }

    /// GETs an API path and returns the `data` member of a successful reply.
    pub fn api(&mut self, path_and_query: &str) -> Result<Value, String> {
        self.proc.assert_running();
        let (code, body) = http_get(&self.addr, path_and_query)?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| format!("HTTP {code}, not JSON ({e}): {body:.200}"))?;
        if code != 200 || v["status"] != "success" {
            return Err(format!("HTTP {code}: {body:.500}"));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's result vector.
    pub fn query(&mut self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(expr)))?;
        data["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result array: {data}"))
    }

    /// A range query over the last `secs` seconds at a 1 s step.
    pub fn query_range(&mut self, expr: &str, secs: u64) -> Result<Vec<Value>, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        let data = self.api(&format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=1",
            url_encode(expr),
            now - secs
        ))?;
        data["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result array: {data}"))
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("creating dir");
    for entry in fs::read_dir(from).expect("reading dir") {
        let entry = entry.expect("dir entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).expect("copying file");
        }
    }
}

/// The Grafana dashboard, parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&read_repo_file("dashboards/grafana/soakd.json"))
        .expect("dashboards/grafana/soakd.json is JSON")
}

/// Every panel, including panels nested in collapsed rows.
pub fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("dashboard has panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// A PromQL expression found in the dashboard or the rules, with where it is.
#[derive(Clone, Debug)]
pub struct Query {
    /// Human-readable location, e.g. `panel "Throughput" target B`.
    pub place: String,
    pub expr: String,
}

/// Every panel target's expr.
pub fn panel_queries(dash: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                place: format!("panel {} target {}", p["title"], t["refId"]),
                expr: t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel {} has a target without expr", p["title"]))
                    .to_string(),
            });
        }
    }
    out
}

/// Every annotation query's expr (Grafana's built-in annotation has none).
pub fn annotation_queries(dash: &Value) -> Vec<Query> {
    dash["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(Query {
                place: format!("annotation {}", a["name"]),
                expr: a["expr"].as_str()?.to_string(),
            })
        })
        .collect()
}

/// A `label_values(SELECTOR, LABEL)` template variable.
#[derive(Clone, Debug)]
pub struct LabelValuesVar {
    pub name: String,
    pub selector: String,
    pub label: String,
}

/// Every metric name the dashboard's panels, annotations and query variables
/// use, each with where it is used.
pub fn dashboard_metric_uses(dash: &Value) -> Vec<(String, String)> {
    let mut named: Vec<(String, String)> = Vec::new();
    for q in panel_queries(dash)
        .into_iter()
        .chain(annotation_queries(dash))
    {
        named.extend(
            promql_metric_names(&q.expr)
                .into_iter()
                .map(|m| (q.place.clone(), m)),
        );
    }
    for v in label_values_vars(dash) {
        named.extend(
            promql_metric_names(&v.selector)
                .into_iter()
                .map(|m| (format!("variable {}", v.name), m)),
        );
    }
    named
}

/// The dashboard's query variables; panics on any that is not
/// `label_values(selector, label)`, the only form the tests know how to run.
pub fn label_values_vars(dash: &Value) -> Vec<LabelValuesVar> {
    let list = dash["templating"]["list"]
        .as_array()
        .expect("templating.list");
    list.iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let name = v["name"].as_str().expect("variable name").to_string();
            let q = match &v["query"] {
                Value::String(s) => s.clone(),
                other => other["query"].as_str().unwrap_or_default().to_string(),
            };
            let inner = q
                .trim()
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {name}: {q:?} is not label_values(...)"));
            let (selector, label) = inner
                .rsplit_once(',')
                .unwrap_or_else(|| panic!("variable {name}: label_values needs a selector"));
            LabelValuesVar {
                name,
                selector: selector.trim().to_string(),
                label: label.trim().to_string(),
            }
        })
        .collect()
}

/// A rule from `dashboards/prometheus/rules/*.yml`.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The `record` name, or the `alert` name.
    pub name: String,
    pub recording: bool,
    pub expr: String,
}

/// Every rule in `dashboards/prometheus/rules/`.
pub fn rules() -> Vec<Rule> {
    let dir = workspace_root().join("dashboards/prometheus/rules");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let y: serde_yaml::Value =
            serde_yaml::from_str(&fs::read_to_string(&f).expect("reading rule file"))
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for g in y["groups"].as_sequence().into_iter().flatten() {
            for r in g["rules"].as_sequence().into_iter().flatten() {
                let (name, recording) = match (r["record"].as_str(), r["alert"].as_str()) {
                    (Some(n), _) => (n, true),
                    (_, Some(n)) => (n, false),
                    _ => panic!("{}: a rule with neither record nor alert", f.display()),
                };
                out.push(Rule {
                    name: name.to_string(),
                    recording,
                    expr: r["expr"].as_str().expect("rule expr").to_string(),
                });
            }
        }
    }
    out
}

/// Replaces Grafana variables (`$name`, `${name}`, `${name:fmt}`) with the
/// given values. An unknown variable panics, so a new variable in the
/// dashboard makes the tests say what to substitute for it.
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("unclosed ${");
            let name = braced[..end].split(':').next().unwrap_or_default();
            (name, &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no value for variable ${name} in {expr:?}"))
            .1;
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// PromQL words that are not metric names: aggregation operators, binary
/// set operators, modifiers and the literals Inf and NaN.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "and",
    "or",
    "unless",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression selects. Strings, label matchers (`{...}`),
/// ranges (`[...]`), Grafana variables, numbers and durations, function names
/// (a word followed by `(`), keywords and label lists after by/on/... are
/// not metric names; every other identifier is.
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '{' || c == '[' {
            i = skip_group(&chars, i);
        } else if c == '$' {
            // A Grafana variable: `$name` or `${...}`.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i);
            } else {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration: 0.9, 1e-4, 0x1F, 5m, 1h30m.
            while i < chars.len() {
                let d = chars[i];
                let exp_sign = (d == '+' || d == '-') && matches!(chars[i - 1], 'e' | 'E');
                if d.is_ascii_alphanumeric() || d == '.' || d == '_' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let j = next_non_space(i);
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) && chars.get(j) == Some(&'(') {
                i = skip_group(&chars, j);
            } else if !KEYWORDS.contains(&lower.as_str()) && chars.get(j) != Some(&'(') {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// Index just past the bracket group opening at `open` (nesting counted;
/// brackets inside strings ignored).
fn skip_group(chars: &[char], open: usize) -> usize {
    let (o, c) = match chars[open] {
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        _ => ('(', ')'),
    };
    let mut depth = 0;
    let mut i = open;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let ch = chars[i];
        match quote {
            Some(q) if ch == '\\' && q != '`' => i += 1,
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '"' || ch == '\'' || ch == '`' => quote = Some(ch),
            None if ch == o => depth += 1,
            None if ch == c => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            None => {}
        }
        i += 1;
    }
    chars.len()
}

/// Metric names that have at least one sample in Prometheus text exposition
/// (a name declared with `# TYPE` but without samples selects nothing).
pub fn exposition_metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Every `[...]` range in an expression, brackets excluded.
pub fn ranges(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' | '{' => i = skip_quoted_or_matchers(&chars, i),
            '[' => {
                let end = skip_group(&chars, i);
                out.push(chars[i + 1..end - 1].iter().collect());
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

fn skip_quoted_or_matchers(chars: &[char], i: usize) -> usize {
    if chars[i] == '{' {
        return skip_group(chars, i);
    }
    let q = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != q {
        if chars[j] == '\\' && q != '`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        promql_metric_names(expr).into_iter().collect()
    }

    #[test]
    fn names_skip_functions_keywords_labels_and_variables() {
        let e = r#"sum by (instance, profile) (rate(calls_total{instance=~"$instance", profile=~"a}b"}[$__rate_interval]))
             / on (instance) group_left (profile) sum without (op) (rate(ops_total[5m] offset 1h))"#;
        assert_eq!(names(e), ["calls_total", "ops_total"]);
    }

    #[test]
    fn names_skip_numbers_and_durations() {
        assert_eq!(
            names("x < 0.9 * max_over_time(x[1h30m]) and y > 1e-4 or z == Inf"),
            ["x", "y", "z"]
        );
        assert_eq!(names("time() - start_time_seconds"), ["start_time_seconds"]);
        assert_eq!(
            names("job:calls_per_op:rate5m > bool 2"),
            ["job:calls_per_op:rate5m"]
        );
    }

    #[test]
    fn exposition_names_come_from_samples() {
        let text = "# HELP a_total x\n# TYPE a_total counter\na_total{op=\"alloc\"} 1\nb 2\n# TYPE c gauge\n";
        assert_eq!(
            exposition_metric_names(text)
                .into_iter()
                .collect::<Vec<_>>(),
            ["a_total", "b"]
        );
    }

    #[test]
    fn substitution_handles_both_forms() {
        let vars = [("instance", "h:1"), ("__rate_interval", "10s")];
        assert_eq!(
            substitute(r#"rate(x{i=~"$instance"}[${__rate_interval}])"#, &vars),
            r#"rate(x{i=~"h:1"}[10s])"#
        );
    }

    #[test]
    #[should_panic(expected = "no value for variable $nope")]
    fn substitution_rejects_unknown_variables() {
        substitute("x{a=\"$nope\"}", &[]);
    }

    #[test]
    fn ranges_ignore_strings_and_matchers() {
        assert_eq!(
            ranges(r#"rate(x{a="[1m]"}[$__rate_interval]) + y[5m:1m]"#),
            ["$__rate_interval", "5m:1m"]
        );
    }

    #[test]
    fn url_encoding_and_dechunking() {
        assert_eq!(url_encode("a b{c=\"$\"}"), "a%20b%7Bc%3D%22%24%22%7D");
        assert_eq!(
            dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            "abcde"
        );
    }
}
