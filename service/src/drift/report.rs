//! What [`super::BinCounts::report`] says: per input feature and for the output, both
//! measures and the level, worst first.

use serde::Serialize;

use super::measure::{Level, Measure, Thresholds};

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
    /// Reported but not monitored (`[drift] exclude`): it never counts towards the report's
    /// level nor raises a drift alert.
    pub excluded: bool,
}

impl EntryDrift {
    /// The value of `measure`.
    pub fn value(&self, measure: Measure) -> f64 {
        match measure {
            Measure::Psi => self.psi,
            Measure::Js => self.js,
        }
    }
}

/// The drift of a batch (or window) of live rows against a model's profile.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    /// Live rows measured.
    pub rows: u64,
    /// Rows of the reference profile.
    pub reference_rows: u64,
    pub thresholds: Thresholds,
    /// The worst level over the input features that are not excluded.
    pub level: Level,
    /// Every input feature, worst first (level, then PSI, then JS, then name); the excluded
    /// ones after the others, in the same order.
    pub features: Vec<EntryDrift>,
    /// The model's output.
    pub output: EntryDrift,
}

impl DriftReport {
    pub(super) fn new(
        rows: u64,
        reference_rows: u64,
        thresholds: Thresholds,
        features: Vec<EntryDrift>,
        output: EntryDrift,
    ) -> Self {
        let mut report = DriftReport {
            rows,
            reference_rows,
            thresholds,
            level: Level::Ok,
            features,
            output,
        };
        report.order();
        report
    }

    /// Sorts the features worst first, the excluded ones last, and sets the level.
    fn order(&mut self) {
        self.features.sort_by(|a, b| {
            a.excluded
                .cmp(&b.excluded)
                .then(b.level.cmp(&a.level))
                .then(b.psi.total_cmp(&a.psi))
                .then(b.js.total_cmp(&a.js))
                .then_with(|| a.name.cmp(&b.name))
        });
        self.level = self
            .features
            .first()
            .filter(|f| !f.excluded)
            .map_or(Level::Ok, |f| f.level);
    }

    /// Marks the features named in `names` excluded (reported, never counted towards the
    /// level nor alerting) and orders the report again.
    pub fn exclude(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        for f in &mut self.features {
            f.excluded = names.contains(&f.name);
        }
        self.order();
    }

    /// The input features at `level` or worse, worst first (excluded ones not included).
    pub fn at_least(&self, level: Level) -> impl Iterator<Item = &EntryDrift> {
        self.features
            .iter()
            .take_while(move |f| !f.excluded && f.level >= level)
    }

    /// The worst PSI over the input features that are not excluded.
    pub fn worst_psi(&self) -> f64 {
        self.worst(Measure::Psi).map_or(0.0, |f| f.psi)
    }

    /// The feature (not excluded) with the greatest `measure`, the first in report order on
    /// a tie; `None` when every feature is excluded. What a drift alert rule watches.
    pub fn worst(&self, measure: Measure) -> Option<&EntryDrift> {
        self.features
            .iter()
            .filter(|f| !f.excluded)
            .reduce(|worst, f| {
                if f.value(measure) > worst.value(measure) {
                    f
                } else {
                    worst
                }
            })
    }
}
