//! `GET /tails/{tail}`: what this instance knows about an aircraft — how fresh its state is,
//! the feature vectors the models would see now, its latest predictions and open alerts.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use fleet_features::FeatureSet;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::json;
use super::path::PathParam;
use crate::alerts::listing::{OpenAlert, open_of};
use crate::alerts::rule::AlertRule;
use crate::app::AppContext;
use crate::model::interval::Interval;
use crate::prediction::Prediction;
use crate::store::state_info::StateInfo;
use crate::store::{Lookup, TailEntry};

#[derive(Debug, Serialize, ToSchema)]
pub struct TailSummary {
    pub tail: String,
    pub state: StateInfo,
    /// Bytes the state occupies in memory.
    pub state_bytes: usize,
    /// The current vector of each feature set, or why there is none yet.
    pub features: Vec<FeatureValues>,
    /// The latest prediction per model (written by the streaming path).
    pub predictions: Vec<LatestPrediction>,
    /// The tail's open alert episodes, most severe first (`GET /alerts` lists every tail's).
    pub alerts: Vec<OpenAlert>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureValues {
    pub feature_set: String,
    pub feature_set_version: String,
    /// Feature name to value (null if not finite); absent when `unavailable` says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, Option<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// A prediction record (`fleet.prediction.v1`) as the streaming path published it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestPrediction {
    pub feature_set: String,
    pub feature_set_version: String,
    pub model: String,
    pub model_version: String,
    pub model_sha256: String,
    pub prediction: f32,
    /// The prediction interval, for a model that has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    pub source_event_id: String,
    pub event_time: DateTime<Utc>,
    pub scored_at: DateTime<Utc>,
}

impl From<&Prediction> for LatestPrediction {
    fn from(p: &Prediction) -> Self {
        Self {
            feature_set: p.feature_set.to_string(),
            feature_set_version: p.feature_set_version.to_string(),
            model: p.model.to_string(),
            model_version: p.model_version.to_string(),
            model_sha256: p.model_sha256.to_string(),
            prediction: p.prediction,
            interval: p.interval.clone(),
            source_event_id: p.source_event_id.clone(),
            event_time: p.event_time,
            scored_at: p.scored_at,
        }
    }
}

#[utoipa::path(get, path = "/tails/{tail}", tag = "fleet",
    params(("tail" = String, Path, description = "Tail number", example = "N14228")),
    responses(
        (status = 200, description = "State summary and latest predictions", body = TailSummary),
        (status = 404, description = "This instance holds no state for the tail", body = ErrorBody),
        (status = 503, description = "The tail's state is being restored from the changelog (`restoring`, with Retry-After)", body = ErrorBody),
    ))]
pub async fn tail(
    State(ctx): State<Arc<AppContext>>,
    PathParam(tail): PathParam,
) -> Result<Response, ApiError> {
    let entry = match ctx.store.lookup(&tail) {
        Lookup::Found(entry) => *entry,
        Lookup::Restoring => return Err(ApiError::Restoring(tail.chars().take(100).collect())),
        Lookup::Unknown => return Err(ApiError::UnknownTail(tail.chars().take(100).collect())),
    };
    Ok(json::ok(&summary(tail, &entry, &ctx.config.alerts)))
}

fn summary(tail: String, entry: &TailEntry, rules: &[AlertRule]) -> TailSummary {
    let mut scratch = Vec::new();
    let features = FeatureSet::all()
        .map(|set| {
            let (values, unavailable) = match set.compute(&entry.state, &mut scratch) {
                Ok(()) => (
                    Some(
                        set.names()
                            .iter()
                            .zip(&scratch)
                            .map(|(n, v)| (n.clone(), v.is_finite().then_some(*v)))
                            .collect(),
                    ),
                    None,
                ),
                Err(e) => (None, Some(e.to_string())),
            };
            FeatureValues {
                feature_set: set.name().to_owned(),
                feature_set_version: set.version().to_owned(),
                values,
                unavailable,
            }
        })
        .collect();
    TailSummary {
        state: StateInfo::of(Some(entry)),
        state_bytes: entry.state.memory_bytes(),
        features,
        predictions: entry.predictions.iter().map(Into::into).collect(),
        alerts: open_of(rules, &tail, entry),
        tail,
    }
}
