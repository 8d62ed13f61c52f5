//! `fleetscore features`: run an event file through the online state and feature code and
//! write one feature row per scored event (CSV), with a summary of what was applied.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fleet_features::{ApplyOutcome, Event, FeatureSet, TailState};

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Events, one JSON object per line (as written by `fleetscore import`); `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Feature set to write rows for: `engine-health` or `delay-risk`. Events of the other
    /// kind still update the state.
    #[arg(long, short = 'f')]
    pub feature_set: String,
    /// CSV output (header: tail, event_id, event_time, then the features in order).
    #[arg(long, short)]
    pub output: PathBuf,
}

#[derive(Debug, Default)]
struct Counts {
    lines: u64,
    invalid: u64,
    applied: u64,
    duplicates: u64,
    late: u64,
    rows: u64,
    no_history: u64,
}

impl FeaturesArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let set = FeatureSet::by_name(&self.feature_set)?;
        let input: Box<dyn BufRead> = if self.input.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let file = File::open(&self.input)
                .with_context(|| format!("opening {}", self.input.display()))?;
            Box::new(BufReader::with_capacity(1 << 20, file))
        };
        let out = File::create(&self.output)
            .with_context(|| format!("creating {}", self.output.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        write!(out, "tail,event_id,event_time")?;
        for name in set.names() {
            write!(out, ",{name}")?;
        }
        writeln!(out)?;

        let started = Instant::now();
        let mut states: HashMap<String, TailState> = HashMap::new();
        let mut counts = Counts::default();
        let mut vector = Vec::with_capacity(set.len());
        for line in input.lines() {
            let line = line.context("reading events")?;
            counts.lines += 1;
            let event = match Event::decode(line.as_bytes()) {
                Ok(event) => event,
                Err(e) => {
                    counts.invalid += 1;
                    tracing::warn!(line = counts.lines, error = %e, "invalid event skipped");
                    continue;
                }
            };
            let state = states.entry(event.tail().to_owned()).or_default();
            match state.apply(&event) {
                ApplyOutcome::Applied => counts.applied += 1,
                ApplyOutcome::Duplicate => {
                    counts.duplicates += 1;
                    continue;
                }
                ApplyOutcome::Late(_) => {
                    counts.late += 1;
                    continue;
                }
            }
            if FeatureSet::for_event(&event).is_none_or(|s| s.id() != set.id()) {
                continue;
            }
            if set.compute(state, &mut vector).is_err() {
                counts.no_history += 1;
                continue;
            }
            write!(
                out,
                "{},{},{}",
                event.tail(),
                event.event_id(),
                event.event_time_ms()
            )?;
            for v in &vector {
                // `{}` prints the shortest text that reads back to the same f32.
                write!(out, ",{v}")?;
            }
            writeln!(out)?;
            counts.rows += 1;
        }
        out.flush()?;
        let elapsed = started.elapsed();
        eprintln!(
            "{} lines: {} applied, {} invalid, {} duplicates, {} late; {} tails",
            counts.lines,
            counts.applied,
            counts.invalid,
            counts.duplicates,
            counts.late,
            states.len()
        );
        eprintln!(
            "wrote {} {} rows (feature-set version {}) to {} in {:.2} s ({:.0} events/s)",
            counts.rows,
            set.name(),
            set.version(),
            self.output.display(),
            elapsed.as_secs_f64(),
            counts.lines as f64 / elapsed.as_secs_f64().max(1e-9)
        );
        Ok(())
    }
}

/// `fleetscore feature-sets`: what training code needs to name its columns and stamp its models.
pub fn print_feature_sets() -> anyhow::Result<()> {
    let sets: Vec<serde_json::Value> = FeatureSet::all()
        .iter()
        .map(|set| {
            serde_json::json!({
                "name": set.name(),
                "version": set.version(),
                "features": set.names().iter().zip(set.definitions()).map(|(n, d)| {
                    serde_json::json!({ "name": n, "definition": d })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&sets)?);
    Ok(())
}
