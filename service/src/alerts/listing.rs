//! The open episodes as planners see them (`GET /alerts`, `GET /tails/{tail}`, the demo's
//! summary): each with its rule, when and by which event it was raised, and the latest value
//! of the rule's model for the tail; most severe first, then oldest first. These are the
//! aircraft's episodes; a model's drift episodes are on `GET /models/{name}/drift`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::episode::Episode;
use super::rule::{AlertRule, Severity};
use crate::store::{StateStore, TailEntry};

/// One open episode.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OpenAlert {
    pub tail: String,
    pub rule: String,
    /// `info`, `warning` or `critical`: the most severe level the episode reached.
    pub severity: String,
    pub model: String,
    /// Event time of the prediction that raised the episode, and its event.
    pub raised_at: DateTime<Utc>,
    pub raised_by: String,
    /// The latest prediction of the rule's model for this tail, and its event time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_value: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_event_time: Option<DateTime<Utc>>,
}

/// The open episodes of one tail under the configured rules, most severe first.
pub fn open_of(rules: &[AlertRule], tail: &str, entry: &TailEntry) -> Vec<OpenAlert> {
    let mut open = ranked(rules, tail, entry);
    sort(&mut open);
    open.into_iter().map(|(_, a)| a).collect()
}

/// The open episodes of one tail under `rules`, each with its severity, unsorted.
pub fn ranked(rules: &[AlertRule], tail: &str, entry: &TailEntry) -> Vec<(Severity, OpenAlert)> {
    rules
        .iter()
        .filter_map(|rule| {
            let episode = entry.alerts.get(&rule.name)?;
            let latest = entry.predictions.iter().find(|p| *p.model == *rule.model);
            Some((
                episode.severity,
                OpenAlert {
                    tail: tail.to_owned(),
                    rule: rule.name.clone(),
                    severity: episode.severity.as_str().to_owned(),
                    model: rule.model.clone(),
                    raised_at: episode.raised_at,
                    raised_by: episode.raised_by.clone(),
                    latest_value: latest.map(|p| p.prediction),
                    latest_event_time: latest.map(|p| p.event_time),
                },
            ))
        })
        .collect()
}

/// Most severe first, then oldest first (then by tail and rule: a stable order).
pub fn sort(open: &mut [(Severity, OpenAlert)]) {
    open.sort_by(|(sa, a), (sb, b)| {
        sb.cmp(sa)
            .then(a.raised_at.cmp(&b.raised_at))
            .then(a.tail.cmp(&b.tail))
            .then(a.rule.cmp(&b.rule))
    });
}

/// Open episodes per rule and severity over every aircraft held and the instance's open drift
/// episodes (`drift`, by rule name), with a zero for every level of every rule (a dashboard
/// sees an episode close): `fleetscore_alerts_open`.
pub fn open_counts<'r>(
    rules: &'r [AlertRule],
    store: &StateStore,
    drift: &'r BTreeMap<String, Episode>,
) -> Vec<(&'r str, Severity, u64)> {
    let mut counts: BTreeMap<(&str, Severity), u64> = rules
        .iter()
        .flat_map(|r| {
            r.levels
                .iter()
                .map(move |l| ((r.name.as_str(), l.severity), 0))
        })
        .collect();
    for (rule, episode) in drift {
        if let Some(n) = counts.get_mut(&(rule.as_str(), episode.severity)) {
            *n += 1;
        }
    }
    store.for_each(|_, entry| {
        for rule in rules {
            if let Some(episode) = entry.alerts.get(&rule.name)
                && let Some(n) = counts.get_mut(&(rule.name.as_str(), episode.severity))
            {
                *n += 1;
            }
        }
    });
    counts
        .into_iter()
        .map(|((rule, severity), n)| (rule, severity, n))
        .collect()
}
