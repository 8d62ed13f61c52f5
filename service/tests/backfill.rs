//! `fleetscore backfill` (feature `lake`): the Parquet training table holds, row for row and bit
//! for bit, the vectors the online path computes, with correct labels; JSON-lines and Parquet
//! inputs give the same table.
#![cfg(feature = "lake")]

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use fleet_features::{Event, FeatureSet, FeatureSetId, TailState};
use polars::prelude::*;

fn fleetscore(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscore"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

fn read(path: &Path) -> DataFrame {
    ParquetReader::new(File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Online vectors by event id, for events of `set`.
fn online(events: &Path, set: &FeatureSet) -> HashMap<String, Vec<f32>> {
    let mut states: HashMap<String, TailState> = HashMap::new();
    let mut out = HashMap::new();
    let mut v = Vec::new();
    for line in std::fs::read_to_string(events).unwrap().lines() {
        let e = Event::decode(line.as_bytes()).unwrap();
        let state = states.entry(e.tail().to_owned()).or_default();
        state.apply(&e);
        if FeatureSet::for_event(&e).is_some_and(|s| s.id() == set.id())
            && set.compute(state, &mut v).is_ok()
        {
            out.insert(e.event_id().to_owned(), v.clone());
        }
    }
    out
}

fn assert_bit_identical(df: &DataFrame, want: &HashMap<String, Vec<f32>>, set: &FeatureSet) {
    assert_eq!(df.height(), want.len());
    let ids = df.column("event_id").unwrap().str().unwrap().clone();
    let columns: Vec<Float32Chunked> = set
        .names()
        .iter()
        .map(|n| df.column(n).unwrap().f32().unwrap().clone())
        .collect();
    for (row, id) in ids.iter().enumerate() {
        let id = id.unwrap();
        let expected = &want[id];
        for (c, column) in columns.iter().enumerate() {
            let got = column.get(row).unwrap();
            assert_eq!(
                got.to_bits(),
                expected[c].to_bits(),
                "{id}: {}",
                set.names()[c]
            );
        }
    }
}

#[test]
fn cmapss_table_equals_the_online_vectors_with_rul_labels() {
    let data = fleet_features::data::cmapss_fd001();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    fleetscore(&["import", "cmapss", &s(&data), "-o", &s(&events)]);
    let table = dir.path().join("eh.parquet");
    let summary = fleetscore(&[
        "backfill",
        "-i",
        &s(&events),
        "-f",
        "engine-health",
        "-o",
        &s(&table),
        "--chunk-rows",
        "5000",
    ]);
    assert!(
        summary.contains("20631 engine-health rows (20631 labelled"),
        "{summary}"
    );

    let set = FeatureSet::get(FeatureSetId::EngineHealth);
    let df = read(&table);
    assert_bit_identical(&df, &online(&events, set), set);

    // Labels: unit 1 runs 192 cycles.
    let ids = df.column("event_id").unwrap().str().unwrap().clone();
    let rul = df.column("rul").unwrap().f32().unwrap().clone();
    let raw = df.column("rul_uncapped").unwrap().f32().unwrap().clone();
    let at = |id: &str| ids.iter().position(|x| x == Some(id)).unwrap();
    let first = at("cmapss:train_FD001:u1:c1");
    let last = at("cmapss:train_FD001:u1:c192");
    assert_eq!((rul.get(first), raw.get(first)), (Some(125.0), Some(191.0)));
    assert_eq!((rul.get(last), raw.get(last)), (Some(0.0), Some(0.0)));

    // The same events as a Parquet file with the raw events in a `value` column, split in two
    // files by time, give the same table.
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    for (i, part) in lines.chunks(lines.len() / 2 + 1).enumerate() {
        let mut df =
            DataFrame::new_infer_height(vec![Column::new("value".into(), part.to_vec())]).unwrap();
        ParquetWriter::new(File::create(lake.join(format!("part-{i}.parquet"))).unwrap())
            .finish(&mut df)
            .unwrap();
    }
    let from_lake = dir.path().join("eh-lake.parquet");
    fleetscore(&[
        "backfill",
        "-i",
        &s(&lake),
        "-f",
        "engine-health",
        "-o",
        &s(&from_lake),
    ]);
    assert!(read(&from_lake).equals_missing(&df));
}

#[test]
fn nycflights_table_labels_departures_and_never_leaks_them() {
    let Some(dir) = std::env::var_os("NYCFLIGHTS_DIR").map(PathBuf::from) else {
        assert!(
            std::env::var("FLEETSCORE_REQUIRE_DATA").as_deref() != Ok("1"),
            "NYCFLIGHTS_DIR is not set"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("nyc.jsonl");
    fleetscore(&[
        "import",
        "nycflights",
        &s(&dir.join("flights.csv.zip")),
        "-o",
        &s(&events),
    ]);
    let table = tmp.path().join("dr.parquet");
    let summary = fleetscore(&[
        "backfill",
        "-i",
        &s(&events),
        "-f",
        "delay-risk",
        "-o",
        &s(&table),
    ]);
    // Every scheduled flight is a row; every departed one is labelled (cancelled: null).
    assert!(
        summary.contains("334264 delay-risk rows (328521 labelled"),
        "{summary}"
    );

    let set = FeatureSet::get(FeatureSetId::DelayRisk);
    let df = read(&table);
    assert_bit_identical(&df, &online(&events, set), set);

    // Row 1 of flights.csv: UA1545 left 2 minutes late.
    let ids = df.column("event_id").unwrap().str().unwrap().clone();
    let i = ids
        .iter()
        .position(|x| x == Some("nyc13:r1:scheduled"))
        .unwrap();
    assert_eq!(df.column("late").unwrap().f32().unwrap().get(i), Some(0.0));
    assert_eq!(
        df.column("dep_delay_min").unwrap().f32().unwrap().get(i),
        Some(2.0)
    );
    let late = df.column("late").unwrap().f32().unwrap().clone();
    assert_eq!(late.null_count(), 334_264 - 328_521);
}
