//! The prediction record: what fleet planners read from `fleet.predictions.v1`, and what
//! `fleetscore replay` writes, field for field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::interval::Interval;

mod json;

pub const PREDICTION_SCHEMA: &str = "fleet.prediction.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prediction {
    /// Always [`PREDICTION_SCHEMA`].
    pub schema: String,
    pub tail: String,
    /// The event that was scored.
    pub source_event_id: String,
    pub event_time: DateTime<Utc>,
    pub model: String,
    pub model_version: String,
    /// SHA-256 of the model file that produced the value.
    pub model_sha256: String,
    pub feature_set: String,
    pub feature_set_version: String,
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
