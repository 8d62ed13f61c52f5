//! `fleetscore demo` on librdkafka's in-process mock cluster (the one place besides fault
//! injection where a mock stands in for the broker: the demo must run with no broker at all).

use std::process::Command;

#[test]
fn demo_runs_the_whole_path_on_the_mock_cluster() {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args([
            "demo",
            "--limit",
            "3000",
            "--rate",
            "0",
            "--every",
            "1",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--models-dir")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models"))
        .arg("--cmapss")
        .arg(fleet_features::data::cmapss_fd001())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let done = stderr
        .lines()
        .find(|l| l.starts_with("demo: done"))
        .unwrap_or_else(|| panic!("no final line: {stderr}"));
    assert!(done.contains("3000 events consumed"), "{done}");
    assert!(done.contains(", 0 dead letters"), "{done}");
    let predictions: u64 = done
        .split(", ")
        .find_map(|p| p.strip_suffix(" predictions"))
        .unwrap()
        .parse()
        .unwrap();
    // Every telemetry event is scored; schedule events only when they announce a flight.
    let telemetry = if std::env::var_os("NYCFLIGHTS_DIR").is_some() {
        1500
    } else {
        3000
    };
    assert!((telemetry..=3000).contains(&predictions), "{done}");
    assert!(stderr.contains("lowest RUL: CMAPSS-"), "{stderr}");
}
