//! The alert record: what fleet planners read from `fleet.alerts.v1` (keyed by tail), and what
//! `fleetscore replay --alerts` writes, field for field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::episode::{Episode, Transition};
use super::rule::{AlertRule, Direction, On, Severity};
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
        let (previous_severity, threshold) = match transition {
            Transition::Raised(s) => (None, rule.threshold(s)),
            Transition::Escalated { from, to } => (Some(from), rule.threshold(to)),
            Transition::Cleared(_) => (None, Some(rule.clear_threshold())),
        };
        Self {
            schema: ALERT_SCHEMA.to_owned(),
            tail: prediction.tail.clone(),
            rule: rule.name.clone(),
            kind: transition.kind().to_owned(),
            severity: transition.severity(),
            previous_severity,
            direction: rule.direction,
            on: rule.on,
            value,
            threshold: threshold.expect("a transition's severity is one of its rule's levels"),
            episode_raised_at: episode.raised_at,
            episode_raised_by: episode.raised_by.clone(),
            source_event_id: prediction.source_event_id.clone(),
            event_time: prediction.event_time,
            model: prediction.model.clone(),
            model_version: prediction.model_version.clone(),
            model_sha256: prediction.model_sha256.clone(),
            feature_set: prediction.feature_set.clone(),
            feature_set_version: prediction.feature_set_version.clone(),
        }
    }
}
