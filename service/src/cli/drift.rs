//! `fleetscore drift`: how far a batch of events has moved from a model's reference profile
//! (the training rows, `profile.json` in its package), per input feature and for the model's
//! output, as a text table (worst first) or JSON. A data scientist checks a new month of data
//! this way before it reaches the service.
//!
//! The per-tail state runs over *all* the input events (a tail's history before `--since`
//! matters: starting cold would make every aircraft look new); only the rows of events inside
//! `[--since, --until)` (event time) are measured. Each row is scored by the model, so the
//! output's drift is measured on the same rows.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, FixedOffset};
use clap::Args;
use fleet_features::FeatureSet;
use serde::Serialize;

use super::events::{self, Tails};

use crate::config::Config;
use crate::drift::{BinCounts, DriftReport, EntryDrift, THRESHOLDS};
use crate::model::{LoadedModel, Registry};

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Events, one JSON object per line; `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// The model whose profile the rows are measured against: `NAME` (its serving version) or
    /// `NAME=VERSION`.
    #[arg(long, value_name = "NAME[=VERSION]")]
    pub model: String,
    /// Configuration file (TOML); its `[models]` section applies.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Models directory (overrides the configuration).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Measure only the rows of events at or after this event time (RFC 3339, e.g.
    /// `2013-10-01T00:00:00-04:00`); earlier events still build the state.
    #[arg(long)]
    pub since: Option<DateTime<FixedOffset>>,
    /// Measure only the rows of events before this event time (RFC 3339).
    #[arg(long)]
    pub until: Option<DateTime<FixedOffset>>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Rows per scoring batch.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct DriftOutput<'a> {
    model: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<DateTime<FixedOffset>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<DateTime<FixedOffset>>,
    report: &'a DriftReport,
}

/// Scores a batch of rows and counts them with their outputs.
fn flush(
    model: &LoadedModel,
    rows: &mut Vec<f32>,
    outputs: &mut Vec<f32>,
    counts: &mut BinCounts,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    model
        .score(rows, outputs)
        .with_context(|| format!("scoring with {}", model.label()))?;
    for (row, output) in rows.chunks_exact(model.width()).zip(outputs.iter()) {
        counts.add(row, *output);
    }
    rows.clear();
    Ok(())
}

impl DriftArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.models_dir {
            config.models.dir = dir.clone();
        }
        let (name, version) = match self.model.split_once('=') {
            Some((n, v)) if !n.is_empty() && !v.is_empty() => (n, Some(v)),
            Some(_) => bail!(
                "--model must look like NAME or NAME=VERSION, got `{}`",
                self.model
            ),
            None => (self.model.as_str(), None),
        };
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            bail!("--since {since} is not before --until {until}");
        }
        config.models.require_local("fleetscore drift")?;
        let mut registry_config = config.models.registry()?;
        registry_config.settle = std::time::Duration::ZERO; // files at rest: no need to wait
        let registry = Registry::new(registry_config);
        registry.rescan();
        let model: Arc<LoadedModel> = match version {
            Some(version) => registry
                .version(name, version)
                .map_err(|e| anyhow::anyhow!("--model {}: {e}", self.model))?,
            None => match registry.serving_by_name(name) {
                Some(set) => set.serving,
                None => bail!("--model {name}: no version of it is serving"),
            },
        };
        let Some(profile) = model.profile.clone() else {
            bail!(
                "{} has no reference profile (profile.json); publish a version with one \
                 (training/add_profile.py)",
                model.label()
            );
        };
        let set = model.feature_set;
        let (since, until) = (
            self.since.map(|t| t.timestamp_millis()),
            self.until.map(|t| t.timestamp_millis()),
        );

        let mut tails = Tails::default();
        let mut counts = BinCounts::new(profile);
        let mut vector = Vec::with_capacity(set.len());
        let (mut rows, mut outputs) = (Vec::new(), Vec::new());
        let batch = self.batch.max(1) * model.width();
        tails.apply_all(events::open(&self.input)?, "skipped", |event, state| {
            if FeatureSet::for_event(event).is_none_or(|s| s.id() != set.id()) {
                return Ok(());
            }
            let at = event.event_time_ms();
            if since.is_some_and(|s| at < s) || until.is_some_and(|u| at >= u) {
                return Ok(());
            }
            if set.compute(state, &mut vector).is_err() {
                return Ok(());
            }
            rows.extend_from_slice(&vector);
            if rows.len() >= batch {
                flush(&model, &mut rows, &mut outputs, &mut counts)?;
            }
            Ok(())
        })?;
        flush(&model, &mut rows, &mut outputs, &mut counts)?;

        let Some(report) = counts.report(&THRESHOLDS) else {
            bail!(
                "no {} rows in the input{}",
                set.name(),
                if since.is_some() || until.is_some() {
                    " between --since and --until"
                } else {
                    ""
                }
            );
        };
        let mut out = std::io::stdout().lock();
        if self.json {
            let output = DriftOutput {
                model: model.name(),
                version: model.version(),
                since: self.since,
                until: self.until,
                report: &report,
            };
            serde_json::to_writer_pretty(&mut out, &output)?;
            writeln!(out)?;
        } else {
            write_table(&mut out, &model, &report)?;
        }
        out.flush()?;
        let c = &tails.counts;
        eprintln!(
            "{} lines: {} applied, {} invalid, {} duplicates, {} late; {} rows measured",
            c.lines, c.applied, c.invalid, c.duplicates, c.late, report.rows
        );
        Ok(())
    }
}

fn percent(share: f64) -> String {
    format!("{:.2}%", 100.0 * share)
}

fn write_row(out: &mut impl Write, width: usize, e: &EntryDrift) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<width$}  {:>8.4}  {:>6.4}  {:<8}  {:>8}  {:>9}  {:>9}",
        e.name,
        e.psi,
        e.js,
        e.level.as_str(),
        percent(e.missing),
        percent(e.below_min),
        percent(e.above_max),
    )
}

/// The report as a table, worst first, the output last.
fn write_table(
    out: &mut impl Write,
    model: &LoadedModel,
    report: &DriftReport,
) -> std::io::Result<()> {
    let t = &report.thresholds;
    writeln!(
        out,
        "{}: {} rows against {} reference rows; drift level {}",
        model.label(),
        report.rows,
        report.reference_rows,
        report.level.as_str()
    )?;
    writeln!(
        out,
        "thresholds: PSI warning {} critical {}; Jensen-Shannon distance (base 2) warning {} \
         critical {}",
        t.psi.warning, t.psi.critical, t.js.warning, t.js.critical
    )?;
    let width = report
        .features
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(0)
        .max("feature".len());
    writeln!(
        out,
        "{:<width$}  {:>8}  {:>6}  {:<8}  {:>8}  {:>9}  {:>9}",
        "feature", "PSI", "JS", "level", "missing", "below min", "above max"
    )?;
    for f in &report.features {
        write_row(out, width, f)?;
    }
    write_row(
        out,
        width,
        &EntryDrift {
            name: format!("({})", report.output.name),
            ..report.output.clone()
        },
    )
}
