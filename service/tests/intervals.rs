//! The shipped models through `fleetscore replay` on the real C-MAPSS events: `engine-rul`'s
//! 80 % interval comes from `engine-rul-p10` and `engine-rul-p90` (checked against each bound
//! model replayed on its own, and the fix-up `lower = min(p10, point)`,
//! `upper = max(p90, point)`), so every prediction has `lower ≤ point ≤ upper`; routed beside
//! it, `engine-anomaly` raises the default anomaly alert on the engines as they wear out.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use fleetscore::alerts::AlertEvent;
use fleetscore::prediction::Prediction;

fn shipped_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// `name/version` of the greatest published (numbered) version of a shipped model: the one
/// that serves.
fn serving(name: &str) -> String {
    let version = std::fs::read_dir(shipped_models().join(name))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("manifest.json").is_file())
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    format!("{name}/{version}")
}

/// `fleetscore replay` with `extra` arguments; the predictions by source event.
fn replay(events: &Path, out: &Path, extra: &[&str]) -> HashMap<String, Prediction> {
    let status = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(["replay", "-i"])
        .arg(events)
        .arg("-o")
        .arg(out)
        .arg("--models-dir")
        .arg(shipped_models())
        .args(extra)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let p: Prediction = serde_json::from_str(l).unwrap();
            (p.source_event_id.clone(), p)
        })
        .collect()
}

fn cmapss(dir: &Path) -> PathBuf {
    let events = dir.join("events.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(["import", "cmapss"])
        .arg(fleet_features::data::cmapss_fd001())
        .arg("-o")
        .arg(&events)
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success());
    events
}

#[test]
fn every_remaining_life_has_an_ordered_interval_from_the_quantile_models() {
    let dir = tempfile::tempdir().unwrap();
    let events = cmapss(dir.path());
    let served = replay(&events, &dir.path().join("rul.jsonl"), &[]);
    let p10 = replay(
        &events,
        &dir.path().join("p10.jsonl"),
        &["--route", "engine-health=engine-rul-p10"],
    );
    let p90 = replay(
        &events,
        &dir.path().join("p90.jsonl"),
        &["--route", "engine-health=engine-rul-p90"],
    );
    assert_eq!(served.len(), 20_631);
    let (lower_model, upper_model) = (serving("engine-rul-p10"), serving("engine-rul-p90"));
    let (mut lower_fixed, mut upper_fixed) = (0, 0);
    for (event, p) in &served {
        let interval = p
            .interval
            .as_ref()
            .unwrap_or_else(|| panic!("{event}: no interval"));
        let (raw_lower, raw_upper) = (p10[event].prediction, p90[event].prediction);
        assert_eq!(interval.lower, raw_lower.min(p.prediction), "{event}");
        assert_eq!(interval.upper, raw_upper.max(p.prediction), "{event}");
        assert!(interval.lower <= p.prediction && p.prediction <= interval.upper);
        assert_eq!(interval.level, 0.8);
        assert_eq!(interval.lower_model, lower_model);
        assert_eq!(interval.upper_model, upper_model);
        lower_fixed += usize::from(raw_lower > p.prediction);
        upper_fixed += usize::from(raw_upper < p.prediction);
    }
    // The fix-up happens (8.1 % of rows on the training engines, mostly the upper bound).
    assert!(upper_fixed > 0, "no upper bound needed the fix-up");
    eprintln!(
        "{} predictions: lower fixed up {lower_fixed}, upper {upper_fixed}",
        served.len()
    );
    // Bound models are not predictions of their own.
    assert!(served.values().all(|p| &*p.model == "engine-rul"));
}

#[test]
fn engine_anomaly_routed_beside_remaining_life_raises_the_anomaly_alert() {
    let dir = tempfile::tempdir().unwrap();
    let events = cmapss(dir.path());
    let alerts = dir.path().join("alerts.jsonl");
    replay(
        &events,
        &dir.path().join("both.jsonl"),
        &[
            "--route",
            "engine-health=engine-rul",
            "--route",
            "engine-health=engine-anomaly",
            "--alerts",
            alerts.to_str().unwrap(),
        ],
    );
    let alerts: Vec<AlertEvent> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let raised = |rule: &str| -> BTreeSet<&str> {
        alerts
            .iter()
            .filter(|a| a.rule == rule && a.kind == "raised")
            .map(|a| a.tail.as_str())
            .collect()
    };
    // Run-to-failure engines: each wears out, so each should be flagged before its end
    // (the report: every held-out engine alerted by grouped CV).
    let anomalous = raised("engine-anomaly");
    assert!(
        anomalous.len() >= 95,
        "{} engines raised engine-anomaly",
        anomalous.len()
    );
    assert_eq!(raised("engine-remaining-life").len(), 100);
    assert!(alerts.iter().all(|a| a.model
        == if a.rule == "engine-anomaly" {
            "engine-anomaly"
        } else {
            "engine-rul"
        }));
}
