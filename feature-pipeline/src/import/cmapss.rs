//! NASA C-MAPSS turbofan run-to-failure data (`train_FD001.txt` and siblings, plain or gzip) to
//! telemetry.
//!
//! The text format has no header: 26 whitespace-separated columns per row — unit, cycle, three
//! operational settings, 21 sensors. Unit N becomes tail `{prefix}{N}` with one engine
//! (position 1); cycle c gets the synthetic event time `start + (c - 1) × cycle_duration`, so
//! every unit starts at the same instant and the fleet's events interleave as they would live.

use std::io::BufRead;
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{ImportReport, io_error, open, source_name};
use crate::error::{Error, Result};
use crate::event::{Event, SENSOR_COUNT, Sensors, TelemetryEvent};

#[derive(Debug, Clone)]
pub struct CmapssOptions {
    /// Tail number prefix; unit N becomes `{prefix}{N}`.
    pub tail_prefix: String,
    /// Event time of every unit's first cycle.
    pub start: DateTime<Utc>,
    /// Time between two cycles of one engine.
    pub cycle_duration: Duration,
}

impl Default for CmapssOptions {
    fn default() -> Self {
        Self {
            tail_prefix: "CMAPSS-".to_owned(),
            start: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            cycle_duration: Duration::hours(1),
        }
    }
}

struct Row {
    unit: u32,
    cycle: u32,
    settings: [f64; 3],
    sensors: [f64; SENSOR_COUNT],
}

/// Reads a C-MAPSS text file (plain or gzip) and hands its telemetry events to `sink` in
/// event-time order (ties by unit number). Event ids name the file without its extensions
/// (`cmapss:train_FD001:u1:c1`), so the compressed file gives the same events as the plain one.
pub fn import(
    path: &Path,
    options: &CmapssOptions,
    mut sink: impl FnMut(&Event) -> std::io::Result<()>,
) -> Result<ImportReport> {
    let input = open(path)?;
    let source = source_name(path).unwrap_or_else(|| "cmapss".to_owned());
    let mut rows = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| io_error(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(parse_row(&line).map_err(|message| Error::Import {
            path: path.display().to_string(),
            line: n as u64 + 1,
            message,
        })?);
    }

    let mut report = ImportReport {
        rows: rows.len() as u64,
        ..ImportReport::default()
    };
    let mut units: Vec<u32> = rows.iter().map(|r| r.unit).collect();
    units.sort_unstable();
    units.dedup();
    report.tails = units.len() as u64;

    rows.sort_by_key(|r| (r.cycle, r.unit));
    for row in &rows {
        let event = Event::Telemetry(TelemetryEvent {
            event_id: format!("cmapss:{source}:u{}:c{}", row.unit, row.cycle),
            tail: format!("{}{}", options.tail_prefix, row.unit),
            engine: 1,
            event_time: options.start + options.cycle_duration * (row.cycle as i32 - 1),
            cycle: row.cycle,
            settings: row.settings,
            sensors: Sensors::from_array(row.sensors),
        });
        event.validate().map_err(|e| Error::Import {
            path: path.display().to_string(),
            line: 0,
            message: format!("unit {} cycle {}: {e}", row.unit, row.cycle),
        })?;
        sink(&event).map_err(|e| io_error(Path::new("<output>"), e))?;
        report.count_event("telemetry");
    }
    Ok(report)
}

fn parse_row(line: &str) -> std::result::Result<Row, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 2 + 3 + SENSOR_COUNT {
        return Err(format!(
            "expected {} columns, found {}",
            2 + 3 + SENSOR_COUNT,
            fields.len()
        ));
    }
    let int = |i: usize| {
        fields[i]
            .parse::<u32>()
            .map_err(|e| format!("column {}: `{}`: {e}", i + 1, fields[i]))
    };
    let float = |i: usize| {
        fields[i]
            .parse::<f64>()
            .map_err(|e| format!("column {}: `{}`: {e}", i + 1, fields[i]))
    };
    let mut sensors = [0.0; SENSOR_COUNT];
    for (k, s) in sensors.iter_mut().enumerate() {
        *s = float(5 + k)?;
    }
    Ok(Row {
        unit: int(0)?,
        cycle: int(1)?,
        settings: [float(2)?, float(3)?, float(4)?],
        sensors,
    })
}
