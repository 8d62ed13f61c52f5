//! Alerts end to end on a real Apache Kafka broker with the built binary: the alert events on
//! the alerts topic (read_committed) equal `fleetscore replay --alerts` of the same events,
//! event for event, although the service was killed (-9) mid-stream and restarted: an episode
//! open at the kill is neither raised again nor forgotten (its escalation after the restart
//! says `escalated`, not `raised`). `GET /alerts`, `GET /tails/{tail}` and `/metrics` then show
//! the episodes replay leaves open. A drift rule's alert (a model's episode, not a tail's) reaches
//! the alerts topic too.

mod common;
mod kafka;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kafka::{Service, Topics, bootstrap, create_topics, fleetscore};
use rdkafka::Message;

/// `fleetscore replay --alerts` of `events`: the alert events, one JSON value each, in order.
fn replay_alerts(events: &Path, dir: &Path) -> Vec<serde_json::Value> {
    let alerts = dir.join("replay-alerts.jsonl");
    let status = fleetscore()
        .args(["replay", "-i"])
        .arg(events)
        .arg("-o")
        .arg(dir.join("replay.jsonl"))
        .arg("--alerts")
        .arg(&alerts)
        .arg("--models-dir")
        .arg(common::fixtures())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "fleetscore replay failed: {status}");
    std::fs::read_to_string(alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Alert events per tail, in order.
fn by_tail(events: &[serde_json::Value]) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut map: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for e in events {
        map.entry(e["tail"].as_str().unwrap().to_owned())
            .or_default()
            .push(e.clone());
    }
    map
}

/// The episodes a series of alert events leaves open: (tail, rule) → severity.
fn left_open(events: &[serde_json::Value]) -> BTreeMap<(String, String), String> {
    let mut open = BTreeMap::new();
    for e in events {
        let key = (
            e["tail"].as_str().unwrap().to_owned(),
            e["rule"].as_str().unwrap().to_owned(),
        );
        match e["kind"].as_str().unwrap() {
            "cleared" => {
                open.remove(&key);
            }
            _ => {
                open.insert(key, e["severity"].as_str().unwrap().to_owned());
            }
        }
    }
    open
}

#[test]
fn alert_events_survive_a_kill_9_and_equal_replay() {
    let Some(bootstrap) = bootstrap() else {
        return;
    };
    let topics = Topics::new("alerts");
    create_topics(&bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::interleaved(dir.path());
    let expected = replay_alerts(&events, dir.path());
    // Three quarters before the kill: about 30 engines then have an episode open that
    // escalates afterwards (half: about 7; the fleet thins out as engines fail).
    let (first_part, second_part, _) = kafka::split(&events, dir.path(), 0.75);

    // The restart must matter: episodes raised by an event of the first part change
    // (escalate) on an event of the second, which only the restarted instance sees.
    let first_ids = kafka::event_ids(&first_part);
    let spanning: HashSet<String> = by_tail(&expected)
        .into_iter()
        .filter(|(_, es)| {
            let raised_early = es.iter().any(|e| {
                e["kind"] == "raised" && first_ids.contains(e["source_event_id"].as_str().unwrap())
            });
            let changed_late = es.iter().any(|e| {
                e["kind"] != "raised" && !first_ids.contains(e["source_event_id"].as_str().unwrap())
            });
            raised_early && changed_late
        })
        .map(|(t, _)| t)
        .collect();
    assert!(
        spanning.len() >= 10,
        "only {} engines have an episode spanning the halves",
        spanning.len()
    );

    let config = kafka::config(dir.path(), &bootstrap, &topics, &common::fixtures(), "");
    let mut first = Service::start(&config, &dir.path().join("serve-1.log"));
    first.wait_for_log("partitions assigned", Duration::from_secs(60));
    kafka::produce_all(&bootstrap, &topics, &first_part);
    // Killed once every event of the first half is scored (committed or not): what was not
    // committed is done again by the next instance, from the committed state.
    kafka::wait_for_every_event(
        &bootstrap,
        &topics,
        &first_ids,
        Duration::from_secs(180),
        &first,
    );
    first.signal("-KILL");
    first.wait(Duration::from_secs(30));

    let mut second = Service::start(&config, &dir.path().join("serve-2.log"));
    kafka::produce_all(&bootstrap, &topics, &second_part);
    let ids = kafka::event_ids(&events);
    kafka::wait_for_every_event(&bootstrap, &topics, &ids, Duration::from_secs(240), &second);
    kafka::wait_for_group_to_consume_all(
        &bootstrap,
        &topics.group,
        &[&topics.telemetry, &topics.schedule],
        Duration::from_secs(120),
        || second.log_text(),
    );

    // What the service shows while running: the episodes replay leaves open.
    let open = left_open(&expected);
    let listed = kafka::http_get_json(&second, "/alerts");
    let listed: BTreeMap<(String, String), String> = listed["open"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                (
                    a["tail"].as_str().unwrap().to_owned(),
                    a["rule"].as_str().unwrap().to_owned(),
                ),
                a["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, open, "GET /alerts against replay's open episodes");
    let ((tail, _), severity) = open.iter().next().expect("replay leaves episodes open");
    let summary = kafka::http_get_json(&second, &format!("/tails/{tail}"));
    assert_eq!(summary["alerts"][0]["severity"], severity.as_str());
    let critical = open.values().filter(|s| *s == "critical").count();
    let metrics = kafka::http_get(&second, "/metrics");
    let line = format!(
        "fleetscore_alerts_open{{rule=\"engine-remaining-life\",severity=\"critical\"}} {critical}"
    );
    assert!(metrics.contains(&line), "no `{line}` in /metrics");
    second.signal("-TERM");
    assert!(second.wait(Duration::from_secs(30)).success());

    // The alerts topic, as a read_committed consumer sees it, against replay.
    let mut got = Vec::new();
    kafka::read_committed(&bootstrap, &topics.alerts, Duration::from_secs(60), |m| {
        let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            m.key().map(|k| std::str::from_utf8(k).unwrap()),
            value["tail"].as_str(),
            "alert records are keyed by tail"
        );
        assert!(kafka::header(m, "fleet.source.offset").is_some());
        got.push(value);
    });
    let (got, want) = (by_tail(&got), by_tail(&expected));
    assert_eq!(got.len(), want.len(), "tails with alert events");
    for (tail, want) in &want {
        assert_eq!(got.get(tail), Some(want), "alert events of {tail}");
    }
    eprintln!(
        "alerts: {} events over {} tails equal replay's; {} episodes spanned the kill; {} open at the end",
        expected.len(),
        want.len(),
        spanning.len(),
        open.len()
    );
}

/// An `on = "drift"` rule in the streaming service: the first 3,000 C-MAPSS events with T50
/// shifted by 18 (two training standard deviations) through the shipped `engine-rul/2` (which
/// has a profile), a window of 2,000 rows evaluated every 1,000: exactly one drift alert
/// reaches the alerts topic (read_committed, so in a committed transaction with the batch's
/// predictions), keyed `model:engine-rul`, with the model's and the source record's headers;
/// `GET /models/{name}/drift` and `/metrics` show the open episode.
#[test]
fn a_drift_alert_reaches_the_alerts_topic() {
    let Some(bootstrap) = bootstrap() else {
        return;
    };
    let topics = Topics::new("drift-alerts");
    create_topics(&bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::cmapss_events(dir.path(), Some(3_000));
    let shifted = dir.path().join("t50.jsonl");
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
            let v = e["sensors"]["T50"].as_f64().unwrap();
            e["sensors"]["T50"] = serde_json::Value::from(v + 18.0);
            e.to_string()
        })
        .collect();
    std::fs::write(&shifted, lines.join("\n") + "\n").unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let drift = r#"
[drift]
window_rows = 2000
min_rows = 2000
evaluate_every_rows = 1000

[[alerts]]
name = "engine-rul-drift"
model = "engine-rul"
on = "drift"
direction = "above"
hysteresis = 0.05
levels = [
  { severity = "warning", threshold = 0.1 },
  { severity = "critical", threshold = 0.25 },
]
"#;
    let config = kafka::config_with_kafka(dir.path(), &bootstrap, &topics, &models, "", drift);
    let mut service = Service::start(&config, &dir.path().join("serve.log"));
    service.wait_for_log("partitions assigned", Duration::from_secs(60));
    kafka::produce_all(&bootstrap, &topics, &shifted);
    let ids = kafka::event_ids(&shifted);
    kafka::wait_for_every_event(
        &bootstrap,
        &topics,
        &ids,
        Duration::from_secs(180),
        &service,
    );

    let body = kafka::http_get_json(&service, "/models/engine-rul/drift");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["window"]["rows"], 2_000, "{body}");
    assert_eq!(body["window"]["rows_seen"], 3_000, "{body}");
    assert_eq!(body["level"], "critical", "{body}");
    assert_eq!(body["alerts"][0]["rule"], "engine-rul-drift", "{body}");
    assert_eq!(body["alerts"][0]["severity"], "critical", "{body}");
    let metrics = kafka::http_get(&service, "/metrics");
    let line = "fleetscore_alerts_open{rule=\"engine-rul-drift\",severity=\"critical\"} 1";
    assert!(metrics.contains(line), "no `{line}` in /metrics");
    assert!(
        metrics.contains("fleetscore_drift_window_rows{model=\"engine-rul\",version=\"2\"} 2000")
    );
    service.signal("-TERM");
    assert!(service.wait(Duration::from_secs(30)).success());

    let mut got = Vec::new();
    kafka::read_committed(&bootstrap, &topics.alerts, Duration::from_secs(60), |m| {
        let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            m.key().map(|k| std::str::from_utf8(k).unwrap()),
            Some("model:engine-rul"),
            "{value}"
        );
        assert_eq!(kafka::header(m, "fleet.model.name"), Some("engine-rul"));
        assert_eq!(kafka::header(m, "fleet.model.version"), Some("2"));
        assert!(kafka::header(m, "fleet.source.offset").is_some());
        got.push(value);
    });
    assert_eq!(got.len(), 1, "{got:?}");
    let alert = &got[0];
    assert_eq!(
        (
            &alert["on"],
            &alert["kind"],
            &alert["tail"],
            &alert["subject"]
        ),
        (
            &serde_json::Value::from("drift"),
            &serde_json::Value::from("raised"),
            &serde_json::Value::from(""),
            &serde_json::Value::from("model:engine-rul")
        ),
        "{alert}"
    );
    assert_eq!(alert["window_rows"], 2_000);
    assert!(ids.contains(alert["source_event_id"].as_str().unwrap()));
}
