//! Acknowledgements of produced records, counted per micro-batch.
//!
//! Every record produced for a batch carries that batch's [`BatchTracker`]; librdkafka's
//! delivery report (on the producer's own thread) counts it down, and so does an output that
//! never reached librdkafka. The tracker that reaches zero sends a wake-up to whoever waits for
//! acknowledgements ([`super::in_flight`]), which stores the batch's source offsets if there was
//! no failure; batches settle in order, so an offset is never stored ahead of an unacknowledged
//! output.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::log_limit::ClientErrors;
use crate::metrics::names;
use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// Wakes every thread waiting for a batch to complete (the commit's drain and the pipeline's
/// back-pressure may wait at once): a count of completions and a condition variable.
#[derive(Debug, Default)]
pub struct Wakeup {
    completions: Mutex<u64>,
    changed: Condvar,
}

impl Wakeup {
    /// Completions so far: take this before looking at what to wait for, then
    /// [`Wakeup::wait_past`] it, and no completion in between is missed.
    pub fn seen(&self) -> u64 {
        *self.completions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a completion after `seen`, or `timeout`.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let guard = self.completions.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |now| *now == seen);
    }

    /// Waits until `pending` (asked again at each completion) says nothing is left, at most
    /// `timeout`; `Ok(n)`: the `n` still pending then, 0 when done in time.
    pub fn wait_for<E>(
        &self,
        timeout: Duration,
        mut pending: impl FnMut() -> Result<usize, E>,
    ) -> Result<usize, E> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let seen = self.seen();
            let left = pending()?;
            let time = deadline.saturating_duration_since(std::time::Instant::now());
            if left == 0 || time.is_zero() {
                return Ok(left);
            }
            self.wait_past(seen, time);
        }
    }

    fn notify(&self) {
        *self.completions.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.changed.notify_all();
    }
}

#[derive(Debug)]
pub struct BatchTracker {
    remaining: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    /// Told when the last output settles, acknowledged or not.
    done: Arc<Wakeup>,
}

impl BatchTracker {
    /// A tracker expecting `outputs` acknowledgements, waking `done` when they are in.
    pub fn new(outputs: usize, done: Arc<Wakeup>) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(outputs),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            done,
        })
    }

    /// All outputs acknowledged (or failed).
    pub fn is_done(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// The first delivery error, if any output failed.
    pub fn failure(&self) -> Option<String> {
        if self.failed.load(Ordering::Acquire) {
            Some(
                self.error
                    .lock()
                    .map(|e| e.clone().unwrap_or_default())
                    .unwrap_or_default(),
            )
        } else {
            None
        }
    }

    /// Counts one output as settled; when it was the last, wakes the waiter.
    pub fn settle(&self, error: Option<String>) {
        if let Some(e) = error {
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(e);
            }
            self.failed.store(true, Ordering::Release);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify();
        }
    }

    /// Every output not settled yet, as failed with `error`: a batch dropped before it was
    /// produced (its transaction aborted while it waited, see `super::txn_gate`).
    pub fn abandon_rest(&self, error: String) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(error);
        }
        self.failed.store(true, Ordering::Release);
        if self.remaining.swap(0, Ordering::AcqRel) > 0 {
            self.done.notify();
        }
    }

    /// Expects `more` acknowledgements besides those counted so far; called before any of
    /// them is sent, so the count cannot reach zero early.
    pub fn expect_more(&self, more: usize) {
        self.remaining.fetch_add(more, Ordering::AcqRel);
    }

    /// An output that never reached librdkafka (the send itself failed).
    pub fn abandon(&self, error: String) {
        self.settle(Some(error));
    }
}

/// The producer's context: settles the tracker of each delivered (or failed) record.
#[derive(Debug)]
pub struct DeliveryContext {
    pub errors: ClientErrors,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<BatchTracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Self::DeliveryOpaque) {
        let error = result.as_ref().err().map(|(e, _)| e.to_string());
        if error.is_some() {
            metrics::counter!(names::PRODUCE_FAILURES).increment(1);
        }
        tracker.settle(error);
    }
}

/// Hands `record` to librdkafka, waiting while its queue is full (the producer's thread is
/// draining it); a record that cannot be queued at all settles its tracker as failed.
pub fn send<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
    producer: &ThreadedProducer<DeliveryContext>,
    mut record: BaseRecord<'_, K, P, Arc<BatchTracker>>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, back)) => {
                back.delivery_opaque.abandon(e.to_string());
                return;
            }
        }
    }
}
