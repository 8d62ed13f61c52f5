//! One engine's telemetry history: a window of the last [`WINDOW`] cycles of the tracked
//! sensors, their EWMA and the early-life baseline.

use serde::{Deserialize, Serialize};

use crate::event::TelemetryEvent;
use crate::rolling::{EwmaBaseline, RollingWindow, WindowStats};

/// Cycles in the rolling window.
pub const WINDOW: usize = 20;
/// Smoothing factor of the EWMA (weight of the newest cycle).
pub const EWMA_ALPHA: f64 = 0.1;
/// Cycles averaged into the early-life baseline that drift is measured from.
pub const BASELINE_CYCLES: u32 = 10;

/// Indices into [`crate::event::SENSOR_NAMES`] of the sensors the state tracks: the 14 that vary
/// in C-MAPSS. The other seven (T2, P2, P15, epr, farB, Nf_dmd, PCNfR_dmd) are constant or
/// nearly so under one operating condition and carry no health signal.
pub const TRACKED_SENSORS: [usize; 14] = [1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 16, 19, 20];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EngineState {
    position: u8,
    last_cycle: u32,
    window: RollingWindow,
    trend: EwmaBaseline,
}

impl EngineState {
    pub(crate) fn new(position: u8) -> Self {
        Self {
            position,
            last_cycle: 0,
            window: RollingWindow::new(WINDOW, TRACKED_SENSORS.len()),
            trend: EwmaBaseline::new(TRACKED_SENSORS.len()),
        }
    }

    pub(crate) fn position(&self) -> u8 {
        self.position
    }

    /// Whether a reading for `cycle` moves the engine forward.
    pub(crate) fn accepts(&self, cycle: u32) -> bool {
        cycle > self.last_cycle
    }

    pub(crate) fn apply(&mut self, event: &TelemetryEvent) {
        let all = event.sensors.to_array();
        let tracked = TRACKED_SENSORS.map(|i| all[i]);
        self.window.push(f64::from(event.cycle), tracked);
        self.trend.push(EWMA_ALPHA, BASELINE_CYCLES, tracked);
        self.last_cycle = event.cycle;
    }

    pub(crate) fn last_cycle(&self) -> u32 {
        self.last_cycle
    }

    pub(crate) fn window_len(&self) -> usize {
        self.window.len()
    }

    pub(crate) fn window_stats(&self, out: &mut [WindowStats; TRACKED_SENSORS.len()]) {
        self.window.stats_into(out);
    }

    pub(crate) fn trend(&self) -> &EwmaBaseline {
        &self.trend
    }

    /// Heap bytes behind this engine (the ring and the per-sensor vectors).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.window.heap_bytes() + self.trend.heap_bytes()
    }
}
