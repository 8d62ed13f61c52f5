//! Offsets waiting for acknowledgements: the batches in flight, oldest first.
//!
//! The pipeline registers each micro-batch here, with the highest offset it read per
//! partition and the aircraft it changed, before the batch is scored, and gets the
//! [`BatchTracker`] its outputs carry. [`InFlight::settle`] moves the offsets and aircraft of
//! the batches at the front whose outputs are all acknowledged, in batch order, into what the
//! next commit takes ([`InFlight::take_settled`]), for partitions still assigned. Waiting for
//! acknowledgements (back-pressure, commits, revocation, shutdown) blocks on the trackers'
//! wake-ups, not on a timer; several threads may wait at once (the pipeline's back-pressure
//! and a commit's drain).
//!
//! Each batch belongs to the epoch of its transaction ([`super::txn_gate`]): a commit drains
//! and takes only the epochs it commits, while later batches are already being handed over.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;

use super::assignment::Assignment;
use super::delivery::{BatchTracker, Wakeup};
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
    /// The epoch of its transaction.
    epoch: u64,
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
    /// Wakes the waiters when a batch completes (each tracker holds it).
    done: Arc<Wakeup>,
    /// The partitions assigned to this consumer: offsets of others are not committed.
    assignment: Arc<Mutex<Assignment>>,
    stats: Arc<PipelineStats>,
    /// What settled, by epoch.
    settled: Mutex<BTreeMap<u64, Settled>>,
}

impl InFlight {
    pub(crate) fn new(assignment: Arc<Mutex<Assignment>>, stats: Arc<PipelineStats>) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            done: Arc::default(),
            assignment,
            stats,
            settled: Mutex::default(),
        }
    }

    fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Batches of `epoch` or before still in flight.
    fn len_through(&self, epoch: u64) -> usize {
        self.queue
            .lock()
            .map(|q| q.iter().take_while(|p| p.epoch <= epoch).count())
            .unwrap_or(0)
    }

    /// Registers a batch of `epoch` with `outputs` records covering `offsets` and changing
    /// the aircraft in `dirty`, behind every batch registered before it, and returns the
    /// tracker its records carry.
    pub(crate) fn register(
        &self,
        epoch: u64,
        outputs: usize,
        offsets: HashMap<(String, i32), i64>,
        dirty: HashMap<String, i32>,
    ) -> Arc<BatchTracker> {
        let tracker = BatchTracker::new(outputs, Arc::clone(&self.done));
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(PendingBatch {
                epoch,
                tracker: Arc::clone(&tracker),
                offsets,
                dirty,
            });
        tracker
    }

    /// Moves the offsets and aircraft of every completed batch at the front of the queue into
    /// what the next commit takes. A failed batch is an error: it, and all later ones, stay.
    pub(crate) fn settle(&self) -> anyhow::Result<()> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        while queue.front().is_some_and(|p| p.tracker.is_done()) {
            let pending = queue.pop_front().expect("front exists");
            if let Some(error) = pending.tracker.failure() {
                queue.push_front(pending);
                bail!("an output of a batch was not acknowledged: {error}");
            }
            let assignment = self.assignment.lock().unwrap_or_else(|p| p.into_inner());
            let mut by_epoch = self.settled.lock().unwrap_or_else(|p| p.into_inner());
            let settled = by_epoch.entry(pending.epoch).or_default();
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
        let mut dirty = HashMap::new();
        for (tail, partition) in settled.values().flat_map(|s| &s.dirty) {
            dirty.insert(tail.clone(), *partition);
        }
        for pending in queue.iter() {
            for (tail, partition) in &pending.dirty {
                if numbers.contains(partition) {
                    dirty.insert(tail.clone(), *partition);
                }
            }
        }
        dirty
    }

    /// What the acknowledged batches of `epoch` and before cover, since the last call.
    pub(crate) fn take_settled_through(&self, epoch: u64) -> Settled {
        let mut by_epoch = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        let taken = match epoch.checked_add(1) {
            Some(after) => {
                let later = by_epoch.split_off(&after);
                std::mem::replace(&mut *by_epoch, later)
            }
            None => std::mem::take(&mut *by_epoch),
        };
        let mut all = Settled::default();
        for settled in taken.into_values() {
            for (tp, offset) in settled.offsets {
                let stored = all.offsets.entry(tp).or_insert(offset);
                *stored = (*stored).max(offset);
            }
            all.dirty.extend(settled.dirty);
        }
        all
    }

    /// Waits until every batch has completed, acknowledged or failed (nothing of theirs is
    /// still being produced), at most `timeout`; then forgets them all and what settled. For
    /// an abort: nothing of the aborted work may reach the next transaction.
    pub(crate) fn abandon_all(&self, timeout: Duration) -> anyhow::Result<()> {
        let Ok(pending) = self.done.wait_for(timeout, || {
            let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            Ok::<_, Infallible>(queue.iter().filter(|p| !p.tracker.is_done()).count())
        });
        if pending > 0 {
            bail!("{pending} batches still being produced after {timeout:?}");
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.settled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        metrics::gauge!(names::IN_FLIGHT_BATCHES).set(0.0);
        Ok(())
    }

    /// Settles until at most `max` batches are in flight, waiting as long as it takes
    /// (back-pressure: every batch completes, acknowledged or failed, in its delivery timeout),
    /// or until `stop` is set (shutdown then drains within its own bound).
    pub(crate) fn settle_to(&self, max: usize, stop: &AtomicBool) -> anyhow::Result<()> {
        loop {
            let seen = self.done.seen();
            self.settle()?;
            if self.len() <= max || stop.load(Ordering::Acquire) {
                return Ok(());
            }
            // Woken by a completed batch; the stop flag has no wake-up, so look at it now and then.
            self.done.wait_past(seen, STOP_CHECK);
        }
    }

    /// Settles until no batch of `epoch` or before is in flight, or `timeout` passes.
    pub(crate) fn drain_through(&self, epoch: u64, timeout: Duration) -> anyhow::Result<()> {
        let pending = self.done.wait_for(timeout, || {
            self.settle()?;
            anyhow::Ok(self.len_through(epoch))
        })?;
        if pending > 0 {
            bail!("{pending} batches still unacknowledged after {timeout:?}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_flight() -> InFlight {
        let mut assignment = Assignment::default();
        assignment.assign(&[("t".to_owned(), 0)]);
        InFlight::new(Arc::new(Mutex::new(assignment)), Arc::default())
    }

    fn batch(in_flight: &InFlight, epoch: u64, offset: i64, tail: &str) -> Arc<BatchTracker> {
        in_flight.register(
            epoch,
            1,
            HashMap::from([(("t".to_owned(), 0), offset)]),
            HashMap::from([(tail.to_owned(), 0)]),
        )
    }

    #[test]
    fn a_commit_drains_and_takes_its_epochs_only() {
        let in_flight = in_flight();
        let first = batch(&in_flight, 1, 5, "a");
        let second = batch(&in_flight, 2, 9, "b");
        assert!(in_flight.drain_through(1, Duration::ZERO).is_err());
        first.settle(None);
        // Epoch 2 still in flight: epoch 1 is drained all the same.
        in_flight.drain_through(1, Duration::ZERO).unwrap();
        assert!(in_flight.drain_through(2, Duration::ZERO).is_err());
        second.settle(None);
        in_flight.settle().unwrap();
        let taken = in_flight.take_settled_through(1);
        assert_eq!(taken.offsets, HashMap::from([(("t".to_owned(), 0), 5)]));
        assert_eq!(taken.dirty, HashMap::from([("a".to_owned(), 0)]));
        // Every epoch (at-least-once has only the first, and asks for all).
        let rest = in_flight.take_settled_through(u64::MAX);
        assert_eq!(rest.offsets, HashMap::from([(("t".to_owned(), 0), 9)]));
        assert_eq!(rest.dirty, HashMap::from([("b".to_owned(), 0)]));
        assert!(in_flight.take_settled_through(u64::MAX).is_empty());
    }
}
