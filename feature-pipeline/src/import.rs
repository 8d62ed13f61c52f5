//! Importers that turn public data sets into event streams in event-time order.
//!
//! Each importer hands the events to a sink one at a time (so a million-event import does not
//! hold a million events in memory) and returns a report of what it read, wrote and skipped.

pub mod cmapss;
pub mod nycflights;

use std::collections::BTreeMap;
use std::io::Write;

use crate::event::Event;

/// What an import read and produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read from the input (header excluded).
    pub rows: u64,
    /// Events handed to the sink.
    pub events: u64,
    /// Events by kind (`telemetry`, `scheduled`, `departed`, ...).
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// Distinct tail numbers in the output.
    pub tails: u64,
    /// Rows that produced no event, by reason.
    pub skipped_rows: BTreeMap<&'static str, u64>,
}

impl ImportReport {
    pub(crate) fn count_event(&mut self, kind: &'static str) {
        self.events += 1;
        *self.events_by_kind.entry(kind).or_default() += 1;
    }

    pub(crate) fn skip(&mut self, reason: &'static str) {
        *self.skipped_rows.entry(reason).or_default() += 1;
    }
}

/// A sink that writes each event as one line of JSON.
pub fn jsonl_sink<W: Write>(mut out: W) -> impl FnMut(&Event) -> std::io::Result<()> {
    move |event| {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")
    }
}

pub(crate) fn io_error(path: &std::path::Path, source: std::io::Error) -> crate::Error {
    crate::Error::Io {
        path: path.display().to_string(),
        source,
    }
}
