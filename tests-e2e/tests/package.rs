//! The Debian package: `scripts/build_deb.sh` builds it (release soakd and
//! libhakmem.so, the same release build the C ABI tests use, then
//! `cargo deb`), `dpkg -x` unpacks it into a temporary root, and the layout,
//! the conffiles and the unpacked programs are checked there.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::path::Path;
use std::process::Command;

use hakmem_e2e::{read_repo_file, require_tool, workspace_root};

/// Runs `cmd`, panicking with its output unless it succeeds; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The file or folder at `rel` inside the unpacked root, which must exist.
fn installed(root: &Path, rel: &str) -> std::path::PathBuf {
    let p = root.join(rel);
    assert!(p.exists(), "the package lacks /{rel}");
    p
}

#[test]
fn the_package_installs_soakd_the_library_profiles_unit_and_dashboards() {
    require_tool(
        "cargo-deb",
        "scripts/setup.sh (cargo install --locked cargo-deb)",
    );
    let dpkg_deb = require_tool("dpkg-deb", "apt-get install -y dpkg");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("debian");
    std::fs::create_dir(&out_dir).unwrap();
    ok(Command::new(workspace_root().join("scripts/build_deb.sh"))
        .arg("--output")
        .arg(&out_dir));
    let debs: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];

    let fields = ok(Command::new(&dpkg_deb).arg("--field").arg(deb));
    for want in [
        "Package: soakd",
        &format!("Version: {}-1", env!("CARGO_PKG_VERSION")),
        "Architecture: amd64",
    ] {
        assert!(
            fields.lines().any(|l| l == want),
            "no {want:?} in\n{fields}"
        );
    }
    let control = dir.path().join("control");
    ok(Command::new(&dpkg_deb)
        .arg("--control")
        .arg(deb)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/soakd/soakd.toml"),
        "{conffiles}"
    );

    let root = dir.path().join("root");
    ok(Command::new(&dpkg_deb).arg("-x").arg(deb).arg(&root));
    let soakd = installed(&root, "usr/bin/soakd");
    let lib = installed(&root, "usr/lib/x86_64-linux-gnu/libhakmem.so");
    for profile in ["soakd", "balanced", "speed-first", "lean"] {
        installed(&root, &format!("etc/soakd/{profile}.toml"));
    }
    for rel in [
        "usr/share/soakd/grafana/soakd.json",
        "usr/share/soakd/grafana/provisioning/datasources/prometheus.yml",
        "usr/share/soakd/prometheus/prometheus.yml",
        "usr/share/soakd/prometheus/rules/soakd.alerts.yml",
        "usr/share/soakd/prometheus/rules/soakd.recording.yml",
        "usr/share/doc/soakd/operations.md",
    ] {
        installed(&root, rel);
    }
    // /lib is /usr/lib on Debian since 12 (merged /usr); cargo-deb uses the latter.
    let unit = installed(&root, "usr/lib/systemd/system/soakd.service");
    assert_eq!(
        std::fs::read_to_string(unit).unwrap(),
        read_repo_file("dist/soakd.service"),
        "the packaged unit is dist/soakd.service"
    );

    // The unpacked programs work: soakd runs, its profile is valid, and the
    // library serves malloc when preloaded (soakd host names it).
    let version = ok(Command::new(&soakd).arg("--version"));
    assert!(
        version.starts_with(&format!("soakd {} (hakmem ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let profile = root.join("etc/soakd/soakd.toml");
    let effective = ok(Command::new(&soakd).arg("check-config").arg(&profile));
    assert!(effective.contains("name = \"balanced\""), "{effective}");
    let host = ok(Command::new(&soakd).arg("host").env("LD_PRELOAD", &lib));
    let lib = std::fs::canonicalize(&lib).unwrap();
    assert!(
        host.lines()
            .any(|l| l == format!("malloc:  {}", lib.display())),
        "{host}"
    );
}
