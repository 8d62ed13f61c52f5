//! What [`super::BinCounts::report`] says: per input feature and for the output, both
//! measures and the level, worst first.

use serde::Serialize;

use super::measure::{Level, Thresholds};

/// The drift of one entry (an input feature or the output).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EntryDrift {
    pub name: String,
    /// Population stability index.
    pub psi: f64,
    /// Jensen-Shannon distance, base 2.
    pub js: f64,
    /// The worse of the two measures' levels.
    pub level: Level,
    /// Share of the live rows whose value is NaN or infinite.
    pub missing: f64,
    /// The same share in the reference.
    pub reference_missing: f64,
    /// Share of the live rows below the reference's minimum / above its maximum.
    pub below_min: f64,
    pub above_max: f64,
}

/// The drift of a batch (or window) of live rows against a model's profile.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    /// Live rows measured.
    pub rows: u64,
    /// Rows of the reference profile.
    pub reference_rows: u64,
    pub thresholds: Thresholds,
    /// The worst level over the input features.
    pub level: Level,
    /// Every input feature, worst first (level, then PSI, then JS, then name).
    pub features: Vec<EntryDrift>,
    /// The model's output.
    pub output: EntryDrift,
}

impl DriftReport {
    pub(super) fn new(
        rows: u64,
        reference_rows: u64,
        thresholds: Thresholds,
        mut features: Vec<EntryDrift>,
        output: EntryDrift,
    ) -> Self {
        features.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then(b.psi.total_cmp(&a.psi))
                .then(b.js.total_cmp(&a.js))
                .then_with(|| a.name.cmp(&b.name))
        });
        let level = features.first().map_or(Level::Ok, |f| f.level);
        DriftReport {
            rows,
            reference_rows,
            thresholds,
            level,
            features,
            output,
        }
    }

    /// The input features at `level` or worse, worst first.
    pub fn at_least(&self, level: Level) -> impl Iterator<Item = &EntryDrift> {
        self.features.iter().take_while(move |f| f.level >= level)
    }

    /// The worst PSI over the input features (what an alert rule would watch).
    pub fn worst_psi(&self) -> f64 {
        self.features.iter().map(|f| f.psi).fold(0.0, f64::max)
    }
}
