//! Offsets waiting for acknowledgements: the batches in flight, oldest first.
//!
//! The pipeline registers each micro-batch here, with its [`BatchTracker`] and the highest
//! offset it read per partition, before the batch is scored. [`InFlight::settle`] stores the
//! offsets of the batches at the front whose outputs are all acknowledged, in batch order, and
//! only for partitions still assigned; the rebalance callback drains it before a revocation is
//! committed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::delivery::BatchTracker;
use super::stats::PipelineStats;

/// A batch whose outputs are on their way, and the offsets it covers.
#[derive(Debug)]
struct PendingBatch {
    tracker: Arc<BatchTracker>,
    /// Highest offset processed per `(topic, partition)`.
    offsets: HashMap<(String, i32), i64>,
}

/// Batches in flight, oldest first; shared with the rebalance callback.
#[derive(Debug)]
pub struct InFlight {
    queue: Mutex<VecDeque<PendingBatch>>,
    /// Wakes a waiter when a batch completes.
    done: Mutex<mpsc::Receiver<()>>,
    /// `(topic, partition)` assigned to this consumer: offsets of others are not stored.
    assigned: Arc<Mutex<HashSet<(String, i32)>>>,
    settled: Arc<PipelineStats>,
}

impl InFlight {
    /// Nothing in flight yet; `done` is the delivery notification of completed batches.
    pub(crate) fn new(
        done: mpsc::Receiver<()>,
        assigned: Arc<Mutex<HashSet<(String, i32)>>>,
        settled: Arc<PipelineStats>,
    ) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            done: Mutex::new(done),
            assigned,
            settled,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Registers a batch, behind every batch registered before it.
    pub(crate) fn push(&self, tracker: Arc<BatchTracker>, offsets: HashMap<(String, i32), i64>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(PendingBatch { tracker, offsets });
    }

    /// Stores the offsets of every completed batch at the front of the queue. A failed batch
    /// is an error: its offsets, and all later ones, stay unstored.
    pub(crate) fn settle<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> anyhow::Result<()> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        while queue.front().is_some_and(|p| p.tracker.is_done()) {
            let pending = queue.pop_front().expect("front exists");
            if let Some(error) = pending.tracker.failure() {
                queue.push_front(pending);
                bail!("an output of a batch was not acknowledged: {error}");
            }
            let assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
            for ((topic, partition), offset) in &pending.offsets {
                if assigned.contains(&(topic.clone(), *partition)) {
                    consumer
                        .store_offset(topic, *partition, *offset)
                        .with_context(|| format!("storing offset {topic}/{partition}@{offset}"))?;
                }
            }
            self.settled.settled_batches.fetch_add(1, Ordering::Relaxed);
        }
        metrics::gauge!("fleetscore_in_flight_batches").set(queue.len() as f64);
        Ok(())
    }

    /// Settles until nothing is in flight, or `timeout` passes.
    pub(crate) fn drain<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.settle(consumer)?;
            if self.len() == 0 {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{} batches still unacknowledged after {timeout:?}",
                    self.len()
                );
            }
            self.wait(left.min(Duration::from_millis(50)));
        }
    }

    /// Waits for a batch to complete, at most `timeout`.
    pub(crate) fn wait(&self, timeout: Duration) {
        let done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let _ = done.recv_timeout(timeout);
    }
}
