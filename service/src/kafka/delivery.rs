//! Acknowledgements of produced records, counted per micro-batch.
//!
//! Every record produced for a batch carries that batch's [`BatchTracker`]; librdkafka's
//! delivery report (on the producer's own thread) counts it down. The pipeline stores the
//! batch's source offsets only when its tracker reaches zero with no failure, and batches
//! complete in order, so an offset is never stored ahead of an unacknowledged output.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext};

#[derive(Debug)]
pub struct BatchTracker {
    remaining: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

impl BatchTracker {
    /// A tracker expecting `outputs` acknowledgements.
    pub fn new(outputs: usize) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(outputs),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
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

    /// Counts one output as settled; returns true when it was the last.
    pub fn settle(&self, error: Option<String>) -> bool {
        if let Some(e) = error {
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(e);
            }
            self.failed.store(true, Ordering::Release);
        }
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
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

/// The producer's context: settles trackers and wakes the pipeline when a batch completes.
#[derive(Debug)]
pub struct DeliveryContext {
    done: Mutex<mpsc::Sender<()>>,
}

impl DeliveryContext {
    pub fn new() -> (Self, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        (
            Self {
                done: Mutex::new(tx),
            },
            rx,
        )
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<BatchTracker>;

    fn delivery(&self, result: &DeliveryResult<'_>, tracker: Self::DeliveryOpaque) {
        let error = result.as_ref().err().map(|(e, _)| e.to_string());
        if error.is_some() {
            metrics::counter!("fleetscore_produce_failures_total").increment(1);
        }
        if tracker.settle(error)
            && let Ok(done) = self.done.lock()
        {
            let _ = done.send(());
        }
    }
}
