//! What scores a model name: the serving version and an optional shadow, as the registry
//! published them. Readers score on the [`ServingSet`] they loaded, so a swap never disturbs a
//! batch in flight.

use std::sync::Arc;

use super::{LoadedModel, ModelError};
use crate::metrics::names;

/// The models scoring one name: the serving one and an optional shadow.
#[derive(Debug, Clone)]
pub struct ServingSet {
    pub serving: Arc<LoadedModel>,
    pub shadow: Option<Arc<LoadedModel>>,
}

/// A scored batch: which model produced the values, and the shadow's opinion if there is one.
#[derive(Debug)]
pub struct ModelScores {
    pub model: Arc<LoadedModel>,
    pub shadow: Option<ShadowScores>,
}

#[derive(Debug)]
pub struct ShadowScores {
    pub model: Arc<LoadedModel>,
    pub result: Result<Vec<f32>, ModelError>,
}

impl ServingSet {
    /// Scores `rows` with the serving model into `out`, then with the shadow (whose outputs
    /// never touch `out`). The mean absolute difference goes to a metric.
    pub fn score(&self, rows: &[f32], out: &mut Vec<f32>) -> Result<ModelScores, ModelError> {
        self.serving.score(rows, out)?;
        let shadow = self.shadow.as_ref().map(|model| {
            let mut values = Vec::with_capacity(out.len());
            let result = model.score(rows, &mut values).map(|()| values);
            if let Ok(values) = &result
                && !values.is_empty()
            {
                let diff: f64 = values
                    .iter()
                    .zip(out.iter())
                    .map(|(s, p)| f64::from((s - p).abs()))
                    .sum::<f64>()
                    / values.len() as f64;
                metrics::histogram!(names::SHADOW_ABS_DIFF, "model" => model.name().to_owned())
                    .record(diff);
            }
            ShadowScores {
                model: Arc::clone(model),
                result,
            }
        });
        Ok(ModelScores {
            model: Arc::clone(&self.serving),
            shadow,
        })
    }

    /// The serving model, then the shadow if there is one.
    pub fn models(&self) -> impl Iterator<Item = &Arc<LoadedModel>> {
        std::iter::once(&self.serving).chain(&self.shadow)
    }

    /// Whether a call now would wait for another thread's (see
    /// [`super::backend::Backend::busy`]).
    pub fn busy(&self) -> bool {
        self.models().any(|model| model.backend.busy())
    }

    /// Whether `self` and `other` are the same choice (same serving and shadow instances).
    pub fn same_as(&self, other: &ServingSet) -> bool {
        Arc::ptr_eq(&self.serving, &other.serving)
            && match (&self.shadow, &other.shadow) {
                (None, None) => true,
                (Some(p), Some(q)) => Arc::ptr_eq(p, q),
                _ => false,
            }
    }
}
