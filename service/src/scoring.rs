//! Micro-batched scoring shared by every path that turns events into predictions (replay, the
//! Kafka pipeline): rows are collected per feature set, each set's rows are scored as one batch
//! by every model the set feeds (its route), with the quantile models of its interval if it has
//! one (`model::interval`), and the outcomes come back in the order the rows were pushed, each
//! with the metadata its caller attached.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleet_features::{Event, FeatureSet, FeatureSetId, PerFeatureSet};

use crate::drift::{DriftMonitor, Evaluation};
use crate::model::interval::Interval;
use crate::model::serving::ShadowScores;
use crate::model::{LoadedModel, ModelError, Registry};
use crate::prediction::{PREDICTION_SCHEMA, Prediction};

/// What the caller knows about a row besides its features.
#[derive(Debug, Clone, PartialEq)]
pub struct RowInfo {
    pub tail: String,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    /// What a planner calls the event, where the tail and time do not say it: the flight of a
    /// schedule event (`UA1545 EWR→IAH`). For the fleet view's recent flights.
    pub label: Option<String>,
}

impl RowInfo {
    /// The row of a scored event.
    pub fn of(event: &Event) -> Self {
        Self {
            tail: event.tail().to_owned(),
            event_id: event.event_id().to_owned(),
            event_time: DateTime::from_timestamp_millis(event.event_time_ms())
                .expect("validated time"),
            label: match event {
                Event::Schedule(s) => Some(format!("{} {}→{}", s.flight, s.origin, s.destination)),
                _ => None,
            },
        }
    }
}

/// What one model made of one row.
#[derive(Debug)]
pub enum Verdict {
    Scored(Prediction),
    /// The model produced NaN or an infinity: the event goes to the dead letters.
    NonFinite {
        model: String,
        value: f32,
    },
    /// The batch failed in the backend.
    Failed {
        model: String,
        error: ModelError,
    },
}

/// The fate of one pushed row: a verdict per model its feature set feeds, in route order; none
/// when no model serves the set.
#[derive(Debug)]
pub struct Outcome<M> {
    pub info: RowInfo,
    pub meta: M,
    pub verdicts: Vec<Verdict>,
    /// The drift evaluations this row completed (one per model whose window reached an
    /// evaluation at it; almost always none).
    pub drift: Vec<Arc<Evaluation>>,
}

#[derive(Debug)]
struct Pushed<M> {
    /// Position in push order across feature sets.
    seq: u64,
    info: RowInfo,
    meta: M,
}

#[derive(Debug)]
struct Batch<M> {
    rows: Vec<f32>,
    pushed: Vec<Pushed<M>>,
}

impl<M> Default for Batch<M> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            pushed: Vec::new(),
        }
    }
}

/// Collects rows and scores them in batches; [`Batcher::flush`] returns outcomes in push order.
#[derive(Debug)]
pub struct Batcher<M> {
    registry: Arc<Registry>,
    batches: PerFeatureSet<Batch<M>>,
    seq: u64,
    scratch: Vec<f32>,
    /// The interval bounds of the batch being scored.
    lower: Vec<f32>,
    upper: Vec<f32>,
    /// Where the serving models' scored rows are counted, if anywhere.
    drift: Option<Arc<DriftMonitor>>,
}

impl<M> Batcher<M> {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            batches: PerFeatureSet::default(),
            seq: 0,
            scratch: Vec::new(),
            lower: Vec::new(),
            upper: Vec::new(),
            drift: None,
        }
    }

    /// A batcher that also counts every batch a serving model scores into `monitor`.
    pub fn with_drift(registry: Arc<Registry>, monitor: Arc<DriftMonitor>) -> Self {
        Self {
            drift: Some(monitor),
            ..Self::new(registry)
        }
    }

    /// Rows waiting to be scored.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.pushed.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, set: FeatureSetId, features: &[f32], info: RowInfo, meta: M) {
        let batch = &mut self.batches[set];
        debug_assert_eq!(features.len(), FeatureSet::get(set).len());
        batch.rows.extend_from_slice(features);
        batch.pushed.push(Pushed {
            seq: self.seq,
            info,
            meta,
        });
        self.seq += 1;
    }

    /// Scores everything pending (one backend call per feature set and model) and hands the
    /// outcomes to `sink` in push order.
    pub fn flush(&mut self, scored_at: DateTime<Utc>, mut sink: impl FnMut(Outcome<M>)) {
        let mut outcomes: Vec<(u64, Outcome<M>)> = Vec::with_capacity(self.len());
        for &id in FeatureSetId::ALL {
            let batch = &mut self.batches[id];
            if batch.pushed.is_empty() {
                continue;
            }
            let set = FeatureSet::get(id);
            let models = self.registry.routed(id);
            let mut verdicts: Vec<Vec<Verdict>> = (0..batch.pushed.len())
                .map(|_| Vec::with_capacity(models.len()))
                .collect();
            let mut drift: Vec<(usize, Arc<Evaluation>)> = Vec::new();
            for serving in models.iter() {
                let model = &serving.serving;
                let intervals = intervals(
                    &self.registry,
                    model.name(),
                    &batch.rows,
                    &mut self.lower,
                    &mut self.upper,
                );
                match serving.score(&batch.rows, &mut self.scratch) {
                    Err(error) => {
                        for row in &mut verdicts {
                            row.push(Verdict::Failed {
                                model: model.label(),
                                error: error.clone(),
                            });
                        }
                    }
                    Ok(scored) => {
                        let labels = Labels::of(model, set);
                        for (i, ((row, p), &value)) in verdicts
                            .iter_mut()
                            .zip(&batch.pushed)
                            .zip(&self.scratch)
                            .enumerate()
                        {
                            row.push(if value.is_finite() {
                                Verdict::Scored(Prediction {
                                    schema: Arc::clone(&labels.schema),
                                    tail: p.info.tail.clone(),
                                    source_event_id: p.info.event_id.clone(),
                                    event_time: p.info.event_time,
                                    model: Arc::clone(&labels.model),
                                    model_version: Arc::clone(&labels.model_version),
                                    model_sha256: Arc::clone(&labels.model_sha256),
                                    feature_set: Arc::clone(&labels.feature_set),
                                    feature_set_version: Arc::clone(&labels.feature_set_version),
                                    prediction: value,
                                    interval: intervals.as_ref().and_then(|(level, models)| {
                                        Interval::around(
                                            value,
                                            self.lower[i],
                                            self.upper[i],
                                            *level,
                                            models,
                                        )
                                    }),
                                    scored_at,
                                })
                            } else {
                                Verdict::NonFinite {
                                    model: model.label(),
                                    value,
                                }
                            });
                        }
                        if let Some(shadow) = scored.shadow {
                            log_shadow(&shadow, self.scratch.len());
                        }
                        if let Some(monitor) = &self.drift {
                            let pushed = &batch.pushed;
                            drift.extend(monitor.observe(
                                &scored.model,
                                &batch.rows,
                                &self.scratch,
                                |i| &pushed[i].info,
                            ));
                        }
                    }
                }
            }
            batch.rows.clear();
            let mut row_drift: Vec<Vec<Arc<Evaluation>>> = Vec::new();
            if !drift.is_empty() {
                row_drift.resize_with(batch.pushed.len(), Vec::new);
                for (i, evaluation) in drift {
                    row_drift[i].push(evaluation);
                }
            }
            let mut row_drift = row_drift.into_iter();
            outcomes.extend(batch.pushed.drain(..).zip(verdicts).map(|(p, verdicts)| {
                (
                    p.seq,
                    Outcome {
                        info: p.info,
                        meta: p.meta,
                        verdicts,
                        drift: row_drift.next().unwrap_or_default(),
                    },
                )
            }));
        }
        outcomes.sort_by_key(|(seq, _)| *seq);
        for (_, outcome) in outcomes {
            sink(outcome);
        }
    }
}

/// The strings every prediction of a model's batch shares, made once per batch.
struct Labels {
    schema: Arc<str>,
    model: Arc<str>,
    model_version: Arc<str>,
    model_sha256: Arc<str>,
    feature_set: Arc<str>,
    feature_set_version: Arc<str>,
}

impl Labels {
    fn of(model: &LoadedModel, set: &FeatureSet) -> Self {
        Labels {
            schema: PREDICTION_SCHEMA.into(),
            model: model.name().into(),
            model_version: model.version().into(),
            model_sha256: model.sha256.as_str().into(),
            feature_set: set.name().into(),
            feature_set_version: set.version().into(),
        }
    }
}

/// The interval's level and the bound models that scored.
type IntervalScored = (f32, (Arc<LoadedModel>, Arc<LoadedModel>));

/// Scores `rows` with the bound models of `model`'s interval, if it has one, into `lower` and
/// `upper`. A failing bound model costs the interval only (logged), never the prediction.
fn intervals(
    registry: &Registry,
    model: &str,
    rows: &[f32],
    lower: &mut Vec<f32>,
    upper: &mut Vec<f32>,
) -> Option<IntervalScored> {
    let bounds = registry.interval_models(model)?;
    match bounds.score(rows, lower, upper) {
        Ok(models) => Some((bounds.level, models)),
        Err(error) => {
            tracing::warn!(%model, %error, "interval models failed: predictions without an interval");
            None
        }
    }
}

/// Shadow outputs go to the log (and the difference to a metric, in the registry); they never
/// reach a prediction.
fn log_shadow(shadow: &ShadowScores, rows: usize) {
    match &shadow.result {
        Ok(values) => tracing::debug!(
            model = %shadow.model.name(), version = %shadow.model.version(), rows,
            first = values.first().copied().unwrap_or(f32::NAN), "shadow scored"
        ),
        Err(e) => tracing::warn!(
            model = %shadow.model.name(), version = %shadow.model.version(), error = %e,
            "shadow model failed"
        ),
    }
}
