//! The alert record: what fleet planners read from `fleet.alerts.v1` (keyed by tail), and what
//! `fleetscore replay --alerts` writes, field for field.
//!
//! A drift alert (`on = "drift"`) concerns a model, not an aircraft: its `tail` is empty and
//! `subject` says `model:<name>` (also its record key); `measure`, `feature` (the worst one)
//! and `window_rows` say what was measured. These fields are absent from every other alert,
//! whose records are exactly what they were before drift alerts existed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::episode::{Episode, Transition};
use super::rule::{AlertRule, Direction, On, Severity};
use crate::drift::{Evaluation, Measure};
use crate::prediction::Prediction;

pub const ALERT_SCHEMA: &str = "fleet.alert.v1";

/// One change of an aircraft's episode under a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertEvent {
    /// Always [`ALERT_SCHEMA`].
    pub schema: String,
    pub tail: String,
    pub rule: String,
    /// `raised`, `escalated` or `cleared`.
    pub kind: String,
    /// The episode's severity after this event (the one it had, for `cleared`).
    pub severity: Severity,
    /// The severity before an escalation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub previous_severity: Option<Severity>,
    pub direction: Direction,
    /// Which number of the prediction the rule watches.
    pub on: On,
    /// The rule's number from the prediction that triggered this event.
    pub value: f32,
    /// The threshold it crossed (`raised`, `escalated`), or the clearing threshold (`cleared`).
    pub threshold: f32,
    /// When and by which event the episode was raised.
    pub episode_raised_at: DateTime<Utc>,
    pub episode_raised_by: String,
    /// The prediction that triggered this event, and its model.
    pub source_event_id: String,
    pub event_time: DateTime<Utc>,
    pub model: String,
    pub model_version: String,
    pub model_sha256: String,
    pub feature_set: String,
    pub feature_set_version: String,
    /// Drift alerts: what the episode is about, `model:<name>` (`tail` is empty).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// Drift alerts: the measure watched, the feature worst by it (whose value is `value`),
    /// and the rows of the window measured.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub measure: Option<Measure>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub feature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub window_rows: Option<u64>,
}

/// The subject of a model's drift alerts (and their record key).
pub fn drift_subject(model: &str) -> String {
    format!("model:{model}")
}

/// The threshold crossed by a transition (the clearing one for `cleared`), and the severity
/// before an escalation.
fn threshold_of(rule: &AlertRule, transition: Transition) -> (Option<Severity>, f32) {
    let (previous, threshold) = match transition {
        Transition::Raised(s) => (None, rule.threshold(s)),
        Transition::Escalated { from, to } => (Some(from), rule.threshold(to)),
        Transition::Cleared(_) => (None, Some(rule.clear_threshold())),
    };
    (
        previous,
        threshold.expect("a transition's severity is one of its rule's levels"),
    )
}

/// What caused an alert event: its source event and the model version that scored it.
struct Cause<'a> {
    tail: &'a str,
    event_id: &'a str,
    event_time: DateTime<Utc>,
    model: &'a str,
    model_version: &'a str,
    model_sha256: &'a str,
    feature_set: &'a str,
    feature_set_version: &'a str,
}

impl AlertEvent {
    /// The record of `transition`, caused by `prediction` under `rule`; `episode`: the episode
    /// it concerns (still open, or just cleared).
    pub fn new(
        rule: &AlertRule,
        transition: Transition,
        episode: &Episode,
        prediction: &Prediction,
        value: f32,
    ) -> Self {
        let cause = Cause {
            tail: &prediction.tail,
            event_id: &prediction.source_event_id,
            event_time: prediction.event_time,
            model: &prediction.model,
            model_version: &prediction.model_version,
            model_sha256: &prediction.model_sha256,
            feature_set: &prediction.feature_set,
            feature_set_version: &prediction.feature_set_version,
        };
        Self::caused(rule, transition, episode, value, &cause)
    }

    /// The record of `transition` of a model's drift episode under a `drift` rule, caused by
    /// `evaluation` (the row that completed it is the source event); `value` is the worst
    /// `feature`'s measure.
    pub fn drift(
        rule: &AlertRule,
        transition: Transition,
        episode: &Episode,
        evaluation: &Evaluation,
        value: f32,
        feature: &str,
    ) -> Self {
        let cause = Cause {
            tail: "",
            event_id: &evaluation.event_id,
            event_time: evaluation.event_time,
            model: &evaluation.model,
            model_version: &evaluation.version,
            model_sha256: &evaluation.sha256,
            feature_set: &evaluation.feature_set,
            feature_set_version: &evaluation.feature_set_version,
        };
        Self {
            subject: Some(drift_subject(&evaluation.model)),
            measure: Some(rule.measure()),
            feature: Some(feature.to_owned()),
            window_rows: Some(evaluation.report.rows),
            ..Self::caused(rule, transition, episode, value, &cause)
        }
    }

    /// The record of `transition` under `rule` of `episode` (still open, or just cleared),
    /// caused by `cause`, with none of the drift fields.
    fn caused(
        rule: &AlertRule,
        transition: Transition,
        episode: &Episode,
        value: f32,
        cause: &Cause<'_>,
    ) -> Self {
        let (previous_severity, threshold) = threshold_of(rule, transition);
        Self {
            schema: ALERT_SCHEMA.to_owned(),
            tail: cause.tail.to_owned(),
            rule: rule.name.clone(),
            kind: transition.kind().to_owned(),
            severity: transition.severity(),
            previous_severity,
            direction: rule.direction,
            on: rule.on,
            value,
            threshold,
            episode_raised_at: episode.raised_at,
            episode_raised_by: episode.raised_by.clone(),
            source_event_id: cause.event_id.to_owned(),
            event_time: cause.event_time,
            model: cause.model.to_owned(),
            model_version: cause.model_version.to_owned(),
            model_sha256: cause.model_sha256.to_owned(),
            feature_set: cause.feature_set.to_owned(),
            feature_set_version: cause.feature_set_version.to_owned(),
            subject: None,
            measure: None,
            feature: None,
            window_rows: None,
        }
    }

    /// The record's key: the tail, or a drift alert's subject.
    pub fn key(&self) -> &str {
        self.subject.as_deref().unwrap_or(&self.tail)
    }
}
