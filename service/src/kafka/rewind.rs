//! Back to the committed state after an abort: every assigned partition's aircraft forgotten
//! and restored from the changelog, the consumer back at the committed offsets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::assignment::Assignment;
use super::lock;
use super::rebalance::{RebalanceContext, Signals};
use crate::config::KafkaConfig;

/// How long a rewind waits for the committed offsets to be readable (a broker away).
const PATIENCE: Duration = Duration::from_secs(60);

/// Rewinds every assigned partition (nothing when none is: the next assignment restores and
/// reads from the committed offsets). A broker that is away (the usual reason for an abort)
/// is waited for, up to [`PATIENCE`].
pub(super) fn to_committed(
    consumer: &BaseConsumer<RebalanceContext>,
    config: &KafkaConfig,
    assignment: &Mutex<Assignment>,
    signals: &Signals,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let numbers: Vec<i32> = lock(assignment).numbers().into_iter().collect();
    if numbers.is_empty() {
        // Everything was revoked (the eager protocol, a lost assignment).
        return Ok(());
    }
    let context = consumer.context();
    let dropped = context.forget(&numbers);
    let started = Instant::now();
    loop {
        match seek_to_committed(consumer, config) {
            Ok(()) => break,
            Err(e) if started.elapsed() < PATIENCE && !stop.load(Ordering::Acquire) => {
                tracing::warn!(error = %format!("{e:#}"), "rewind: cannot read or seek to the committed offsets yet; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e.context("rewinding to the committed offsets")),
        }
    }
    tracing::warn!(partitions = ?numbers, tails_dropped = dropped, "rewound to the committed offsets; restoring");
    context.restore_missing(consumer);
    match signals.fatal() {
        Some(reason) => anyhow::bail!(reason),
        None => Ok(()),
    }
}

/// Seeks every assigned partition to its committed offset (the start when none).
fn seek_to_committed(
    consumer: &BaseConsumer<RebalanceContext>,
    config: &KafkaConfig,
) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(config.transaction_timeout_ms);
    let assigned = consumer.assignment().context("reading the assignment")?;
    let committed = consumer
        .committed_offsets(assigned, timeout)
        .context("reading the committed offsets")?;
    for mut element in committed.elements() {
        if !matches!(element.offset(), Offset::Offset(_)) {
            // Nothing committed yet: from the start, as auto.offset.reset says.
            element
                .set_offset(Offset::Beginning)
                .context("rewinding to the start")?;
        }
    }
    let sought = consumer
        .seek_partitions(committed, timeout)
        .context("seeking")?;
    for element in sought.elements() {
        if let Err(e) = element.error() {
            anyhow::bail!("seeking {}/{}: {e}", element.topic(), element.partition());
        }
    }
    Ok(())
}
