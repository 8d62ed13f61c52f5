//! Commits: the outputs, the changelog and the consumed offsets, together.
//!
//! Every `commit_interval_ms` (and on revocation and shutdown) the pipeline waits until every
//! output of the batches handed over so far is on the broker, writes the changelog record of
//! each aircraft those batches changed, and commits their offsets:
//!
//! - **exactly-once**: the outputs and changelog records are in the open transaction (the
//!   changelog records are written first, and acknowledged while the outputs are); the
//!   offsets join it (`send_offsets_to_transaction` with the consumer's group metadata, so a
//!   zombie whose partitions moved is refused) and the transaction commits. A read_committed
//!   consumer sees all of it or none of it.
//! - **at-least-once**: the changelog records are acknowledged before the offsets are
//!   committed, so the state after a restart is never behind the committed offsets; events
//!   read again are recognised as applied (no event counts twice, none is scored twice), and a
//!   consumer may see an output again: those produced after the last changelog write.
//!
//! librdkafka's transaction calls block (up to their timeout), so they run off the async
//! workers: each on a thread of its own, which the pipeline thread waits for at most the
//! call's timeout and [`CALL_MARGIN`]. A call that has not returned by then (librdkafka can
//! block past its timeout, see [`super::producer`]) is left behind and the producer replaced
//! (the caller rewinds). Errors are classified as librdkafka does: a retriable one is retried
//! until the deadline, an abortable one aborts the transaction (the caller rewinds to the
//! committed state), a fatal one (fenced: another instance owns the transactional id, or the
//! transaction timed out) ends the pipeline with an error.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::changelog;
use super::in_flight::{InFlight, Settled};
use super::producer::{OutputProducer, ProducerSlot};
use crate::config::{Guarantee, KafkaConfig};
use crate::metrics::names;
use crate::store::StateStore;

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The transaction must be aborted; the work since the last commit is done again.
    #[error("{0}")]
    Abortable(String),
    /// The pipeline cannot go on (fenced, fatal producer error, outputs lost at-least-once).
    #[error("{0}")]
    Fatal(String),
}

/// Aborts in a row (no commit between them) after which the pipeline gives up: the same work
/// keeps failing (a topic refusing writes, say), and an operator must look.
const MAX_ABORTS_IN_A_ROW: u32 = 5;

/// How much longer than its own timeout a transaction call is waited for before it is taken
/// for stuck (see [`super::producer`]).
const CALL_MARGIN: Duration = Duration::from_secs(5);

/// Changelog records on their way: their tracker (`None`: nothing to write) and its wake-up.
struct PendingChangelog {
    tracker: Option<Arc<super::delivery::BatchTracker>>,
    wake: mpsc::Receiver<()>,
}

/// A transaction call, run on a thread of its own (so: shared, and `'static`).
type TxnCall = Arc<dyn Fn(&OutputProducer, Duration) -> KafkaResult<()> + Send + Sync>;

pub struct Committer {
    guarantee: Guarantee,
    producers: Arc<ProducerSlot>,
    in_flight: Arc<InFlight>,
    store: Arc<StateStore>,
    changelog_topic: String,
    interval: Duration,
    /// The longest a transaction call, or a wait for acknowledgements, may take.
    call_timeout: Duration,
    last: Instant,
    /// A transaction is open (exactly-once).
    open: bool,
    /// A transaction call did not return in time: the next abort replaces the producer.
    stuck: bool,
    aborts_in_a_row: u32,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("guarantee", &self.guarantee)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Exactly-once: registers the transactional id with the broker (fencing an earlier
    /// incarnation with the same id and aborting its open transaction) and opens the first
    /// transaction.
    pub fn start(
        config: &KafkaConfig,
        producers: Arc<ProducerSlot>,
        in_flight: Arc<InFlight>,
        store: Arc<StateStore>,
    ) -> anyhow::Result<Self> {
        let mut committer = Self {
            guarantee: config.guarantee,
            producers,
            in_flight,
            store,
            changelog_topic: config.changelog(),
            interval: Duration::from_millis(config.commit_interval_ms),
            call_timeout: Duration::from_millis(config.transaction_timeout_ms),
            last: Instant::now(),
            open: false,
            stuck: false,
            aborts_in_a_row: 0,
        };
        if committer.guarantee == Guarantee::ExactlyOnce {
            committer
                .producers
                .current()
                .init_transactions(committer.call_timeout)
                .map_err(|e| anyhow::anyhow!("initialising Kafka transactions: {e}"))?;
            committer.begin().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(committer)
    }

    pub fn guarantee(&self) -> Guarantee {
        self.guarantee
    }

    /// Whether the commit interval has passed since the last commit.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    fn begin(&mut self) -> Result<(), CommitError> {
        if self.guarantee == Guarantee::ExactlyOnce && !self.open {
            self.producers
                .current()
                .begin_transaction()
                .map_err(classify)?;
            self.open = true;
        }
        Ok(())
    }

    /// Commits everything handed over so far (see the module documentation), waiting at most
    /// `wait` for outstanding acknowledgements. `mode`: at-least-once offset commit (sync on
    /// revocation and shutdown).
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        wait: Duration,
        mode: CommitMode,
    ) -> Result<(), CommitError> {
        let started = Instant::now();
        self.last = started;
        let wait = wait.min(self.ack_timeout());
        // Exactly-once: the changelog records go out first, in the open transaction, and are
        // acknowledged while the outputs are (the state of every aircraft handed over so far
        // is final: events are applied at hand-over, and nothing is handed over during a
        // commit). At-least-once must wait: a changelog ahead of unacknowledged outputs would,
        // after a crash, mark events applied whose predictions were lost.
        let early_changelog = match self.guarantee {
            Guarantee::ExactlyOnce => {
                Some(self.start_changelog(&self.in_flight.dirty_so_far(), changelog::Parts::All))
            }
            Guarantee::AtLeastOnce => None,
        };
        let drained = self.in_flight.drain(wait);
        tracing::debug!(
            drain_ms = started.elapsed().as_secs_f64() * 1e3,
            "outputs acknowledged"
        );
        if let Err(e) = drained {
            return Err(match self.guarantee {
                Guarantee::ExactlyOnce => CommitError::Abortable(e.to_string()),
                Guarantee::AtLeastOnce => CommitError::Fatal(e.to_string()),
            });
        }
        let settled = self.in_flight.take_settled();
        if settled.is_empty() {
            return Ok(());
        }
        let result = match early_changelog {
            Some(changelog) => self.commit_transaction(consumer, &settled, changelog),
            None => self.commit_offsets(consumer, &settled, mode),
        };
        metrics::histogram!(names::COMMIT_DURATION).record(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.aborts_in_a_row = 0;
            metrics::counter!(names::COMMITS, "outcome" => "committed").increment(1);
        }
        result
    }

    fn commit_transaction<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        settled: &Settled,
        changelog: PendingChangelog,
    ) -> Result<(), CommitError> {
        // The changelog records acknowledged before the commit: commit_transaction would flush
        // them itself, but its flush polls in 100 ms steps while the producer's own thread
        // takes the delivery reports, so every commit took 100 ms more (measured).
        self.finish_changelog(changelog)
            .map_err(CommitError::Abortable)?;
        // Again, now with their episodes, the aircraft whose episodes the outputs just
        // acknowledged changed (few: alerts are rare; the later record wins at restore).
        self.write_changelog(settled, changelog::Parts::AlertsChanged)
            .map_err(CommitError::Abortable)?;
        let t0 = Instant::now();
        if !settled.offsets.is_empty() {
            let metadata = consumer.group_metadata().ok_or_else(|| {
                CommitError::Fatal("the consumer has no group metadata".to_owned())
            })?;
            let offsets = next_offsets(settled)?;
            self.retrying(Arc::new(move |p, t| {
                #[cfg(feature = "fault-injection")]
                crate::fault::maybe_hang_offsets_call();
                p.send_offsets_to_transaction(&offsets, &metadata, t)
            }))?;
        }
        let t1 = Instant::now();
        self.retrying(Arc::new(|p, t| p.commit_transaction(t)))?;
        tracing::debug!(
            offsets_ms = (t1 - t0).as_secs_f64() * 1e3,
            commit_ms = t1.elapsed().as_secs_f64() * 1e3,
            "transaction committed"
        );
        self.open = false;
        self.begin()
    }

    fn commit_offsets<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        settled: &Settled,
        mode: CommitMode,
    ) -> Result<(), CommitError> {
        // The changelog before the offsets: never a committed offset ahead of the state. The
        // episodes in the state's record, as of the same events: after a crash, the events
        // redone from there emit their alert events again exactly as they did (duplicates).
        self.write_changelog(settled, changelog::Parts::All)
            .map_err(CommitError::Fatal)?;
        if settled.offsets.is_empty() {
            return Ok(());
        }
        let offsets = next_offsets(settled)?;
        match consumer.commit(&offsets, mode) {
            Ok(()) => Ok(()),
            // The group is rebalancing or the coordinator moved: the next commit (or the new
            // owner, from the last committed offset; the changelog is ahead) covers it.
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; the events after the last commit are read again (and recognised as applied)");
                Ok(())
            }
        }
    }

    /// How long a commit waits for acknowledgements. Under exactly-once, half the transaction
    /// timeout (records time out then too, see `settings::producer`): an abort must reach the
    /// broker before the transaction times out there, or the producer is fenced (measured: a
    /// broker killed mid-transaction, acknowledgements waited for the whole timeout, and the
    /// abort that followed was refused as INVALID_TXN_STATE, which is fatal).
    fn ack_timeout(&self) -> Duration {
        match self.guarantee {
            Guarantee::ExactlyOnce => self.call_timeout / 2,
            Guarantee::AtLeastOnce => self.call_timeout,
        }
    }

    /// Writes `parts` of the changed aircraft to the changelog and waits for the
    /// acknowledgements.
    fn write_changelog(&self, settled: &Settled, parts: changelog::Parts) -> Result<(), String> {
        let pending = self.start_changelog(&settled.dirty, parts);
        self.finish_changelog(pending)
    }

    /// Produces the changelog records (`parts`) of `dirty` as they are now; acknowledged by
    /// [`Committer::finish_changelog`].
    fn start_changelog(
        &self,
        dirty: &HashMap<String, i32>,
        parts: changelog::Parts,
    ) -> PendingChangelog {
        let (done, wake) = mpsc::channel();
        let tracker = changelog::write(
            &self.producers.current(),
            &self.changelog_topic,
            &self.store,
            dirty,
            parts,
            done,
        );
        PendingChangelog { tracker, wake }
    }

    /// Waits (at most the acknowledgement timeout) for the records of
    /// [`Committer::start_changelog`].
    fn finish_changelog(&self, pending: PendingChangelog) -> Result<(), String> {
        let PendingChangelog { tracker, wake } = pending;
        let Some(tracker) = tracker else {
            return Ok(());
        };
        let _ = wake.recv_timeout(self.ack_timeout());
        if !tracker.is_done() {
            return Err(format!(
                "changelog writes not acknowledged within {} ms",
                self.ack_timeout().as_millis()
            ));
        }
        match tracker.failure() {
            Some(error) => Err(format!("changelog write failed: {error}")),
            None => Ok(()),
        }
    }

    /// Aborts the open transaction (exactly-once; librdkafka purges what it still holds of it)
    /// at once, before the broker's transaction timeout can fence the producer; then waits
    /// until nothing handed over is still being produced (a record sent between two
    /// transactions is refused, so none of the aborted work reaches the next one), forgets what
    /// was in flight and opens the next transaction. The caller rewinds.
    pub fn abort(&mut self, why: &str) -> Result<(), CommitError> {
        tracing::warn!(
            reason = why,
            "aborting the transaction: the work since the last commit is done again"
        );
        metrics::counter!(names::COMMITS, "outcome" => "aborted").increment(1);
        self.aborts_in_a_row += 1;
        if self.guarantee == Guarantee::ExactlyOnce && self.open && !self.stuck {
            match self.retrying(Arc::new(|p, t| p.abort_transaction(t))) {
                Ok(()) => self.open = false,
                Err(_) if self.stuck => {} // replaced next
                Err(e) => return Err(e),
            }
        }
        if self.stuck {
            self.replace_producer()?;
        }
        self.in_flight
            .abandon_all(self.call_timeout)
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        self.last = Instant::now();
        if self.aborts_in_a_row >= MAX_ABORTS_IN_A_ROW {
            return Err(CommitError::Fatal(format!(
                "{} commits in a row aborted; the last because: {why}",
                self.aborts_in_a_row
            )));
        }
        self.begin()
    }

    /// Runs a transaction call, again while it fails with a retriable error (librdkafka:
    /// a call that timed out must be called again to resume; another call meanwhile is refused
    /// as conflicting), for at most [`RETRY_ROUNDS`] call timeouts in all; a call still
    /// retriable then is fatal (the broker aborts the transaction after its timeout anyway).
    /// A call that does not return at all is abortable, and marks the producer stuck.
    fn retrying(&mut self, call: TxnCall) -> Result<(), CommitError> {
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
    fn replace_producer(&mut self) -> Result<(), CommitError> {
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

/// The offsets to commit: one past the last processed record of each partition.
fn next_offsets(settled: &Settled) -> Result<TopicPartitionList, CommitError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in &settled.offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
    }
    Ok(tpl)
}

/// As librdkafka classifies it: fatal (fenced included) or abortable.
fn classify(e: KafkaError) -> CommitError {
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
