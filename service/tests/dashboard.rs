//! The Grafana dashboard (`deploy/grafana/fleetscore.json`) against a running service on a
//! real broker: every metric its queries name is on `GET /metrics`, with every label they
//! select or group by. The service first does what the dashboard watches: consumes C-MAPSS
//! events (predictions, alerts of a rule every prediction crosses, commits, the changelog),
//! ignores a duplicate, dead-letters a malformed record,
//! rejects a model (`nan-model` among the fixtures), measures drift against the shipped
//! `engine-rul` profile and answers HTTP requests.

mod common;
mod kafka;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use kafka::{Service, Topics, bootstrap, create_topics};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The dashboard's file.
fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/fleetscore.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every `expr` in the dashboard (panels, rows' panels, targets).
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// What one PromQL expression needs: metric names (as written, `_bucket` and all) with the
/// label names selected on them, and the label names it groups by.
fn needs(expr: &str) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut metrics: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (at, _) in expr.match_indices("fleetscore_") {
        let name = word(&expr[at..]);
        let labels = metrics.entry(name.clone()).or_default();
        if let Some(selector) = expr[at + name.len()..].strip_prefix('{') {
            let selector = &selector[..selector.find('}').unwrap()];
            for matcher in selector.split(',').filter(|m| !m.trim().is_empty()) {
                labels.insert(word(matcher.trim()));
            }
        }
    }
    let mut grouped = BTreeSet::new();
    for (at, _) in expr.match_indices("by (") {
        let list = &expr[at + 4..];
        for label in list[..list.find(')').unwrap()].split(',') {
            grouped.insert(label.trim().to_owned());
        }
    }
    grouped.remove("le");
    (metrics, grouped)
}

/// Series of a scrape: metric name → the label-name sets of its lines.
fn series(text: &str) -> BTreeMap<String, Vec<BTreeSet<String>>> {
    let mut out: BTreeMap<String, Vec<BTreeSet<String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap();
        let labels = match line[end..].strip_prefix('{') {
            Some(rest) => rest[..rest.find('}').unwrap()]
                .split("\",")
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.trim().to_owned()))
                .collect(),
            None => BTreeSet::new(),
        };
        out.entry(line[..end].to_owned()).or_default().push(labels);
    }
    out
}

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let Some(bootstrap) = bootstrap() else {
        return;
    };
    let topics = Topics::new("dashboard");
    create_topics(&bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    // The fixtures, and the shipped engine-rul/2 (which has a drift profile) serving as
    // engine-rul/3.
    let models = dir.path().join("models");
    copy_dir(&common::fixtures(), &models);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/engine-rul/2");
    copy_dir(&shipped, &models.join("engine-rul/3"));
    common::edit_manifest(&models.join("engine-rul/3"), |m| m["version"] = "3".into());
    common::backdate(&models.join("engine-rul/3"));
    let config = kafka::config(dir.path(), &bootstrap, &topics, &models, "");
    // A rule every engine-rul prediction crosses (one episode per engine), and drift windows
    // that report after 100 rows.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[drift]\nmin_rows = 100\nevaluate_every_rows = 100\n");
    text.push_str(
        "\n[[alerts]]\nname = \"always\"\nmodel = \"engine-rul\"\non = \"prediction\"\n\
         direction = \"below\"\nhysteresis = 1.0\n\
         levels = [{ severity = \"warning\", threshold = 1e9 }]\n",
    );
    std::fs::write(&config, text).unwrap();
    let service = Service::start(&config, &dir.path().join("service.log"));
    let events = kafka::cmapss_events(dir.path(), Some(1000));
    kafka::produce_all(&bootstrap, &topics, &events);
    // The first event once more: a duplicate, ignored.
    let first = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::to(&topics.telemetry)
                .key("N1")
                .payload("not an event"),
        )
        .unwrap();
    let tail = serde_json::from_str::<serde_json::Value>(&first).unwrap()["tail"]
        .as_str()
        .unwrap()
        .to_owned();
    producer
        .send(BaseRecord::to(&topics.telemetry).key(&tail).payload(&first))
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let ids = kafka::event_ids(&events);
    kafka::wait_for_every_event(
        &bootstrap,
        &topics,
        &ids,
        Duration::from_secs(120),
        &service,
    );
    kafka::wait_until(
        "the malformed record dead-lettered, the duplicate ignored, drift reported",
        Duration::from_secs(60),
        || {
            let metrics = kafka::http_get(&service, "/metrics");
            match [
                "fleetscore_dead_letters_total{",
                "fleetscore_events_ignored_total{",
                "fleetscore_drift_psi{",
            ]
            .iter()
            .find(|m| !metrics.contains(*m))
            {
                Some(missing) => Err(format!("no {missing}")),
                None => Ok(()),
            }
        },
        || service.log_text(),
    );
    kafka::http_get(&service, "/models");
    let response = kafka::http_get(&service, "/metrics");
    let scraped = series(response.split_once("\r\n\r\n").unwrap().1);

    let mut all = Vec::new();
    exprs(&dashboard(), &mut all);
    assert!(all.len() > 20, "the dashboard's queries: {all:?}");
    let mut problems = Vec::new();
    let mut queried = HashSet::new();
    for expr in &all {
        let (metrics, grouped) = needs(expr);
        assert!(
            !metrics.is_empty(),
            "a query naming no fleetscore metric: {expr}"
        );
        for (name, selected) in metrics {
            queried.insert(name.clone());
            let Some(lines) = scraped.get(&name) else {
                problems.push(format!("{name} is not on /metrics ({expr})"));
                continue;
            };
            for label in selected.iter().chain(&grouped) {
                if !lines.iter().any(|l| l.contains(label)) {
                    problems.push(format!("{name} has no label {label} ({expr})"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{problems:#?}\nscraped: {:#?}",
        scraped.keys()
    );
    // Each family the dashboard is meant to cover is on it.
    for family in [
        "fleetscore_events_consumed_total",
        "fleetscore_event_lag_seconds_bucket",
        "fleetscore_batch_rows_bucket",
        "fleetscore_http_request_duration_seconds_bucket",
        "fleetscore_dead_letters_total",
        "fleetscore_model_info",
        "fleetscore_alerts_open",
        "fleetscore_drift_psi",
        "fleetscore_drift_worst_psi",
    ] {
        assert!(
            queried.contains(family),
            "the dashboard has no panel on {family}"
        );
    }
}
