//! `apply` + `features` per event on real data: the whole NASA C-MAPSS FD001 stream (engine-health)
//! and a day of nycflights13-like schedule events (delay-risk), with decode measured separately.
//!
//! Run: `cargo bench -p fleet-features --bench apply_features`. Criterion reports time per
//! iteration; each iteration processes the whole stream, and the throughput line gives the
//! per-event figure.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fleet_features::import::{cmapss, jsonl_sink};
use fleet_features::{Event, FeatureSet, FeatureSetId, TailState};

fn cmapss_events() -> Vec<Event> {
    let path = fleet_features::data::cmapss_fd001();
    let mut events = Vec::new();
    cmapss::import(&path, &cmapss::CmapssOptions::default(), |e| {
        events.push(e.clone());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("C-MAPSS FD001: {e}"));
    events
}

/// Tails are `CMAPSS-<unit>`: index states by unit so the bench measures our code, not a map.
fn unit(event: &Event) -> usize {
    event.tail()["CMAPSS-".len()..].parse().unwrap()
}

fn bench(c: &mut Criterion) {
    let events = cmapss_events();
    let units: Vec<usize> = events.iter().map(unit).collect();
    let set = FeatureSet::get(FeatureSetId::EngineHealth);

    let mut group = c.benchmark_group("engine-health");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("apply+features/FD001", |b| {
        b.iter_batched_ref(
            || (vec![TailState::new(); 101], Vec::with_capacity(set.len())),
            |(states, vector)| {
                for (event, &u) in events.iter().zip(&units) {
                    let state = &mut states[u];
                    state.apply(event);
                    set.compute(state, vector).unwrap();
                    black_box(&vector);
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.bench_function("apply/FD001", |b| {
        b.iter_batched_ref(
            || vec![TailState::new(); 101],
            |states| {
                for (event, &u) in events.iter().zip(&units) {
                    black_box(states[u].apply(event));
                }
            },
            BatchSize::LargeInput,
        );
    });
    // Baseline: the textbook way, each tail's full history kept and the window statistics
    // recomputed from it with fresh allocations on every event.
    group.bench_function("baseline-naive/FD001", |b| {
        b.iter_batched_ref(
            || vec![Vec::<[f64; 14]>::new(); 101],
            |histories| {
                for (event, &u) in events.iter().zip(&units) {
                    let Event::Telemetry(t) = event else {
                        unreachable!()
                    };
                    let all = t.sensors.to_array();
                    histories[u].push(fleet_features::state::TRACKED_SENSORS.map(|i| all[i]));
                    black_box(naive_features(&histories[u]));
                }
            },
            BatchSize::LargeInput,
        );
    });

    let mut lines = Vec::new();
    {
        let mut sink = jsonl_sink(&mut lines);
        for e in &events {
            sink(e).unwrap();
        }
    }
    let lines: Vec<&[u8]> = lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    group.bench_function("decode/FD001", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(Event::decode(line).unwrap());
            }
        });
    });
    group.finish();

    let mut states = vec![TailState::new(); 101];
    for (event, &u) in events.iter().zip(&units) {
        states[u].apply(event);
    }
    let sizes: Vec<usize> = states[1..].iter().map(TailState::memory_bytes).collect();
    let snapshots: Vec<usize> = states[1..].iter().map(|s| s.to_snapshot().len()).collect();
    eprintln!(
        "state per aircraft after FD001 (1 engine): {} bytes in memory (max), snapshot {}..{} bytes",
        sizes.iter().max().unwrap(),
        snapshots.iter().min().unwrap(),
        snapshots.iter().max().unwrap()
    );
}

/// Mean, std, min, max and slope over the last `WINDOW` rows, plus a full-history EWMA and
/// baseline, computed from scratch.
fn naive_features(history: &[[f64; 14]]) -> Vec<f32> {
    use fleet_features::state::{BASELINE_CYCLES, EWMA_ALPHA, WINDOW};
    let window = &history[history.len().saturating_sub(WINDOW)..];
    let n = window.len() as f64;
    let mut out = Vec::new();
    for c in 0..14 {
        let ys: Vec<f64> = window.iter().map(|r| r[c]).collect();
        let xs: Vec<f64> = (0..ys.len()).map(|i| i as f64).collect();
        let mean = ys.iter().sum::<f64>() / n;
        let std = (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
        let mx = xs.iter().sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - mean)).sum();
        let mut ewma = history[0][c];
        for r in &history[1..] {
            ewma += EWMA_ALPHA * (r[c] - ewma);
        }
        let b = history.len().min(BASELINE_CYCLES as usize);
        let baseline = history[..b].iter().map(|r| r[c]).sum::<f64>() / b as f64;
        let min = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        for v in [mean, std, min, max, slope, ewma, ewma - baseline] {
            out.push(v as f32);
        }
    }
    out
}

criterion_group!(benches, bench);
criterion_main!(benches);
