//! Drift computation cost per scored row: counting a row into a window's bins (adding it, and
//! in a full sliding window also taking the oldest row out) and evaluating the report (PSI and
//! Jensen-Shannon distance of every feature and the output, sorted worst first), on the
//! published profiles of `engine-rul/2` (100 features) and `delay-risk/2` (12); and the
//! service's [`Window`] (`window-push`: a row in, the oldest out by its stored bin codes, as
//! `DriftMonitor` does for every scored row).
//!
//! Run: `cargo bench -p fleetscore --bench drift` (no ONNX Runtime needed: the outputs are the
//! golden set's).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleetscore::drift::{BinCounts, THRESHOLDS, Window};
use fleetscore::model::profile::Profile;

fn bench(c: &mut Criterion) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut group = c.benchmark_group("drift");
    for name in ["engine-rul", "delay-risk"] {
        let dir = models.join(name).join("2");
        let read = |file: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(dir.join(file)).unwrap()).unwrap()
        };
        let features: Vec<String> =
            serde_json::from_value(read("manifest.json")["input"]["features"].clone()).unwrap();
        let profile: Profile = serde_json::from_value(read("profile.json")).unwrap();
        profile.check(&features).unwrap();
        let profile = Arc::new(profile);
        let golden = read("golden.json");
        let rows: Vec<Vec<f32>> = serde_json::from_value(golden["inputs"].clone()).unwrap();
        let outputs: Vec<f32> = serde_json::from_value(golden["outputs"].clone()).unwrap();
        let n = rows.len();

        // A window already holding every golden row many times over.
        let mut window = BinCounts::new(Arc::clone(&profile));
        for i in 0..10_000 {
            window.add(&rows[i % n], outputs[i % n]);
        }
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function(BenchmarkId::new("add", name), |b| {
            let mut counts = window.clone();
            b.iter(|| {
                i = (i + 1) % n;
                counts.add(black_box(&rows[i]), black_box(outputs[i]));
            });
        });
        group.bench_function(BenchmarkId::new("add+remove", name), |b| {
            let mut counts = window.clone();
            b.iter(|| {
                i = (i + 1) % n;
                let j = (i + n / 2) % n;
                counts.add(black_box(&rows[i]), black_box(outputs[i]));
                counts.remove(black_box(&rows[j]), black_box(outputs[j]));
            });
        });
        group.bench_function(BenchmarkId::new("window-push", name), |b| {
            // Full, as in steady state (10,000 rows, the default `[drift] window_rows`).
            let mut window = Window::new(Arc::clone(&profile), 10_000);
            for i in 0..10_000 {
                window.push(&rows[i % n], outputs[i % n]);
            }
            b.iter(|| {
                i = (i + 1) % n;
                window.push(black_box(&rows[i]), black_box(outputs[i]));
            });
        });
        group.bench_function(BenchmarkId::new("report", name), |b| {
            b.iter(|| black_box(window.report(&THRESHOLDS)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
