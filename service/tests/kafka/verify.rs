//! What a `read_committed` consumer of the output topics sees, compared record by record with
//! an independent computation of the same input (`fleetscore replay`, no Kafka, no restart), as
//! Apache Kafka's `streams_eos_test.py` and `transactions_test.py` verify: one prediction per
//! valid event, each identical to replay's, in each aircraft's order; each malformed event
//! dead-lettered once; each aircraft's alert events replay's, in replay's order.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use rdkafka::Message;

use super::workload::Workload;
use super::{Topics, header};

/// Fields of a prediction record that say when it was made, not what was predicted: left out of
/// the comparison (`service/src/prediction.rs`). Every other field must be equal, the value
/// bit for bit.
pub const WALL_CLOCK_FIELDS: [&str; 1] = ["scored_at"];

/// What the guarantee promises a `read_committed` reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Exactly one prediction per valid event and one dead letter per malformed one.
    ExactlyOnce,
    /// At least one of each; every one of them still equal to replay's (the state is exact).
    AtLeastOnce,
}

/// Replay's predictions: per `(source event, model)`, its position in replay's output (replay
/// scores in input order, so per tail in event order) and the record without its wall-clock
/// fields.
pub struct Expected {
    predictions: HashMap<String, (usize, String)>,
    malformed: HashSet<String>,
    /// Replay's alert events (`--alerts`, the default rules) per tail, in order, as JSON.
    alerts: HashMap<String, Vec<String>>,
}

impl Expected {
    /// Replays `workload`'s valid events with `models` into `dir`.
    pub fn replay(workload: &Workload, models: &Path, dir: &Path) -> Self {
        let out = dir.join("replay.jsonl");
        super::replay(&workload.valid, &out, models);
        let mut predictions = HashMap::new();
        for (i, line) in std::fs::read_to_string(&out).unwrap().lines().enumerate() {
            let (key, _, record) = canonical(line.as_bytes());
            assert!(
                predictions.insert(key.clone(), (i, record)).is_none(),
                "replay predicted {key} twice"
            );
        }
        assert!(
            predictions.len() >= workload.valid_count,
            "replay: {} predictions for {} valid events",
            predictions.len(),
            workload.valid_count
        );
        let mut alerts: HashMap<String, Vec<String>> = HashMap::new();
        for line in std::fs::read_to_string(super::alerts_of(&out))
            .unwrap()
            .lines()
        {
            let (tail, record) = canonical_alert(line.as_bytes());
            alerts.entry(tail).or_default().push(record);
        }
        Self {
            predictions,
            malformed: workload.malformed.iter().cloned().collect(),
            alerts,
        }
    }

    pub fn predictions(&self) -> usize {
        self.predictions.len()
    }
}

/// `(source_event_id model, tail, the record as JSON without the wall-clock fields)`; the JSON
/// has sorted keys and the value as it was written, so equal strings are equal records.
fn canonical(payload: &[u8]) -> (String, String, String) {
    let mut v: serde_json::Value = serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("not a prediction record ({e}): {payload:?}"));
    let object = v.as_object_mut().expect("a prediction record is an object");
    for field in WALL_CLOCK_FIELDS {
        object.remove(field);
    }
    let text = |field: &str| object.get(field).and_then(|f| f.as_str()).unwrap_or("");
    let key = format!("{} {}", text("source_event_id"), text("model"));
    let tail = text("tail").to_owned();
    (key, tail, v.to_string())
}

/// `(tail, the alert record as JSON)`: every field of an alert event is deterministic.
fn canonical_alert(payload: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("not an alert record ({e}): {payload:?}"));
    let tail = v["tail"]
        .as_str()
        .expect("an alert names its tail")
        .to_owned();
    (tail, v.to_string())
}

/// The counts a check ends with (printed whether or not it passes).
#[derive(Debug, Default)]
pub struct Tally {
    /// Predictions replay made (one per valid event and routed model).
    pub expected: usize,
    /// Prediction records a `read_committed` reader saw.
    pub read: usize,
    /// Expected predictions never seen.
    pub missing: usize,
    /// Records beyond the first for the same event and model.
    pub duplicates: usize,
    /// Records that differ from replay's (any field but the wall-clock ones).
    pub differing: usize,
    /// Records for an event and model replay never predicted.
    pub unknown: usize,
    /// Records that came after a later event of the same aircraft.
    pub out_of_order: usize,
    pub dead_expected: usize,
    pub dead_read: usize,
    pub dead_missing: usize,
    pub dead_duplicates: usize,
    /// Dead letters that are not one of the malformed events, or not classed `malformed_json`.
    pub dead_wrong: usize,
    /// Alert events replay emitted, and those a `read_committed` reader saw.
    pub alerts_expected: usize,
    pub alerts_read: usize,
    /// Replay's alert events never seen, seen more often than replay emitted them, or never
    /// emitted by replay.
    pub alerts_missing: usize,
    pub alerts_duplicates: usize,
    pub alerts_unknown: usize,
    /// Aircraft whose alert events are not replay's, in replay's order.
    pub alert_sequences_differing: usize,
    /// The first few differences, for the failure message.
    pub examples: Vec<String>,
}

impl Tally {
    /// Reads the predictions and dead-letter topics as a `read_committed` consumer (once no
    /// transaction is open on them) and compares them with `expected`.
    pub fn read(bootstrap: &str, topics: &Topics, expected: &Expected, timeout: Duration) -> Self {
        let mut t = Tally {
            expected: expected.predictions.len(),
            dead_expected: expected.malformed.len(),
            ..Tally::default()
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut last_of_tail: HashMap<String, usize> = HashMap::new();
        t.read = super::read_committed(bootstrap, &topics.predictions, timeout, |m| {
            let (key, tail, record) = canonical(m.payload().unwrap_or_default());
            let Some((position, want)) = expected.predictions.get(&key) else {
                t.unknown += 1;
                t.example(format!("not in replay: {record}"));
                return;
            };
            if !seen.insert(key.clone()) {
                t.duplicates += 1;
            }
            if record != *want {
                t.differing += 1;
                t.example(format!("differs: {record}\n   replay: {want}"));
            }
            let last = last_of_tail.entry(tail).or_insert(*position);
            if *position < *last {
                t.out_of_order += 1;
                t.example(format!("out of order: {key}"));
            }
            *last = (*last).max(*position);
        });
        t.missing = expected
            .predictions
            .keys()
            .filter(|k| !seen.contains(*k))
            .count();

        let mut dead_seen: HashSet<String> = HashSet::new();
        t.dead_read = super::read_committed(bootstrap, &topics.deadletter, timeout, |m| {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let class = header(m, "__connect.errors.exception.class.name");
            if !expected.malformed.contains(&value) || class != Some("malformed_json") {
                t.dead_wrong += 1;
                t.example(format!("unexpected dead letter ({class:?}): {value}"));
            } else if !dead_seen.insert(value) {
                t.dead_duplicates += 1;
            }
        });
        t.dead_missing = expected
            .malformed
            .iter()
            .filter(|v| !dead_seen.contains(*v))
            .count();

        let mut alerts: HashMap<String, Vec<String>> = HashMap::new();
        t.alerts_read = super::read_committed(bootstrap, &topics.alerts, timeout, |m| {
            let (tail, record) = canonical_alert(m.payload().unwrap_or_default());
            alerts.entry(tail).or_default().push(record);
        });
        t.alerts_expected = expected.alerts.values().map(Vec::len).sum();
        let none = Vec::new();
        for tail in expected
            .alerts
            .keys()
            .chain(alerts.keys())
            .collect::<HashSet<_>>()
        {
            let want = expected.alerts.get(tail).unwrap_or(&none);
            let got = alerts.get(tail).unwrap_or(&none);
            if got != want {
                t.alert_sequences_differing += 1;
                t.example(format!("alerts of {tail}: {got:?}\n   replay: {want:?}"));
            }
            // As multisets: what is missing, extra copies, and what replay never emitted.
            let mut left: HashMap<&String, i64> = HashMap::new();
            for w in want {
                *left.entry(w).or_default() += 1;
            }
            for g in got {
                match left.get_mut(g) {
                    Some(n) if *n > 0 => *n -= 1,
                    Some(_) => t.alerts_duplicates += 1,
                    None => t.alerts_unknown += 1,
                }
            }
            t.alerts_missing += left.values().map(|n| (*n).max(0) as usize).sum::<usize>();
        }
        t
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 5 {
            self.examples.push(text);
        }
    }

    /// One line of numbers, as the issue reports them.
    pub fn summary(&self) -> String {
        let pct = |n: usize| 100.0 * n as f64 / self.read.max(1) as f64;
        format!(
            "{} predictions expected, {} read (read_committed): {} missing, {} duplicates ({:.2} %), \
             {} differing from replay ({:.2} %), {} unknown, {} out of order; dead letters: {} \
             expected, {} read, {} missing, {} duplicates, {} unexpected; alert events: {} \
             expected, {} read, {} missing, {} duplicates, {} unknown, {} aircraft not in \
             replay's sequence",
            self.expected,
            self.read,
            self.missing,
            self.duplicates,
            pct(self.duplicates),
            self.differing,
            pct(self.differing),
            self.unknown,
            self.out_of_order,
            self.dead_expected,
            self.dead_read,
            self.dead_missing,
            self.dead_duplicates,
            self.dead_wrong,
            self.alerts_expected,
            self.alerts_read,
            self.alerts_missing,
            self.alerts_duplicates,
            self.alerts_unknown,
            self.alert_sequences_differing,
        )
    }

    /// What `guarantee` does not allow in these counts (empty: the check passes). Duplicates
    /// are allowed at-least-once (reported in [`Tally::summary`]), and so is the order they
    /// make.
    pub fn violations(&self, guarantee: Guarantee) -> Vec<String> {
        let mut v = Vec::new();
        let mut must_be_zero = |what: &str, n: usize| {
            if n > 0 {
                v.push(format!("{n} {what}"));
            }
        };
        must_be_zero("predictions missing", self.missing);
        must_be_zero("predictions differing from replay", self.differing);
        must_be_zero("predictions replay did not make", self.unknown);
        must_be_zero("malformed events not dead-lettered", self.dead_missing);
        must_be_zero("unexpected dead letters", self.dead_wrong);
        must_be_zero("alert events missing", self.alerts_missing);
        must_be_zero("alert events replay did not emit", self.alerts_unknown);
        if guarantee == Guarantee::ExactlyOnce {
            must_be_zero("duplicate alert events", self.alerts_duplicates);
            must_be_zero(
                "aircraft whose alert events differ from replay's sequence",
                self.alert_sequences_differing,
            );
            must_be_zero("duplicate predictions", self.duplicates);
            must_be_zero(
                "predictions out of their aircraft's order",
                self.out_of_order,
            );
            must_be_zero("duplicate dead letters", self.dead_duplicates);
        }
        v
    }
}
