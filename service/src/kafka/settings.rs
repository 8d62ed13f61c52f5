//! librdkafka settings: what at-least-once requires, then the operator's pass-through
//! properties (which may tune anything except the guarantees).

use anyhow::bail;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Properties the delivery guarantee depends on; a pass-through may not change them.
const CONSUMER_FIXED: [(&str, &str); 2] = [
    // Offsets are stored by the pipeline only after the outputs are acknowledged ...
    ("enable.auto.offset.store", "false"),
    // ... and what is stored is committed in the background and at shutdown/revocation.
    ("enable.auto.commit", "true"),
];
const PRODUCER_FIXED: [(&str, &str); 2] = [("enable.idempotence", "true"), ("acks", "all")];

pub fn consumer(config: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("auto.offset.reset", "earliest")
        // Both input topics are keyed by tail and co-partitioned; the range assignor gives one
        // consumer the same partition of both, so one instance owns all of a tail's events.
        .set("partition.assignment.strategy", "range")
        .set("auto.commit.interval.ms", "1000")
        .set("session.timeout.ms", "10000")
        // A fetch waits for 64 KiB (about 90 telemetry events) or 5 ms: under load the broker
        // answers far fewer, fuller fetches (measured on the end-to-end benchmark: broker CPU
        // per event down by a third, p99 steadier); at low rates an event waits 5 ms at most.
        .set("fetch.min.bytes", "65536")
        .set("fetch.wait.max.ms", "5");
    for (k, v) in CONSUMER_FIXED {
        c.set(k, v);
    }
    pass_through(&mut c, &config.consumer, &CONSUMER_FIXED)?;
    Ok(c)
}

pub fn producer(config: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        // A prediction waits at most half a millisecond for others to share its request. On
        // the end-to-end benchmark (half the sustained maximum, 3 runs each) the p99 went from
        // 17 ms with 2 ms to 14 ms with 1 ms and 13 ms with 0.5 ms, at the same CPU cost for
        // the service and the broker: under load, requests fill up long before the linger.
        .set("linger.ms", "0.5")
        .set("compression.type", "lz4")
        // The Java client's partitioner, so predictions of a tail land where other clients
        // would put that tail.
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000");
    for (k, v) in PRODUCER_FIXED {
        c.set(k, v);
    }
    pass_through(&mut c, &config.producer, &PRODUCER_FIXED)?;
    Ok(c)
}

fn pass_through(
    c: &mut ClientConfig,
    extra: &std::collections::BTreeMap<String, String>,
    fixed: &[(&str, &str)],
) -> anyhow::Result<()> {
    for (k, v) in extra {
        if let Some((_, want)) = fixed.iter().find(|(f, _)| f == k)
            && v != want
        {
            bail!("kafka setting `{k}` must stay `{want}`: at-least-once delivery depends on it");
        }
        c.set(k, v);
    }
    Ok(())
}
