//! Transaction calls, bounded: librdkafka's block (up to their timeout), so each runs on a
//! thread of its own, which the caller waits for at most the call's timeout and
//! [`CALL_MARGIN`]; a call that has not returned by then (librdkafka can block past its
//! timeout, see [`super::super::producer`]) is left behind and the producer replaced. Errors
//! are classified as librdkafka does.

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use super::{CommitError, Committer};
use crate::kafka::producer::OutputProducer;
use crate::metrics::names;

/// How much longer than its own timeout a transaction call is waited for before it is taken
/// for stuck (see [`super::producer`]).
pub(super) const CALL_MARGIN: Duration = Duration::from_secs(5);

/// A transaction call, run on a thread of its own (so: shared, and `'static`).
pub(super) type TxnCall = Arc<dyn Fn(&OutputProducer, Duration) -> KafkaResult<()> + Send + Sync>;

impl Committer {
    /// Runs a transaction call, again while it fails with a retriable error (librdkafka:
    /// a call that timed out must be called again to resume; another call meanwhile is refused
    /// as conflicting), for at most [`RETRY_ROUNDS`] call timeouts in all; a call still
    /// retriable then is fatal (the broker aborts the transaction after its timeout anyway).
    /// A call that does not return at all is abortable, and marks the producer stuck.
    pub(super) fn retrying(&mut self, call: TxnCall) -> Result<(), CommitError> {
        let deadline = Instant::now() + self.call_timeout * RETRY_ROUNDS;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = left.min(self.call_timeout);
            let Some(result) = self.bounded(&call, timeout) else {
                self.stuck = true;
                return Err(CommitError::Abortable(format!(
                    "a transaction call did not return within {} s, past its timeout \
                     (librdkafka #5456): the producer is replaced",
                    (timeout + CALL_MARGIN).as_secs()
                )));
            };
            match result {
                Ok(()) => return Ok(()),
                Err(KafkaError::Transaction(e)) if e.is_retriable() => {
                    if left.is_zero() {
                        return Err(CommitError::Fatal(format!(
                            "a transaction call still failing after {} s: {e}",
                            (self.call_timeout * RETRY_ROUNDS).as_secs()
                        )));
                    }
                    tracing::warn!(error = %e, "transaction call failed; retrying");
                }
                Err(e) => return Err(classify(e)),
            }
        }
    }

    /// Runs `call` on the current producer on a thread of its own and waits for it at most
    /// `timeout` and [`CALL_MARGIN`]; `None` when it has not returned by then (it is left to
    /// itself; see [`super::producer`]).
    fn bounded(&self, call: &TxnCall, timeout: Duration) -> Option<KafkaResult<()>> {
        let producer = self.producers.current();
        let (tx, rx) = mpsc::sync_channel(1);
        let run = Arc::clone(call);
        let spawned = std::thread::Builder::new()
            .name("kafka-txn-call".to_owned())
            .spawn(move || {
                let _ = tx.send(run(&producer, timeout));
            });
        if spawned.is_err() {
            // No thread to spare: run it here, unbounded, as librdkafka has it.
            return Some(call(&self.producers.current(), timeout));
        }
        rx.recv_timeout(timeout + CALL_MARGIN).ok()
    }

    /// Replaces a producer stuck in a transaction call (see [`super::producer`]): the new one,
    /// with the same transactional id, fences it (the broker aborts its open transaction and
    /// refuses its records), and every batch given to the stuck one completes (fails) before
    /// the new one is used, so that none of the aborted work reaches the next transaction.
    pub(super) fn replace_producer(&mut self) -> Result<(), CommitError> {
        tracing::warn!(
            "replacing the Kafka producer stuck in a transaction call; its transaction is aborted"
        );
        metrics::counter!(names::PRODUCER_REPLACEMENTS).increment(1);
        let fatal = |what: &str, e: String| {
            CommitError::Fatal(format!("replacing the stuck producer: {what}: {e}"))
        };
        let fresh = self
            .producers
            .fresh()
            .map_err(|e| fatal("creating", format!("{e:#}")))?;
        fresh
            .init_transactions(self.call_timeout)
            .map_err(|e| fatal("initialising transactions", e.to_string()))?;
        self.in_flight
            .abandon_all(self.call_timeout)
            .map_err(|e| fatal("waiting for the stuck producer's records", e.to_string()))?;
        let stuck = self.producers.replace(Arc::new(fresh));
        // The stuck call holds it too; should this be the last reference, dropping it waits for
        // librdkafka to tear down, which must not hold up the pipeline.
        let _ = std::thread::Builder::new()
            .name("kafka-producer-drop".to_owned())
            .spawn(move || drop(stuck));
        self.stuck = false;
        self.open = false;
        Ok(())
    }
}

/// How many call timeouts a transaction call may take in all, retries included.
const RETRY_ROUNDS: u32 = 6;

/// As librdkafka classifies it: fatal (fenced included) or abortable.
pub(super) fn classify(e: KafkaError) -> CommitError {
    match &e {
        KafkaError::Transaction(rd) if rd.is_fatal() => CommitError::Fatal(format!(
            "fatal transaction error ({:?}; fenced by a newer instance, or the transaction timed out): {rd}",
            rd.code()
        )),
        KafkaError::Transaction(rd) if rd.txn_requires_abort() => {
            CommitError::Abortable(rd.to_string())
        }
        KafkaError::Transaction(rd)
            if matches!(
                rd.code(),
                RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch
            ) =>
        {
            CommitError::Fatal(format!("fenced: {rd}"))
        }
        _ => CommitError::Abortable(e.to_string()),
    }
}
