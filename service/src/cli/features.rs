//! `fleetscore features`: run an event file through the online state and feature code and
//! write one feature row per scored event (CSV), with a summary of what was applied.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use fleet_features::FeatureSet;

use super::events::{self, Tails};

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

impl FeaturesArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let set = FeatureSet::by_name(&self.feature_set)?;
        let input = events::open(&self.input)?;
        let out = File::create(&self.output)
            .with_context(|| format!("creating {}", self.output.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        write!(out, "tail,event_id,event_time")?;
        for name in set.names() {
            write!(out, ",{name}")?;
        }
        writeln!(out)?;

        let started = Instant::now();
        let mut tails = Tails::default();
        let (mut rows, mut no_history) = (0u64, 0u64);
        let mut vector = Vec::with_capacity(set.len());
        tails.apply_all(input, "skipped", |event, state| {
            if FeatureSet::for_event(event).is_none_or(|s| s.id() != set.id()) {
                return Ok(());
            }
            if set.compute(state, &mut vector).is_err() {
                no_history += 1;
                return Ok(());
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
            rows += 1;
            Ok(())
        })?;
        out.flush()?;
        let elapsed = started.elapsed();
        let counts = &tails.counts;
        eprintln!(
            "{} lines: {} applied, {} invalid, {} duplicates, {} late; {} tails",
            counts.lines,
            counts.applied,
            counts.invalid,
            counts.duplicates,
            counts.late,
            tails.states.len()
        );
        if no_history > 0 {
            eprintln!("{no_history} events of the set had no history for it yet (no row)");
        }
        eprintln!(
            "wrote {} {} rows (feature-set version {}) to {} in {:.2} s ({:.0} events/s)",
            rows,
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
