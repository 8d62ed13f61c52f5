//! Scoring through the registry (atomic load of the serving set, `Arc` clones, the model's
//! checks) against the raw backend call, per batch of 1, 16 and 256 rows, on the committed
//! `engine-rul` (LightGBM on ONNX Runtime) and `engine-rul-mlp` (MLP on tract) fixtures.
//!
//! Run: `cargo bench -p fleetscore --bench registry` (needs ORT_DYLIB_PATH or the project's
//! Python environment for ONNX Runtime).

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet_features::FeatureSetId;
use fleetscore::model::{Registry, RegistryConfig};

fn bench(c: &mut Criterion) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("engine-rul/1/golden.json")).unwrap())
            .unwrap();
    let golden_rows: Vec<Vec<f32>> = serde_json::from_value(golden["inputs"].clone()).unwrap();

    for model in ["engine-rul", "engine-rul-mlp"] {
        let mut config = RegistryConfig::new(&fixtures);
        config.settle = std::time::Duration::ZERO;
        config.routes[FeatureSetId::EngineHealth] = vec![model.to_owned()];
        let registry = Registry::new(config);
        registry.rescan();
        let set = registry
            .serving(FeatureSetId::EngineHealth)
            .expect("fixture serves");
        let raw = &set.serving.backend;
        let width = set.serving.width();
        let backend = raw.kind().as_str();

        let mut group = c.benchmark_group(format!("score/{model}/{backend}"));
        for batch in [1usize, 16, 256] {
            let rows: Vec<f32> = golden_rows
                .iter()
                .cycle()
                .take(batch)
                .flatten()
                .copied()
                .collect();
            let mut out = Vec::with_capacity(batch);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new("raw-backend", batch), &rows, |b, rows| {
                b.iter(|| raw.score(black_box(rows), width, &mut out).unwrap());
            });
            group.bench_with_input(BenchmarkId::new("registry", batch), &rows, |b, rows| {
                b.iter(|| {
                    let set = registry.serving(FeatureSetId::EngineHealth).unwrap();
                    black_box(set.score(black_box(rows), &mut out).unwrap());
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
