//! The state changelog: every aircraft's [`TailState`] in a compacted topic, keyed by tail and
//! co-partitioned with the input topics (changelog partition N holds the aircraft of input
//! partition N), so that whoever owns an input partition can rebuild its aircraft exactly.
//!
//! - [`ensure_topic`]: at start-up, creates the topic when missing (the inputs' partition count,
//!   `cleanup.policy=compact`, `changelog_replication` replicas) or checks the one there.
//! - [`write`]: at each commit, one record per aircraft changed since the previous commit (its
//!   state's snapshot, [`fleet_features::snapshot`]), in the same transaction as the outputs and
//!   offsets under exactly-once; coalescing bounds the bytes per event by the commit interval.
//! - [`restore`]: on assignment, reads the partitions' changelog from the start to its last
//!   stable offset (read_committed) into the store, before any of their events is processed.
//!   An aircraft with open alert episodes has them in the same record ([`ENVELOPE`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fleet_features::TailState;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::delivery::{self, BatchTracker, DeliveryContext, Wakeup};
use super::log_limit::ClientErrors;
use super::settings;
use crate::alerts;
use crate::config::KafkaConfig;
use crate::metrics::names;
use crate::store::StateStore;
#[cfg(test)]
use crate::store::TailEntry;

/// Creates the changelog topic when missing, or checks the one there: as many partitions as
/// the input topics (which must agree with each other), `cleanup.policy=compact`. Blocking;
/// `runtime` drives the admin calls. Returns the partition count.
pub fn ensure_topic(config: &KafkaConfig, runtime: &tokio::runtime::Handle) -> anyhow::Result<i32> {
    let topic = config.changelog();
    let admin = AdminClient::<DefaultClientContext>::from_config(&settings::admin(config)?)
        .context("creating the Kafka admin client")?;
    let timeout = Duration::from_millis(config.startup_timeout_ms);
    let partitions_of = |name: &str| -> anyhow::Result<Option<i32>> {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(name), timeout)
            .with_context(|| format!("reading the metadata of {name}"))?;
        Ok(metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    };
    let inputs = [&config.telemetry_topic, &config.schedule_topic];
    let mut counts = Vec::new();
    for input in inputs {
        // The consumer waits for a missing input topic; so does the changelog's partition count.
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(n) = partitions_of(input)? {
                counts.push((input, n));
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "input topic {input} not found within {} ms: the changelog topic {topic} \
                     needs its partition count (create the input topics first)",
                    config.startup_timeout_ms
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let partitions = counts[0].1;
    if counts[1].1 != partitions {
        bail!(
            "the input topics are not co-partitioned: {} has {} partitions, {} has {}; \
             an aircraft's events must all land in one partition number",
            counts[0].0,
            counts[0].1,
            counts[1].0,
            counts[1].1
        );
    }
    match partitions_of(&topic)? {
        Some(n) if n == partitions => check_compacted(&admin, &topic, timeout, runtime)?,
        Some(n) => bail!(
            "changelog topic {topic} has {n} partitions, the input topics {partitions}: it must \
             match them (co-partitioned by tail); delete it or set [kafka] changelog_topic"
        ),
        None => {
            let new = NewTopic::new(
                &topic,
                partitions,
                TopicReplication::Fixed(config.changelog_replication),
            )
            .set("cleanup.policy", "compact");
            let created = runtime
                .block_on(
                    admin
                        .create_topics(&[new], &AdminOptions::new().request_timeout(Some(timeout))),
                )
                .with_context(|| format!("creating the changelog topic {topic}"))?;
            for result in created {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => bail!("creating the changelog topic {topic}: {code}"),
                }
            }
            tracing::info!(%topic, partitions, replication = config.changelog_replication, "changelog topic created");
        }
    }
    Ok(partitions)
}

/// A changelog that is not compacted grows without bound and restores ever slower: refused.
/// A cluster that cannot describe configurations (librdkafka's mock) gets a warning.
fn check_compacted(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    timeout: Duration,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    // A cluster without DescribeConfigs (the mock) never answers: a short wait.
    let described = runtime.block_on(admin.describe_configs(
        &[ResourceSpecifier::Topic(topic)],
        &AdminOptions::new().request_timeout(Some(timeout.min(Duration::from_secs(3)))),
    ));
    let policy = match described {
        Ok(mut results) => match results.pop() {
            Some(Ok(resource)) => resource.get("cleanup.policy").and_then(|e| e.value.clone()),
            _ => None,
        },
        Err(_) => None,
    };
    match policy {
        Some(policy) if policy.split(',').any(|p| p.trim() == "compact") => Ok(()),
        Some(policy) => bail!(
            "changelog topic {topic} has cleanup.policy={policy}: it must be compact (or \
             compact,delete), or restores grow without bound"
        ),
        None => {
            tracing::warn!(%topic, "could not read the changelog topic's cleanup.policy; assuming compact");
            Ok(())
        }
    }
}

/// What starts a record that holds open alert episodes besides the state: `FTA`, a format
/// byte, the state's snapshot length (u32, little-endian), the snapshot, then the episodes as
/// JSON. A tail with none open gets the plain snapshot (`FTS...`, as before alerts existed).
/// One record per aircraft keeps its state and its episodes as of the same event, whatever a
/// crash leaves half-written.
const ENVELOPE: &[u8; 4] = b"FTA\x01";

/// The changelog value of an aircraft: its state, with its open episodes if it has any.
#[cfg(test)]
fn value_of(entry: &TailEntry) -> Vec<u8> {
    value_with(entry.state.to_snapshot(), &entry.alerts)
}

/// The changelog value of a state `snapshot` with the aircraft's open `episodes`.
fn value_with(snapshot: Vec<u8>, episodes: &alerts::OpenEpisodes) -> Vec<u8> {
    if episodes.is_empty() {
        return snapshot;
    }
    let episodes = alerts::evaluate::encode(episodes);
    let mut value = Vec::with_capacity(8 + snapshot.len() + episodes.len());
    value.extend_from_slice(ENVELOPE);
    value.extend_from_slice(&(snapshot.len() as u32).to_le_bytes());
    value.extend_from_slice(&snapshot);
    value.extend_from_slice(&episodes);
    value
}

/// Reads what [`value_of`] wrote.
fn decode(value: &[u8]) -> anyhow::Result<(TailState, alerts::OpenEpisodes)> {
    let Some(rest) = value.strip_prefix(ENVELOPE) else {
        return Ok((
            TailState::from_snapshot(value)?,
            alerts::OpenEpisodes::new(),
        ));
    };
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .context("a changelog envelope cut short")?;
    let len = u32::from_le_bytes(*len) as usize;
    anyhow::ensure!(rest.len() >= len, "a changelog envelope cut short");
    let (snapshot, episodes) = rest.split_at(len);
    Ok((
        TailState::from_snapshot(snapshot)?,
        alerts::evaluate::decode(episodes).context("the open alert episodes")?,
    ))
}

/// Which changed aircraft a changelog write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Every one.
    All,
    /// Only those whose open alert episodes changed since they were last written (their
    /// record again, now with the episodes).
    AlertsChanged,
}

/// What [`write`] produced: the tracker of its records (`None` when there was nothing to
/// write), and under [`Parts::All`] the state snapshots it wrote, by tail.
#[derive(Debug, Default)]
pub struct Written {
    pub tracker: Option<Arc<BatchTracker>>,
    pub states: HashMap<String, Vec<u8>>,
}

/// Produces the changelog record of each tail in `dirty` (tail → partition) that `parts`
/// covers: its state (from `states` when it is there: the snapshot a commit took before later
/// events were applied; else as it is now), with its open alert episodes as they are now.
/// Under exactly-once the records belong to the open transaction.
pub fn write(
    producer: &ThreadedProducer<DeliveryContext>,
    topic: &str,
    store: &StateStore,
    dirty: &HashMap<String, i32>,
    parts: Parts,
    states: Option<&HashMap<String, Vec<u8>>>,
    done: Arc<Wakeup>,
) -> Written {
    // (tail, value, partition); a tail dropped meanwhile (its partition revoked) has none.
    let mut records: Vec<(&str, Vec<u8>, i32)> = Vec::new();
    let mut dropped = Vec::new();
    let mut written = Written::default();
    for (tail, partition) in dirty {
        let found = store.update(tail, |entry| {
            let changed = std::mem::take(&mut entry.alerts_changed);
            if parts == Parts::All || changed {
                let snapshot = match states.and_then(|s| s.get(tail)) {
                    Some(snapshot) => snapshot.clone(),
                    None => entry.state.to_snapshot(),
                };
                if parts == Parts::All {
                    written.states.insert(tail.clone(), snapshot.clone());
                }
                records.push((tail, value_with(snapshot, &entry.alerts), *partition));
            }
        });
        if found.is_none() && parts == Parts::All {
            dropped.push(tail);
        }
    }
    if records.is_empty() && dropped.is_empty() {
        return written;
    }
    let tracker = BatchTracker::new(records.len() + dropped.len(), done);
    for tail in dropped {
        tracker.abandon(format!(
            "tail {tail} was dropped before its changelog write"
        ));
    }
    let mut bytes = 0u64;
    for (tail, value, partition) in &records {
        bytes += (tail.len() + value.len()) as u64;
        let record = BaseRecord::with_opaque_to(topic, Arc::clone(&tracker))
            .key(tail.as_bytes())
            .payload(value)
            .partition(*partition);
        delivery::send(producer, record);
    }
    metrics::counter!(names::CHANGELOG_RECORDS).increment(records.len() as u64);
    metrics::counter!(names::CHANGELOG_BYTES).increment(bytes);
    written.tracker = Some(tracker);
    written
}

/// The restore consumer's client errors at a bounded log rate; the end of a partition, which
/// librdkafka also reports there, is expected.
struct RestoreContext(ClientErrors);

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF)
        {
            self.0.report(&error, reason);
        }
    }
}

impl ConsumerContext for RestoreContext {}

/// What restoring one partition read.
#[derive(Debug, Default, Clone)]
pub struct PartitionRestore {
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Reads changelog `partitions` from their start to their last stable offset into `store`
/// (a tail's latest record wins; an empty value forgets it). The partitions answer
/// "restoring" to readers meanwhile. Stops with an error when `stop` is set or a record does
/// not decode (the state could not be exact).
pub fn restore(
    config: &KafkaConfig,
    store: &StateStore,
    partitions: &[i32],
    stop: &AtomicBool,
) -> anyhow::Result<BTreeMap<i32, PartitionRestore>> {
    let mut done = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(done);
    }
    let topic = config.changelog();
    store.set_restoring(partitions, true);
    metrics::gauge!(names::RESTORING_PARTITIONS).set(store.restoring().len() as f64);
    let result = read_partitions(config, &topic, store, partitions, stop, &mut done);
    store.set_restoring(partitions, false);
    metrics::gauge!(names::RESTORING_PARTITIONS).set(store.restoring().len() as f64);
    result?;
    for (partition, r) in &done {
        let label = partition.to_string();
        metrics::counter!(names::RESTORE_RECORDS, "partition" => label.clone())
            .increment(r.records);
        metrics::counter!(names::RESTORE_BYTES, "partition" => label.clone()).increment(r.bytes);
        metrics::gauge!(names::RESTORE_SECONDS, "partition" => label).set(r.seconds);
        tracing::info!(%topic, partition, records = r.records, bytes = r.bytes, seconds = r.seconds, "state restored");
    }
    Ok(done)
}

fn read_partitions(
    config: &KafkaConfig,
    topic: &str,
    store: &StateStore,
    partitions: &[i32],
    stop: &AtomicBool,
    done: &mut BTreeMap<i32, PartitionRestore>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer<RestoreContext> = settings::restore_consumer(config)?
        .create_with_context(RestoreContext(ClientErrors::new("restore", None)))
        .context("creating the changelog restore consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .context("building the restore assignment")?;
    }
    consumer
        .assign(&tpl)
        .context("assigning the changelog partitions")?;
    let started = Instant::now();
    let mut reading: HashMap<i32, PartitionRestore> = partitions
        .iter()
        .map(|p| (*p, PartitionRestore::default()))
        .collect();
    let mut last_report = Instant::now();
    while !reading.is_empty() {
        if stop.load(Ordering::Acquire) {
            bail!("stopped while restoring changelog partitions {partitions:?}");
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let partition = message.partition();
                let Some(progress) = reading.get_mut(&partition) else {
                    continue;
                };
                let key = message.key().unwrap_or_default();
                let tail = std::str::from_utf8(key).with_context(|| {
                    format!(
                        "changelog {topic}/{partition}@{}: key is not UTF-8",
                        message.offset()
                    )
                })?;
                progress.records += 1;
                progress.bytes += (key.len() + message.payload_len()) as u64;
                match message.payload() {
                    None | Some([]) => store.remove(tail),
                    Some(bytes) => {
                        let (state, open) = decode(bytes).with_context(|| {
                            format!(
                                "changelog {topic}/{partition}@{} (tail {tail})",
                                message.offset()
                            )
                        })?;
                        store.restore(tail, state, open, partition);
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if let Some(mut progress) = reading.remove(&partition) {
                    progress.seconds = started.elapsed().as_secs_f64();
                    done.insert(partition, progress);
                }
            }
            Some(Err(e)) if last_report.elapsed() >= Duration::from_secs(5) => {
                tracing::warn!(error = %e, "changelog restore: consumer error (retrying)");
                last_report = Instant::now();
            }
            Some(Err(_)) => {}
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            let records: u64 = reading.values().map(|r| r.records).sum();
            tracing::info!(%topic, partitions = ?reading.keys().collect::<Vec<_>>(), records, "restoring state");
            last_report = Instant::now();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::alerts::episode::Episode;
    use crate::alerts::rule::Severity;

    #[test]
    fn a_record_holds_the_state_and_the_open_episodes_together() {
        let mut entry = TailEntry::default();
        // No episode open: the plain snapshot, as before alerts existed.
        let plain = value_of(&entry);
        assert!(plain.starts_with(b"FTS"));
        let (_, open) = decode(&plain).unwrap();
        assert!(open.is_empty());

        entry.alerts.insert(
            "engine-remaining-life".to_owned(),
            Episode {
                severity: Severity::Critical,
                raised_at: Utc::now(),
                raised_by: "e1".to_owned(),
            },
        );
        let value = value_of(&entry);
        let (state, open) = decode(&value).unwrap();
        assert_eq!(open, entry.alerts);
        assert_eq!(state.to_snapshot(), entry.state.to_snapshot());
        // Cut short anywhere: refused, never misread.
        for cut in [4, 7, 9, value.len() - 1] {
            assert!(decode(&value[..cut]).is_err(), "cut at {cut}");
        }
    }
}
