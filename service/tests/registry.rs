//! The model registry and validator on real ONNX packages (`tests/fixtures/models`, made by
//! `training/make_test_models.py`): good versions are promoted while scoring goes on, every
//! kind of bad version is rejected with its reason while the old one keeps serving, pins and
//! removals roll back, shadows never change a prediction.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{backdate, edit_manifest, golden, publish, replace_model};
use fleet_features::FeatureSetId;
use fleetscore::model::validate::ChildValidator;
use fleetscore::model::{BackendKind, Registry, RegistryConfig, package};
use serde_json::Value;

fn registry(root: &std::path::Path) -> Registry {
    let mut config = RegistryConfig::new(root);
    config.settle = Duration::from_secs(5);
    Registry::new(config)
}

fn serving_version(registry: &Registry) -> Option<String> {
    registry
        .serving(FeatureSetId::EngineHealth)
        .map(|s| s.serving.version().to_owned())
}

fn status<'a>(
    statuses: &'a [fleetscore::model::ModelStatus],
    version: &str,
) -> &'a fleetscore::model::ModelStatus {
    statuses
        .iter()
        .find(|s| s.version == version)
        .unwrap_or_else(|| panic!("no status for {version}: {statuses:?}"))
}

#[test]
fn fixtures_load_on_their_backends_and_reproduce_their_golden_sets() {
    for (name, version, backend) in [
        ("engine-rul", "1", BackendKind::Ort),
        ("engine-rul", "2", BackendKind::Ort),
        ("engine-rul-mlp", "1", BackendKind::Tract),
        ("delay-risk", "1", BackendKind::Ort),
    ] {
        let model = package::load(&common::fixtures().join(name).join(version))
            .unwrap_or_else(|e| panic!("{name}/{version}: {e}"));
        assert_eq!(model.backend.kind(), backend, "{name}");
        let (rows, want) = golden(name, version);
        let mut got = Vec::new();
        model.score(&rows, &mut got).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4, "{name}: {g} vs {w}");
        }
    }
}

/// Each bad version is published beside a good serving one; each must be rejected with its
/// reason, and the good one must keep serving.
#[test]
fn bad_versions_are_rejected_and_the_old_one_keeps_serving() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    publish(root, "engine-rul", "1", "engine-rul", "1");
    let registry = registry(root);
    registry.rescan();
    assert_eq!(serving_version(&registry).as_deref(), Some("1"));

    let good = std::fs::read(common::fixtures().join("engine-rul/1/model.onnx")).unwrap();
    let mut cases: Vec<(&str, &str)> = Vec::new();

    let dir = publish(root, "engine-rul", "1", "engine-rul", "10");
    replace_model(&dir, &good[..good.len() / 2]);
    cases.push(("10", "load_failed")); // truncated

    let dir = publish(root, "engine-rul", "1", "engine-rul", "11");
    let noise: Vec<u8> = (0..good.len()).map(|i| (i * 7919 % 251) as u8).collect();
    replace_model(&dir, &noise);
    cases.push(("11", "load_failed")); // random bytes

    let dir = publish(root, "engine-rul", "1", "engine-rul", "12");
    std::fs::write(dir.join("model.onnx"), &good[..good.len() - 1]).unwrap();
    backdate(&dir);
    cases.push(("12", "checksum_mismatch"));

    // The delay-risk feature set has 12 features; the graph takes 100.
    let dir = publish(root, "engine-rul", "1", "engine-rul", "13");
    let dr = common::read_json(&common::fixtures().join("delay-risk/1/manifest.json"));
    edit_manifest(&dir, |m| {
        m["feature_set"] = dr["feature_set"].clone();
        m["input"]["features"] = dr["input"]["features"].clone();
    });
    cases.push(("13", "input_mismatch"));

    let dir = publish(root, "engine-rul", "1", "engine-rul", "14");
    edit_manifest(&dir, |m| {
        m["input"]["features"][3] = Value::from("T24_maximum")
    });
    cases.push(("14", "feature_mismatch"));

    let dir = publish(root, "engine-rul", "1", "engine-rul", "15");
    edit_manifest(&dir, |m| {
        m["feature_set"]["version"] = Value::from("000000000000")
    });
    cases.push(("15", "feature_mismatch"));

    let dir = publish(root, "engine-rul", "1", "engine-rul", "16");
    let mut g = common::read_json(&dir.join("golden.json"));
    g["outputs"][0] = Value::from(g["outputs"][0].as_f64().unwrap() + 1.0);
    std::fs::write(dir.join("golden.json"), serde_json::to_vec(&g).unwrap()).unwrap();
    backdate(&dir);
    cases.push(("16", "golden_mismatch"));

    publish(root, "nan-model", "1", "engine-rul", "17");
    cases.push(("17", "non_finite_output"));

    let dir = publish(root, "engine-rul", "1", "engine-rul", "18");
    edit_manifest(&dir, |m| m["model_file"] = Value::from("../1/model.onnx"));
    cases.push(("18", "path_outside_package"));

    // A symlink is a plain name that still leads elsewhere.
    let dir = publish(root, "engine-rul", "1", "engine-rul", "19");
    let outside = root.join("outside.onnx");
    std::fs::write(&outside, &good).unwrap();
    std::fs::remove_file(dir.join("model.onnx")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("model.onnx")).unwrap();
    backdate(&dir);
    cases.push(("19", "path_outside_package"));

    let dir = publish(root, "engine-rul", "1", "engine-rul", "20");
    edit_manifest(&dir, |m| m["surprise"] = Value::from(1));
    cases.push(("20", "manifest"));

    let changed = registry.rescan();
    assert!(!changed, "a bad version must not change what serves");
    assert_eq!(serving_version(&registry).as_deref(), Some("1"));
    let statuses = registry.statuses();
    for (version, class) in &cases {
        let s = status(&statuses, version);
        assert_eq!(s.state, "rejected", "{version}: {s:?}");
        assert_eq!(s.reason.as_deref(), Some(*class), "{version}: {s:?}");
        assert!(!s.message.as_deref().unwrap_or("").is_empty());
    }
    assert_eq!(status(&statuses, "1").state, "serving");

    // The serving model still scores its golden set.
    let (rows, want) = golden("engine-rul", "1");
    let mut got = Vec::new();
    registry
        .serving(FeatureSetId::EngineHealth)
        .unwrap()
        .score(&rows, &mut got)
        .unwrap();
    assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() <= 1e-4));
}

#[test]
fn a_version_being_copied_waits_then_serves_once_complete() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    publish(root, "engine-rul", "1", "engine-rul", "1");
    let registry = registry(root);
    registry.rescan();

    // The manifest arrived first and the model is half written, just now.
    let dir = publish(root, "engine-rul", "2", "engine-rul", "2");
    let full = std::fs::read(dir.join("model.onnx")).unwrap();
    std::fs::write(dir.join("model.onnx"), &full[..full.len() / 3]).unwrap();
    registry.rescan();
    let statuses = registry.statuses();
    assert_eq!(status(&statuses, "2").state, "pending", "{statuses:?}");
    assert_eq!(serving_version(&registry).as_deref(), Some("1"));

    // The copy finishes; once the files have settled the version is validated and promoted.
    std::fs::write(dir.join("model.onnx"), &full).unwrap();
    backdate(&dir);
    assert!(registry.rescan());
    assert_eq!(serving_version(&registry).as_deref(), Some("2"));
}

#[test]
fn promotion_while_scoring_never_fails_or_mixes_a_batch() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    publish(root, "engine-rul", "1", "engine-rul", "1");
    let registry = Arc::new(registry(root));
    registry.rescan();

    let (rows, want_v1) = golden("engine-rul", "1");
    // Version 2 scored on the same rows, for recognising its batches.
    let v2 = package::load(&common::fixtures().join("engine-rul/2")).unwrap();
    let mut want_v2 = Vec::new();
    v2.score(&rows, &mut want_v2).unwrap();
    assert_ne!(want_v1, want_v2);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let scorer = {
        let (registry, stop, counts, rows) = (
            Arc::clone(&registry),
            Arc::clone(&stop),
            Arc::clone(&counts),
            rows.clone(),
        );
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let set = registry
                    .serving(FeatureSetId::EngineHealth)
                    .expect("always serving");
                let scored = set.score(&rows, &mut out).expect("scoring never fails");
                let close = |want: &[f32]| out.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-4);
                let (want, slot) = match scored.model.version() {
                    "1" => (&want_v1, 0),
                    "2" => (&want_v2, 1),
                    other => panic!("unexpected version {other}"),
                };
                assert!(
                    close(want),
                    "a batch labelled {} is not that version's output",
                    slot + 1
                );
                counts[slot].fetch_add(1, Ordering::AcqRel);
            }
        })
    };
    let wait_for = |slot: usize, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while counts[slot].load(Ordering::Acquire) < n {
            assert!(Instant::now() < deadline, "scorer made no progress");
            std::thread::yield_now();
        }
    };

    // Scoring on version 1; publish version 2 mid-stream; scoring carries on, on version 2.
    wait_for(0, 20);
    publish(root, "engine-rul", "2", "engine-rul", "2");
    assert!(registry.rescan());
    assert_eq!(serving_version(&registry).as_deref(), Some("2"));
    wait_for(1, 20);
    stop.store(true, Ordering::Release);
    scorer.join().expect("scorer thread panicked");
    // Batches after the swap all ran on version 2 (checked inside); a final one to be sure.
    let mut out = Vec::new();
    let scored = registry
        .serving(FeatureSetId::EngineHealth)
        .unwrap()
        .score(&rows, &mut out)
        .unwrap();
    assert_eq!(scored.model.version(), "2");
}

#[test]
fn pins_and_removal_roll_back() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    publish(root, "engine-rul", "1", "engine-rul", "1");
    let v2 = publish(root, "engine-rul", "2", "engine-rul", "2");
    let r = registry(root);
    r.rescan();
    assert_eq!(serving_version(&r).as_deref(), Some("2"));

    let mut config = r.config().clone();
    config.pins.insert("engine-rul".into(), "1".into());
    let pinned = Registry::new(config);
    pinned.rescan();
    assert_eq!(serving_version(&pinned).as_deref(), Some("1"));
    let statuses = pinned.statuses();
    assert!(status(&statuses, "1").pinned);
    assert_eq!(status(&statuses, "2").state, "standby");

    std::fs::remove_dir_all(v2).unwrap();
    assert!(r.rescan());
    assert_eq!(serving_version(&r).as_deref(), Some("1"));
}

#[test]
fn shadow_scores_beside_the_serving_model_without_changing_it() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    publish(root, "engine-rul", "1", "engine-rul", "1");
    let shadow = publish(root, "engine-rul", "2", "engine-rul", "2");
    edit_manifest(&shadow, |m| m["stage"] = Value::from("shadow"));
    let r = registry(root);
    r.rescan();
    assert_eq!(serving_version(&r).as_deref(), Some("1"));

    let (rows, want_v1) = golden("engine-rul", "1");
    let mut out = Vec::new();
    let scored = r
        .serving(FeatureSetId::EngineHealth)
        .unwrap()
        .score(&rows, &mut out)
        .unwrap();
    assert_eq!(scored.model.version(), "1");
    assert!(out.iter().zip(&want_v1).all(|(g, w)| (g - w).abs() <= 1e-4));
    let shadow = scored.shadow.expect("shadow scored");
    assert_eq!(shadow.model.version(), "2");
    let shadow_values = shadow.result.unwrap();
    assert_eq!(shadow_values.len(), out.len());
    assert_ne!(shadow_values, out);
    let statuses = r.statuses();
    assert_eq!(status(&statuses, "2").state, "shadow");
}

#[test]
fn the_child_validator_gives_a_verdict_and_a_reason() {
    let validator = ChildValidator {
        exe: env!("CARGO_BIN_EXE_fleetscore").into(),
        timeout: Duration::from_secs(60),
        memory_limit_mb: 4096,
    };
    let ok = validator
        .validate(&common::fixtures().join("engine-rul/1"))
        .unwrap();
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.backend.as_deref(), Some("ort"));

    let root = tempfile::tempdir().unwrap();
    let dir = publish(root.path(), "nan-model", "1", "nan-model", "1");
    let bad = validator.validate(&dir).unwrap();
    assert!(!bad.ok);
    assert_eq!(bad.class.as_deref(), Some("non_finite_output"), "{bad:?}");
}

fn serving_of(registry: &Registry, name: &str) -> Option<String> {
    registry
        .serving_by_name(name)
        .map(|s| s.serving.version().to_owned())
}

/// A loaded version whose files are damaged, or lose their model file, keeps serving its loaded
/// model (marked, with the reason) while no valid replacement exists; removing the version's
/// directory on purpose still rolls back.
#[test]
fn a_damaged_serving_version_keeps_serving_until_it_is_replaced_or_removed() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let v1 = publish(root, "engine-rul-mlp", "1", "engine-rul-mlp", "1");
    let r = registry(root);
    r.rescan();
    assert_eq!(serving_of(&r, "engine-rul-mlp").as_deref(), Some("1"));
    let (rows, want) = golden("engine-rul-mlp", "1");
    let score = |r: &Registry| {
        let mut got = Vec::new();
        r.serving_by_name("engine-rul-mlp")
            .expect("still serving")
            .score(&rows, &mut got)
            .unwrap();
        got
    };
    let before = score(&r);
    assert!((before[0] - want[0]).abs() <= 1e-4);

    // Overwritten in place while serving: the checksum no longer matches.
    std::fs::write(v1.join("model.onnx"), b"not an onnx model at all").unwrap();
    backdate(&v1);
    r.rescan();
    assert_eq!(serving_of(&r, "engine-rul-mlp").as_deref(), Some("1"));
    assert_eq!(score(&r), before, "the loaded model, not the damaged file");
    let statuses = r.statuses();
    let s = status(&statuses, "1");
    assert_eq!(s.state, "serving");
    assert_eq!(s.reason.as_deref(), Some("checksum_mismatch"), "{s:?}");
    assert!(
        s.message.as_deref().unwrap().contains("keeps serving"),
        "{s:?}"
    );

    // The model file deleted: still the loaded model.
    std::fs::remove_file(v1.join("model.onnx")).unwrap();
    backdate(&v1);
    r.rescan();
    assert_eq!(serving_of(&r, "engine-rul-mlp").as_deref(), Some("1"));

    // A valid replacement is promoted as usual.
    let v2 = publish(root, "engine-rul-mlp", "1", "engine-rul-mlp", "2");
    r.rescan();
    assert_eq!(serving_of(&r, "engine-rul-mlp").as_deref(), Some("2"));

    // Removing the version directory on purpose rolls back (here: to the damaged but loaded
    // version 1), and removing that one too leaves nothing serving.
    std::fs::remove_dir_all(&v2).unwrap();
    r.rescan();
    assert_eq!(serving_of(&r, "engine-rul-mlp").as_deref(), Some("1"));
    std::fs::remove_dir_all(&v1).unwrap();
    r.rescan();
    assert_eq!(serving_of(&r, "engine-rul-mlp"), None);
}
