//! The service's drift monitor: per serving model, a [`Window`] of the live rows it scored
//! (the stream's and replay's, through [`crate::scoring::Batcher`]; never the HTTP `/score`
//! rows, which clients make up), its report recomputed every `evaluate_every_rows` rows and
//! published for readers (`GET /models/{name}/drift`, the gauges of `/metrics`), and the open
//! drift alert episodes (`on = "drift"` rules).
//!
//! Everything here is per instance and in memory: an instance measures the rows of the
//! partitions it owns, and after a restart its windows fill again (an episode that was open
//! may then be raised again). A new serving version starts a fresh window against its own
//! profile. Evaluation happens at fixed row counts of a window, so replay is deterministic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::measure::THRESHOLDS;
use super::report::DriftReport;
use super::window::Window;
use crate::alerts::episode::Episode;
use crate::alerts::{AlertEvent, Alerting, OpenEpisodes};
use crate::config::DriftConfig;
use crate::model::{LoadedModel, Registry};
use crate::scoring::RowInfo;

/// Where a model's window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// The package has no reference profile: nothing to measure against.
    NoProfile,
    /// Fewer than `min_rows` rows in the window: no report, no levels, no alerts.
    WarmingUp,
    /// Measured: the report of the last evaluation holds.
    Ok,
}

/// One evaluation of a model's window: its report, and the row that completed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub model: String,
    pub version: String,
    pub sha256: String,
    pub feature_set: String,
    pub feature_set_version: String,
    /// Rows the window had seen (since its version started serving) when evaluated.
    pub seen: u64,
    /// The row that completed the evaluation: its event and event time.
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    /// The window's drift, with `[drift] exclude` applied.
    pub report: DriftReport,
}

/// What readers see of one model's window.
#[derive(Debug, Clone)]
pub struct ModelDrift {
    pub model: String,
    pub version: String,
    pub status: DriftStatus,
    /// Rows in the window, and the most it holds.
    pub rows: usize,
    pub capacity: usize,
    /// Rows seen since this version started serving.
    pub seen: u64,
    /// The last evaluation, if any (none while warming up or without a profile).
    pub evaluation: Option<Arc<Evaluation>>,
}

/// The window of the model version serving a name.
#[derive(Debug)]
struct ModelWindow {
    model: Arc<LoadedModel>,
    /// `None`: the package has no profile.
    window: Option<Window>,
    excluded: Vec<String>,
    last: Option<Arc<Evaluation>>,
}

/// Per serving model, its window and latest published state; the open drift episodes.
#[derive(Debug)]
pub struct DriftMonitor {
    config: DriftConfig,
    /// Written by whoever scores (the scoring thread; replay).
    windows: Mutex<HashMap<String, ModelWindow>>,
    /// What readers see, by model name.
    published: Mutex<BTreeMap<String, Arc<ModelDrift>>>,
    /// Open drift episodes by rule name (a drift rule watches one model).
    episodes: Mutex<OpenEpisodes>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `a` and `b` are the same model for drift: same version, model file and profile.
fn same_model(a: &Arc<LoadedModel>, b: &Arc<LoadedModel>) -> bool {
    Arc::ptr_eq(a, b)
        || (a.name() == b.name()
            && a.version() == b.version()
            && a.sha256 == b.sha256
            && match (&a.profile, &b.profile) {
                (None, None) => true,
                (Some(p), Some(q)) => Arc::ptr_eq(p, q) || p == q,
                _ => false,
            })
}

impl DriftMonitor {
    /// `config`: validated ([`DriftConfig::validate`]).
    pub fn new(config: DriftConfig) -> Self {
        Self {
            config,
            windows: Mutex::new(HashMap::new()),
            published: Mutex::new(BTreeMap::new()),
            episodes: Mutex::new(OpenEpisodes::new()),
        }
    }

    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    /// Counts a batch `model` scored: `rows` (row-major, the model's width each), `outputs`
    /// (one per row) and each row's event (`info(i)`). Returns the evaluations the batch
    /// completed, each with the index of the row that completed it, in row order.
    pub fn observe<'a>(
        &self,
        model: &Arc<LoadedModel>,
        rows: &[f32],
        outputs: &[f32],
        info: impl Fn(usize) -> &'a RowInfo,
    ) -> Vec<(usize, Arc<Evaluation>)> {
        let mut evaluations = Vec::new();
        let mut windows = lock(&self.windows);
        let entry = windows
            .entry(model.name().to_owned())
            .and_modify(|w| {
                if same_model(&w.model, model) {
                    w.model = Arc::clone(model);
                } else {
                    *w = self.fresh(model);
                }
            })
            .or_insert_with(|| self.fresh(model));
        if let Some(window) = &mut entry.window {
            let width = model.width();
            let (min_rows, every) = (self.config.min_rows, self.config.evaluate_every_rows);
            for (i, (row, &output)) in rows.chunks_exact(width).zip(outputs).enumerate() {
                window.push(row, output);
                if window.len() >= min_rows && window.seen() % every as u64 == 0 {
                    let mut report = window
                        .counts()
                        .report(&THRESHOLDS)
                        .expect("a window of min_rows has rows");
                    report.exclude(&entry.excluded);
                    let row = info(i);
                    let evaluation = Arc::new(Evaluation {
                        model: model.name().to_owned(),
                        version: model.version().to_owned(),
                        sha256: model.sha256.clone(),
                        feature_set: model.feature_set.name().to_owned(),
                        feature_set_version: model.feature_set.version().to_owned(),
                        seen: window.seen(),
                        event_id: row.event_id.clone(),
                        event_time: row.event_time,
                        report,
                    });
                    entry.last = Some(Arc::clone(&evaluation));
                    evaluations.push((i, evaluation));
                }
            }
        }
        let published = Arc::new(Self::state(entry));
        drop(windows);
        lock(&self.published).insert(model.name().to_owned(), published);
        evaluations
    }

    /// A fresh window for `model` (none without a profile).
    fn fresh(&self, model: &Arc<LoadedModel>) -> ModelWindow {
        let excluded = self.config.excluded(model.name()).to_vec();
        if let Some(profile) = &model.profile {
            let unknown: Vec<&String> = excluded
                .iter()
                .filter(|f| !profile.features.iter().any(|e| &e.name == *f))
                .collect();
            if !unknown.is_empty() {
                tracing::warn!(model = %model.label(), ?unknown, "[drift] exclude names features the model does not have");
            }
        }
        tracing::info!(model = %model.label(), profile = model.profile.is_some(), "drift window started");
        ModelWindow {
            window: model
                .profile
                .as_ref()
                .map(|p| Window::new(Arc::clone(p), self.config.window_rows)),
            model: Arc::clone(model),
            excluded,
            last: None,
        }
    }

    fn state(w: &ModelWindow) -> ModelDrift {
        let (status, rows, seen) = match &w.window {
            None => (DriftStatus::NoProfile, 0, 0),
            Some(window) if w.last.is_none() => {
                (DriftStatus::WarmingUp, window.len(), window.seen())
            }
            Some(window) => (DriftStatus::Ok, window.len(), window.seen()),
        };
        ModelDrift {
            model: w.model.name().to_owned(),
            version: w.model.version().to_owned(),
            status,
            rows,
            capacity: w.window.as_ref().map_or(0, Window::capacity),
            seen,
            evaluation: w.last.clone(),
        }
    }

    /// The published state of `model`'s window, if it has seen rows of `version`.
    pub fn get(&self, model: &str, version: &str) -> Option<Arc<ModelDrift>> {
        lock(&self.published)
            .get(model)
            .filter(|d| d.version == version)
            .cloned()
    }

    /// The published state of every model whose window belongs to the version serving it
    /// now (a swapped-out or removed version's window is left out), by name.
    pub fn serving(&self, registry: &Registry) -> Vec<Arc<ModelDrift>> {
        lock(&self.published)
            .values()
            .filter(|d| {
                registry
                    .serving_by_name(&d.model)
                    .is_some_and(|s| s.serving.version() == d.version)
            })
            .cloned()
            .collect()
    }

    /// Advances the drift episodes of the rules on `evaluation`'s model; the alert events.
    pub fn alert(&self, alerting: &Alerting, evaluation: &Evaluation) -> Vec<AlertEvent> {
        alerting.evaluate_drift(&mut lock(&self.episodes), evaluation)
    }

    /// The open drift episodes, by rule name.
    pub fn open_episodes(&self) -> BTreeMap<String, Episode> {
        lock(&self.episodes).clone()
    }
}
