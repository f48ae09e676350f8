//! The allocators `soakd compare` runs: hakmem through libhakmem.so, and
//! those `--with` names, each under `LD_PRELOAD` (glibc: no preload). Known
//! names map to their Debian library paths; `NAME=/path/lib.so` gives any
//! other. One not installed is skipped with a one-line reason.

use std::path::{Path, PathBuf};

/// An allocator to run: its name (the output subfolder) and the library
/// preloaded for it (`None`: the C library's own malloc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocator {
    pub name: String,
    pub preload: Option<PathBuf>,
}

/// The allocator names `--with` knows without a path, and their Debian
/// library file (`None`: glibc, nothing to preload).
const KNOWN: [(&str, Option<&str>); 3] = [
    ("mimalloc", Some("libmimalloc.so.2")),
    ("jemalloc", Some("libjemalloc.so.2")),
    ("glibc", None),
];

/// hakmem's name in the comparison; it is always run, first.
pub const HAKMEM: &str = "hakmem";

/// Debian's multiarch library folder for this machine.
fn debian_lib(file: &str) -> PathBuf {
    PathBuf::from(format!(
        "/usr/lib/{}-linux-gnu/{file}",
        std::env::consts::ARCH
    ))
}

/// Parses `--with`: comma-separated `NAME` or `NAME=/path/lib.so`, each name
/// once. A name without a path must be known; `hakmem` is implied.
pub fn parse_with(list: &str) -> Result<Vec<(String, Option<PathBuf>)>, String> {
    let mut out: Vec<(String, Option<PathBuf>)> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, path) = match item.split_once('=') {
            Some((n, p)) => (n.trim(), Some(PathBuf::from(p.trim()))),
            None => (item, None),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "--with: `{item}`: a name is letters, digits, - and _ (NAME or NAME=/path/lib.so)"
            ));
        }
        if name == HAKMEM {
            return Err(
                "--with: hakmem is always compared; give its library with --hakmem-lib".into(),
            );
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("--with: `{name}` is named twice"));
        }
        if path.is_none() && !KNOWN.iter().any(|(k, _)| *k == name) {
            let known: Vec<&str> = KNOWN.iter().map(|(k, _)| *k).collect();
            return Err(format!(
                "--with: unknown allocator `{name}`: expected {} or NAME=/path/lib.so",
                known.join(", ")
            ));
        }
        out.push((name.to_string(), path));
    }
    if out.is_empty() {
        return Err("--with: name at least one allocator to compare hakmem with".into());
    }
    Ok(out)
}

/// The allocator, or why it is skipped (its library is not there).
pub fn resolve(name: &str, path: Option<PathBuf>) -> Result<Allocator, String> {
    let preload = match path {
        Some(p) => Some(p),
        None => KNOWN
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, file)| file.map(debian_lib)),
    };
    match &preload {
        Some(p) if !p.is_file() => Err(format!("{name}: {} not found, skipped", p.display())),
        _ => Ok(Allocator {
            name: name.to_string(),
            preload,
        }),
    }
}

/// hakmem's libhakmem.so: `--hakmem-lib`, else beside the soakd executable,
/// else in the release folder next to it (`target/debug/soakd` ->
/// `target/release/libhakmem.so`).
pub fn hakmem(lib: Option<PathBuf>, exe: &Path) -> Result<Allocator, String> {
    let candidates: Vec<PathBuf> = match lib {
        Some(p) => vec![p],
        None => {
            let dir = exe.parent().unwrap_or(Path::new("."));
            vec![
                dir.join("libhakmem.so"),
                dir.join("../release/libhakmem.so"),
            ]
        }
    };
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => Ok(Allocator {
            name: HAKMEM.into(),
            preload: Some(p.clone()),
        }),
        None => Err(format!(
            "hakmem: no libhakmem.so at {} (cargo build --release -p hakmem-capi, or --hakmem-lib), skipped",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_lists_names_and_paths() {
        let w = parse_with("mimalloc, glibc,tc=/opt/libtcmalloc.so").unwrap();
        assert_eq!(
            w,
            [
                ("mimalloc".to_string(), None),
                ("glibc".to_string(), None),
                ("tc".to_string(), Some(PathBuf::from("/opt/libtcmalloc.so")))
            ]
        );
        for (bad, says) in [
            ("tcmalloc", "unknown allocator `tcmalloc`"),
            ("glibc,glibc", "named twice"),
            ("hakmem", "--hakmem-lib"),
            ("a b", "`a b`"),
            ("", "at least one"),
            ("../x=/lib.so", "`../x=/lib.so`"),
        ] {
            let e = parse_with(bad).unwrap_err();
            assert!(e.starts_with("--with") && e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_libraries_are_skipped_with_a_reason() {
        assert_eq!(
            resolve("glibc", None),
            Ok(Allocator {
                name: "glibc".into(),
                preload: None
            })
        );
        let e = resolve("x", Some("/nonexistent/libx.so".into())).unwrap_err();
        assert_eq!(e, "x: /nonexistent/libx.so not found, skipped");
        let lib = std::env::current_exe().unwrap();
        assert_eq!(
            resolve("own", Some(lib.clone())).unwrap().preload,
            Some(lib.clone())
        );
        let h = hakmem(None, Path::new("/nonexistent/bin/soakd")).unwrap_err();
        assert!(
            h.contains("/nonexistent/bin/libhakmem.so") && h.ends_with("skipped"),
            "{h}"
        );
        assert_eq!(hakmem(Some(lib.clone()), &lib).unwrap().preload, Some(lib));
        assert!(debian_lib("libm.so.6").starts_with("/usr/lib/"));
    }
}
