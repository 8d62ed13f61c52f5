//! A dead-letter write that fails must not let the source offset be committed. The fault (the
//! dead-letter topic refused, as when its ACL is missing) is injected with librdkafka's mock
//! cluster, in this process; the built `fleetscore` binary talks to it over loopback. A real
//! broker cannot be made to refuse one topic this way without an authorizer set up.

mod common;
mod kafka;

use std::time::Duration;

use kafka::{Service, Topics, header, read_all, wait_for_count};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const GOOD_BEFORE: usize = 30;
const GOOD_AFTER: usize = 30;

/// The group's committed offset of telemetry partition 0 (`None`: nothing committed).
fn committed(bootstrap: &str, topics: &Topics) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &topics.group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topics.telemetry, 0);
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    match offsets
        .find_partition(&topics.telemetry, 0)
        .unwrap()
        .offset()
    {
        Offset::Offset(o) => Some(o),
        Offset::Invalid => None,
        other => panic!("unexpected committed offset {other:?}"),
    }
}

#[test]
fn a_dead_letter_that_cannot_be_written_keeps_its_offset_uncommitted() {
    let mock = MockCluster::new(1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let topics = Topics::new("dlq-fault");
    for topic in topics.all() {
        mock.create_topic(topic, kafka::PARTITIONS, 1).unwrap();
    }
    // The mock has no CreateTopics: the state changelog is made here too.
    mock.create_topic(&topics.changelog(), kafka::PARTITIONS, 1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = kafka::cmapss_events(dir.path(), Some(GOOD_BEFORE + GOOD_AFTER));
    let text = std::fs::read_to_string(&events).unwrap();
    let good: Vec<&str> = text.lines().collect();

    // All on partition 0, in order: good events, one undecodable event, more good events.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let bad = r#"{"schema":"fleet.telemetry.v1","#;
    let lines: Vec<&str> = good[..GOOD_BEFORE]
        .iter()
        .copied()
        .chain([bad])
        .chain(good[GOOD_BEFORE..].iter().copied())
        .collect();
    for line in &lines {
        producer
            .send(
                BaseRecord::to(&topics.telemetry)
                    .partition(0)
                    .key("k")
                    .payload(*line),
            )
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let bad_offset = GOOD_BEFORE as i64;

    // The dead-letter topic refuses every request about it.
    mock.topic_error(
        &topics.deadletter,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    )
    .unwrap();
    let config = kafka::config_with_kafka(
        dir.path(),
        &bootstrap,
        &topics,
        &common::fixtures(),
        "",
        // At-least-once: the mock does not keep offsets committed in a transaction. (Under
        // exactly-once the failure aborts the transaction; see the README.)
        "batch_max_records = 8\nguarantee = \"at_least_once\"\n[kafka.producer]\n\"message.timeout.ms\" = \"5000\"",
    );
    let mut service = Service::start(&config, &dir.path().join("serve-1.log"));
    let status = service.wait(Duration::from_secs(60));
    let log = service.log_text();
    assert!(
        !status.success(),
        "the service must stop with an error when a dead letter cannot be written; log:\n{log}"
    );
    assert!(
        log.contains("not acknowledged"),
        "the log must say an output was not acknowledged:\n{log}"
    );
    let after_failure = committed(&bootstrap, &topics);
    assert!(
        after_failure.is_none_or(|o| o <= bad_offset),
        "committed {after_failure:?}, past the dead letter that was never written (offset {bad_offset})"
    );

    // The topic is back: a restart processes the bad event again and dead-letters it.
    mock.topic_error(
        &topics.deadletter,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
    )
    .unwrap();
    let mut service = Service::start(&config, &dir.path().join("serve-2.log"));
    wait_for_count(
        &bootstrap,
        &topics.deadletter,
        1,
        Duration::from_secs(60),
        &service,
    );
    service.signal("-TERM");
    assert!(service.wait(Duration::from_secs(30)).success());
    assert_eq!(
        committed(&bootstrap, &topics),
        Some(lines.len() as i64),
        "after the restart every record is committed"
    );
    let dead = read_all(&bootstrap, &topics.deadletter);
    assert_eq!(dead.len(), 1, "the bad event is dead-lettered once");
    assert_eq!(dead[0].payload(), Some(bad.as_bytes()));
    assert_eq!(
        header(&dead[0], "__connect.errors.offset"),
        Some(bad_offset.to_string().as_str())
    );
    let predictions = read_all(&bootstrap, &topics.predictions);
    let scored: std::collections::HashSet<String> =
        kafka::by_event(&predictions).into_keys().collect();
    assert_eq!(
        scored.len(),
        GOOD_BEFORE + GOOD_AFTER,
        "every good event is scored"
    );
}
