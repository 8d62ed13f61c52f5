//! `POST /score`: score explicit feature rows (by name) or an aircraft's live state, optionally
//! with one event applied hypothetically to a copy of it.
//!
//! Everything goes through the registry (`serving_by_name`, then `ServingSet::score`), so an
//! HTTP prediction comes from exactly the model the streaming path uses at that moment. Rows
//! are parsed straight into the model's feature order (names looked up in a table built once
//! per feature set), without building a map per row.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, TimeZone, Utc};
use fleet_features::{ApplyOutcome, Event, FeatureSet, FeatureSetId, TailState};
use rustc_hash::FxHashMap;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json::{self, JsonBody};
use super::limits::{Permit, blocking};
use super::scorer::{Output, Scorer};
use crate::app::AppContext;
use crate::model::LoadedModel;
use crate::model::registry::ServingSet;

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

/// A `POST /score` body, read in one pass. When `model` comes before `rows` (as clients write
/// it), the rows are parsed straight into the model's feature order while the body is read;
/// otherwise they are kept raw and parsed once the model is known.
struct Wire<'a> {
    model: String,
    /// The serving models of `model`, looked up as soon as it was read (`None`: not serving).
    serving: Option<ServingSet>,
    rows: Option<Rows<'a>>,
    tail: Option<String>,
    event: Option<&'a RawValue>,
    engine: Option<u8>,
}

enum Rows<'a> {
    /// Rows parsed in the model's feature order, row-major.
    Parsed { values: Vec<f32>, count: usize },
    /// More rows than allowed (the count); the rest were skipped unparsed.
    TooMany(usize),
    /// Rows that came before `model`.
    Raw(Vec<&'a RawValue>),
}

const WIRE_FIELDS: &[&str] = &["model", "rows", "tail", "event", "engine"];

/// Reads a [`Wire`]. A row's problem is put in `row_error`, more precise than the serde error
/// that stops the parse.
struct WireSeed<'c> {
    ctx: &'c AppContext,
    row_error: &'c mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Wire<'de>, D::Error> {
        d.deserialize_struct("ScoreRequest", WIRE_FIELDS, self)
    }
}

impl<'de> Visitor<'de> for WireSeed<'_> {
    type Value = Wire<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scoring request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire<'de>, A::Error> {
        let WireSeed { ctx, row_error } = self;
        let mut model: Option<String> = None;
        let mut serving: Option<ServingSet> = None;
        let mut rows: Option<Option<Rows<'de>>> = None;
        let mut tail: Option<Option<String>> = None;
        let mut event: Option<Option<&'de RawValue>> = None;
        let mut engine: Option<Option<u8>> = None;
        while let Some(Key(key)) = map.next_key_seed(KeySeed)? {
            let fresh = match &*key {
                "model" => {
                    let name: String = map.next_value()?;
                    serving = ctx.registry.serving_by_name(&name);
                    model.replace(name).is_none()
                }
                "rows" => {
                    let value = match &serving {
                        Some(s) => map.next_value_seed(RowsSeed {
                            set: s.serving.feature_set,
                            max: ctx.config.http.max_batch_rows,
                            row_error: &mut *row_error,
                        })?,
                        None => map.next_value::<Option<Vec<_>>>()?.map(Rows::Raw),
                    };
                    rows.replace(value).is_none()
                }
                "tail" => tail.replace(map.next_value()?).is_none(),
                "event" => event.replace(map.next_value()?).is_none(),
                "engine" => engine.replace(map.next_value()?).is_none(),
                other => return Err(de::Error::unknown_field(other, WIRE_FIELDS)),
            };
            if !fresh {
                let field = WIRE_FIELDS
                    .iter()
                    .find(|f| **f == key)
                    .expect("matched above");
                return Err(de::Error::duplicate_field(field));
            }
        }
        let model = model.ok_or_else(|| de::Error::missing_field("model"))?;
        Ok(Wire {
            model,
            serving,
            rows: rows.flatten(),
            tail: tail.flatten(),
            event: event.flatten(),
            engine: engine.flatten(),
        })
    }
}

/// Reads `rows` (or `null`) into the feature order of `set`, at most `max` of them.
struct RowsSeed<'c> {
    set: &'static FeatureSet,
    max: usize,
    row_error: &'c mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Option<Rows<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Option<Rows<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let width = self.set.len();
        let mut values = Vec::with_capacity(width);
        let mut count = 0;
        loop {
            if count == self.max {
                let mut total = count;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                if total > self.max {
                    return Ok(Some(Rows::TooMany(total)));
                }
                break;
            }
            let start = values.len();
            values.resize(start + width, 0.0);
            let row = RowSeed {
                set: self.set,
                i: count,
                out: &mut values[start..],
                row_error: &mut *self.row_error,
            };
            if seq.next_element_seed(row)?.is_none() {
                values.truncate(start);
                break;
            }
            count += 1;
        }
        Ok(Some(Rows::Parsed { values, count }))
    }
}

/// Reads row `i` into `out`; what was wrong with it goes to `row_error`.
struct RowSeed<'c> {
    set: &'static FeatureSet,
    i: usize,
    out: &'c mut [f32],
    row_error: &'c mut Option<ApiError>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        read_row(self.set, d, self.i, self.out).map_err(|(problem, e)| {
            *self.row_error = Some(problem);
            e.unwrap_or_else(|| de::Error::custom("invalid row"))
        })
    }
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

/// The freshness of a tail's live state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StateInfo {
    /// Whether this instance holds state for the tail (false: scored from an empty state plus
    /// the hypothetical event).
    pub known: bool,
    pub events_applied: u64,
    /// Event time of the newest event applied.
    pub last_event_time: Option<DateTime<Utc>>,
    /// Wall-clock time the newest event was applied (when streaming).
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Input partition owning the tail (when streaming).
    pub partition: Option<i32>,
    /// Topic, partition and offset of the newest event applied (when streaming).
    pub source: Option<SourceInfo>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceInfo {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl StateInfo {
    pub fn of(entry: Option<&crate::store::TailEntry>) -> Self {
        match entry {
            None => Self {
                known: false,
                events_applied: 0,
                last_event_time: None,
                last_applied_at: None,
                partition: None,
                source: None,
            },
            Some(entry) => Self {
                known: true,
                events_applied: entry.state.events_applied(),
                last_event_time: entry.state.watermark_ms().and_then(millis_to_time),
                last_applied_at: entry.last_applied_at,
                partition: entry.partition,
                source: entry.last_source.as_ref().map(|s| SourceInfo {
                    topic: s.topic.clone(),
                    partition: s.partition,
                    offset: s.offset,
                }),
            },
        }
    }
}

pub fn millis_to_time(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
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
        (status = 503, description = "Overloaded or timed out; retry", body = ErrorBody),
    )
)]
pub async fn score(
    State(ctx): State<Arc<AppContext>>,
    Extension(scorer): Extension<Arc<Scorer>>,
    permit: Option<Extension<Permit>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let permit = permit.map(|p| p.0);
    // A big body is parsed off the async workers; a small one costs less than the hand-off.
    let prepared = if body.len() > INLINE_PARSE_BYTES {
        let ctx = Arc::clone(&ctx);
        blocking(permit.clone(), move || prepare(&ctx, &body)).await?
    } else {
        prepare(&ctx, &body)?
    };
    let Prepared {
        serving,
        values,
        rows,
        context,
    } = prepared;
    let output = scorer
        .score(serving, values, rows, permit)
        .await
        .map_err(ApiError::Scoring)?;
    respond(output, context)
}

/// Bodies up to this size are parsed on the async worker (a one-row body is about 3 KiB).
const INLINE_PARSE_BYTES: usize = 64 * 1024;

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

/// The serving models of `name`, or a 404 that lists what is serving.
pub fn serving(ctx: &AppContext, name: &str) -> Result<ServingSet, ApiError> {
    ctx.registry
        .serving_by_name(name)
        .ok_or_else(|| ApiError::UnknownModel {
            name: name.chars().take(100).collect(),
            serving: ctx
                .registry
                .statuses()
                .into_iter()
                .filter(|s| s.state == "serving")
                .map(|s| s.name)
                .collect(),
        })
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
    let entry = ctx.store.get(&tail);
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

fn respond(output: Output, context: Context) -> Result<Response, ApiError> {
    let Output { predictions, model } = output;
    if let Some(row) = predictions.iter().position(|p| !p.is_finite()) {
        return Err(ApiError::NonFiniteOutput {
            model: format!("{}/{}", model.name(), model.version()),
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

/// Feature name -> position, per feature set (FxHash: the keys are our own names, and a
/// lookup is on the path of every feature of every row).
static INDEX: LazyLock<[FxHashMap<&'static str, usize>; 2]> = LazyLock::new(|| {
    [FeatureSetId::EngineHealth, FeatureSetId::DelayRisk].map(|id| {
        FeatureSet::get(id)
            .names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect()
    })
});

fn index_of(set: &FeatureSet) -> &'static FxHashMap<&'static str, usize> {
    match set.id() {
        FeatureSetId::EngineHealth => &INDEX[0],
        FeatureSetId::DelayRisk => &INDEX[1],
    }
}

/// Parses one row object (`{"T24_mean": 642.1, ...}`) into `out`, in the set's order.
pub fn parse_row(set: &FeatureSet, row: &str, i: usize, out: &mut [f32]) -> Result<(), ApiError> {
    let mut de = serde_json::Deserializer::from_str(row);
    read_row(set, &mut de, i, out).map_err(|(problem, _)| problem)
}

/// Reads one row object from `d` into `out`, in the set's order. On failure, what was wrong
/// with the row, and the deserializer's error when it stopped reading.
fn read_row<'de, D: Deserializer<'de>>(
    set: &FeatureSet,
    d: D,
    i: usize,
    out: &mut [f32],
) -> Result<(), (ApiError, Option<D::Error>)> {
    let mut seen = vec![false; set.len()];
    let mut unknown = Vec::new();
    let mut failed_on: Option<String> = None;
    let mut non_finite: Option<(String, f64)> = None;
    let visitor = RowVisitor {
        index: index_of(set),
        names: set.names(),
        out,
        seen: &mut seen,
        unknown: &mut unknown,
        failed_on: &mut failed_on,
        non_finite: &mut non_finite,
    };
    if let Err(e) = d.deserialize_map(visitor) {
        let problem = ApiError::InvalidRequest {
            message: match &failed_on {
                Some(feature) => format!("row {i}: feature `{feature}`: {e}"),
                None => format!("row {i}: {e}"),
            },
            field: failed_on,
            row: Some(i),
        };
        return Err((problem, Some(e)));
    }
    let missing: Vec<String> = set
        .names()
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|(n, _)| n.clone())
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        let problem = ApiError::FeatureMismatch {
            row: i,
            missing,
            unknown,
        };
        return Err((problem, None));
    }
    if let Some((feature, value)) = non_finite {
        let problem = ApiError::NotFinite {
            row: i,
            feature,
            value,
        };
        return Err((problem, None));
    }
    Ok(())
}

struct RowVisitor<'s> {
    index: &'static FxHashMap<&'static str, usize>,
    /// The set's names in order: clients tend to send them so, and checking the name after the
    /// previous one costs less than a lookup.
    names: &'s [String],
    out: &'s mut [f32],
    seen: &'s mut [bool],
    unknown: &'s mut Vec<String>,
    failed_on: &'s mut Option<String>,
    non_finite: &'s mut Option<(String, f64)>,
}

impl<'de> Visitor<'de> for RowVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of feature name to number")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut next = 0;
        while let Some(Key(key)) = map.next_key_seed(KeySeed)? {
            let expected = self.names.get(next).is_some_and(|name| *name == *key);
            let found = if expected {
                Some(next)
            } else {
                self.index.get(&*key).copied()
            };
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                if self.unknown.len() < 100 {
                    self.unknown.push(key.chars().take(100).collect());
                }
                continue;
            };
            let value: f64 = match map.next_value() {
                Ok(v) => v,
                Err(e) => {
                    *self.failed_on = Some(key.into_owned());
                    return Err(e);
                }
            };
            if self.seen[i] {
                *self.failed_on = Some(key.to_string());
                return Err(de::Error::custom("given twice"));
            }
            self.seen[i] = true;
            next = i + 1;
            let narrowed = value as f32;
            if !narrowed.is_finite() && self.non_finite.is_none() {
                *self.non_finite = Some((key.into_owned(), value));
            }
            self.out[i] = narrowed;
        }
        Ok(())
    }
}

/// A map key, borrowed from the body unless it contains escapes.
struct Key<'de>(Cow<'de, str>);
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key<'de>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a feature name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row_json(set: &FeatureSet, skip: usize, extra: &str) -> String {
        let mut parts: Vec<String> = set
            .names()
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, n)| format!("\"{n}\": {i}.5"))
            .collect();
        if !extra.is_empty() {
            parts.push(extra.to_owned());
        }
        format!("{{{}}}", parts.join(","))
    }

    #[test]
    fn rows_land_in_the_feature_sets_order_whatever_the_json_order() {
        let set = FeatureSet::get(FeatureSetId::DelayRisk);
        let mut names: Vec<&String> = set.names().iter().collect();
        names.reverse();
        let json = format!(
            "{{{}}}",
            names
                .iter()
                .map(|n| format!(
                    "\"{n}\": {}",
                    set.names().iter().position(|m| m == *n).unwrap()
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut out = vec![f32::NAN; set.len()];
        parse_row(set, &json, 0, &mut out).unwrap();
        assert_eq!(out, (0..set.len()).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn missing_unknown_duplicate_and_non_finite_features_are_named() {
        let set = FeatureSet::get(FeatureSetId::DelayRisk);
        let mut out = vec![0.0; set.len()];
        match parse_row(set, &row_json(set, 2, "\"bogus\": 1"), 3, &mut out) {
            Err(ApiError::FeatureMismatch {
                row,
                missing,
                unknown,
            }) => {
                assert_eq!(row, 3);
                assert_eq!(missing, set.names()[..2].to_vec());
                assert_eq!(unknown, ["bogus"]);
            }
            other => panic!("{other:?}"),
        }
        let first = &set.names()[0];
        match parse_row(
            set,
            &row_json(set, 0, &format!("\"{first}\": 2")),
            0,
            &mut out,
        ) {
            Err(ApiError::InvalidRequest { field, .. }) => assert_eq!(field.as_ref(), Some(first)),
            other => panic!("{other:?}"),
        }
        let json = row_json(set, 1, &format!("\"{first}\": \"7\""));
        match parse_row(set, &json, 0, &mut out) {
            Err(ApiError::InvalidRequest { field, message, .. }) => {
                assert_eq!(field.as_ref(), Some(first));
                assert!(message.contains("invalid type"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match parse_row(
            set,
            &row_json(set, 1, &format!("\"{first}\": 1e300")),
            0,
            &mut out,
        ) {
            Err(ApiError::NotFinite { feature, .. }) => assert_eq!(&feature, first),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_row(set, "[1, 2]", 0, &mut out),
            Err(ApiError::InvalidRequest { .. })
        ));
    }
}
