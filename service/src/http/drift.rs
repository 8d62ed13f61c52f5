//! `GET /models/{name}/drift`: how far the live rows of the version serving `name` have moved
//! from its reference profile, as this instance measures them (`crate::drift::monitor`): the
//! window, the thresholds, every feature worst first (the excluded ones last), the output,
//! and the open drift alert episodes of the model.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json;
use super::lookup::serving;
use super::path::PathParam;
use crate::alerts::rule::On;
use crate::app::AppContext;
use crate::drift::{DriftStatus, EntryDrift, Level, Measure, THRESHOLDS, Thresholds};

/// A model's drift, as of its window's last evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDriftResponse {
    pub model: String,
    /// The version serving the name (a new version starts a fresh window).
    pub version: String,
    /// `no_profile` (nothing to measure against), `warming_up` (fewer than `min_rows` rows:
    /// no levels, no alerts) or `ok` (measured: see `level`).
    pub status: DriftStatus,
    /// Whether a feature set routes its rows to the model: only routed models' rows, as the
    /// stream scores them, are measured (never the rows of `/score`).
    pub routed: bool,
    /// The worst level over the features not excluded; null unless `status` is `ok`.
    pub level: Option<Level>,
    pub window: WindowState,
    pub thresholds: Thresholds,
    /// Features reported but never counted towards `level` nor alerting (`[drift] exclude`).
    pub excluded: Vec<String>,
    /// Every input feature, worst first (level, PSI, JS), the excluded ones last; empty
    /// until measured.
    pub features: Vec<EntryDrift>,
    /// The model's output.
    pub output: Option<EntryDrift>,
    /// The model's open drift episodes (`on = "drift"` alert rules) on this instance.
    pub alerts: Vec<OpenDriftAlert>,
}

/// The sliding window of live rows.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowState {
    /// Rows in the window now, and the most it holds (`[drift] window_rows`).
    pub rows: usize,
    pub capacity: usize,
    /// Rows needed before the first evaluation, and how often it is evaluated.
    pub min_rows: usize,
    pub evaluate_every_rows: usize,
    /// Rows seen since this version started serving (those that left the window included).
    pub rows_seen: u64,
    /// The last evaluation: rows seen then, rows of the window measured, and the event (id,
    /// event time) whose row completed it.
    pub evaluated_at_rows: Option<u64>,
    pub evaluated_rows: Option<u64>,
    pub evaluated_event_id: Option<String>,
    pub evaluated_event_time: Option<DateTime<Utc>>,
}

/// An open drift episode.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenDriftAlert {
    pub rule: String,
    /// The most severe level the episode reached: `info`, `warning` or `critical`.
    pub severity: String,
    pub measure: Measure,
    /// Event time and event of the row whose evaluation raised it.
    pub raised_at: DateTime<Utc>,
    pub raised_by: String,
}

#[utoipa::path(get, path = "/models/{name}/drift", tag = "models",
    params(("name" = String, Path, description = "Model name", example = "engine-rul")),
    responses(
        (status = 200, description = "The drift of the serving version's live rows", body = ModelDriftResponse),
        (status = 404, description = "No such model is serving (`unknown_model`)", body = ErrorBody),
    ))]
pub async fn drift(
    State(ctx): State<Arc<AppContext>>,
    PathParam(name): PathParam,
) -> Result<Response, ApiError> {
    let set = serving(&ctx, &name)?;
    let model = &set.serving;
    let config = ctx.drift.config();
    let published = ctx.drift.get(model.name(), model.version());
    let status = match (&model.profile, &published) {
        (None, _) => DriftStatus::NoProfile,
        (Some(_), Some(p)) => p.status,
        (Some(_), None) => DriftStatus::WarmingUp,
    };
    let evaluation = published.as_ref().and_then(|p| p.evaluation.clone());
    let report = evaluation.as_ref().map(|e| &e.report);
    let open = ctx.drift.open_episodes();
    let alerts = ctx
        .config
        .alerts
        .iter()
        .filter(|r| r.on == On::Drift && r.model == model.name())
        .filter_map(|rule| {
            let episode = open.get(&rule.name)?;
            Some(OpenDriftAlert {
                rule: rule.name.clone(),
                severity: episode.severity.as_str().to_owned(),
                measure: rule.measure(),
                raised_at: episode.raised_at,
                raised_by: episode.raised_by.clone(),
            })
        })
        .collect();
    let routed = ctx
        .registry
        .config()
        .routes
        .iter()
        .any(|(_, route)| route.iter().any(|m| m == model.name()));
    let body = ModelDriftResponse {
        model: model.name().to_owned(),
        version: model.version().to_owned(),
        status,
        routed,
        level: report.map(|r| r.level),
        window: WindowState {
            rows: published.as_ref().map_or(0, |p| p.rows),
            capacity: if model.profile.is_some() {
                config.window_rows
            } else {
                0
            },
            min_rows: config.min_rows,
            evaluate_every_rows: config.evaluate_every_rows,
            rows_seen: published.as_ref().map_or(0, |p| p.seen),
            evaluated_at_rows: evaluation.as_ref().map(|e| e.seen),
            evaluated_rows: report.map(|r| r.rows),
            evaluated_event_id: evaluation.as_ref().map(|e| e.event_id.clone()),
            evaluated_event_time: evaluation.as_ref().map(|e| e.event_time),
        },
        thresholds: report.map_or(THRESHOLDS, |r| r.thresholds),
        excluded: config.excluded(model.name()).to_vec(),
        features: report.map(|r| r.features.clone()).unwrap_or_default(),
        output: report.map(|r| r.output.clone()),
        alerts,
    };
    Ok(json::ok(&body))
}
