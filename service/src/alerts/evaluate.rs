//! Evaluating the rules on a prediction: the same code for the stream (`kafka::output`) and
//! `fleetscore replay --alerts`, so both emit the same alert events for the same input.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::episode::{Episode, Transition, step};
use super::event::AlertEvent;
use super::rule::{AlertRule, On};
use crate::drift::Evaluation;
use crate::prediction::Prediction;

/// An aircraft's open episodes, by rule name. Part of its durable state: the changelog holds
/// it ([`encode`]) beside the tail's feature state.
pub type OpenEpisodes = BTreeMap<String, Episode>;

/// The configured rules.
#[derive(Debug, Clone, Default)]
pub struct Alerting {
    rules: Vec<AlertRule>,
}

impl Alerting {
    /// `rules`: validated ([`super::rule::validate_all`]).
    pub fn new(rules: Vec<AlertRule>) -> Self {
        Self { rules }
    }

    pub fn rules(&self) -> &[AlertRule] {
        &self.rules
    }

    /// Whether a rule watches `model`'s predictions (most predictions concern none: no work
    /// for them).
    pub fn watches(&self, model: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.model == model && r.on != On::Drift)
    }

    /// Whether a `drift` rule watches `model`.
    pub fn watches_drift(&self, model: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.model == model && r.on == On::Drift)
    }

    /// Advances the model's drift episodes (`open`, by rule name: the instance's, kept by
    /// [`crate::drift::DriftMonitor`]) under every `drift` rule on `evaluation`'s model, with
    /// the worst measure of a feature that is not excluded; returns the alert events, in rule
    /// order.
    pub fn evaluate_drift(
        &self,
        open: &mut OpenEpisodes,
        evaluation: &Evaluation,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.on == On::Drift && r.model == evaluation.model)
        {
            let measure = rule.measure();
            let Some(worst) = evaluation.report.worst(measure) else {
                continue;
            };
            let value = worst.value(measure) as f32;
            events.extend(advance(
                rule,
                open,
                value,
                evaluation.event_time,
                &evaluation.event_id,
                |transition, episode| {
                    AlertEvent::drift(rule, transition, episode, evaluation, value, &worst.name)
                },
            ));
        }
        events
    }

    /// Advances the aircraft's episodes under every rule on `prediction`'s model; returns the
    /// alert events, in rule order (none while nothing changes).
    pub fn evaluate(&self, open: &mut OpenEpisodes, prediction: &Prediction) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for rule in self.rules.iter().filter(|r| *r.model == *prediction.model) {
            let value = match (rule.on, &prediction.interval) {
                (On::Prediction, _) => prediction.prediction,
                (On::Lower, Some(interval)) => interval.lower,
                (On::Upper, Some(interval)) => interval.upper,
                (On::Lower | On::Upper, None) | (On::Drift, _) => continue,
            };
            events.extend(advance(
                rule,
                open,
                value,
                prediction.event_time,
                &prediction.source_event_id,
                |transition, episode| AlertEvent::new(rule, transition, episode, prediction, value),
            ));
        }
        events
    }
}

/// Advances `rule`'s episode in `open` on `value` (at `at`, by event `event_id`); the alert
/// event of the transition, if any, made by `event` from it and the episode it concerns (the
/// one it leaves open, or the one it closes).
fn advance(
    rule: &AlertRule,
    open: &mut OpenEpisodes,
    value: f32,
    at: DateTime<Utc>,
    event_id: &str,
    event: impl FnOnce(Transition, &Episode) -> AlertEvent,
) -> Option<AlertEvent> {
    let mut episode = open.remove(rule.name.as_str());
    let before = episode.clone();
    let transition = step(rule, &mut episode, value, at, event_id);
    let alert = transition.map(|transition| {
        let concerned = episode
            .as_ref()
            .or(before.as_ref())
            .expect("a transition leaves or closes an episode");
        event(transition, concerned)
    });
    if let Some(episode) = episode {
        open.insert(rule.name.clone(), episode);
    }
    alert
}

/// The changelog value of a tail's open episodes (JSON: rare, small, readable with any tool).
pub fn encode(open: &OpenEpisodes) -> Vec<u8> {
    serde_json::to_vec(open).expect("episodes serialize")
}

/// Reads what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<OpenEpisodes, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::alerts::rule::defaults;
    use crate::model::interval::Interval;
    use crate::prediction::PREDICTION_SCHEMA;

    fn prediction(model: &str, cycle: i64, value: f32) -> Prediction {
        Prediction {
            schema: PREDICTION_SCHEMA.into(),
            tail: "N1".to_owned(),
            source_event_id: format!("e{cycle}"),
            event_time: Utc.timestamp_opt(1_700_000_000 + cycle * 3600, 0).unwrap(),
            model: model.into(),
            model_version: "2".into(),
            model_sha256: "abc".into(),
            feature_set: "engine-health".into(),
            feature_set_version: "1".into(),
            prediction: value,
            interval: None,
            scored_at: Utc::now(),
        }
    }

    /// Remaining life falling through warning (50) and critical (20), then an engine change
    /// (back to 150): raised, escalated, cleared, each once, with the episode's origin.
    #[test]
    fn a_falling_remaining_life_raises_escalates_and_clears_once_each() {
        let alerting = Alerting::new(defaults());
        let mut open = OpenEpisodes::new();
        let series = [
            80.0, 55.0, 49.0, 51.0, 45.0, 30.0, 19.0, 25.0, 15.0, 150.0, 140.0,
        ];
        let mut events = Vec::new();
        for (cycle, value) in series.into_iter().enumerate() {
            let p = prediction("engine-rul", cycle as i64, value);
            events.extend(alerting.evaluate(&mut open, &p));
            // Another model's prediction changes nothing.
            assert!(
                alerting
                    .evaluate(&mut open, &prediction("engine-rul-mlp", 0, 1.0))
                    .is_empty()
            );
        }
        let kinds: Vec<(&str, &str, f32, f32)> = events
            .iter()
            .map(|e| (e.kind.as_str(), e.severity.as_str(), e.value, e.threshold))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("raised", "warning", 49.0, 50.0),
                ("escalated", "critical", 19.0, 20.0),
                ("cleared", "critical", 150.0, 60.0),
            ]
        );
        assert!(events.iter().all(|e| e.episode_raised_by == "e2"));
        assert_eq!(
            events[1].previous_severity.map(|s| s.as_str()),
            Some("warning")
        );
        assert_eq!(events[2].source_event_id, "e9");
        assert!(open.is_empty());
    }

    /// "The 10th percentile of remaining life below 30 cycles": a rule on the interval's lower
    /// bound; a prediction without an interval leaves its episode alone.
    #[test]
    fn a_rule_on_the_lower_bound_watches_the_interval() {
        let mut rule = defaults().remove(0);
        rule.name = "p10-below-30".to_owned();
        rule.on = On::Lower;
        rule.levels.truncate(1);
        rule.levels[0].threshold = 30.0;
        let alerting = Alerting::new(vec![rule]);
        let mut open = OpenEpisodes::new();
        let with_interval = |cycle, point, lower: f32| {
            let mut p = prediction("engine-rul", cycle, point);
            p.interval = Some(Interval {
                level: 0.8,
                lower,
                upper: point + 10.0,
                lower_model: "engine-rul-p10/1".to_owned(),
                upper_model: "engine-rul-p90/1".to_owned(),
            });
            p
        };
        // The point stays above 30 while the lower bound crosses it.
        let raised = alerting.evaluate(&mut open, &with_interval(1, 45.0, 29.0));
        assert_eq!(raised.len(), 1);
        assert_eq!((raised[0].value, raised[0].on), (29.0, On::Lower));
        // No interval: nothing to watch, the episode stays open.
        assert!(
            alerting
                .evaluate(&mut open, &prediction("engine-rul", 2, 80.0))
                .is_empty()
        );
        assert_eq!(open.len(), 1);
        let cleared = alerting.evaluate(&mut open, &with_interval(3, 90.0, 41.0));
        assert_eq!(cleared[0].kind, "cleared");
    }

    /// A drift rule watches the worst measure of the features that are not excluded, at each
    /// evaluation of the model's window; predictions never touch it.
    #[test]
    fn a_drift_rule_watches_the_worst_feature_not_excluded() {
        use crate::alerts::rule::Severity;
        use crate::drift::{BinCounts, Evaluation, Measure, THRESHOLDS};
        use crate::model::profile::{BinKind, Entry, Profile};
        use std::sync::Arc;

        let entry = |name: &str| Entry {
            name: name.to_owned(),
            kind: BinKind::Quantile,
            edges: Some(vec![0.0]),
            values: None,
            counts: vec![50, 50],
            missing: 0,
            min: Some(-1.0),
            max: Some(1.0),
            mean: Some(0.0),
            std: Some(1.0),
        };
        let profile = Arc::new(Profile {
            format: 1,
            rows: 100,
            binning: String::new(),
            features: vec![entry("a"), entry("b")],
            output: entry("output"),
        });
        // `a` moved completely, `b` partly; `a` is excluded.
        let evaluation = |seen: u64, a: f32, b_high: usize| {
            let mut counts = BinCounts::new(Arc::clone(&profile));
            for i in 0..10 {
                counts.add(&[a, if i < b_high { 0.5 } else { -0.5 }], 0.5);
            }
            let mut report = counts.report(&THRESHOLDS).unwrap();
            report.exclude(&["a".to_owned()]);
            Evaluation {
                model: "engine-rul".to_owned(),
                version: "2".to_owned(),
                sha256: "abc".to_owned(),
                feature_set: "engine-health".to_owned(),
                feature_set_version: "1".to_owned(),
                seen,
                event_id: format!("e{seen}"),
                event_time: Utc.timestamp_opt(1_700_000_000 + seen as i64, 0).unwrap(),
                report,
            }
        };
        let rule: AlertRule = toml::from_str(
            r#"
            name = "rul-drift"
            model = "engine-rul"
            on = "drift"
            direction = "above"
            hysteresis = 0.05
            levels = [{ severity = "warning", threshold = 0.1 }, { severity = "critical", threshold = 0.25 }]
            "#,
        )
        .unwrap();
        let alerting = Alerting::new(vec![rule.validate().unwrap()]);
        assert!(alerting.watches_drift("engine-rul") && !alerting.watches("engine-rul"));
        assert!(
            alerting
                .evaluate(&mut OpenEpisodes::new(), &prediction("engine-rul", 1, 1.0))
                .is_empty()
        );
        let mut open = OpenEpisodes::new();
        // Only the excluded `a` moved: nothing.
        assert!(
            alerting
                .evaluate_drift(&mut open, &evaluation(10, 0.5, 5))
                .is_empty()
        );
        // `b`: 8 of 10 above 0: PSI 0.3 * ln 4 = 0.416, critical.
        let raised = alerting.evaluate_drift(&mut open, &evaluation(20, 0.5, 8));
        assert_eq!(raised.len(), 1);
        let e = &raised[0];
        assert_eq!(
            (e.kind.as_str(), e.severity),
            ("raised", Severity::Critical)
        );
        assert_eq!(e.feature.as_deref(), Some("b"));
        assert_eq!(e.measure, Some(Measure::Psi));
        assert!((e.value - (0.3 * 4f32.ln())).abs() < 1e-6, "{}", e.value);
        assert_eq!((e.tail.as_str(), e.key()), ("", "model:engine-rul"));
        assert_eq!(
            (e.source_event_id.as_str(), e.window_rows),
            ("e20", Some(10))
        );
        assert!(open.contains_key("rul-drift"));
        // Back to the reference shares: cleared, naming the episode's origin.
        let cleared = alerting.evaluate_drift(&mut open, &evaluation(30, 0.5, 5));
        assert_eq!(cleared[0].kind, "cleared");
        assert_eq!(cleared[0].episode_raised_by, "e20");
        assert!(open.is_empty());
        // A tail alert's record has none of the drift fields (as before drift rules).
        let mut tail_open = OpenEpisodes::new();
        let tail_event = &Alerting::new(defaults())
            .evaluate(&mut tail_open, &prediction("engine-rul", 1, 10.0))[0];
        let json = serde_json::to_value(tail_event).unwrap();
        for field in ["subject", "measure", "feature", "window_rows"] {
            assert!(json.get(field).is_none(), "{field}: {json}");
        }
        assert_eq!(tail_event.key(), "N1");
    }

    #[test]
    fn open_episodes_survive_their_changelog_encoding() {
        let alerting = Alerting::new(defaults());
        let mut open = OpenEpisodes::new();
        alerting.evaluate(&mut open, &prediction("engine-rul", 1, 10.0));
        alerting.evaluate(&mut open, &prediction("delay-risk", 1, 0.9));
        assert_eq!(open.len(), 2);
        let back = decode(&encode(&open)).unwrap();
        assert_eq!(back, open);
        // Restored, the open episode is not raised again by the next low value.
        let mut restored = back;
        assert!(
            alerting
                .evaluate(&mut restored, &prediction("engine-rul", 2, 12.0))
                .is_empty()
        );
    }
}
