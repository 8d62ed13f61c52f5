//! The prediction record: what fleet planners read from `fleet.predictions.v1`, and what
//! `fleetscore replay` writes, field for field.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::interval::Interval;

mod json;

pub const PREDICTION_SCHEMA: &str = "fleet.prediction.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    // The fields every prediction of a model shares are `Arc<str>`: one string per batch, not
    // one per record (allocated on the scoring thread, freed on the output thread).
    /// Always [`PREDICTION_SCHEMA`].
    pub schema: Arc<str>,
    pub tail: String,
    /// The event that was scored.
    pub source_event_id: String,
    pub event_time: DateTime<Utc>,
    pub model: Arc<str>,
    pub model_version: Arc<str>,
    /// SHA-256 of the model file that produced the value.
    pub model_sha256: Arc<str>,
    pub feature_set: Arc<str>,
    pub feature_set_version: Arc<str>,
    /// The model's output (see the model's manifest for its meaning and unit).
    pub prediction: f32,
    /// The prediction interval, for a model that has one (`model::interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    pub scored_at: DateTime<Utc>,
}

impl Prediction {
    /// The record as one line of JSON (no trailing newline), exactly as serde writes it.
    pub fn to_json(&self) -> Vec<u8> {
        json::encode(self)
    }
}
