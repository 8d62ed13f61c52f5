//! Encoding one prediction record, as the output thread does for every scored event (issue
//! #18): serde's derive against the record's own writer (`Prediction::to_json`), on a record
//! like the stream's (published `engine-rul`, with its interval).
//!
//!   cargo bench -p fleetscore --bench prediction

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use fleetscore::model::interval::Interval;
use fleetscore::prediction::{PREDICTION_SCHEMA, Prediction};

fn record() -> Prediction {
    Prediction {
        schema: PREDICTION_SCHEMA.into(),
        tail: "CMAPSS-17".to_owned(),
        source_event_id: "CMAPSS-17-c0142".to_owned(),
        event_time: Utc.timestamp_opt(1_785_542_400, 0).unwrap(),
        model: "engine-rul".into(),
        model_version: "1".into(),
        model_sha256: "3f9c0d1be2a84c6f0e5b7a9d2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e".into(),
        feature_set: "engine-health".into(),
        feature_set_version: "2".into(),
        prediction: 87.34125,
        interval: Some(Interval {
            level: 0.8,
            lower: 61.70412,
            upper: 109.1832,
            lower_model: "engine-rul-p10/1".to_owned(),
            upper_model: "engine-rul-p90/1".to_owned(),
        }),
        scored_at: Utc.timestamp_opt(1_785_542_400, 412_337_000).unwrap(),
    }
}

fn encode(c: &mut Criterion) {
    let p = record();
    assert_eq!(p.to_json(), serde_json::to_vec(&p).unwrap());
    let mut group = c.benchmark_group("prediction_encode");
    group.bench_function("serde_json", |b| {
        b.iter(|| serde_json::to_vec(std::hint::black_box(&p)).unwrap())
    });
    group.bench_function("to_json", |b| b.iter(|| std::hint::black_box(&p).to_json()));
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
