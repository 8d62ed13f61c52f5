//! Micro-batched scoring shared by every path that turns events into predictions (replay, the
//! Kafka pipeline): rows are collected per feature set, scored as one batch per model, and
//! come back in the order they were pushed, each with the metadata its caller attached.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleet_features::{Event, FeatureSet, FeatureSetId};

use crate::model::{ModelError, Registry};
use crate::prediction::{PREDICTION_SCHEMA, Prediction};

/// What the caller knows about a row besides its features.
#[derive(Debug, Clone, PartialEq)]
pub struct RowInfo {
    pub tail: String,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
}

impl RowInfo {
    /// The row of `event`, its time truncated to milliseconds as on the wire.
    pub fn of(event: &Event) -> Self {
        Self {
            tail: event.tail().to_owned(),
            event_id: event.event_id().to_owned(),
            event_time: DateTime::from_timestamp_millis(event.event_time_ms())
                .expect("validated time"),
        }
    }
}

/// The fate of one pushed row.
#[derive(Debug)]
pub enum Outcome<M> {
    Scored(Prediction, M),
    /// The model produced NaN or an infinity: the event goes to the dead letters.
    NonFinite {
        info: RowInfo,
        meta: M,
        model: String,
        value: f32,
    },
    /// No model is serving this feature set.
    NoModel {
        info: RowInfo,
        meta: M,
    },
    /// The batch failed in the backend.
    Failed {
        info: RowInfo,
        meta: M,
        error: ModelError,
    },
}

#[derive(Debug)]
struct Pending<M> {
    /// Position in push order across feature sets.
    seq: u64,
    info: RowInfo,
    meta: M,
}

#[derive(Debug)]
struct Batch<M> {
    set: &'static FeatureSet,
    rows: Vec<f32>,
    pending: Vec<Pending<M>>,
}

/// Collects rows and scores them in batches; [`Batcher::flush`] returns outcomes in push order.
#[derive(Debug)]
pub struct Batcher<M> {
    registry: Arc<Registry>,
    batches: Vec<Batch<M>>,
    seq: u64,
    scratch: Vec<f32>,
}

impl<M> Batcher<M> {
    pub fn new(registry: Arc<Registry>) -> Self {
        let batches = FeatureSet::all()
            .into_iter()
            .map(|set| Batch {
                set,
                rows: Vec::new(),
                pending: Vec::new(),
            })
            .collect();
        Self {
            registry,
            batches,
            seq: 0,
            scratch: Vec::new(),
        }
    }

    /// Rows waiting to be scored.
    pub fn len(&self) -> usize {
        self.batches.iter().map(|b| b.pending.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, set: FeatureSetId, features: &[f32], info: RowInfo, meta: M) {
        let batch = self
            .batches
            .iter_mut()
            .find(|b| b.set.id() == set)
            .expect("a batch per feature set");
        debug_assert_eq!(features.len(), batch.set.len());
        batch.rows.extend_from_slice(features);
        batch.pending.push(Pending {
            seq: self.seq,
            info,
            meta,
        });
        self.seq += 1;
    }

    /// Scores everything pending (one backend call per feature set) and hands the outcomes to
    /// `sink` in push order.
    pub fn flush(&mut self, scored_at: DateTime<Utc>, mut sink: impl FnMut(Outcome<M>)) {
        let mut outcomes: Vec<(u64, Outcome<M>)> = Vec::with_capacity(self.len());
        for batch in &mut self.batches {
            if batch.pending.is_empty() {
                continue;
            }
            let pending = std::mem::take(&mut batch.pending);
            let serving = self.registry.serving(batch.set.id());
            let result = match &serving {
                None => None,
                Some(set) => Some(set.score(&batch.rows, &mut self.scratch)),
            };
            batch.rows.clear();
            match result {
                None => outcomes.extend(pending.into_iter().map(|p| {
                    (
                        p.seq,
                        Outcome::NoModel {
                            info: p.info,
                            meta: p.meta,
                        },
                    )
                })),
                Some(Err(error)) => outcomes.extend(pending.into_iter().map(|p| {
                    (
                        p.seq,
                        Outcome::Failed {
                            info: p.info,
                            meta: p.meta,
                            error: error.clone(),
                        },
                    )
                })),
                Some(Ok(scored)) => {
                    let model = &scored.model;
                    for (p, &value) in pending.into_iter().zip(&self.scratch) {
                        let outcome = if value.is_finite() {
                            Outcome::Scored(
                                Prediction {
                                    schema: PREDICTION_SCHEMA.to_owned(),
                                    tail: p.info.tail,
                                    source_event_id: p.info.event_id,
                                    event_time: p.info.event_time,
                                    model: model.name().to_owned(),
                                    model_version: model.version().to_owned(),
                                    model_sha256: model.sha256.clone(),
                                    feature_set: batch.set.name().to_owned(),
                                    feature_set_version: batch.set.version().to_owned(),
                                    prediction: value,
                                    scored_at,
                                },
                                p.meta,
                            )
                        } else {
                            Outcome::NonFinite {
                                info: p.info,
                                meta: p.meta,
                                model: format!("{}/{}", model.name(), model.version()),
                                value,
                            }
                        };
                        outcomes.push((p.seq, outcome));
                    }
                    if let Some(shadow) = scored.shadow {
                        log_shadow(&shadow, self.scratch.len());
                    }
                }
            }
        }
        outcomes.sort_by_key(|(seq, _)| *seq);
        for (_, outcome) in outcomes {
            sink(outcome);
        }
    }
}

/// Shadow outputs go to the log (and the difference to a metric, in the registry); they never
/// reach a prediction.
fn log_shadow(shadow: &crate::model::registry::ShadowScores, rows: usize) {
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
