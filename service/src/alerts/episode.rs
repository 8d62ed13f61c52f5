//! Alert episodes: one per aircraft and rule while the rule holds, never one alert per cycle.
//!
//! An episode is **raised** when a prediction first crosses one of the rule's thresholds,
//! **escalated** when a later one crosses a more severe threshold, and **cleared** when one is
//! back beyond the least severe threshold by the rule's hysteresis margin. In between nothing
//! is emitted: a value oscillating around a threshold raises once and clears once, and a value
//! that falls back to a milder level keeps the episode at the severity it reached (planners
//! act on the worst seen until it is over).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rule::{AlertRule, Severity};

/// An open episode of one aircraft under one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Episode {
    pub severity: Severity,
    /// Event time of the prediction that raised it.
    pub raised_at: DateTime<Utc>,
    /// The event whose prediction raised it.
    pub raised_by: String,
}

/// What a prediction did to an aircraft's episode under a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raised(Severity),
    Escalated { from: Severity, to: Severity },
    Cleared(Severity),
}

impl Transition {
    /// The alert event's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Transition::Raised(_) => "raised",
            Transition::Escalated { .. } => "escalated",
            Transition::Cleared(_) => "cleared",
        }
    }

    /// The episode's severity after the transition (the one it had, when cleared).
    pub fn severity(self) -> Severity {
        match self {
            Transition::Raised(s) | Transition::Cleared(s) => s,
            Transition::Escalated { to, .. } => to,
        }
    }
}

/// Advances the aircraft's episode under `rule` (`open`: `None` when there is none) with the
/// rule's number from a new prediction (`value`, of the event `event_id` at `at`).
/// Non-finite values change nothing (the pipeline never publishes them).
pub fn step(
    rule: &AlertRule,
    open: &mut Option<Episode>,
    value: f32,
    at: DateTime<Utc>,
    event_id: &str,
) -> Option<Transition> {
    if !value.is_finite() {
        return None;
    }
    let level = rule.level(value);
    match open {
        None => {
            let severity = level?;
            *open = Some(Episode {
                severity,
                raised_at: at,
                raised_by: event_id.to_owned(),
            });
            Some(Transition::Raised(severity))
        }
        Some(episode) => match level {
            Some(to) if to > episode.severity => {
                let from = std::mem::replace(&mut episode.severity, to);
                Some(Transition::Escalated { from, to })
            }
            _ if rule.clears(value) => {
                let severity = episode.severity;
                *open = None;
                Some(Transition::Cleared(severity))
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rule::Direction;

    fn rule(direction: Direction, levels: &[(Severity, f32)], hysteresis: f32) -> AlertRule {
        AlertRule::new("r", "m", direction, hysteresis, levels).unwrap()
    }

    /// The transitions of a series of values, by index.
    fn run(rule: &AlertRule, values: &[f32]) -> Vec<(usize, Transition)> {
        let mut open = None;
        values
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| {
                step(rule, &mut open, v, Utc::now(), &format!("e{i}")).map(|t| (i, t))
            })
            .collect()
    }

    #[test]
    fn a_value_oscillating_around_the_threshold_raises_once_and_clears_once() {
        let r = rule(Direction::Below, &[(Severity::Warning, 30.0)], 5.0);
        // Down through 30, jittering between 28 and 33 (inside the margin), then well clear.
        let series = [
            40.0, 31.0, 29.5, 30.5, 28.0, 33.0, 29.0, 34.9, 31.0, 35.0, 36.0, 29.0,
        ];
        assert_eq!(
            run(&r, &series),
            vec![
                (2, Transition::Raised(Severity::Warning)),
                (9, Transition::Cleared(Severity::Warning)),
                (11, Transition::Raised(Severity::Warning)),
            ]
        );
    }

    #[test]
    fn a_more_severe_level_escalates_and_a_milder_one_keeps_the_worst() {
        let r = rule(
            Direction::Below,
            &[(Severity::Warning, 60.0), (Severity::Critical, 30.0)],
            5.0,
        );
        let series = [80.0, 55.0, 50.0, 25.0, 40.0, 20.0, 62.0, 70.0];
        assert_eq!(
            run(&r, &series),
            vec![
                (1, Transition::Raised(Severity::Warning)),
                (
                    3,
                    Transition::Escalated {
                        from: Severity::Warning,
                        to: Severity::Critical
                    }
                ),
                (7, Transition::Cleared(Severity::Critical)),
            ]
        );
    }

    #[test]
    fn above_rules_mirror_below_rules() {
        let r = rule(
            Direction::Above,
            &[(Severity::Info, 0.5), (Severity::Critical, 0.9)],
            0.1,
        );
        let series = [0.2, 0.95, 0.45, 0.39, 0.6];
        assert_eq!(
            run(&r, &series),
            vec![
                (1, Transition::Raised(Severity::Critical)),
                (3, Transition::Cleared(Severity::Critical)),
                (4, Transition::Raised(Severity::Info)),
            ]
        );
    }

    #[test]
    fn non_finite_values_change_nothing() {
        let r = rule(Direction::Below, &[(Severity::Warning, 30.0)], 0.0);
        assert_eq!(run(&r, &[f32::NAN, 10.0, f32::INFINITY, f32::NAN]).len(), 1);
    }
}
