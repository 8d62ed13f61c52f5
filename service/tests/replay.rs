//! `fleetscore replay` on the real C-MAPSS events with the fixture models: one prediction per
//! telemetry event, each naming the model, version and hash that made it, with the values the
//! in-process path computes; `--model` picks a version and refuses one that cannot serve.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use fleet_features::{Event, FeatureSet, FeatureSetId, TailState};
use fleetscore::model::package;
use fleetscore::prediction::Prediction;

fn fleetscore(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_predictions(path: &Path) -> Vec<Prediction> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn replay_scores_every_telemetry_event_with_the_chosen_model() {
    let data = fleet_features::data::cmapss_fd001();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let models = common::fixtures();
    let models = models.to_str().unwrap();
    let (ok, err) = fleetscore(&[
        "import",
        "cmapss",
        data.to_str().unwrap(),
        "-o",
        &p("events.jsonl"),
    ]);
    assert!(ok, "{err}");

    // Default: the greatest valid version serves.
    let (ok, err) = fleetscore(&[
        "replay",
        "-i",
        &p("events.jsonl"),
        "-o",
        &p("v2.jsonl"),
        "--models-dir",
        models,
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("20631 events: 20631 predictions"), "{err}");
    let v2 = read_predictions(Path::new(&p("v2.jsonl")));
    assert_eq!(v2.len(), 20_631);
    let sha2 = common::read_json(&common::fixtures().join("engine-rul/2/manifest.json"))["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(v2.iter().all(|r| &*r.model == "engine-rul"
        && &*r.model_version == "2"
        && *r.model_sha256 == *sha2));

    // A chosen version, and its values equal the in-process path, row for row.
    let (ok, err) = fleetscore(&[
        "replay",
        "-i",
        &p("events.jsonl"),
        "-o",
        &p("v1.jsonl"),
        "--models-dir",
        models,
        "--model",
        "engine-rul=1",
        "--batch",
        "37",
    ]);
    assert!(ok, "{err}");
    let v1 = read_predictions(Path::new(&p("v1.jsonl")));
    assert!(v1.iter().all(|r| &*r.model_version == "1"));
    let model = package::load(&common::fixtures().join("engine-rul/1")).unwrap();
    let set = FeatureSet::get(FeatureSetId::EngineHealth);
    let mut states: HashMap<String, TailState> = HashMap::new();
    let (mut rows, mut ids) = (Vec::new(), Vec::new());
    let mut vector = Vec::new();
    for line in std::fs::read_to_string(p("events.jsonl")).unwrap().lines() {
        let event = Event::decode(line.as_bytes()).unwrap();
        let state = states.entry(event.tail().to_owned()).or_default();
        state.apply(&event);
        set.compute(state, &mut vector).unwrap();
        rows.extend_from_slice(&vector);
        ids.push(event.event_id().to_owned());
    }
    let mut want = Vec::new();
    model.score(&rows, &mut want).unwrap();
    assert_eq!(v1.len(), want.len());
    for ((record, id), value) in v1.iter().zip(&ids).zip(&want) {
        assert_eq!(&record.source_event_id, id);
        assert_eq!(record.prediction.to_bits(), value.to_bits(), "{id}");
        assert_eq!(&*record.feature_set_version, set.version());
    }
    assert_ne!(v1[500].prediction, v2[500].prediction);

    // A version that cannot serve is refused with its reason.
    let (ok, err) = fleetscore(&[
        "replay",
        "-i",
        &p("events.jsonl"),
        "-o",
        &p("x.jsonl"),
        "--models-dir",
        models,
        "--model",
        "nan-model=1",
        "--route",
        "engine-health=nan-model",
    ]);
    assert!(!ok);
    assert!(
        err.contains("--model nan-model=1 cannot serve: non-finite output"),
        "{err}"
    );
    let (ok, err) = fleetscore(&[
        "replay",
        "-i",
        &p("events.jsonl"),
        "-o",
        &p("x.jsonl"),
        "--models-dir",
        models,
        "--model",
        "engine-rul=99",
    ]);
    assert!(!ok);
    assert!(
        err.contains("engine-rul=99 cannot serve: no such version"),
        "{err}"
    );
}
