//! The fleet board: one row per aircraft this instance holds — its latest value of each routed
//! model (with the interval), its open alerts by severity, how fresh its state is — ranked by
//! [`risk`]; and the columns (the routed models, their meaning, unit and alert rules), which
//! the tail page's trends share.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fleet_features::FeatureSet;
use serde::Serialize;
use utoipa::ToSchema;

use crate::alerts::listing::{OpenAlert, ranked, sort};
use crate::alerts::rule::{AlertRule, Direction, On, Severity};
use crate::app::AppContext;
use crate::config::Peer;
use crate::store::TailEntry;
use crate::store::state_info::StateInfo;

/// `GET /fleet`, and the first message of `GET /events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fleet {
    /// The number of the last live update before this snapshot.
    pub seq: u64,
    pub generated_at: DateTime<Utc>,
    pub instance: Instance,
    pub columns: Vec<Column>,
    /// Riskiest first ([`risk`]), then by tail.
    pub tails: Vec<Row>,
}

/// Which aircraft this instance shows: those of the input partitions it owns.
#[derive(Debug, Serialize, ToSchema)]
pub struct Instance {
    pub id: String,
    pub partitions: Vec<i32>,
    /// Partitions whose aircraft are being restored from the changelog (not shown yet).
    pub restoring: Vec<i32>,
    /// The other instances' pages (`[fleet_view] peers`).
    pub peers: Vec<Peer>,
}

/// A model routed from a feature set: a column of the board, a trend of the tail page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Column {
    pub model: String,
    /// What the value means and its unit (the serving version's manifest).
    pub meaning: Option<String>,
    pub unit: Option<String>,
    /// The version serving it (null: none).
    pub serving: Option<String>,
    /// Whether its predictions carry an interval (`[models.intervals]`), and its nominal
    /// coverage (0.8: 80 % of outcomes should fall inside).
    pub interval: bool,
    pub interval_level: Option<f32>,
    /// The alert rules on its predictions (their thresholds are drawn on the trends).
    pub rules: Vec<RuleView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuleView {
    pub name: String,
    /// `prediction`, `lower` or `upper`: the number of the prediction the rule watches.
    #[schema(value_type = String)]
    pub on: On,
    /// `below`: low values are bad; `above`: high values are.
    #[schema(value_type = String)]
    pub direction: Direction,
    pub levels: Vec<LevelView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LevelView {
    pub severity: String,
    pub threshold: f32,
}

/// One aircraft on the board.
#[derive(Debug, Serialize, ToSchema)]
pub struct Row {
    pub tail: String,
    /// Higher is riskier ([`risk`]).
    pub risk: f64,
    /// The most severe open alert, if any.
    pub severity: Option<String>,
    pub alerts: AlertCounts,
    /// Most severe first, then oldest first.
    pub open_alerts: Vec<OpenAlert>,
    /// The latest prediction per model, by model name (as on `GET /tails/{tail}`).
    pub values: BTreeMap<String, Value>,
    /// How fresh its state is (as on `GET /tails/{tail}`).
    pub state: StateInfo,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct AlertCounts {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

/// A model's latest prediction for the aircraft.
#[derive(Debug, Serialize, ToSchema)]
pub struct Value {
    pub value: f32,
    /// The interval's bounds, for a model that has one.
    pub lower: Option<f32>,
    pub upper: Option<f32>,
    pub model_version: String,
    pub event_time: DateTime<Utc>,
    pub scored_at: DateTime<Utc>,
}

/// The board's columns: every model routed from a feature set, in route order.
pub fn columns(ctx: &AppContext) -> Vec<Column> {
    let config = ctx.registry.config();
    FeatureSet::all()
        .flat_map(|set| config.routes[set.id()].iter())
        .map(|model| {
            let serving = ctx.registry.serving_by_name(model);
            let output = serving.as_ref().map(|s| &s.serving.manifest.output);
            Column {
                model: model.clone(),
                meaning: output.map(|o| o.meaning.clone()),
                unit: output.and_then(|o| o.unit.clone()),
                serving: serving.as_ref().map(|s| s.serving.version().to_owned()),
                interval: config.intervals.contains_key(model),
                interval_level: config.intervals.get(model).map(|spec| spec.level),
                rules: rules_on(&ctx.config.alerts, model),
            }
        })
        .collect()
}

/// The prediction rules on `model` (drift rules are the model's, not an aircraft's).
fn rules_on(rules: &[AlertRule], model: &str) -> Vec<RuleView> {
    rules
        .iter()
        .filter(|r| r.model == model && r.on != On::Drift)
        .map(|r| RuleView {
            name: r.name.clone(),
            on: r.on,
            direction: r.direction,
            levels: r
                .levels
                .iter()
                .map(|l| LevelView {
                    severity: l.severity.as_str().to_owned(),
                    threshold: l.threshold,
                })
                .collect(),
        })
        .collect()
}

/// The row of one aircraft.
pub fn row(tail: &str, entry: &TailEntry, rules: &[AlertRule], columns: &[Column]) -> Row {
    let mut open = ranked(rules, tail, entry);
    sort(&mut open);
    let mut alerts = AlertCounts::default();
    for (severity, _) in &open {
        *match severity {
            Severity::Critical => &mut alerts.critical,
            Severity::Warning => &mut alerts.warning,
            Severity::Info => &mut alerts.info,
        } += 1;
    }
    // The most severe level, and the rules at it: the alert the row is ranked by.
    let worst = open.first().map(|(top, _)| {
        let rules = open
            .iter()
            .filter(|(s, _)| s == top)
            .map(|(_, a)| a.rule.as_str())
            .collect::<Vec<_>>();
        (*top, rules)
    });
    let values: BTreeMap<String, Value> = entry
        .predictions
        .iter()
        .map(|p| {
            (
                p.model.to_string(),
                Value {
                    value: p.prediction,
                    lower: p.interval.as_ref().map(|i| i.lower),
                    upper: p.interval.as_ref().map(|i| i.upper),
                    model_version: p.model_version.to_string(),
                    event_time: p.event_time,
                    scored_at: p.scored_at,
                },
            )
        })
        .collect();
    Row {
        tail: tail.to_owned(),
        risk: risk(worst, &values, columns),
        severity: open.first().map(|(s, _)| s.as_str().to_owned()),
        alerts,
        open_alerts: open.into_iter().map(|(_, a)| a).collect(),
        values,
        state: StateInfo::of(Some(entry)),
    }
}

/// How risky an aircraft is, for the board's order: its most severe open alert first
/// (`critical` 3, `warning` 2, `info` 1, none 0), plus, in (0, 1), how far its value is past
/// (or short of) the first threshold of the rules behind that alert (of every rule, without
/// one): `0.5 + 0.5 m / (1 + |m|)` of the margin `m = (threshold - value) / |threshold|` of a
/// `below` rule (`value - threshold` for `above`), the largest over those rules — 0.5 at the
/// threshold, towards 1 past it, never saturating, so the critical engines rank by how far
/// past they are. Without an alert, a model without a rule whose unit is a probability counts
/// with the probability itself.
pub fn risk(
    worst: Option<(Severity, Vec<&str>)>,
    values: &BTreeMap<String, Value>,
    columns: &[Column],
) -> f64 {
    let rank = worst.as_ref().map_or(0.0, |(s, _)| match s {
        Severity::Info => 1.0,
        Severity::Warning => 2.0,
        Severity::Critical => 3.0,
    });
    let behind = |rule: &RuleView| {
        worst
            .as_ref()
            .is_none_or(|(_, rules)| rules.contains(&rule.name.as_str()))
    };
    let mut toward = 0.0f64;
    for column in columns {
        let Some(value) = values.get(&column.model) else {
            continue;
        };
        if worst.is_none()
            && column.rules.is_empty()
            && column.unit.as_deref() == Some("probability")
        {
            toward = toward.max(f64::from(value.value).clamp(0.0, 0.999));
        }
        for rule in column.rules.iter().filter(|r| behind(r)) {
            let watched = match rule.on {
                On::Prediction | On::Drift => Some(value.value),
                On::Lower => value.lower,
                On::Upper => value.upper,
            };
            let first =
                rule.levels
                    .iter()
                    .map(|l| l.threshold)
                    .reduce(|a, b| match rule.direction {
                        // The first threshold crossed: the highest of a `below` rule.
                        Direction::Below => a.max(b),
                        Direction::Above => a.min(b),
                    });
            if let (Some(x), Some(t)) = (watched, first) {
                toward = toward.max(past(rule.direction, f64::from(x), f64::from(t)));
            }
        }
    }
    rank + toward
}

/// `0.5 + 0.5 m / (1 + |m|)` of [`risk`].
fn past(direction: Direction, x: f64, threshold: f64) -> f64 {
    let scale = if threshold == 0.0 {
        1.0
    } else {
        threshold.abs()
    };
    let m = match direction {
        Direction::Below => (threshold - x) / scale,
        Direction::Above => (x - threshold) / scale,
    };
    0.5 + 0.5 * m / (1.0 + m.abs())
}

/// Riskiest first, then by tail.
pub fn rank(rows: &mut [Row]) {
    rows.sort_by(|a, b| b.risk.total_cmp(&a.risk).then_with(|| a.tail.cmp(&b.tail)));
}

/// The board now.
pub fn snapshot(ctx: &AppContext, seq: u64) -> Fleet {
    let columns = columns(ctx);
    let mut tails = Vec::new();
    ctx.store.for_each(|tail, entry| {
        tails.push(row(tail, entry, &ctx.config.alerts, &columns));
    });
    rank(&mut tails);
    Fleet {
        seq,
        generated_at: Utc::now(),
        instance: instance(ctx),
        columns,
        tails,
    }
}

pub fn instance(ctx: &AppContext) -> Instance {
    Instance {
        id: instance_id(ctx),
        partitions: ctx.readiness.owned(),
        restoring: ctx.store.restoring(),
        peers: ctx.config.fleet_view.peers.clone(),
    }
}

/// `[kafka] instance_id`, else the host's name (a pod's, in Kubernetes), else `fleetscore`.
fn instance_id(ctx: &AppContext) -> String {
    ctx.config
        .kafka
        .instance_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "fleetscore".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(model: &str, unit: &str, direction: Direction, thresholds: &[f32]) -> Column {
        Column {
            model: model.to_owned(),
            meaning: None,
            unit: Some(unit.to_owned()),
            serving: Some("1".to_owned()),
            interval: false,
            interval_level: None,
            rules: if thresholds.is_empty() {
                Vec::new()
            } else {
                vec![RuleView {
                    name: format!("{model}-rule"),
                    on: On::Prediction,
                    direction,
                    levels: thresholds
                        .iter()
                        .map(|t| LevelView {
                            severity: "warning".to_owned(),
                            threshold: *t,
                        })
                        .collect(),
                }]
            },
        }
    }

    fn values(pairs: &[(&str, f32)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(m, v)| {
                (
                    (*m).to_owned(),
                    Value {
                        value: *v,
                        lower: None,
                        upper: None,
                        model_version: "1".to_owned(),
                        event_time: Utc::now(),
                        scored_at: Utc::now(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn severity_ranks_first_then_how_far_past_the_first_threshold() {
        let columns = [
            column("rul", "cycles", Direction::Below, &[50.0, 20.0]),
            column("anomaly", "score", Direction::Above, &[4.0]),
            column("risk", "probability", Direction::Above, &[]),
        ];
        let at_threshold = risk(None, &values(&[("rul", 50.0)]), &columns);
        assert!((at_threshold - 0.5).abs() < 1e-9, "{at_threshold}");
        let far = risk(None, &values(&[("rul", 150.0)]), &columns);
        let close = risk(None, &values(&[("rul", 60.0)]), &columns);
        assert!(far < close && close < at_threshold);
        let rul_rule = || Some((Severity::Critical, vec!["rul-rule"]));
        let warned = risk(
            Some((Severity::Warning, vec!["rul-rule"])),
            &values(&[("rul", 150.0)]),
            &columns,
        );
        assert!((2.0..3.0).contains(&warned));
        // Past the threshold the order still holds, and never reaches the next rank.
        let dead = risk(rul_rule(), &values(&[("rul", -2.0)]), &columns);
        let dying = risk(rul_rule(), &values(&[("rul", 0.0)]), &columns);
        assert!(dying < dead && dead < 4.0, "{dying} {dead}");
        // Only the rules behind the worst alert rank a row: a huge anomaly score does not
        // reorder engines that are critical by remaining life.
        let both = risk(
            rul_rule(),
            &values(&[("rul", 0.0), ("anomaly", 500.0)]),
            &columns,
        );
        assert_eq!(both, dying);
        let probability = risk(None, &values(&[("risk", 0.3)]), &columns);
        assert!((probability - 0.3).abs() < 1e-6);
    }
}
