//! Offsets waiting for acknowledgements: the batches in flight, oldest first.
//!
//! The pipeline registers each micro-batch here, with the highest offset it read per
//! partition, before the batch is scored, and gets the [`BatchTracker`] its outputs carry.
//! [`InFlight::settle`] stores the offsets of the batches at the front whose outputs are all
//! acknowledged, in batch order, and only for partitions still assigned. Waiting for
//! acknowledgements (back-pressure, revocation, shutdown) blocks on the trackers' wake-ups,
//! not on a timer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::delivery::BatchTracker;
use super::stats::PipelineStats;
use crate::metrics::names;

/// How often back-pressure looks at the stop flag while it waits.
const STOP_CHECK: Duration = Duration::from_millis(100);

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
    /// Wakes a waiter when a batch completes (each tracker holds a `notify`).
    done: Mutex<mpsc::Receiver<()>>,
    notify: mpsc::Sender<()>,
    /// `(topic, partition)` assigned to this consumer: offsets of others are not stored.
    assigned: Arc<Mutex<HashSet<(String, i32)>>>,
    settled: Arc<PipelineStats>,
}

impl InFlight {
    pub(crate) fn new(
        assigned: Arc<Mutex<HashSet<(String, i32)>>>,
        settled: Arc<PipelineStats>,
    ) -> Self {
        let (notify, done) = mpsc::channel();
        Self {
            queue: Mutex::new(VecDeque::new()),
            done: Mutex::new(done),
            notify,
            assigned,
            settled,
        }
    }

    fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Registers a batch of `outputs` records covering `offsets`, behind every batch registered
    /// before it, and returns the tracker its records carry.
    pub(crate) fn register(
        &self,
        outputs: usize,
        offsets: HashMap<(String, i32), i64>,
    ) -> Arc<BatchTracker> {
        let tracker = BatchTracker::new(outputs, self.notify.clone());
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(PendingBatch {
                tracker: Arc::clone(&tracker),
                offsets,
            });
        tracker
    }

    /// Stores the offsets of every completed batch at the front of the queue. A failed batch
    /// is an error: its offsets, and all later ones, stay unstored.
    pub(crate) fn settle<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> anyhow::Result<()> {
        // Wake-ups of batches completed so far are answered by looking at the queue now;
        // those of later ones stay for the next wait.
        while self.done().try_recv().is_ok() {}
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
        metrics::gauge!(names::IN_FLIGHT_BATCHES).set(queue.len() as f64);
        Ok(())
    }

    /// Settles until at most `max` batches are in flight, waiting as long as it takes
    /// (back-pressure: every batch completes, acknowledged or failed, in its delivery timeout),
    /// or until `stop` is set (shutdown then drains within its own bound).
    pub(crate) fn settle_to<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        max: usize,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        loop {
            self.settle(consumer)?;
            if self.len() <= max || stop.load(Ordering::Acquire) {
                return Ok(());
            }
            // Woken by a completed batch; the stop flag has no wake-up, so look at it now and then.
            let _ = self.done().recv_timeout(STOP_CHECK);
        }
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
            let _ = self.done().recv_timeout(left);
        }
    }

    fn done(&self) -> MutexGuard<'_, mpsc::Receiver<()>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner())
    }
}
