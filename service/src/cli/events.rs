//! Event files (JSON lines) run through the per-tail state, as `fleetscore features` and
//! `fleetscore replay` both do: open, decode, apply, count.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use fleet_features::{ApplyOutcome, Event, TailState};

/// `path`, buffered; `-` is stdin.
pub fn open(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// What happened to the lines of an event file.
#[derive(Debug, Default)]
pub struct ApplyCounts {
    pub lines: u64,
    pub invalid: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub late: u64,
}

/// The live state of every tail seen, fed one event file line at a time.
#[derive(Debug, Default)]
pub struct Tails {
    pub states: HashMap<String, TailState>,
    pub counts: ApplyCounts,
}

impl Tails {
    /// Reads `input` to the end, applying each event to its tail's state; `applied` gets every
    /// event that changed the state, with that state. Undecodable lines are counted and
    /// logged (`skipped` says what becomes of them), duplicates and late events counted.
    pub fn apply_all(
        &mut self,
        input: impl BufRead,
        skipped: &str,
        mut applied: impl FnMut(&Event, &TailState) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for line in input.lines() {
            let line = line.context("reading events")?;
            self.counts.lines += 1;
            let event = match Event::decode(line.as_bytes()) {
                Ok(event) => event,
                Err(e) => {
                    self.counts.invalid += 1;
                    tracing::warn!(line = self.counts.lines, error = %e, "invalid event ({skipped})");
                    continue;
                }
            };
            let state = self.states.entry(event.tail().to_owned()).or_default();
            match state.apply(&event) {
                ApplyOutcome::Applied => self.counts.applied += 1,
                ApplyOutcome::Duplicate => {
                    self.counts.duplicates += 1;
                    continue;
                }
                ApplyOutcome::Late(_) => {
                    self.counts.late += 1;
                    continue;
                }
            }
            applied(&event, state)?;
        }
        Ok(())
    }
}
