//! Prediction intervals from quantile models: a model's interval comes from two other models
//! of the registry (`engine-rul` ← `engine-rul-p10`, `engine-rul-p90`: LightGBM with the
//! quantile objective, trained on the same features), scored on the same rows. Each bound
//! model is an ordinary package (validated, hot-swapped, pinned and rolled back on its own);
//! a prediction whose bound models are not both serving, or give a non-finite value, has no
//! interval.
//!
//! The bounds are fixed up around the point: `lower = min(lower, point)`,
//! `upper = max(upper, point)`, so `lower ≤ point ≤ upper` always holds (quantile models
//! trained apart can cross the point model; on the training engines 8.1 % of rows needed it,
//! `training/reports/engine-rul-interval-1/`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ServingSet;
use super::package::LoadedModel;

/// Which models give a model's interval, and its nominal coverage.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalSpec {
    /// The model of the lower bound (e.g. the 10 % quantile).
    pub lower: String,
    /// The model of the upper bound (e.g. the 90 % quantile).
    pub upper: String,
    /// The share of outcomes the interval should hold (0.8 for 10 %-90 %).
    pub level: f32,
}

/// The intervals unless `[models.intervals]` says otherwise: `engine-rul`'s 80 % interval.
pub fn default_intervals() -> BTreeMap<String, IntervalSpec> {
    BTreeMap::from([(
        "engine-rul".to_owned(),
        IntervalSpec {
            lower: "engine-rul-p10".to_owned(),
            upper: "engine-rul-p90".to_owned(),
            level: 0.8,
        },
    )])
}

/// A prediction's interval, with the model versions of its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Interval {
    /// Nominal coverage (0.8: the outcome should fall inside 80 % of the time).
    pub level: f32,
    pub lower: f32,
    pub upper: f32,
    /// `name/version` of the bound models.
    pub lower_model: String,
    pub upper_model: String,
}

impl Interval {
    /// The interval around `point` from the bound models' values, fixed up to hold the point;
    /// `None` if a value is not finite.
    pub fn around(
        point: f32,
        lower: f32,
        upper: f32,
        level: f32,
        models: &(std::sync::Arc<LoadedModel>, std::sync::Arc<LoadedModel>),
    ) -> Option<Self> {
        if !(point.is_finite() && lower.is_finite() && upper.is_finite()) {
            return None;
        }
        Some(Self {
            level,
            lower: lower.min(point),
            upper: upper.max(point),
            lower_model: models.0.label(),
            upper_model: models.1.label(),
        })
    }
}

/// The bound models of an interval as the registry serves them now.
#[derive(Debug, Clone)]
pub struct IntervalModels {
    pub level: f32,
    pub lower: ServingSet,
    pub upper: ServingSet,
}

impl IntervalModels {
    /// Scores `rows` with both bound models into `lower` and `upper`; the models that did.
    pub fn score(
        &self,
        rows: &[f32],
        lower: &mut Vec<f32>,
        upper: &mut Vec<f32>,
    ) -> Result<(std::sync::Arc<LoadedModel>, std::sync::Arc<LoadedModel>), super::ModelError> {
        let l = self.lower.score(rows, lower)?;
        let u = self.upper.score(rows, upper)?;
        Ok((l.model, u.model))
    }
}
