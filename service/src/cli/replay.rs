//! `fleetscore replay`: events through the service's own path (state, features, registry
//! models, micro-batches) without Kafka, writing exactly the prediction records the service
//! publishes. Data scientists compare a candidate model against the serving one this way, and
//! with `--alerts`, what a model or a rule change would have raised on history.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Args;
use fleet_features::FeatureSet;

use super::events::{self, Tails};

use crate::alerts::{Alerting, OpenEpisodes};
use crate::config::Config;
use crate::drift::DriftMonitor;
use crate::model::Registry;
use crate::scoring::{Batcher, Outcome, RowInfo, Verdict};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Events, one JSON object per line; `-` for stdin.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Prediction records, one JSON object per line; `-` for stdout.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Configuration file (TOML); its `[models]` section applies.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Models directory (overrides the configuration).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Score with this version of a model: `--model engine-rul=2` (repeatable).
    #[arg(long = "model", value_name = "NAME=VERSION")]
    pub models: Vec<String>,
    /// Route a feature set to a model: `--route engine-health=engine-rul-mlp`; repeat the
    /// set to feed several models (the first `--route` of a set replaces its configured route).
    #[arg(long = "route", value_name = "FEATURE_SET=MODEL")]
    pub routes: Vec<String>,
    /// Also write the alert events (`fleet.alert.v1`, one JSON object per line) the
    /// configuration's `[[alerts]]` rules raise on these predictions, as the service would
    /// publish them; `-` for stdout. `on = "drift"` rules watch one drift window per model
    /// (`[drift]`) over the replayed rows, evaluated at fixed row counts.
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// Rows per scoring batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

/// Where a stream of JSON lines goes: a file, or stdout for `-`.
fn json_lines(path: &std::path::Path) -> anyhow::Result<BufWriter<Box<dyn Write>>> {
    let sink: Box<dyn Write> = if path.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    Ok(BufWriter::with_capacity(1 << 20, sink))
}

/// Writes `value` as one JSON line; the first error is kept.
fn write_line(
    out: &mut impl Write,
    value: &impl serde::Serialize,
    error: &mut Option<std::io::Error>,
) {
    let result = serde_json::to_writer(&mut *out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"));
    if let Err(e) = result {
        error.get_or_insert(e);
    }
}

#[derive(Debug, Default)]
struct Counts {
    predictions: u64,
    non_finite: u64,
    no_model: u64,
    failed: u64,
    alerts: u64,
}

fn pair(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_owned(), b.to_owned())),
        _ => bail!("{what} must look like A=B, got `{s}`"),
    }
}

impl ReplayArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.models_dir {
            config.models.dir = dir.clone();
        }
        for m in &self.models {
            let (name, version) = pair(m, "--model")?;
            config.models.pins.insert(name, version);
        }
        let mut routed = Vec::new();
        for r in &self.routes {
            let (set, model) = pair(r, "--route")?;
            let models = config.models.routes.entry(set.clone()).or_default();
            if !routed.contains(&set) {
                models.clear();
                routed.push(set);
            }
            models.push(model);
        }
        config.models.require_local("fleetscore replay")?;
        let mut registry_config = config.models.registry()?;
        registry_config.settle = std::time::Duration::ZERO; // files at rest: no need to wait
        let registry = Arc::new(Registry::new(registry_config));
        registry.rescan();
        for set in FeatureSet::all() {
            let routed = registry.routed(set.id());
            if routed.is_empty() {
                eprintln!("{}: no model serving", set.name());
            }
            for s in routed.iter() {
                eprintln!(
                    "{}: {} ({}, sha256 {})",
                    set.name(),
                    s.serving.label(),
                    s.serving.backend.kind().as_str(),
                    &s.serving.sha256[..12]
                );
            }
        }
        for (set, model) in registry.unserved_routes() {
            eprintln!("{}: {model} is not serving", set.name());
        }
        for (name, version) in &config.models.pins {
            let serving = registry.serving_by_name(name);
            if serving
                .as_ref()
                .is_none_or(|s| s.serving.version() != version)
            {
                let why = registry
                    .statuses()
                    .into_iter()
                    .find(|s| &s.name == name && &s.version == version)
                    .map(|s| s.message.unwrap_or_else(|| s.state.to_string()))
                    .unwrap_or_else(|| "no such version".to_owned());
                bail!("--model {name}={version} cannot serve: {why}");
            }
        }

        let input = events::open(&self.input)?;
        let mut output = json_lines(&self.output)?;
        let mut alerts_out = self.alerts.as_deref().map(json_lines).transpose()?;
        let alerting = Alerting::new(config.alerts.clone());
        let mut episodes: HashMap<String, OpenEpisodes> = HashMap::new();

        let started = Instant::now();
        let mut counts = Counts::default();
        let mut tails = Tails::default();
        let drift = Arc::new(DriftMonitor::new(config.drift.clone()));
        let mut batcher: Batcher<()> =
            Batcher::with_drift(Arc::clone(&registry), Arc::clone(&drift));
        let mut vector = Vec::new();
        let mut write_error = None;
        let mut drain = |batcher: &mut Batcher<()>, counts: &mut Counts| {
            batcher.flush(Utc::now(), |Outcome { info, verdicts, drift: evaluations, .. }| {
                if verdicts.is_empty() {
                    counts.no_model += 1;
                }
                for verdict in verdicts {
                    match verdict {
                        Verdict::Scored(prediction) => {
                            counts.predictions += 1;
                            write_line(&mut output, &prediction, &mut write_error);
                            if let Some(out) = alerts_out.as_mut()
                                && alerting.watches(&prediction.model)
                            {
                                let open = episodes.entry(prediction.tail.clone()).or_default();
                                for event in alerting.evaluate(open, &prediction) {
                                    counts.alerts += 1;
                                    write_line(out, &event, &mut write_error);
                                }
                            }
                        }
                        Verdict::NonFinite { model, value } => {
                            counts.non_finite += 1;
                            tracing::warn!(tail = %info.tail, event = %info.event_id, %model, %value, "non-finite prediction (dead letter)");
                        }
                        Verdict::Failed { model, error } => {
                            counts.failed += 1;
                            tracing::warn!(tail = %info.tail, event = %info.event_id, %model, %error, "scoring failed");
                        }
                    }
                }
                if let Some(out) = alerts_out.as_mut() {
                    for evaluation in &evaluations {
                        for event in drift.alert(&alerting, evaluation) {
                            counts.alerts += 1;
                            write_line(out, &event, &mut write_error);
                        }
                    }
                }
            });
        };
        tails.apply_all(input, "dead letter", |event, state| {
            let Some(set) = FeatureSet::for_event(event) else {
                return Ok(());
            };
            if set.compute(state, &mut vector).is_err() {
                return Ok(());
            }
            batcher.push(set.id(), &vector, RowInfo::of(event), ());
            if batcher.len() >= self.batch.max(1) {
                drain(&mut batcher, &mut counts);
            }
            Ok(())
        })?;
        drain(&mut batcher, &mut counts);
        if let Some(e) = write_error {
            return Err(e).context("writing predictions");
        }
        output.flush().context("writing predictions")?;
        if let Some(out) = alerts_out.as_mut() {
            out.flush().context("writing alert events")?;
            let open: usize =
                episodes.values().map(|o| o.len()).sum::<usize>() + drift.open_episodes().len();
            eprintln!(
                "{} alert events; {open} episodes open at the end",
                counts.alerts
            );
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{} events: {} predictions, {} invalid, {} duplicates, {} late, {} non-finite, \
             {} without a model, {} failed; {:.2} s ({:.0} events/s)",
            tails.counts.lines,
            counts.predictions,
            tails.counts.invalid,
            tails.counts.duplicates,
            tails.counts.late,
            counts.non_finite,
            counts.no_model,
            counts.failed,
            secs,
            tails.counts.lines as f64 / secs.max(1e-9)
        );
        Ok(())
    }
}
