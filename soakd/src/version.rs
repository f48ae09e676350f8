//! What this build is: soakd's and hakmem's versions and hakmem's cargo
//! features, for `soakd --version`, `soakd_build_info` and the machine
//! context of every result. Two builds of one version can measure
//! differently (`hakmem/fast` drops the integrity checks), so all three
//! travel together.

/// soakd's version.
pub const SOAKD: &str = env!("CARGO_PKG_VERSION");

/// hakmem's features, comma-separated, or `none`.
pub fn hakmem_features() -> String {
    features_text(hakmem::FEATURES)
}

fn features_text(features: &[&str]) -> String {
    if features.is_empty() {
        "none".to_string()
    } else {
        features.join(",")
    }
}

/// The `--version` text after the program name.
pub fn long() -> String {
    format!(
        "{SOAKD} (hakmem {}, hakmem features: {})",
        hakmem::VERSION,
        hakmem_features()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_both_versions_and_the_features() {
        assert_eq!(features_text(&[]), "none");
        assert_eq!(features_text(&["fast", "observe"]), "fast,observe");
        let want = format!(
            "{} (hakmem {}, hakmem features: {})",
            env!("CARGO_PKG_VERSION"),
            hakmem::VERSION,
            features_text(hakmem::FEATURES)
        );
        assert_eq!(long(), want);
    }
}
