//! End to end on a real Apache Kafka broker with the built binary: every event scored once,
//! equal to `fleetscore replay`; bad input dead-lettered exactly once with its provenance;
//! SIGTERM and kill -9 mid-stream lose nothing; a rebalance commits what was acknowledged and
//! hands the aircraft over by partition.

mod common;
mod kafka;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use kafka::{Service, Topics, bootstrap, create_topics, header, read_all, wait_for_count};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const ALL_CMAPSS: i64 = 20_631;

fn models() -> std::path::PathBuf {
    common::fixtures()
}

fn setup(test: &str) -> Option<(String, Topics, tempfile::TempDir)> {
    let bootstrap = bootstrap()?;
    let topics = Topics::new(test);
    create_topics(&bootstrap, &topics);
    Some((bootstrap, topics, tempfile::tempdir().unwrap()))
}

/// Replays `events` with the same models; predictions by event id.
fn replay(events: &Path, dir: &Path) -> HashMap<String, serde_json::Value> {
    let out = dir.join("replay.jsonl");
    kafka::replay(events, &out, &models());
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["source_event_id"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

#[test]
fn every_cmapss_event_is_scored_once_and_equals_replay() {
    let Some((bootstrap, topics, dir)) = setup("all") else {
        return;
    };
    let events = kafka::cmapss_events(dir.path(), None);
    let config = kafka::config(dir.path(), &bootstrap, &topics, &models(), "");
    kafka::produce_all(&bootstrap, &topics, &events);

    let mut service = Service::start(&config, &dir.path().join("serve.log"));
    wait_for_count(
        &bootstrap,
        &topics.predictions,
        ALL_CMAPSS,
        Duration::from_secs(120),
        &service,
    );
    // The streaming path's own metrics, from the running service.
    let metrics = kafka::http_get(&service, "/metrics");
    for name in [
        "fleetscore_events_consumed_total",
        "fleetscore_predictions_total",
        "fleetscore_batch_rows_count",
        "fleetscore_pipeline_stage_seconds_count{stage=\"scoring\"}",
        "fleetscore_pipeline_stage_seconds_count{stage=\"txn_gate\"}",
    ] {
        assert!(metrics.contains(name), "no {name} in /metrics:\n{metrics}");
    }
    // One lag observation per event taken from the consumer and per prediction produced.
    for stage in ["consumed", "produced"] {
        let series = format!("fleetscore_event_lag_seconds_count{{stage=\"{stage}\"}} ");
        let count: Option<u64> = metrics
            .lines()
            .find_map(|line| line.strip_prefix(series.as_str()))
            .and_then(|n| n.trim().parse().ok());
        assert_eq!(
            count,
            Some(ALL_CMAPSS as u64),
            "{series}in /metrics:\n{metrics}"
        );
    }
    // Every exactly-once commit times each of its steps (a commit finishing while /metrics
    // is rendered may have its steps and not yet its total).
    let count_of = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series}in /metrics:\n{metrics}"))
    };
    let commits = count_of("fleetscore_commit_seconds_count ");
    assert!(commits > 0, "no commit in /metrics:\n{metrics}");
    for step in ["outputs", "changelog", "offsets", "commit"] {
        let steps = count_of(&format!(
            "fleetscore_commit_step_seconds_count{{step=\"{step}\"}} "
        ));
        assert!(
            (commits..=commits + 1).contains(&steps),
            "{steps} `{step}` steps for {commits} commits"
        );
    }
    service.signal("-TERM");
    let status = service.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit {status}; log:\n{}",
        service.log_text()
    );

    let predictions = read_all(&bootstrap, &topics.predictions);
    assert_eq!(
        predictions.len() as i64,
        ALL_CMAPSS,
        "exactly one per event"
    );
    assert_eq!(kafka::count(&bootstrap, &topics.deadletter), 0);
    let want = replay(&events, dir.path());
    let mut seen = HashSet::new();
    for m in &predictions {
        let got: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let id = got["source_event_id"].as_str().unwrap();
        assert!(seen.insert(id.to_owned()), "{id} predicted twice");
        let w = &want[id];
        for field in [
            "tail",
            "event_time",
            "model",
            "model_version",
            "model_sha256",
            "feature_set",
            "feature_set_version",
        ] {
            assert_eq!(got[field], w[field], "{id}: {field}");
        }
        assert_eq!(
            got["prediction"].as_f64().unwrap() as f32,
            w["prediction"].as_f64().unwrap() as f32,
            "{id}: value"
        );
        // Keyed by tail, with provenance headers.
        assert_eq!(m.key(), Some(got["tail"].as_str().unwrap().as_bytes()));
        assert_eq!(
            header(m, "fleet.model.version"),
            got["model_version"].as_str()
        );
        assert_eq!(
            header(m, "fleet.model.sha256"),
            got["model_sha256"].as_str()
        );
        assert_eq!(
            header(m, "fleet.source.topic"),
            Some(topics.telemetry.as_str())
        );
        assert!(
            header(m, "fleet.source.offset")
                .unwrap()
                .parse::<i64>()
                .is_ok()
        );
    }
    assert_eq!(seen.len() as i64, ALL_CMAPSS);
}

#[test]
fn bad_events_are_dead_lettered_once_with_provenance_and_good_ones_flow() {
    let Some((bootstrap, topics, dir)) = setup("dlq") else {
        return;
    };
    let events = kafka::cmapss_events(dir.path(), Some(500));
    let text = std::fs::read_to_string(&events).unwrap();
    let good: Vec<&str> = text.lines().collect();
    let sample = good[0];
    let huge = sample.replacen('{', &format!("{{\"pad\":\"{}\",", "x".repeat(20_000)), 1);
    let bad: Vec<(String, &str)> = vec![
        (
            "{\"schema\":\"fleet.telemetry.v1\",".to_owned(),
            "malformed_json",
        ),
        (sample.replace("\"cycle\":1,", ""), "missing_field"),
        (
            sample.replacen("\"T24\":641.82", "\"T24\":NaN", 1),
            "malformed_json",
        ),
        (
            sample.replacen("\"T24\":641.82", "\"T24\":\"NaN\"", 1),
            "wrong_type",
        ),
        (
            sample.replace("\"cycle\":1,", "\"cycle\":\"1\","),
            "wrong_type",
        ),
        (
            sample.replacen("\"T24\":641.82", "\"T24\":1e999", 1),
            "out_of_range",
        ),
        (huge, "too_large"),
        (
            String::from_utf8_lossy(&[0xff, 0xfe, 0x00]).into_owned(),
            "malformed_json",
        ),
    ];
    for (value, _) in &bad {
        assert_ne!(value, sample);
    }

    // Good events interleaved with bad ones on the telemetry topic, each bad one with a key and
    // a header of its own, and one good one with a W3C traceparent.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (i, line) in good.iter().enumerate() {
        let tail = fleet_features::Event::decode(line.as_bytes())
            .unwrap()
            .tail()
            .to_owned();
        let mut record = BaseRecord::to(&topics.telemetry)
            .key(tail.as_bytes())
            .payload(*line);
        if i == 7 {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "traceparent",
                value: Some(traceparent),
            }));
        }
        producer.send(record).unwrap();
        if let Some((value, _)) = bad.get(i / 50)
            && i % 50 == 25
        {
            let key = format!("BAD-{}", i / 50);
            producer
                .send(
                    BaseRecord::to(&topics.telemetry)
                        .key(key.as_bytes())
                        .payload(value.as_str())
                        .headers(OwnedHeaders::new().insert(Header {
                            key: "origin",
                            value: Some("test"),
                        })),
                )
                .unwrap();
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let config = kafka::config(dir.path(), &bootstrap, &topics, &models(), "");
    let mut service = Service::start(&config, &dir.path().join("serve.log"));
    wait_for_count(
        &bootstrap,
        &topics.predictions,
        good.len() as i64,
        Duration::from_secs(120),
        &service,
    );
    wait_for_count(
        &bootstrap,
        &topics.deadletter,
        bad.len() as i64,
        Duration::from_secs(60),
        &service,
    );
    service.signal("-TERM");
    assert!(service.wait(Duration::from_secs(30)).success());

    // Committed messages (transaction markers take offsets too).
    assert_eq!(read_all(&bootstrap, &topics.predictions).len(), good.len());
    let dead = read_all(&bootstrap, &topics.deadletter);
    assert_eq!(dead.len(), bad.len(), "each bad event exactly once");
    for (i, (value, class)) in bad.iter().enumerate() {
        let key = format!("BAD-{i}");
        let m = dead
            .iter()
            .find(|m| m.key() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("{key} not dead-lettered"));
        assert_eq!(
            m.payload(),
            Some(value.as_bytes()),
            "{key}: original value kept"
        );
        assert_eq!(
            header(m, "origin"),
            Some("test"),
            "{key}: original headers kept"
        );
        assert_eq!(
            header(m, "__connect.errors.topic"),
            Some(topics.telemetry.as_str())
        );
        assert!(
            header(m, "__connect.errors.partition")
                .unwrap()
                .parse::<i32>()
                .is_ok()
        );
        assert!(
            header(m, "__connect.errors.offset")
                .unwrap()
                .parse::<i64>()
                .is_ok()
        );
        assert_eq!(
            header(m, "__connect.errors.exception.class.name"),
            Some(*class),
            "{key}"
        );
        assert!(
            !header(m, "__connect.errors.exception.message")
                .unwrap()
                .is_empty()
        );
    }

    let predictions = read_all(&bootstrap, &topics.predictions);
    let traced: Vec<_> = predictions
        .iter()
        .filter(|m| header(*m, "traceparent").is_some())
        .collect();
    assert_eq!(traced.len(), 1);
    assert_eq!(header(traced[0], "traceparent"), Some(traceparent));
}

#[test]
fn non_finite_model_output_is_dead_lettered() {
    let Some((bootstrap, topics, dir)) = setup("nan") else {
        return;
    };
    let events = kafka::cmapss_events(dir.path(), Some(50));
    let config = kafka::config(
        dir.path(),
        &bootstrap,
        &topics,
        &models(),
        "routes = { \"engine-health\" = \"nan-on-real-rows\" }",
    );
    kafka::produce_all(&bootstrap, &topics, &events);
    let mut service = Service::start(&config, &dir.path().join("serve.log"));
    wait_for_count(
        &bootstrap,
        &topics.deadletter,
        50,
        Duration::from_secs(120),
        &service,
    );
    service.signal("-TERM");
    assert!(service.wait(Duration::from_secs(30)).success());
    assert_eq!(kafka::count(&bootstrap, &topics.predictions), 0);
    let dead = read_all(&bootstrap, &topics.deadletter);
    assert_eq!(dead.len(), 50);
    assert!(dead.iter().all(
        |m| header(m, "__connect.errors.exception.class.name") == Some("non_finite_prediction")
    ));
}

#[test]
fn a_feature_set_routed_to_two_models_publishes_both_predictions() {
    let Some((bootstrap, topics, dir)) = setup("two-models") else {
        return;
    };
    let events = kafka::cmapss_events(dir.path(), Some(2000));
    let route = "routes = { \"engine-health\" = [\"engine-rul\", \"engine-rul-mlp\"] }";
    let config = kafka::config(dir.path(), &bootstrap, &topics, &models(), route);
    kafka::produce_all(&bootstrap, &topics, &events);
    let mut service = Service::start(&config, &dir.path().join("serve.log"));
    wait_for_count(
        &bootstrap,
        &topics.predictions,
        4000,
        Duration::from_secs(120),
        &service,
    );
    service.signal("-TERM");
    assert!(service.wait(Duration::from_secs(30)).success());

    // The independent computation: replay with the same two routes.
    let out = dir.path().join("replay-two.jsonl");
    let status = kafka::fleetscore()
        .args(["replay", "-i"])
        .arg(&events)
        .arg("-o")
        .arg(&out)
        .arg("--models-dir")
        .arg(models())
        .args(["--route", "engine-health=engine-rul"])
        .args(["--route", "engine-health=engine-rul-mlp"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut want: HashMap<(String, String), serde_json::Value> = HashMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            v["source_event_id"].as_str().unwrap().to_owned(),
            v["model"].as_str().unwrap().to_owned(),
        );
        want.insert(key, v);
    }
    assert_eq!(want.len(), 4000);

    let published = read_all(&bootstrap, &topics.predictions);
    assert_eq!(
        published.len(),
        4000,
        "one record per event and model, no more"
    );
    assert_eq!(kafka::count(&bootstrap, &topics.deadletter), 0);
    for m in &published {
        let got: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        let key = (
            got["source_event_id"].as_str().unwrap().to_owned(),
            got["model"].as_str().unwrap().to_owned(),
        );
        let expected = &want[&key];
        for field in [
            "model_version",
            "model_sha256",
            "prediction",
            "feature_set_version",
        ] {
            assert_eq!(got[field], expected[field], "{key:?} {field}");
        }
    }
}

/// Stops the service mid-stream with `signal`, restarts it, and checks every event got at
/// least one prediction. Returns the number of duplicates.
fn interrupted_run(test: &str, signal: &str) -> Option<usize> {
    let (bootstrap, topics, dir) = setup(test)?;
    let events = kafka::cmapss_events(dir.path(), None);
    let config = kafka::config(dir.path(), &bootstrap, &topics, &models(), "");
    // The first half of the stream goes in before the interruption and the second half only
    // after it, so the interruption lands mid-stream whatever the machine's load.
    let (first_half, second_half, head_len) = kafka::halves(&events, dir.path());
    let mut first = Service::start(&config, &dir.path().join("serve-1.log"));
    first.wait_for_log("partitions assigned", Duration::from_secs(60));
    let mut producer = kafka::produce(&bootstrap, &topics, &first_half, Some(3000));
    wait_for_count(
        &bootstrap,
        &topics.predictions,
        4000,
        Duration::from_secs(120),
        &first,
    );
    first.signal(signal);
    let status = first.wait(Duration::from_secs(30));
    if signal == "-TERM" {
        assert!(
            status.success(),
            "SIGTERM must drain and exit 0: {status}\n{}",
            first.log_text()
        );
    }
    assert!(producer.wait().unwrap().success());
    let after_first = kafka::count(&bootstrap, &topics.predictions);
    assert!(
        after_first <= head_len as i64,
        "{after_first} predictions of {head_len} events"
    );

    let mut second = Service::start(&config, &dir.path().join("serve-2.log"));
    kafka::produce_all(&bootstrap, &topics, &second_half);
    let ids = kafka::event_ids(&events);
    kafka::wait_for_every_event(&bootstrap, &topics, &ids, Duration::from_secs(180), &second);
    second.signal("-TERM");
    assert!(second.wait(Duration::from_secs(30)).success());
    let all = read_all(&bootstrap, &topics.predictions);
    let covered = kafka::by_event(&all);
    assert!(ids.iter().all(|id| covered.contains_key(id)));
    let duplicates = all.len() - covered.len();
    eprintln!(
        "{test}: {} events, {} predictions after the first run, {} in all, {duplicates} duplicates",
        ids.len(),
        after_first,
        all.len()
    );
    Some(duplicates)
}

#[test]
fn sigterm_mid_stream_then_restart_loses_nothing() {
    if let Some(duplicates) = interrupted_run("term", "-TERM") {
        // A graceful stop commits everything it acknowledged: nothing is redone.
        assert_eq!(
            duplicates, 0,
            "SIGTERM drains and commits, so no event is scored twice"
        );
    }
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    // Duplicates are allowed (at-least-once); the count is reported above.
    interrupted_run("kill", "-KILL");
}

/// Source partition of each tail's predictions.
fn partition_of_tails(predictions: &[rdkafka::message::OwnedMessage]) -> HashMap<String, i32> {
    predictions
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            let partition = header(m, "fleet.source.partition")
                .unwrap()
                .parse()
                .unwrap();
            (v["tail"].as_str().unwrap().to_owned(), partition)
        })
        .collect()
}

/// Whether the instance holds state for `tail` (`GET /tails/{tail}`: 200, or 404).
fn knows(service: &Service, tail: &str) -> bool {
    let (status, response) = kafka::http_get_status(service, &format!("/tails/{tail}"));
    assert!(status == 200 || status == 404, "{response}");
    status == 200
}

#[test]
fn a_rebalance_commits_what_was_acknowledged_and_hands_state_over_by_partition() {
    let Some((bootstrap, topics, dir)) = setup("rebalance") else {
        return;
    };
    let events = kafka::cmapss_events(dir.path(), None);
    let (first_half, second_half, head_len) = kafka::halves(&events, dir.path());
    // Auto-commit effectively off: offsets reach the group only through the commit on
    // revocation (or at shutdown), so what the second instance starts from proves that commit.
    let config = kafka::config_with_kafka(
        dir.path(),
        &bootstrap,
        &topics,
        &models(),
        "",
        "[kafka.consumer]\n\"auto.commit.interval.ms\" = \"600000\"\n",
    );

    let first = Service::start(&config, &dir.path().join("serve-1.log"));
    first.wait_for_log("partitions assigned", Duration::from_secs(60));
    kafka::produce_all(&bootstrap, &topics, &first_half);
    wait_for_count(
        &bootstrap,
        &topics.predictions,
        head_len as i64,
        Duration::from_secs(120),
        &first,
    );
    let partition_of = partition_of_tails(&read_all(&bootstrap, &topics.predictions));
    assert!(
        partition_of.values().collect::<HashSet<_>>().len() > 1,
        "the tails must spread over partitions: {partition_of:?}"
    );
    assert!(partition_of.keys().all(|tail| knows(&first, tail)));

    // A second instance joins the group: the first one gives up its partitions (the eager
    // range assignor revokes them all) and gets part of them back.
    let second = Service::start(&config, &dir.path().join("serve-2.log"));
    second.wait_for_log("partitions assigned", Duration::from_secs(60));
    first.wait_for_log("partitions revoked", Duration::from_secs(60));
    first.wait_for_log_count("partitions assigned", 2, Duration::from_secs(60));
    // The first instance's state is now exactly the tails of the partitions it kept (not
    // rebuilt: still there) and none of those that moved.
    let kept: HashSet<i32> = partition_of
        .iter()
        .filter(|(tail, _)| knows(&first, tail))
        .map(|(_, p)| *p)
        .collect();
    for (tail, partition) in &partition_of {
        assert_eq!(
            knows(&first, tail),
            kept.contains(partition),
            "{tail} (partition {partition}); the first instance kept partitions {kept:?}"
        );
    }
    let moved: HashSet<&String> = partition_of
        .iter()
        .filter(|(_, p)| !kept.contains(p))
        .map(|(tail, _)| tail)
        .collect();
    assert!(
        !kept.is_empty() && !moved.is_empty(),
        "each instance must own partitions after the rebalance (kept {kept:?})"
    );

    kafka::produce_all(&bootstrap, &topics, &second_half);
    wait_for_count(
        &bootstrap,
        &topics.predictions,
        ALL_CMAPSS,
        Duration::from_secs(120),
        &second,
    );
    // Every aircraft lives in exactly one instance: the moved ones were rebuilt by the
    // newcomer from the second half's events, the others stayed.
    for tail in partition_of.keys() {
        let (in_first, in_second) = (knows(&first, tail), knows(&second, tail));
        assert_eq!(
            (in_first, in_second),
            (!moved.contains(tail), moved.contains(tail)),
            "{tail}: in the first instance {in_first}, in the second {in_second}"
        );
    }
    let all = read_all(&bootstrap, &topics.predictions);
    let covered = kafka::by_event(&all);
    assert_eq!(
        covered.len() as i64,
        ALL_CMAPSS,
        "an event lost its prediction"
    );
    // Everything acknowledged before the rebalance was committed on revocation: the new owner
    // started after it, so no event was scored twice.
    assert_eq!(
        all.len(),
        covered.len(),
        "duplicates after the rebalance; first log:\n{}",
        first.log_text()
    );
}
