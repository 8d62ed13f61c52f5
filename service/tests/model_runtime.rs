//! The ONNX Runtime library lookup, the child validator's crash and timeout handling, and the
//! registry's watch thread (file events and periodic rescans).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_features::FeatureSetId;
use fleetscore::model::validate::ChildValidator;
use fleetscore::model::{ModelError, Registry, RegistryConfig};

/// An executable shell script. Written by `install`, not by this process: a child forked by
/// another test thread while this process held the file open for writing would keep it open
/// until its own exec, and running the script then fails with ETXTBSY ("Text file busy").
fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let source = dir.join(format!("{name}.sh.txt"));
    std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
    let path = dir.join(name);
    let status = std::process::Command::new("install")
        .args(["-m", "755"])
        .arg(&source)
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "install {}", path.display());
    path
}

#[test]
fn a_crashing_or_hanging_validator_is_a_rejection_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let crash = ChildValidator {
        exe: script(dir.path(), "crash", "kill -SEGV $$"),
        timeout: Duration::from_secs(30),
        memory_limit_mb: 512,
    };
    let err = crash.validate(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Validator { .. }));
    assert!(err.to_string().contains("killed by signal 11"), "{err}");

    let hang = ChildValidator {
        exe: script(dir.path(), "hang", "exec sleep 600"),
        timeout: Duration::from_millis(300),
        memory_limit_mb: 512,
    };
    let started = Instant::now();
    let err = hang.validate(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no verdict within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));

    let garbage = ChildValidator {
        exe: script(dir.path(), "garbage", "echo hello; exit 0"),
        timeout: Duration::from_secs(30),
        memory_limit_mb: 512,
    };
    let err = garbage.validate(dir.path()).unwrap_err();
    assert!(err.to_string().contains("without a verdict"), "{err}");
}

#[test]
fn the_watch_thread_picks_up_new_and_removed_versions() {
    let root = tempfile::tempdir().unwrap();
    common::publish(root.path(), "engine-rul", "1", "engine-rul", "1");
    let mut config = RegistryConfig::new(root.path());
    config.settle = Duration::from_millis(200);
    let registry = Arc::new(Registry::new(config));
    // A long interval: only file events can explain a prompt reaction.
    let watcher = registry.watch(Duration::from_secs(3600)).unwrap();

    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = registry
                .serving(FeatureSetId::EngineHealth)
                .map(|s| s.serving.version().to_owned());
            if now.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still serving {now:?}, waiting for {want}"
            );
            std::thread::yield_now();
        }
    };
    wait_for("1");
    let v2 = common::publish(root.path(), "engine-rul", "2", "engine-rul", "2");
    wait_for("2");
    std::fs::remove_dir_all(v2).unwrap();
    wait_for("1");
    watcher.stop().expect("the watch thread did not panic");
}

#[test]
fn a_missing_onnx_runtime_library_is_a_clear_error() {
    // Runs in a child so the environment variable stays local to it.
    if std::env::var_os("FLEETSCORE_TEST_ORT_CHILD").is_some() {
        let err = fleetscore::model::backend::ort_library_path().unwrap_err();
        assert!(
            err.contains("ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so does not exist"),
            "{err}"
        );
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_missing_onnx_runtime_library_is_a_clear_error",
            "--exact",
            "--nocapture",
        ])
        .env("FLEETSCORE_TEST_ORT_CHILD", "1")
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Through the loader, a package asking for ONNX Runtime is rejected with that reason.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(["model", "validate", "--json"])
        .arg(common::fixtures().join("engine-rul/1"))
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["class"], "backend_unavailable", "{report}");
}
