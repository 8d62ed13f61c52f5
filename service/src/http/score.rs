//! `POST /score`: score explicit feature rows (by name) or an aircraft's live state, optionally
//! with one event applied hypothetically to a copy of it.
//!
//! Everything goes through the registry (`serving_by_name`, then `ServingSet::score`), so an
//! HTTP prediction comes from exactly the model the streaming path uses at that moment. The
//! body is read in one pass by [`wire`].

mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use fleet_features::{ApplyOutcome, Event, TailState};
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::{self, JsonBody};
use super::limits::{Permit, parse_off_worker_if_big};
use super::lookup::serving;
use super::scorer::{Output, Scorer};
use crate::app::AppContext;
use crate::model::interval::Interval;
use crate::model::{LoadedModel, ServingSet};
use crate::store::Lookup;
use crate::store::state_info::StateInfo;
use wire::{Rows, WireSeed};

pub use wire::parse_row;

/// Score explicit feature rows: each row maps every feature name of the model's feature set
/// to its value (`GET /v2/models/{name}` lists them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the documented wire form; `ScoreWire` parses it with precise errors
pub struct RowsRequest {
    /// Model name (e.g. `engine-rul`).
    #[schema(example = "engine-rul")]
    model: String,
    /// One object per row, feature name to value; at most `http.max_batch_rows` rows.
    #[schema(min_items = 1)]
    rows: Vec<HashMap<String, f64>>,
}

/// Score an aircraft from its live state, optionally with one event applied to a copy of the
/// state first (the live state never changes).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TailRequest {
    #[schema(example = "engine-rul")]
    model: String,
    /// Tail number: 2-16 of `A-Z`, `0-9`, `-`.
    #[schema(example = "N14228", pattern = "^[A-Z0-9-]{2,16}$")]
    tail: String,
    /// An event (`fleet.telemetry.v1` or `fleet.schedule.v1`, as on the input topics) for
    /// this tail, applied to a copy of the state before scoring.
    #[schema(value_type = Option<Object>)]
    event: Option<serde_json::Value>,
    /// For `engine-health`: the engine position (1-4) to describe instead of the one that
    /// reported last.
    #[schema(minimum = 1, maximum = 4)]
    engine: Option<u8>,
}

/// Either explicit rows or a tail, never both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ScoreRequest {
    Rows(RowsRequest),
    Tail(TailRequest),
}

/// The predictions, and the model and data that produced them.
// Borrows from the model that scored: built and serialized in one go.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreResponse<'a> {
    pub model: &'a str,
    pub model_version: &'a str,
    /// SHA-256 of the model file that produced the predictions.
    pub model_sha256: &'a str,
    pub feature_set: &'a str,
    pub feature_set_version: &'a str,
    /// One value per row, in the order of `rows` (one value for a tail).
    pub predictions: &'a [f32],
    /// For a model with a prediction interval (`engine-rul`: 80 %, from its quantile models),
    /// one per prediction, `lower ≤ prediction ≤ upper` (null if a bound was not finite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Vec<Option<Interval>>>,
    /// What a prediction means, from the model's manifest.
    pub output: OutputInfo<'a>,
    /// The tail scored (tail requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// How fresh the live state was (tail requests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateInfo>,
    /// What the hypothetical event did to the copy of the state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypothetical: Option<HypotheticalInfo>,
    pub scored_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OutputInfo<'a> {
    /// The graph output the value is taken from.
    pub name: &'a str,
    #[schema(example = "remaining useful life")]
    pub meaning: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'a str>,
}

impl<'a> OutputInfo<'a> {
    pub fn of(model: &'a LoadedModel) -> Self {
        let output = &model.manifest.output;
        Self {
            name: &output.name,
            meaning: &output.meaning,
            unit: output.unit.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HypotheticalInfo {
    pub event_id: String,
    /// `applied`, `duplicate` (same `event_id` as a recent event: the state is unchanged) or
    /// `late` (older than the state: unchanged).
    #[schema(example = "applied")]
    pub outcome: &'static str,
    /// Why a late event is late (`cycle_not_after_last`, `event_time_before_last`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_reason: Option<&'static str>,
}

#[utoipa::path(
    post,
    path = "/score",
    tag = "scoring",
    request_body(content = ScoreRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Predictions", body = ScoreResponse<'_>),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No such model is serving, or the tail is not known", body = ErrorBody),
        (status = 409, description = "The tail has no history for the model's feature set", body = ErrorBody),
        (status = 413, description = "Too many rows or too large a body", body = ErrorBody),
        (status = 415, description = "Not a JSON content type", body = ErrorBody),
        (status = 422, description = "Wrong request shape, missing or unknown features (listed), non-finite values, an invalid event", body = ErrorBody),
        (status = 503, description = "Overloaded, timed out, or the tail's state is being restored (`restoring`); retry after Retry-After", body = ErrorBody),
    )
)]
pub async fn score(
    State(ctx): State<Arc<AppContext>>,
    State(scorer): State<Arc<Scorer>>,
    permit: Option<Extension<Permit>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let permit = permit.map(|p| p.0);
    let prepared = {
        let ctx = Arc::clone(&ctx);
        parse_off_worker_if_big(permit.clone(), body.len(), move || prepare(&ctx, &body)).await?
    };
    let Prepared {
        serving,
        values,
        rows,
        context,
    } = prepared;
    // The quantile models of the model's interval, if it has one, on the same rows.
    let bounds = ctx.registry.interval_models(serving.serving.name());
    let bound_values = bounds.as_ref().map(|_| values.clone());
    let output = scorer
        .score(serving, values, rows, permit.clone())
        .await
        .map_err(ApiError::Scoring)?;
    let intervals = match (bounds, bound_values) {
        (Some(bounds), Some(values)) => {
            let (lower, upper) = tokio::join!(
                scorer.score(bounds.lower, values.clone(), rows, permit.clone()),
                scorer.score(bounds.upper, values, rows, permit),
            );
            let (lower, upper) = (
                lower.map_err(ApiError::Scoring)?,
                upper.map_err(ApiError::Scoring)?,
            );
            let models = (lower.model, upper.model);
            Some(
                output
                    .predictions
                    .iter()
                    .zip(lower.predictions.iter().zip(&upper.predictions))
                    .map(|(&point, (&l, &u))| Interval::around(point, l, u, bounds.level, &models))
                    .collect(),
            )
        }
        _ => None,
    };
    respond(output, intervals, context)
}

/// A request turned into rows for the scorer, and what the response must say besides.
struct Prepared {
    serving: ServingSet,
    values: Vec<f32>,
    rows: usize,
    context: Context,
}

#[derive(Default)]
struct Context {
    tail: Option<String>,
    state: Option<StateInfo>,
    hypothetical: Option<HypotheticalInfo>,
}

fn prepare(ctx: &AppContext, body: &[u8]) -> Result<Prepared, ApiError> {
    let mut row_error = None;
    // Checked as UTF-8 once here rather than string by string by the parser.
    let body = std::str::from_utf8(body)
        .map_err(|e| ApiError::MalformedJson(format!("the body is not UTF-8: {e}")))?;
    let mut de = serde_json::Deserializer::from_str(body);
    let wire = WireSeed {
        ctx,
        row_error: &mut row_error,
    }
    .deserialize(&mut de)
    .and_then(|wire| de.end().map(|()| wire));
    let wire = wire.map_err(|e| match row_error {
        Some(problem) if e.classify() == serde_json::error::Category::Data => problem,
        _ => json::classify(e),
    })?;
    let serving = match wire.serving {
        Some(serving) => serving,
        None => serving(ctx, &wire.model)?,
    };
    match (wire.rows, wire.tail) {
        (Some(rows), None) => {
            if wire.event.is_some() || wire.engine.is_some() {
                return Err(invalid(
                    "`event` and `engine` go with `tail`, not with `rows`",
                    if wire.event.is_some() {
                        "event"
                    } else {
                        "engine"
                    },
                ));
            }
            prepare_rows(ctx, serving, rows)
        }
        (None, Some(tail)) => prepare_tail(ctx, serving, tail, wire.event, wire.engine),
        (Some(_), Some(_)) => Err(invalid("give either `rows` or `tail`, not both", "rows")),
        (None, None) => Err(invalid(
            "give `rows` (explicit features) or `tail` (live state)",
            "rows",
        )),
    }
}

/// Parses a `POST /score` body as the handler does, up to the rows for the scorer: the values,
/// row-major in the model's feature order, and the number of rows. For benchmarks.
#[doc(hidden)]
pub fn parse_body(ctx: &AppContext, body: &[u8]) -> Result<(Vec<f32>, usize), ApiError> {
    prepare(ctx, body).map(|p| (p.values, p.rows))
}

fn invalid(message: &str, field: &str) -> ApiError {
    ApiError::InvalidRequest {
        message: message.to_owned(),
        field: Some(field.to_owned()),
        row: None,
    }
}

fn prepare_rows(
    ctx: &AppContext,
    serving: ServingSet,
    rows: Rows<'_>,
) -> Result<Prepared, ApiError> {
    let max = ctx.config.http.max_batch_rows;
    let (values, count) = match rows {
        Rows::Parsed { values, count } => (values, count),
        Rows::TooMany(rows) => return Err(ApiError::BatchTooLarge { rows, max }),
        Rows::Raw(rows) => {
            if rows.len() > max {
                return Err(ApiError::BatchTooLarge {
                    rows: rows.len(),
                    max,
                });
            }
            let set = serving.serving.feature_set;
            let mut values = vec![0f32; rows.len() * set.len()];
            for (i, (row, out)) in rows
                .iter()
                .zip(values.chunks_exact_mut(set.len()))
                .enumerate()
            {
                parse_row(set, row.get(), i, out)?;
            }
            (values, rows.len())
        }
    };
    if count == 0 {
        return Err(ApiError::EmptyBatch);
    }
    Ok(Prepared {
        serving,
        values,
        rows: count,
        context: Context::default(),
    })
}

fn prepare_tail(
    ctx: &AppContext,
    serving: ServingSet,
    tail: String,
    event: Option<&RawValue>,
    engine: Option<u8>,
) -> Result<Prepared, ApiError> {
    if !valid_tail(&tail) {
        return Err(invalid(
            "`tail` must be 2-16 characters of A-Z, 0-9 and '-'",
            "tail",
        ));
    }
    if engine.is_some_and(|e| !(1..=4).contains(&e)) {
        return Err(invalid("`engine` must be 1-4", "engine"));
    }
    let entry = match ctx.store.lookup(&tail) {
        Lookup::Found(entry) => Some(*entry),
        Lookup::Restoring => return Err(ApiError::Restoring(tail)),
        Lookup::Unknown => None,
    };
    let state_info = StateInfo::of(entry.as_ref());
    let mut state = match (entry, event) {
        (Some(entry), _) => entry.state,
        (None, Some(_)) => TailState::new(),
        (None, None) => return Err(ApiError::UnknownTail(tail)),
    };
    let hypothetical = match event {
        None => None,
        Some(raw) => {
            let event = Event::decode(raw.get().as_bytes()).map_err(ApiError::InvalidEvent)?;
            if event.tail() != tail {
                return Err(ApiError::TailMismatch {
                    event: event.tail().to_owned(),
                    request: tail,
                });
            }
            let (outcome, late_reason) = match state.apply(&event) {
                ApplyOutcome::Applied => ("applied", None),
                ApplyOutcome::Duplicate => ("duplicate", None),
                ApplyOutcome::Late(reason) => ("late", Some(reason.as_str())),
            };
            Some(HypotheticalInfo {
                event_id: event.event_id().to_owned(),
                outcome,
                late_reason,
            })
        }
    };
    let set = serving.serving.feature_set;
    let mut values = Vec::with_capacity(set.len());
    let computed = match engine {
        Some(engine) => set.compute_engine(&state, engine, &mut values),
        None => set.compute(&state, &mut values),
    };
    computed.map_err(|e| match e {
        fleet_features::Error::NoHistory { what } => ApiError::NoHistory {
            tail: tail.clone(),
            what,
            feature_set: set.name(),
        },
        other => ApiError::Internal(format!("computing {}: {other}", set.name())),
    })?;
    Ok(Prepared {
        serving,
        values,
        rows: 1,
        context: Context {
            tail: Some(tail),
            state: Some(state_info),
            hypothetical,
        },
    })
}

fn respond(
    output: Output,
    intervals: Option<Vec<Option<Interval>>>,
    context: Context,
) -> Result<Response, ApiError> {
    let Output { predictions, model } = output;
    if let Some(row) = predictions.iter().position(|p| !p.is_finite()) {
        return Err(ApiError::NonFiniteOutput {
            model: model.label(),
            row,
        });
    }
    crate::metrics::record_score_rows(model.name(), predictions.len());
    Ok(json::ok(&ScoreResponse {
        model: model.name(),
        model_version: model.version(),
        model_sha256: &model.sha256,
        feature_set: model.feature_set.name(),
        feature_set_version: model.feature_set.version(),
        predictions: &predictions,
        intervals,
        output: OutputInfo::of(&model),
        tail: context.tail,
        state: context.state,
        hypothetical: context.hypothetical,
        scored_at: Utc::now(),
    }))
}

fn valid_tail(tail: &str) -> bool {
    (2..=16).contains(&tail.len())
        && tail
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}
