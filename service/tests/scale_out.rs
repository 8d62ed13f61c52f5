//! Scaling out on a real Apache Kafka broker, as Kubernetes scales the StatefulSet (issue #17):
//! one instance consumes the whole stream, then a second and a third join the group with
//! static membership. The partitions spread one per instance, each aircraft is held by exactly
//! one instance, and a joining instance turns ready only once the state of its partitions is
//! restored: at the moment its `/readyz` first answers 200, its board holds every aircraft of
//! its partitions with every event applied.

mod common;
mod kafka;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use kafka::{
    Service, Topics, bootstrap, create_topics, http_get_json, http_get_status, wait_until,
};
use serde_json::Value;

/// Events per tail in an event file.
fn events_per_tail(events: &Path) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(events).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        *counts
            .entry(event["tail"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

/// Tail -> (events applied, partition) on an instance's board.
fn board(fleet: &Value) -> BTreeMap<String, (u64, i64)> {
    fleet["tails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tail"].as_str().unwrap().to_owned(),
                (
                    r["state"]["events_applied"].as_u64().unwrap(),
                    r["state"]["partition"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

fn partitions(fleet: &Value) -> BTreeSet<i64> {
    fleet["instance"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect()
}

/// Starts an instance and waits for its first ready answer; the board it shows right then.
fn join(config: &Path, dir: &Path, id: &str) -> (Service, Value) {
    let service = Service::start_with_env(
        config,
        &dir.join(format!("{id}.log")),
        &[("FLEETSCORE_INSTANCE_ID".to_owned(), id.to_owned())],
    );
    wait_until(
        &format!("{id} ready"),
        Duration::from_secs(120),
        || {
            let (status, text) = http_get_status(&service, "/readyz");
            (status == 200).then_some(()).ok_or(text)
        },
        || service.log_text(),
    );
    let fleet = http_get_json(&service, "/fleet");
    (service, fleet)
}

#[test]
fn instances_joining_share_the_partitions_and_are_ready_only_once_restored() {
    let Some(bootstrap) = bootstrap() else {
        return;
    };
    let topics = Topics::new("scale-out");
    create_topics(&bootstrap, &topics);
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::cmapss_events(dir.path(), None);
    let expected = events_per_tail(&events);
    let config = kafka::config_with_kafka(
        dir.path(),
        &bootstrap,
        &topics,
        &common::fixtures(),
        "",
        "static_membership = true\n",
    );

    // One instance takes the whole stream.
    let (first, _) = join(&config, dir.path(), "fs-0");
    kafka::produce_all(&bootstrap, &topics, &events);
    kafka::wait_for_every_event(
        &bootstrap,
        &topics,
        &kafka::event_ids(&events),
        Duration::from_secs(180),
        &first,
    );
    let whole = http_get_json(&first, "/fleet");
    assert_eq!(partitions(&whole), BTreeSet::from([0, 1, 2]));
    let partition_of: BTreeMap<String, i64> = board(&whole)
        .into_iter()
        .map(|(t, (_, p))| (t, p))
        .collect();
    assert_eq!(partition_of.len(), expected.len());

    // Two more join. Each is ready only with the whole state of the partitions it got.
    let mut instances = vec![first];
    for id in ["fs-1", "fs-2"] {
        let (service, fleet) = join(&config, dir.path(), id);
        let owned = partitions(&fleet);
        assert!(!owned.is_empty(), "{id} ready without partitions: {fleet}");
        let want: BTreeMap<String, (u64, i64)> = partition_of
            .iter()
            .filter(|(_, p)| owned.contains(p))
            .map(|(t, p)| (t.clone(), (expected[t], *p)))
            .collect();
        assert_eq!(
            board(&fleet),
            want,
            "{id}: its board when it first turned ready (partitions {owned:?})"
        );
        instances.push(service);
    }

    // Settled: one partition each, each aircraft on exactly one instance, fully applied.
    let boards = wait_until(
        "one partition per instance",
        Duration::from_secs(120),
        || {
            let fleets: Vec<Value> = instances
                .iter()
                .map(|s| http_get_json(s, "/fleet"))
                .collect();
            let spread: Vec<BTreeSet<i64>> = fleets.iter().map(partitions).collect();
            let ready = instances
                .iter()
                .all(|s| http_get_status(s, "/readyz").0 == 200);
            (ready && spread.iter().all(|p| p.len() == 1))
                .then_some(fleets)
                .ok_or(format!("partitions {spread:?}, all ready: {ready}"))
        },
        || {
            instances
                .iter()
                .map(Service::log_text)
                .collect::<Vec<_>>()
                .join("\n----\n")
        },
    );
    let mut seen: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    let mut owned = BTreeSet::new();
    for fleet in &boards {
        owned.extend(partitions(fleet));
        for (tail, state) in board(fleet) {
            assert!(
                seen.insert(tail.clone(), state).is_none(),
                "{tail} on two instances"
            );
        }
    }
    assert_eq!(owned, BTreeSet::from([0, 1, 2]));
    let want: BTreeMap<String, (u64, i64)> = expected
        .iter()
        .map(|(t, n)| (t.clone(), (*n, partition_of[t])))
        .collect();
    assert_eq!(seen, want, "every aircraft, once, with every event applied");
    // An instance answers 404 for an aircraft it does not own.
    let (tail, (_, partition)) = seen.iter().next().unwrap();
    for (service, fleet) in instances.iter().zip(&boards) {
        let (status, _) = http_get_status(service, &format!("/tails/{tail}"));
        let owner = partitions(fleet).contains(partition);
        assert_eq!(status, if owner { 200 } else { 404 }, "{tail}");
    }
    for mut service in instances {
        service.signal("-TERM");
        assert!(service.wait(Duration::from_secs(60)).success());
    }
}
