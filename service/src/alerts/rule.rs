//! An alert rule: which number of which model, the thresholds that raise it (one per
//! severity), and the hysteresis margin that clears it.
//!
//! ```toml
//! [[alerts]]
//! name = "engine-remaining-life"
//! model = "engine-rul"
//! on = "prediction"           # or "lower" / "upper": a bound of the model's interval
//! direction = "below"          # the alert holds while the value is below a threshold
//! hysteresis = 5.0             # cleared once the value is back above the lowest level + 5
//! levels = [
//!   { severity = "warning", threshold = 60.0 },
//!   { severity = "critical", threshold = 30.0 },
//! ]
//!
//! [[alerts]]                   # a model's drift (`crate::drift`), not an aircraft's number
//! name = "engine-rul-drift"
//! model = "engine-rul"
//! on = "drift"                 # the worst PSI of a non-excluded feature of the model's window
//! measure = "psi"              # or "js" (drift rules only; default psi)
//! direction = "above"          # drift rules hold above their thresholds
//! hysteresis = 0.05
//! levels = [
//!   { severity = "warning", threshold = 0.1 },
//!   { severity = "critical", threshold = 0.25 },
//! ]
//! ```

use serde::{Deserialize, Serialize};

use crate::drift::Measure;

/// How urgent an alert is; ordered (`Info < Warning < Critical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The severity named `name` (`info`, `warning`, `critical`), as in the config file.
    pub fn parse(name: &str) -> Option<Self> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which side of a threshold the alert holds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Holds while the value is below the threshold (remaining life).
    Below,
    /// Holds while the value is above the threshold (a risk, an anomaly score).
    Above,
}

/// Which number of a prediction a rule watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// The model's value.
    #[default]
    Prediction,
    /// The lower bound of its interval (`model::interval`): e.g. "the 10th percentile of
    /// remaining life below 30 cycles". A prediction without an interval is skipped.
    Lower,
    /// The upper bound of its interval.
    Upper,
    /// Not a prediction: the drift of the model's live rows from its reference profile, at
    /// each evaluation of its window (the worst `measure` over the features not excluded).
    /// Such a rule's episode belongs to the model (one per instance), not to an aircraft.
    Drift,
}

/// One severity's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub severity: Severity,
    pub threshold: f32,
}

/// A rule as written in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub model: String,
    /// The number watched: `prediction` (default), `lower`, `upper` or `drift`.
    #[serde(default)]
    pub on: On,
    /// The drift measure a `drift` rule watches: `psi` (default) or `js`.
    #[serde(default)]
    pub measure: Option<Measure>,
    pub direction: Direction,
    #[serde(default)]
    pub hysteresis: f32,
    pub levels: Vec<Level>,
}

impl AlertRule {
    /// A validated rule on a model's prediction (`levels`: severity and threshold each).
    pub fn new(
        name: &str,
        model: &str,
        direction: Direction,
        hysteresis: f32,
        levels: &[(Severity, f32)],
    ) -> Result<Self, String> {
        AlertRule {
            name: name.to_owned(),
            model: model.to_owned(),
            on: On::Prediction,
            measure: None,
            direction,
            hysteresis,
            levels: levels
                .iter()
                .map(|&(severity, threshold)| Level {
                    severity,
                    threshold,
                })
                .collect(),
        }
        .validate()
    }

    /// Checks what the config file cannot express: a name and a model, finite numbers, a
    /// non-negative margin, at least one level, each severity once, and thresholds that get
    /// stricter with severity (for `below`, a critical threshold under the warning one).
    /// Sorts the levels by severity.
    pub fn validate(mut self) -> Result<Self, String> {
        let at = |what: &str| format!("alert rule `{}`: {what}", self.name);
        if self.name.trim().is_empty() {
            return Err("alert rule: `name` is empty".to_owned());
        }
        if self.model.trim().is_empty() {
            return Err(at("`model` is empty"));
        }
        if !self.hysteresis.is_finite() || self.hysteresis < 0.0 {
            return Err(at("`hysteresis` must be a finite number ≥ 0"));
        }
        if self.levels.is_empty() {
            return Err(at("no `levels`"));
        }
        if self.on == On::Drift && self.direction != Direction::Above {
            return Err(at("a `drift` rule holds `above` its thresholds"));
        }
        if self.on != On::Drift && self.measure.is_some() {
            return Err(at("`measure` belongs to `on = \"drift\"` rules"));
        }
        if self.levels.iter().any(|l| !l.threshold.is_finite()) {
            return Err(at("a level's `threshold` is not a finite number"));
        }
        self.levels.sort_by_key(|l| l.severity);
        for pair in self.levels.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            if lower.severity == higher.severity {
                return Err(at(&format!(
                    "severity `{}` appears twice",
                    lower.severity.as_str()
                )));
            }
            let stricter = match self.direction {
                Direction::Below => higher.threshold < lower.threshold,
                Direction::Above => higher.threshold > lower.threshold,
            };
            if !stricter {
                return Err(at(&format!(
                    "the `{}` threshold must be {} the `{}` one",
                    higher.severity.as_str(),
                    match self.direction {
                        Direction::Below => "below",
                        Direction::Above => "above",
                    },
                    lower.severity.as_str()
                )));
            }
        }
        Ok(self)
    }

    /// The measure a `drift` rule watches.
    pub fn measure(&self) -> Measure {
        self.measure.unwrap_or_default()
    }

    /// The most severe level whose threshold `value` crosses, if any.
    pub fn level(&self, value: f32) -> Option<Severity> {
        self.levels
            .iter()
            .rev()
            .find(|l| self.crosses(value, l.threshold))
            .map(|l| l.severity)
    }

    /// Whether `value` is back beyond the least severe threshold by the margin: an open
    /// episode clears.
    pub fn clears(&self, value: f32) -> bool {
        match self.direction {
            Direction::Below => value >= self.clear_threshold(),
            Direction::Above => value <= self.clear_threshold(),
        }
    }

    /// The value at which an open episode clears: the least severe threshold moved away by the
    /// hysteresis margin.
    pub fn clear_threshold(&self) -> f32 {
        let first = self.levels[0].threshold;
        match self.direction {
            Direction::Below => first + self.hysteresis,
            Direction::Above => first - self.hysteresis,
        }
    }

    /// The threshold of `severity`'s level (`None`: the rule has no such level).
    pub fn threshold(&self, severity: Severity) -> Option<f32> {
        self.levels
            .iter()
            .find(|l| l.severity == severity)
            .map(|l| l.threshold)
    }

    fn crosses(&self, value: f32, threshold: f32) -> bool {
        match self.direction {
            Direction::Below => value < threshold,
            Direction::Above => value > threshold,
        }
    }
}

/// The rules the service runs when the config file has no `[[alerts]]` (an empty
/// `alerts = []` runs none), for the shipped models; the numbers and how they were chosen are
/// in the README ("Alerts"):
///
/// - `engine-remaining-life` on `engine-rul`: warning below 50 cycles, critical below 20,
///   cleared above 60 (grouped cross-validation over the training engines: every engine warned
///   before failure, a median 50 cycles ahead, 0.41 false alerts per 1,000 engine-cycles);
/// - `engine-anomaly` on `engine-anomaly`: warning above 4.133 (the 99 % quantile of
///   out-of-fold healthy scores), cleared below 2.164 (their 95 %);
/// - `delay-risk-high` on `delay-risk`: warning above 0.5 (a flight more likely late than
///   not), cleared below 0.4.
pub fn defaults() -> Vec<AlertRule> {
    let rule = |name, model, direction, hysteresis, levels: &[(Severity, f32)]| {
        AlertRule::new(name, model, direction, hysteresis, levels)
            .expect("the default rules are valid")
    };
    vec![
        rule(
            "engine-remaining-life",
            "engine-rul",
            Direction::Below,
            10.0,
            &[(Severity::Warning, 50.0), (Severity::Critical, 20.0)],
        ),
        rule(
            "engine-anomaly",
            "engine-anomaly",
            Direction::Above,
            4.133 - 2.164,
            &[(Severity::Warning, 4.133)],
        ),
        rule(
            "delay-risk-high",
            "delay-risk",
            Direction::Above,
            0.1,
            &[(Severity::Warning, 0.5)],
        ),
    ]
}

/// Checks a set of rules: each valid ([`AlertRule::validate`]) and each name once (episodes
/// are kept by rule name).
pub fn validate_all(rules: Vec<AlertRule>) -> Result<Vec<AlertRule>, String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut valid = Vec::with_capacity(rules.len());
    for rule in rules {
        let rule = rule.validate()?;
        if !seen.insert(rule.name.clone()) {
            return Err(format!("alert rule `{}` appears twice", rule.name));
        }
        valid.push(rule);
    }
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remaining_life() -> AlertRule {
        toml::from_str::<AlertRule>(
            r#"
            name = "engine-remaining-life"
            model = "engine-rul"
            direction = "below"
            hysteresis = 5.0
            levels = [
              { severity = "critical", threshold = 30.0 },
              { severity = "warning", threshold = 60.0 },
            ]
            "#,
        )
        .unwrap()
        .validate()
        .unwrap()
    }

    #[test]
    fn levels_are_sorted_and_the_most_severe_crossed_one_wins() {
        let rule = remaining_life();
        assert_eq!(rule.levels[0].severity, Severity::Warning);
        assert_eq!(rule.level(70.0), None);
        assert_eq!(rule.level(59.9), Some(Severity::Warning));
        assert_eq!(rule.level(10.0), Some(Severity::Critical));
        // Clears only past the warning threshold plus the margin.
        assert!(!rule.clears(62.0));
        assert!(rule.clears(65.0));
    }

    #[test]
    fn nonsense_rules_are_refused_naming_the_problem() {
        let base = remaining_life();
        let mut twice = base.clone();
        twice.levels[1].severity = Severity::Warning;
        assert!(twice.validate().unwrap_err().contains("appears twice"));
        let mut backwards = base.clone();
        backwards.levels[1].threshold = 90.0; // critical above warning, for `below`
        assert!(
            backwards
                .validate()
                .unwrap_err()
                .contains("`critical` threshold must be below")
        );
        let mut margin = base.clone();
        margin.hysteresis = -1.0;
        assert!(margin.validate().unwrap_err().contains("hysteresis"));
        let mut empty = base.clone();
        empty.levels.clear();
        assert!(empty.validate().unwrap_err().contains("no `levels`"));
        let mut measure = base.clone();
        measure.measure = Some(Measure::Js);
        assert!(
            measure
                .validate()
                .unwrap_err()
                .contains("`measure` belongs")
        );
        let mut below = base;
        below.on = On::Drift;
        assert!(below.validate().unwrap_err().contains("`above`"));
    }

    #[test]
    fn a_drift_rule_parses_with_its_measure() {
        let rule: AlertRule = toml::from_str(
            r#"
            name = "rul-drift"
            model = "engine-rul"
            on = "drift"
            measure = "js"
            direction = "above"
            hysteresis = 0.05
            levels = [{ severity = "warning", threshold = 0.1 }]
            "#,
        )
        .unwrap();
        let rule = rule.validate().unwrap();
        assert_eq!((rule.on, rule.measure()), (On::Drift, Measure::Js));
        assert_eq!(rule.level(0.15), Some(Severity::Warning));
        assert!(rule.clears(0.05) && !rule.clears(0.06));
        let err = toml::from_str::<AlertRule>(
            "name = \"x\"\nmodel = \"m\"\non = \"drift\"\nmeasure = \"kl\"\n\
             direction = \"above\"\nlevels = []\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("psi"), "{err}");
    }
}
