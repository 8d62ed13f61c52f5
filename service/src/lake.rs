//! Offline backfill from the data lake: the very same `TailState::apply` and feature code as
//! the service, run over historical events in event-time order, written as a Parquet training
//! table with labels (feature `lake`, which brings in polars).
//!
//! Inputs are files (or directories of them, taken in path order: lake partitions by date sort
//! that way): JSON lines of events, or Parquet files with the raw events in a `value` (or
//! `event`) string column, as a Kafka-to-lake sink writes them. Each file is sorted by event
//! time on its own, so memory is bounded by the largest file plus one state per aircraft, never
//! by the whole history; an event older than what its aircraft already saw in an earlier file
//! counts as late, exactly as it would online.
//!
//! Labels:
//! - `engine-health` rows: `rul` = the engine's last cycle in the input minus this cycle, capped
//!   (`rul_uncapped` too). A first pass over the inputs finds the last cycles.
//! - `delay-risk` rows: `late` = the flight left `delay_threshold` minutes or more after its
//!   schedule, and `dep_delay_min`; known when its `departed` event arrives (the row waits for
//!   it); null for cancelled flights and for flights whose departure is not in the input.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fleet_features::{ApplyOutcome, Event, FeatureSet, FeatureSetId, ScheduleKind, TailState};
use polars::prelude::{
    Column, DataFrame, ParquetCompression, ParquetReader, ParquetWriter, PolarsResult, SerReader,
};

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub feature_set: &'static FeatureSet,
    pub rul_cap: u32,
    pub delay_threshold_minutes: f32,
    /// Rows per Parquet row group (and per write).
    pub chunk_rows: usize,
    pub progress: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackfillReport {
    pub files: usize,
    pub events: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rows: u64,
    pub labelled: u64,
    pub tails: usize,
}

/// Every input file, directories expanded, in path order.
pub fn input_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut stack = vec![input.clone()];
            while let Some(dir) = stack.pop() {
                for entry in
                    std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
                {
                    let path = entry?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if is_event_file(&path) {
                        files.push(path);
                    }
                }
            }
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            bail!("{} does not exist", input.display());
        }
    }
    files.sort();
    Ok(files)
}

fn is_event_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json" | "ndjson" | "parquet")
    )
}

/// Events per sorting chunk: a JSON-lines file is read this many events at a time.
pub const SORT_CHUNK_EVENTS: usize = 100_000;

/// Hands the events of one file to `f` in chunks of at most [`SORT_CHUNK_EVENTS`], each sorted
/// by event time (stable: ties keep file order). JSON lines are streamed, so a file of any size
/// needs memory for one chunk; a Parquet file is read whole (lake files are row-group sized).
/// Lake files are written in time order, so chunk boundaries cost nothing; an event older than
/// what its aircraft already saw in an earlier chunk is late, as it would be online.
fn for_each_chunk(
    path: &Path,
    report: &mut BackfillReport,
    mut f: impl FnMut(Vec<Event>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut chunk = Vec::with_capacity(SORT_CHUNK_EVENTS.min(1 << 16));
    let push = |line: &str, chunk: &mut Vec<Event>, report: &mut BackfillReport| {
        if line.trim().is_empty() {
            return;
        }
        report.events += 1;
        match Event::decode(line.as_bytes()) {
            Ok(e) => chunk.push(e),
            Err(_) => report.invalid += 1,
        }
    };
    let flush = |chunk: &mut Vec<Event>, f: &mut dyn FnMut(Vec<Event>) -> anyhow::Result<()>| {
        let mut events = std::mem::take(chunk);
        events.sort_by_key(Event::event_time_ms);
        f(events)
    };
    if path.extension().is_some_and(|e| e == "parquet") {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let df = ParquetReader::new(file)
            .finish()
            .with_context(|| format!("reading {}", path.display()))?;
        let column = df
            .column("value")
            .or_else(|_| df.column("event"))
            .with_context(|| format!("{}: no `value` or `event` column", path.display()))?;
        let values = column
            .str()
            .with_context(|| format!("{}: the event column is not text", path.display()))?;
        for value in values.iter() {
            push(value.unwrap_or_default(), &mut chunk, report);
            if chunk.len() >= SORT_CHUNK_EVENTS {
                flush(&mut chunk, &mut f)?;
            }
        }
    } else {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        for line in BufReader::with_capacity(1 << 20, file).lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            push(&line, &mut chunk, report);
            if chunk.len() >= SORT_CHUNK_EVENTS {
                flush(&mut chunk, &mut f)?;
            }
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut f)?;
    }
    Ok(())
}

/// Columns being filled, flushed to Parquet every `chunk_rows`.
struct Table {
    names: Vec<String>,
    tail: Vec<String>,
    event_id: Vec<String>,
    event_time_ms: Vec<i64>,
    features: Vec<Vec<f32>>,
    label_a: Vec<Option<f32>>,
    label_b: Vec<Option<f32>>,
}

impl Table {
    fn new(set: &FeatureSet) -> Self {
        Self {
            names: set.names().to_vec(),
            tail: Vec::new(),
            event_id: Vec::new(),
            event_time_ms: Vec::new(),
            features: vec![Vec::new(); set.len()],
            label_a: Vec::new(),
            label_b: Vec::new(),
        }
    }

    fn push(&mut self, row: Row) {
        self.tail.push(row.tail);
        self.event_id.push(row.event_id);
        self.event_time_ms.push(row.event_time_ms);
        for (column, v) in self.features.iter_mut().zip(row.features) {
            column.push(v);
        }
        self.label_a.push(row.labels.0);
        self.label_b.push(row.labels.1);
    }

    fn len(&self) -> usize {
        self.tail.len()
    }

    /// The rows so far as a DataFrame; the table is emptied.
    fn take(&mut self, label_names: (&str, &str)) -> PolarsResult<DataFrame> {
        let mut columns: Vec<Column> = vec![
            Column::new("tail".into(), std::mem::take(&mut self.tail)),
            Column::new("event_id".into(), std::mem::take(&mut self.event_id)),
            Column::new(
                "event_time_ms".into(),
                std::mem::take(&mut self.event_time_ms),
            ),
        ];
        for (name, values) in self.names.iter().zip(self.features.iter_mut()) {
            columns.push(Column::new(name.as_str().into(), std::mem::take(values)));
        }
        columns.push(Column::new(
            label_names.0.into(),
            std::mem::take(&mut self.label_a),
        ));
        columns.push(Column::new(
            label_names.1.into(),
            std::mem::take(&mut self.label_b),
        ));
        DataFrame::new_infer_height(columns)
    }
}

struct Row {
    tail: String,
    event_id: String,
    event_time_ms: i64,
    features: Vec<f32>,
    labels: (Option<f32>, Option<f32>),
}

/// Runs the backfill over `inputs` and writes the table to `output`.
pub fn backfill(
    inputs: &[PathBuf],
    output: &Path,
    options: &BackfillOptions,
) -> anyhow::Result<BackfillReport> {
    let files = input_files(inputs)?;
    if files.is_empty() {
        bail!("no event files (.jsonl, .json, .ndjson, .parquet) in the inputs");
    }
    let set = options.feature_set;
    let mut report = BackfillReport {
        files: files.len(),
        ..BackfillReport::default()
    };

    // Pass 1 (engine-health only): each engine's last cycle, for the RUL label.
    let mut last_cycle: HashMap<(String, u8), u32> = HashMap::new();
    if set.id() == FeatureSetId::EngineHealth {
        let mut scratch = BackfillReport::default();
        for file in &files {
            for_each_chunk(file, &mut scratch, |events| {
                for event in events {
                    if let Event::Telemetry(t) = event {
                        let last = last_cycle.entry((t.tail, t.engine)).or_default();
                        *last = (*last).max(t.cycle);
                    }
                }
                Ok(())
            })?;
        }
    }
    let label_names = match set.id() {
        FeatureSetId::EngineHealth => ("rul", "rul_uncapped"),
        FeatureSetId::DelayRisk => ("late", "dep_delay_min"),
        #[cfg(feature = "test-feature-set")]
        FeatureSetId::TestEvents => ("label_a", "label_b"),
    };

    let out = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut table = Table::new(set);
    let schema = table.take(label_names)?.schema().clone();
    let mut writer = ParquetWriter::new(out)
        .with_compression(ParquetCompression::Zstd(None))
        .batched(&schema)?;

    let progress = if options.progress {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg} [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut states: HashMap<String, TailState> = HashMap::new();
    // delay-risk rows waiting for their flight's departure: (tail, flight, scheduled ms).
    let mut waiting: HashMap<(String, String, i64), Row> = HashMap::new();
    let mut vector = Vec::with_capacity(set.len());
    for file in &files {
        progress.set_message(
            file.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let mut counts = BackfillReport::default();
        for_each_chunk(file, &mut counts, |events| {
            for event in events {
                let state = states.entry(event.tail().to_owned()).or_default();
                match state.apply(&event) {
                    ApplyOutcome::Applied => {}
                    ApplyOutcome::Duplicate => {
                        report.duplicates += 1;
                        continue;
                    }
                    ApplyOutcome::Late(_) => {
                        report.late += 1;
                        continue;
                    }
                }
                // Outcomes of flights whose rows are waiting.
                if let Event::Schedule(s) = &event
                    && matches!(s.kind, ScheduleKind::Departed | ScheduleKind::Cancelled)
                {
                    let key = (
                        s.tail.clone(),
                        s.flight.clone(),
                        s.scheduled_departure.timestamp_millis(),
                    );
                    if let Some(mut row) = waiting.remove(&key) {
                        if let (ScheduleKind::Departed, Some(actual)) = (s.kind, s.actual_departure)
                        {
                            let delay = (actual.timestamp_millis() - key.2) as f32 / 60_000.0;
                            let late = delay >= options.delay_threshold_minutes;
                            row.labels = (Some(if late { 1.0 } else { 0.0 }), Some(delay));
                            report.labelled += 1;
                        }
                        table.push(row);
                    }
                }
                if FeatureSet::for_event(&event).is_none_or(|s| s.id() != set.id()) {
                    continue;
                }
                if set.compute(state, &mut vector).is_err() {
                    continue;
                }
                let row = Row {
                    tail: event.tail().to_owned(),
                    event_id: event.event_id().to_owned(),
                    event_time_ms: event.event_time_ms(),
                    features: vector.clone(),
                    labels: (None, None),
                };
                report.rows += 1;
                match &event {
                    Event::Telemetry(t) => {
                        let last = last_cycle[&(t.tail.clone(), t.engine)];
                        let remaining = last.saturating_sub(t.cycle);
                        let mut row = row;
                        row.labels = (
                            Some(remaining.min(options.rul_cap) as f32),
                            Some(remaining as f32),
                        );
                        report.labelled += 1;
                        table.push(row);
                    }
                    Event::Schedule(s) => {
                        let key = (
                            s.tail.clone(),
                            s.flight.clone(),
                            s.scheduled_departure.timestamp_millis(),
                        );
                        if let Some(previous) = waiting.insert(key, row) {
                            table.push(previous); // re-announced: the earlier row stays unlabelled
                        }
                    }
                }
                if table.len() >= options.chunk_rows.max(1) {
                    writer.write_batch(&table.take(label_names)?)?;
                }
            }
            Ok(())
        })?;
        report.events += counts.events;
        report.invalid += counts.invalid;
        progress.inc(1);
    }
    // Flights never seen departing keep a null label.
    let mut rest: Vec<Row> = waiting.into_values().collect();
    rest.sort_by(|a, b| (a.event_time_ms, &a.event_id).cmp(&(b.event_time_ms, &b.event_id)));
    for row in rest {
        table.push(row);
    }
    if table.len() > 0 {
        writer.write_batch(&table.take(label_names)?)?;
    }
    writer.finish()?;
    progress.finish_and_clear();
    report.tails = states.len();
    Ok(report)
}
