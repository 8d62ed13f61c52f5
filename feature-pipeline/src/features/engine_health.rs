//! `engine-health`: per-sensor window statistics, EWMA and drift of the engine that reported
//! last, plus its age in cycles.

use crate::error::{Error, Result};
use crate::event::SENSOR_NAMES;
use crate::rolling::WindowStats;
use crate::state::{BASELINE_CYCLES, EWMA_ALPHA, TRACKED_SENSORS, TailState, WINDOW};

const STATS: [&str; 7] = ["mean", "std", "min", "max", "slope", "ewma", "drift"];

pub(super) fn definitions() -> Vec<(String, String)> {
    let mut defs = Vec::new();
    for &i in &TRACKED_SENSORS {
        let s = SENSOR_NAMES[i];
        for stat in STATS {
            let def = match stat {
                "mean" => format!("mean of {s} over the last {WINDOW} cycles"),
                "std" => format!("population std of {s} over the last {WINDOW} cycles"),
                "min" => format!("min of {s} over the last {WINDOW} cycles"),
                "max" => format!("max of {s} over the last {WINDOW} cycles"),
                "slope" => {
                    format!("least-squares slope of {s} per cycle over the last {WINDOW} cycles")
                }
                "ewma" => format!("EWMA of {s}, alpha {EWMA_ALPHA}, started at the first cycle"),
                _ => format!(
                    "EWMA of {s} minus the mean of {s} over the engine's first {BASELINE_CYCLES} cycles"
                ),
            };
            defs.push((format!("{s}_{stat}"), def));
        }
    }
    defs.push((
        "cycle".to_owned(),
        "the engine's latest cycle number".to_owned(),
    ));
    defs.push((
        "window_len".to_owned(),
        format!("cycles in the window, up to {WINDOW}"),
    ));
    defs
}

pub(super) fn compute(state: &TailState, engine: Option<u8>, out: &mut Vec<f32>) -> Result<()> {
    let engine = match engine {
        Some(position) => state.engine(position),
        None => state.current_engine(),
    }
    .ok_or(Error::NoHistory { what: "telemetry" })?;
    let mut stats = [WindowStats::default(); TRACKED_SENSORS.len()];
    engine.window_stats(&mut stats);
    let trend = engine.trend();
    for (c, s) in stats.iter().enumerate() {
        out.extend_from_slice(&[
            s.mean as f32,
            s.std as f32,
            s.min as f32,
            s.max as f32,
            s.slope as f32,
            trend.ewma(c) as f32,
            trend.drift(c) as f32,
        ]);
    }
    out.push(engine.last_cycle() as f32);
    out.push(engine.window_len() as f32);
    Ok(())
}
