//! `fleetscore backfill` (feature `lake`): historical events through the online state and
//! feature code to a Parquet training table with labels.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use fleet_features::FeatureSet;

use crate::lake::{BackfillOptions, backfill};

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Event files or directories: JSON lines, or Parquet with the raw events in a `value`
    /// column (repeatable; directories are read recursively, in path order).
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// `engine-health` or `delay-risk`.
    #[arg(long, short = 'f')]
    pub feature_set: String,
    /// The training table (Parquet).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Cap of the remaining-useful-life label (engine-health).
    #[arg(long, default_value_t = 125)]
    pub rul_cap: u32,
    /// A departure this many minutes late or more is labelled late (delay-risk).
    #[arg(long, default_value_t = 15.0)]
    pub delay_threshold_minutes: f32,
    /// Rows per Parquet row group.
    #[arg(long, default_value_t = 65_536)]
    pub chunk_rows: usize,
}

impl BackfillArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let options = BackfillOptions {
            feature_set: FeatureSet::by_name(&self.feature_set)?,
            rul_cap: self.rul_cap,
            delay_threshold_minutes: self.delay_threshold_minutes,
            chunk_rows: self.chunk_rows,
            progress: std::io::stderr().is_terminal(),
        };
        let report = backfill(&self.input, &self.output, &options)?;
        eprintln!(
            "{} files, {} events ({} invalid, {} duplicates, {} late), {} tails -> {} {} rows ({} labelled, feature-set version {}) in {} in {:.2} s",
            report.files,
            report.events,
            report.invalid,
            report.duplicates,
            report.late,
            report.tails,
            report.rows,
            options.feature_set.name(),
            report.labelled,
            options.feature_set.version(),
            self.output.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}
