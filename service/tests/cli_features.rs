//! `fleetscore features` writes, for every scored event, exactly the vector the in-process
//! online path computes (bit for bit), and accounts for bad, duplicate and late lines.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use fleet_features::{Event, FeatureSet, FeatureSetId, TailState};

fn fleetscore(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

#[test]
fn feature_rows_equal_the_online_vectors() {
    let data = fleet_features::data::cmapss_fd001();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let csv = dir.path().join("features.csv");
    let p = |p: &Path| p.to_str().unwrap().to_owned();
    fleetscore(&["import", "cmapss", &p(&data), "-o", &p(&events)]);

    // Append a bad line, a duplicate and a late event to the stream.
    let mut text = std::fs::read_to_string(&events).unwrap();
    // The duplicate is the newest event (its id is remembered); the late one is unit 1's first
    // cycle under a new id.
    let first = text.lines().next().unwrap().to_owned();
    let newest = text.lines().last().unwrap().to_owned();
    let late = first.replace(
        "\"event_id\":\"cmapss:train_FD001:u1:c1\"",
        "\"event_id\":\"late-1\"",
    );
    text.push_str(&format!("not json\n{newest}\n{late}\n"));
    std::fs::write(&events, &text).unwrap();

    let summary = fleetscore(&[
        "features",
        "-i",
        &p(&events),
        "-f",
        "engine-health",
        "-o",
        &p(&csv),
    ]);
    assert!(
        summary.contains("20634 lines: 20631 applied, 1 invalid, 1 duplicates, 1 late; 100 tails"),
        "{summary}"
    );
    let set = FeatureSet::get(FeatureSetId::EngineHealth);
    assert!(summary.contains(&format!(
        "wrote 20631 engine-health rows (feature-set version {})",
        set.version()
    )));

    // Recompute in process and compare every row, bit for bit.
    let out = std::fs::read_to_string(&csv).unwrap();
    let mut rows = out.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(&header[3..], set.names());
    let mut states: HashMap<String, TailState> = HashMap::new();
    let mut vector = Vec::new();
    let mut compared = 0;
    for (line, row) in text.lines().take(20_631).zip(rows) {
        let event = Event::decode(line.as_bytes()).unwrap();
        let state = states.entry(event.tail().to_owned()).or_default();
        state.apply(&event);
        set.compute(state, &mut vector).unwrap();
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[1], event.event_id());
        let written: Vec<u32> = fields[3..]
            .iter()
            .map(|f| f.parse::<f32>().unwrap().to_bits())
            .collect();
        let online: Vec<u32> = vector.iter().map(|v| v.to_bits()).collect();
        assert_eq!(written, online, "row for {}", event.event_id());
        compared += 1;
    }
    assert_eq!(compared, 20_631);
}

#[test]
fn unknown_feature_set_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args([
            "features",
            "-i",
            "-",
            "-f",
            "engine-wealth",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown feature set `engine-wealth`"));
}
