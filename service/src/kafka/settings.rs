//! librdkafka settings: what the delivery guarantees require, then the operator's pass-through
//! properties (which may tune anything except the guarantees).

use anyhow::bail;
use rdkafka::ClientConfig;

use crate::config::{GroupProtocol, Guarantee, KafkaConfig};

/// Properties the delivery guarantees depend on; a pass-through may not change them.
const CONSUMER_FIXED: [(&str, &str); 3] = [
    // Offsets are committed by the pipeline only, with (or after) the changelog and outputs.
    ("enable.auto.offset.store", "false"),
    ("enable.auto.commit", "false"),
    // Never read what an aborted transaction wrote (upstream producers may be transactional;
    // this also makes the group's offset fetch wait for a pending transactional commit).
    ("isolation.level", "read_committed"),
];
const PRODUCER_FIXED: [(&str, &str); 2] = [("enable.idempotence", "true"), ("acks", "all")];

pub fn consumer(config: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set("auto.offset.reset", "earliest")
        .set("auto.commit.interval.ms", "1000")
        // A fetch waits for 64 KiB (about 90 telemetry events) or 5 ms: under load the broker
        // answers far fewer, fuller fetches (measured on the end-to-end benchmark: broker CPU
        // per event down by a third, p99 steadier); at low rates an event waits 5 ms at most.
        .set("fetch.min.bytes", "65536")
        .set("fetch.wait.max.ms", "5");
    // Both input topics are keyed by tail and co-partitioned; the range assignor gives one
    // consumer the same partition of both, so one instance owns all of a tail's events.
    match config.group_protocol {
        GroupProtocol::Classic => {
            c.set("partition.assignment.strategy", "range")
                .set("session.timeout.ms", "10000");
        }
        // The session and the assignor are the broker's (librdkafka refuses the classic keys).
        GroupProtocol::Consumer => {
            c.set("group.protocol", "consumer")
                .set("group.remote.assignor", "range");
        }
    }
    if config.static_membership
        && let Some(id) = &config.instance_id
    {
        c.set("group.instance.id", id);
    }
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
    if config.guarantee == Guarantee::ExactlyOnce {
        c.set("transactional.id", transactional_id(config))
            .set(
                "transaction.timeout.ms",
                config.transaction_timeout_ms.to_string(),
            )
            // A record's delivery gives up at half the transaction's timeout, so that the
            // abort that follows reaches the broker before the transaction times out there.
            .set(
                "message.timeout.ms",
                (config.transaction_timeout_ms / 2).min(30_000).to_string(),
            );
    }
    Ok(c)
}

/// `fleetscore-<group>-<instance_id>`, or a fresh random one per start.
fn transactional_id(config: &KafkaConfig) -> String {
    let instance = match &config.instance_id {
        Some(id) => id.clone(),
        None => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            format!("{:016x}", h.finish())
        }
    };
    format!("fleetscore-{}-{instance}", config.group_id)
}

/// The admin client (changelog topic): the brokers and the producer's pass-through
/// properties (security settings and the like).
pub fn admin(config: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers);
    pass_through(&mut c, &config.producer, &PRODUCER_FIXED)?;
    // Asking for the changelog's metadata must not create it with the broker's defaults
    // (delete policy, default partition count): the service creates it itself.
    c.set("allow.auto.create.topics", "false");
    Ok(c)
}

/// A consumer outside the service's group for reading the changelog from its start (restore):
/// read_committed, reporting the end of each partition (its last stable offset).
pub fn restore_consumer(config: &KafkaConfig) -> anyhow::Result<ClientConfig> {
    let mut c = consumer(config)?;
    // librdkafka wants a group for `assign`; this one never joins it nor commits (nor is it
    // the instance's static member).
    c.remove("group.instance.id");
    c.set("group.id", format!("{}-restore", config.group_id))
        .set("enable.partition.eof", "true")
        // Restore wants whole fetches fast, not latency.
        .set("fetch.min.bytes", "1")
        .set("fetch.wait.max.ms", "10")
        .set("queued.max.messages.kbytes", "262144");
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
            bail!("kafka setting `{k}` must stay `{want}`: the delivery guarantees depend on it");
        }
        c.set(k, v);
    }
    Ok(())
}
