//! Offsets waiting for acknowledgements: the batches in flight, oldest first.
//!
//! The pipeline registers each micro-batch here, with the highest offset it read per
//! partition and the aircraft it changed, before the batch is scored, and gets the
//! [`BatchTracker`] its outputs carry. [`InFlight::settle`] moves the offsets and aircraft of
//! the batches at the front whose outputs are all acknowledged, in batch order, into what the
//! next commit takes ([`InFlight::take_settled`]), for partitions still assigned. Waiting for
//! acknowledgements (back-pressure, commits, revocation, shutdown) blocks on the trackers'
//! wake-ups, not on a timer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::assignment::Assignment;
use super::delivery::BatchTracker;
use super::stats::PipelineStats;
use crate::metrics::names;

/// What the acknowledged batches since the last commit cover.
#[derive(Debug, Default)]
pub struct Settled {
    /// Highest offset processed per `(topic, partition)`.
    pub offsets: HashMap<(String, i32), i64>,
    /// The aircraft changed, with their partition.
    pub dirty: HashMap<String, i32>,
}

impl Settled {
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty() && self.dirty.is_empty()
    }
}

/// How often back-pressure looks at the stop flag while it waits.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// A batch whose outputs are on their way, and the offsets it covers.
#[derive(Debug)]
struct PendingBatch {
    tracker: Arc<BatchTracker>,
    /// Highest offset processed per `(topic, partition)`.
    offsets: HashMap<(String, i32), i64>,
    /// The aircraft the batch changed, with their partition.
    dirty: HashMap<String, i32>,
}

/// Batches in flight, oldest first; shared with the rebalance callback.
#[derive(Debug)]
pub struct InFlight {
    queue: Mutex<VecDeque<PendingBatch>>,
    /// Wakes a waiter when a batch completes (each tracker holds a `notify`).
    done: Mutex<mpsc::Receiver<()>>,
    notify: mpsc::Sender<()>,
    /// The partitions assigned to this consumer: offsets of others are not committed.
    assignment: Arc<Mutex<Assignment>>,
    stats: Arc<PipelineStats>,
    settled: Mutex<Settled>,
}

impl InFlight {
    pub(crate) fn new(assignment: Arc<Mutex<Assignment>>, stats: Arc<PipelineStats>) -> Self {
        let (notify, done) = mpsc::channel();
        Self {
            queue: Mutex::new(VecDeque::new()),
            done: Mutex::new(done),
            notify,
            assignment,
            stats,
            settled: Mutex::default(),
        }
    }

    fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Registers a batch of `outputs` records covering `offsets` and changing the aircraft
    /// in `dirty`, behind every batch registered before it, and returns the tracker its
    /// records carry.
    pub(crate) fn register(
        &self,
        outputs: usize,
        offsets: HashMap<(String, i32), i64>,
        dirty: HashMap<String, i32>,
    ) -> Arc<BatchTracker> {
        let tracker = BatchTracker::new(outputs, self.notify.clone());
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(PendingBatch {
                tracker: Arc::clone(&tracker),
                offsets,
                dirty,
            });
        tracker
    }

    /// Moves the offsets and aircraft of every completed batch at the front of the queue into
    /// what the next commit takes. A failed batch is an error: it, and all later ones, stay.
    pub(crate) fn settle(&self) -> anyhow::Result<()> {
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
            let assignment = self.assignment.lock().unwrap_or_else(|p| p.into_inner());
            let mut settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
            for (tp, offset) in pending.offsets {
                if assignment.contains(&tp) {
                    let stored = settled.offsets.entry(tp).or_insert(offset);
                    *stored = (*stored).max(offset);
                }
            }
            let numbers = assignment.numbers();
            for (tail, partition) in pending.dirty {
                if numbers.contains(&partition) {
                    settled.dirty.insert(tail, partition);
                }
            }
            self.stats.settled_batches.fetch_add(1, Ordering::Relaxed);
        }
        metrics::gauge!(names::IN_FLIGHT_BATCHES).set(queue.len() as f64);
        Ok(())
    }

    /// The aircraft changed by every batch registered since the last [`InFlight::take_settled`]
    /// (settled or not), in assigned partitions: under exactly-once the commit writes their
    /// changelog records while the batches' outputs are still being acknowledged.
    pub(crate) fn dirty_so_far(&self) -> HashMap<String, i32> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let numbers = self
            .assignment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .numbers();
        let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        let mut dirty = settled.dirty.clone();
        for pending in queue.iter() {
            for (tail, partition) in &pending.dirty {
                if numbers.contains(partition) {
                    dirty.insert(tail.clone(), *partition);
                }
            }
        }
        dirty
    }

    /// What the acknowledged batches cover since the last call.
    pub(crate) fn take_settled(&self) -> Settled {
        std::mem::take(&mut *self.settled.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until every batch has completed, acknowledged or failed (nothing of theirs is
    /// still being produced), at most `timeout`; then forgets them all and what settled. For
    /// an abort: nothing of the aborted work may reach the next transaction.
    pub(crate) fn abandon_all(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let pending = {
                let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                queue.iter().filter(|p| !p.tracker.is_done()).count()
            };
            if pending == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{pending} batches still being produced after {timeout:?}");
            }
            let _ = self.done().recv_timeout(left.min(STOP_CHECK));
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.take_settled();
        metrics::gauge!(names::IN_FLIGHT_BATCHES).set(0.0);
        Ok(())
    }

    /// Settles until at most `max` batches are in flight, waiting as long as it takes
    /// (back-pressure: every batch completes, acknowledged or failed, in its delivery timeout),
    /// or until `stop` is set (shutdown then drains within its own bound).
    pub(crate) fn settle_to(&self, max: usize, stop: &AtomicBool) -> anyhow::Result<()> {
        loop {
            self.settle()?;
            if self.len() <= max || stop.load(Ordering::Acquire) {
                return Ok(());
            }
            // Woken by a completed batch; the stop flag has no wake-up, so look at it now and then.
            let _ = self.done().recv_timeout(STOP_CHECK);
        }
    }

    /// Settles until nothing is in flight, or `timeout` passes.
    pub(crate) fn drain(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.settle()?;
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
