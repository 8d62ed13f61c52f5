//! Reading a `POST /score` body into rows for the scorer (what the handler does before the
//! hand-off): the same one-row body (all 100 `engine-health` features by name, 3.3 KB) with
//! `model` before `rows` — read in one pass, straight into the model's feature order — and
//! after it — rows kept as raw JSON, then parsed once the model is known (the only path before
//! the one-pass reader) — and a 64-row body, on the committed `engine-rul` fixture.
//!
//! Run: `cargo bench -p fleetscore --bench http_score` (needs ORT_DYLIB_PATH or the project's
//! Python environment: the registry loads the fixture on ONNX Runtime).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleetscore::app::{AppContext, Readiness};
use fleetscore::config::Config;
use fleetscore::http::score::parse_body;
use fleetscore::model::{Registry, RegistryConfig};
use fleetscore::store::StateStore;
use serde_json::{Map, Value};

fn bench(c: &mut Criterion) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models");
    let mut registry_config = RegistryConfig::new(&fixtures);
    registry_config.settle = std::time::Duration::ZERO;
    let registry = Arc::new(Registry::new(registry_config));
    registry.rescan();
    let mut config = Config::default();
    config.models.dir = fixtures.clone();
    let ctx = AppContext {
        drift: Arc::new(fleetscore::drift::DriftMonitor::new(config.drift.clone())),
        config,
        registry,
        store: Arc::new(StateStore::new()),
        readiness: Arc::new(Readiness::new(false)),
    };

    let read = |file: &str| -> Value {
        serde_json::from_slice(&std::fs::read(fixtures.join("engine-rul/2").join(file)).unwrap())
            .unwrap()
    };
    let (manifest, golden) = (read("manifest.json"), read("golden.json"));
    let names = manifest["input"]["features"].as_array().unwrap();
    let rows: Vec<String> = golden["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|values| {
            let row: Map<String, Value> = names
                .iter()
                .zip(values.as_array().unwrap())
                .map(|(n, v)| (n.as_str().unwrap().to_owned(), v.clone()))
                .collect();
            Value::Object(row).to_string()
        })
        .collect();
    let one = &rows[3];
    let many = rows
        .iter()
        .cycle()
        .take(64)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    let bodies = [
        (
            "model-first",
            1,
            format!(r#"{{"model":"engine-rul","rows":[{one}]}}"#),
        ),
        (
            "rows-first",
            1,
            format!(r#"{{"rows":[{one}],"model":"engine-rul"}}"#),
        ),
        (
            "model-first",
            64,
            format!(r#"{{"model":"engine-rul","rows":[{many}]}}"#),
        ),
        (
            "rows-first",
            64,
            format!(r#"{{"rows":[{many}],"model":"engine-rul"}}"#),
        ),
    ];

    let mut group = c.benchmark_group("http/parse_body");
    for (order, batch, body) in bodies {
        let (_, parsed) = parse_body(&ctx, body.as_bytes()).expect("a valid body");
        assert_eq!(parsed, batch as usize);
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::new(order, batch), &body, |b, body| {
            b.iter(|| black_box(parse_body(&ctx, black_box(body.as_bytes())).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
