//! One feature set feeding two models: `engine-health` routed to `engine-rul` (ONNX Runtime)
//! and `engine-rul-mlp` (tract). Replay publishes two predictions per telemetry event, each with
//! its own model's provenance, and the HTTP API scoring the same aircraft state with either model
//! gives the same values bit for bit.

mod common;
mod http_support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use fleet_features::Event;
use fleetscore::prediction::Prediction;
use http_support::*;
use serde_json::json;

fn fleetscore(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fleetscore {args:?}: {stderr}");
    stderr
}

fn sha256_of(name: &str, version: &str) -> String {
    let manifest = common::fixtures()
        .join(name)
        .join(version)
        .join("manifest.json");
    common::read_json(&manifest)["sha256"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_feature_set_feeds_two_models_and_http_agrees_with_replay() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let predictions = dir.path().join("predictions.jsonl");
    let data = fleet_features::data::cmapss_fd001();
    fleetscore(&[
        "import",
        "cmapss",
        data.to_str().unwrap(),
        "-o",
        events.to_str().unwrap(),
    ]);
    let models = common::fixtures();
    let summary = fleetscore(&[
        "replay",
        "-i",
        events.to_str().unwrap(),
        "-o",
        predictions.to_str().unwrap(),
        "--models-dir",
        models.to_str().unwrap(),
        "--route",
        "engine-health=engine-rul",
        "--route",
        "engine-health=engine-rul-mlp",
    ]);
    assert!(
        summary.contains("20631 events: 41262 predictions"),
        "{summary}"
    );

    // Two records per event, in route order, each naming the model that made it.
    let records: Vec<Prediction> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let lines: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(records.len(), 2 * lines.len());
    let (rul_sha, mlp_sha) = (
        sha256_of("engine-rul", "2"),
        sha256_of("engine-rul-mlp", "1"),
    );
    for (pair, line) in records.chunks(2).zip(&lines) {
        let event = Event::decode(line.as_bytes()).unwrap();
        for (record, (model, version, sha)) in pair.iter().zip([
            ("engine-rul", "2", &rul_sha),
            ("engine-rul-mlp", "1", &mlp_sha),
        ]) {
            assert_eq!(record.source_event_id, event.event_id());
            assert_eq!((&*record.model, &*record.model_version), (model, version));
            assert_eq!(*record.model_sha256, **sha);
            assert_eq!(&*record.feature_set, "engine-health");
        }
    }
    assert_ne!(records[1000].prediction, records[1001].prediction);
    let by_event: HashMap<(&str, &str), f32> = records
        .iter()
        .map(|r| ((r.source_event_id.as_str(), &*r.model), r.prediction))
        .collect();

    // The HTTP path: the same aircraft's live state after each of a few events, scored by name.
    let service = Service::with_models(
        &[("engine-rul", "2"), ("engine-rul-mlp", "1")],
        false,
        |_| {},
    );
    let app = service.app();
    let tail = "CMAPSS-7";
    let checkpoints = [1u32, 20, 57, 120];
    let mut applied = 0;
    for line in &lines {
        let event = Event::decode(line.as_bytes()).unwrap();
        if event.tail() != tail {
            continue;
        }
        service
            .ctx
            .store
            .with_entry(tail, |entry| entry.state.apply(&event));
        applied += 1;
        if !checkpoints.contains(&applied) {
            continue;
        }
        for model in ["engine-rul", "engine-rul-mlp"] {
            let reply = post(&app, "/score", &json!({"model": model, "tail": tail})).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            let got = reply.json["predictions"][0].as_f64().unwrap() as f32;
            let want = by_event[&(event.event_id(), model)];
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{model} at {}",
                event.event_id()
            );
        }
    }
    assert!(applied >= 120, "{tail} has {applied} events");
    assert!(Path::new(&predictions).exists());
}
