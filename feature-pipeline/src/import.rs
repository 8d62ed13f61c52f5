//! Importers that turn public data sets into event streams in event-time order.
//!
//! Each importer hands the events to a sink one at a time (so a million-event import does not
//! hold a million events in memory) and returns a report of what it read, wrote and skipped.
//! Inputs may be gzip-compressed, whatever their name ([`open`]).

pub mod cmapss;
pub mod nycflights;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

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

/// The gzip magic number (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens an input file, decompressing it on the fly when it is gzip. Recognised by its first
/// bytes rather than its name, so `train_FD001.txt.gz` and a compressed file under any other
/// name both read as their text.
pub fn open(path: &Path) -> crate::Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().map_err(|e| io_error(path, e))?;
    Ok(if head.starts_with(&GZIP_MAGIC) {
        Box::new(BufReader::new(MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    })
}

/// The name of an input file without its `.gz` and last extension, as event ids use it:
/// `train_FD001` for both `train_FD001.txt` and `train_FD001.txt.gz`.
pub(crate) fn source_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    let stem = Path::new(name).file_stem()?;
    Some(stem.to_string_lossy().into_owned())
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> crate::Error {
    crate::Error::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn read(path: &Path) -> String {
        let mut text = String::new();
        open(path).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn open_decompresses_gzip_by_its_magic_bytes_whatever_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let text = "1 1 0.1\n1 2 0.2\n";
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        for name in ["rows.txt.gz", "rows.txt"] {
            std::fs::write(dir.path().join(name), &gz).unwrap();
            assert_eq!(read(&dir.path().join(name)), text, "{name}");
        }
        for name in ["plain.txt", "plain.gz"] {
            std::fs::write(dir.path().join(name), text).unwrap();
            assert_eq!(read(&dir.path().join(name)), text, "{name}");
        }
        std::fs::write(dir.path().join("empty"), "").unwrap();
        assert_eq!(read(&dir.path().join("empty")), "");
        let missing = dir.path().join("missing.txt");
        assert!(matches!(open(&missing), Err(crate::Error::Io { .. })));
    }

    #[test]
    fn source_name_drops_gz_and_the_extension() {
        for (path, want) in [
            ("data/cmapss/train_FD001.txt.gz", "train_FD001"),
            ("train_FD001.txt", "train_FD001"),
            ("train_FD001", "train_FD001"),
            ("flights.csv.gz", "flights"),
        ] {
            assert_eq!(
                source_name(Path::new(path)).as_deref(),
                Some(want),
                "{path}"
            );
        }
    }
}
