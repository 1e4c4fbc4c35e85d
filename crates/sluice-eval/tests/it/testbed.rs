//! Where the flagd testbed is: `SLUICE_CONFORMANCE_DIR`, or
//! `../shared/conformance/flagd-testbed` beside the repository.

use std::path::PathBuf;

/// The testbed directory, or `None` (with a notice) when it is absent.
/// Under `CI=true` an absent testbed is a failure, not a skip.
pub fn dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SLUICE_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/conformance/flagd-testbed"),
    };
    if dir.join("evaluator").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "flagd testbed not found at {} (set SLUICE_CONFORMANCE_DIR)",
            dir.display()
        );
    }
    eprintln!(
        "notice: flagd testbed not found at {}; conformance tests not run (set SLUICE_CONFORMANCE_DIR)",
        dir.display()
    );
    None
}

/// Evaluation time used by the tests (2026-11-27T00:00:00Z).
pub const NOW: i64 = 1_795_737_600;
