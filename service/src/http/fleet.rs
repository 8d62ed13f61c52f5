//! The fleet view's data: `GET /fleet`, the board (every aircraft this instance holds, riskiest
//! first, with the columns and which partitions the instance owns), and
//! `GET /tails/{tail}/history`, an aircraft's recent predictions per model for its trends.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::json;
use super::path::PathParam;
use crate::app::AppContext;
use crate::fleet::board::{self, Fleet, RuleView};
use crate::fleet::history::Recent;
use crate::store::state_info::millis_to_time;

#[utoipa::path(get, path = "/fleet", tag = "fleet",
    responses((status = 200, description = "The board: every aircraft this instance holds, riskiest first", body = Fleet)))]
pub async fn fleet(State(state): State<ApiState>) -> Response {
    json::ok(&board::snapshot(&state.ctx, state.feed.seq()))
}

/// An aircraft's recent predictions, per model.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    pub tail: String,
    /// The most points kept per model (`[fleet_view] history_points`).
    pub capacity: usize,
    pub series: Vec<SeriesView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesView {
    pub model: String,
    pub unit: Option<String>,
    pub meaning: Option<String>,
    /// The alert rules on the model (their thresholds).
    pub rules: Vec<RuleView>,
    /// Oldest first.
    pub points: Vec<PointView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointView {
    pub event_time: DateTime<Utc>,
    pub value: f32,
    pub lower: Option<f32>,
    pub upper: Option<f32>,
    pub model_version: String,
    /// The flight, for a prediction of a schedule event (`UA1545 EWR→IAH`).
    pub label: Option<String>,
}

#[utoipa::path(get, path = "/tails/{tail}/history", tag = "fleet",
    params(("tail" = String, Path, description = "Tail number", example = "CMAPSS-1")),
    responses(
        (status = 200, description = "The tail's recent predictions per model, oldest first", body = History),
        (status = 404, description = "This instance holds no state for the tail", body = ErrorBody),
    ))]
pub async fn history(
    State(ctx): State<Arc<AppContext>>,
    PathParam(tail): PathParam,
) -> Result<Response, ApiError> {
    let columns = board::columns(&ctx);
    let capacity = ctx.config.fleet_view.history_points;
    ctx.store
        .read_recent(&tail, |recent| view(&tail, capacity, recent, &columns))
        .map(|history| json::ok(&history))
        .ok_or_else(|| ApiError::UnknownTail(tail.chars().take(100).collect()))
}

fn view(tail: &str, capacity: usize, recent: &Recent, columns: &[board::Column]) -> History {
    let finite = |v: f32| v.is_finite().then_some(v);
    History {
        tail: tail.to_owned(),
        capacity,
        series: recent
            .series()
            .iter()
            .map(|series| {
                let column = columns.iter().find(|c| c.model == series.model);
                SeriesView {
                    model: series.model.clone(),
                    unit: column.and_then(|c| c.unit.clone()),
                    meaning: column.and_then(|c| c.meaning.clone()),
                    rules: column.map(|c| c.rules.clone()).unwrap_or_default(),
                    points: series
                        .points
                        .iter()
                        .map(|p| PointView {
                            // A validated event's time is in range.
                            event_time: millis_to_time(p.event_time_ms).unwrap_or_default(),
                            value: p.value,
                            lower: finite(p.lower),
                            upper: finite(p.upper),
                            model_version: series.version_of(p).to_owned(),
                            label: p.label.as_deref().map(str::to_owned),
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}
