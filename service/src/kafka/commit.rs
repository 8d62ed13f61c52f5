//! Commits: the outputs, the changelog and the consumed offsets, together.
//!
//! Every `commit_interval_ms` (and on revocation and shutdown) a commit waits until every
//! output of the batches handed over so far is on the broker, writes the changelog record of
//! each aircraft those batches changed, and commits their offsets:
//!
//! - **exactly-once**: the outputs and changelog records are in the open transaction (the
//!   changelog records are written first, and acknowledged while the outputs are); the
//!   offsets join it (`send_offsets_to_transaction` with the consumer's group metadata, so a
//!   zombie whose partitions moved is refused) and the transaction commits. A read_committed
//!   consumer sees all of it or none of it. The commit does not stop the pipeline: the
//!   pipeline thread prepares it ([`Committer::prepare_pending`]: the next batches belong to
//!   the next epoch, the changelog snapshots are taken and produced) and the commit thread
//!   finishes it ([`Committer::finish_pending`]: acknowledgements, offsets, commit, the next
//!   transaction begun) while the next epoch's batches are polled, applied and scored; their
//!   outputs wait for the next transaction ([`super::txn_gate`]). A failure is taken up by the
//!   pipeline thread (abort and rewind), or by the next synchronous commit (revocation,
//!   shutdown), which also finishes a prepared commit first.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::changelog;
use super::delivery::Wakeup;
use super::in_flight::{InFlight, Settled};
use super::producer::{OutputProducer, ProducerSlot};
use super::txn_gate::TxnGate;
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

/// Changelog records on their way: their tracker (`None`: nothing to write), its wake-up,
/// and the state snapshots they hold.
struct PendingChangelog {
    written: changelog::Written,
    wake: Arc<Wakeup>,
}

/// An exactly-once commit prepared on the pipeline thread ([`Committer::prepare`]) and
/// finished off it ([`Committer::finish`]) while the pipeline goes on with the next epoch.
pub struct CommitJob {
    /// The epoch committed: every batch handed over before the commit started.
    epoch: u64,
    /// The changelog records of the aircraft those batches changed, already produced.
    changelog: PendingChangelog,
    /// The consumer's group metadata as of the start (a zombie's is refused).
    metadata: Option<ConsumerGroupMetadata>,
    started: Instant,
}

/// What the pipeline thread knows of the commit under way without taking the committer's
/// lock: whether one is under way, and how the last one finished off the pipeline thread
/// failed (to abort and rewind).
#[derive(Debug, Default)]
pub struct CommitStatus {
    busy: AtomicBool,
    failure: Mutex<Option<CommitError>>,
}

impl std::fmt::Debug for CommitJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitJob")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl CommitStatus {
    /// A prepared commit is not finished yet.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Why the last commit finished off the pipeline thread failed, once.
    pub fn take_failure(&self) -> Option<CommitError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// A transaction call, run on a thread of its own (so: shared, and `'static`).
type TxnCall = Arc<dyn Fn(&OutputProducer, Duration) -> KafkaResult<()> + Send + Sync>;

pub struct Committer {
    guarantee: Guarantee,
    producers: Arc<ProducerSlot>,
    in_flight: Arc<InFlight>,
    store: Arc<StateStore>,
    gate: Arc<TxnGate>,
    status: Arc<CommitStatus>,
    /// A prepared commit nobody has finished yet (the commit thread, or the next synchronous
    /// commit, whichever takes the lock first).
    pending: Option<CommitJob>,
    changelog_topic: String,
    /// The longest a transaction call, or a wait for acknowledgements, may take.
    call_timeout: Duration,
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

/// What a [`Committer`] works with, besides the configuration.
#[derive(Debug)]
pub struct CommitParts {
    pub producers: Arc<ProducerSlot>,
    pub in_flight: Arc<InFlight>,
    pub store: Arc<StateStore>,
    pub gate: Arc<TxnGate>,
    pub status: Arc<CommitStatus>,
}

impl Committer {
    /// Exactly-once: registers the transactional id with the broker (fencing an earlier
    /// incarnation with the same id and aborting its open transaction) and opens the first
    /// transaction.
    pub fn start(config: &KafkaConfig, parts: CommitParts) -> anyhow::Result<Self> {
        let CommitParts {
            producers,
            in_flight,
            store,
            gate,
            status,
        } = parts;
        let mut committer = Self {
            guarantee: config.guarantee,
            producers,
            in_flight,
            store,
            gate,
            status,
            pending: None,
            changelog_topic: config.changelog(),
            call_timeout: Duration::from_millis(config.transaction_timeout_ms),
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
    /// `wait` for outstanding acknowledgements: a commit prepared before and not finished yet
    /// first, and a failure of one finished off the pipeline thread is this one's.
    /// `mode`: at-least-once offset commit (sync on revocation and shutdown).
    pub fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        wait: Duration,
        mode: CommitMode,
    ) -> Result<(), CommitError> {
        if let Some(failure) = self.status.take_failure() {
            return Err(failure);
        }
        let result = match self.pending.take() {
            Some(job) => self.finish(job, wait),
            None => Ok(()),
        }
        .and_then(|()| match self.guarantee {
            Guarantee::ExactlyOnce => {
                let job = self.prepare(consumer);
                self.finish(job, wait)
            }
            Guarantee::AtLeastOnce => self.commit_at_least_once(consumer, wait, mode),
        });
        self.status.busy.store(false, Ordering::Release);
        result
    }

    /// Exactly-once, on the pipeline thread: starts a commit of everything handed over so far
    /// and leaves it pending, for the commit thread ([`Committer::finish_pending`]) or the
    /// next synchronous commit. Batches handed over from now on belong to the next epoch.
    /// The changelog records go out now, in the open transaction, and are acknowledged while
    /// the outputs are: the state of every aircraft handed over so far is final (events are
    /// applied at hand-over), and is taken before any later event is applied.
    pub fn prepare_pending<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let job = self.prepare(consumer);
        self.pending = Some(job);
    }

    fn prepare<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> CommitJob {
        let started = Instant::now();
        let epoch = self.gate.dispatch_epoch();
        self.gate.next_epoch();
        self.status.busy.store(true, Ordering::Release);
        let changelog =
            self.start_changelog(&self.in_flight.dirty_so_far(), changelog::Parts::All, None);
        CommitJob {
            epoch,
            changelog,
            metadata: consumer.group_metadata(),
            started,
        }
    }

    /// The commit thread: finishes the pending commit, if the next synchronous commit has not
    /// already; a failure is kept for the pipeline thread ([`CommitStatus::take_failure`]).
    pub fn finish_pending(&mut self, wait: Duration) {
        if let Some(job) = self.pending.take()
            && let Err(e) = self.finish(job, wait)
        {
            *self
                .status
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
        // After the failure is recorded: whoever sees a batch abandoned by it and then takes
        // the lock finds it.
        self.status.busy.store(false, Ordering::Release);
    }

    /// Finishes a prepared exactly-once commit: waits for its epoch's outputs, writes the
    /// changed episodes, sends the offsets and commits; then the next epoch's transaction
    /// begins, and its batches may be produced. On failure the batches handed over since are
    /// abandoned at once (the transaction is to be aborted; see [`super::txn_gate`]).
    fn finish(&mut self, job: CommitJob, wait: Duration) -> Result<(), CommitError> {
        let started = job.started;
        let result = self.finish_inner(job, wait);
        match &result {
            Ok(true) => {
                metrics::histogram!(names::COMMIT_DURATION).record(started.elapsed().as_secs_f64());
                self.aborts_in_a_row = 0;
                metrics::counter!(names::COMMITS, "outcome" => "committed").increment(1);
            }
            Ok(false) => {}
            Err(_) => self.gate.abandon_handed_over(),
        }
        result.map(|_| ())
    }

    /// `Ok(true)` when a transaction was committed, `Ok(false)` when there was nothing to.
    fn finish_inner(&mut self, job: CommitJob, wait: Duration) -> Result<bool, CommitError> {
        let CommitJob {
            epoch,
            mut changelog,
            metadata,
            started,
        } = job;
        let wait = wait.min(self.ack_timeout());
        self.in_flight
            .drain_through(epoch, wait)
            .map_err(|e| CommitError::Abortable(e.to_string()))?;
        tracing::debug!(
            drain_ms = started.elapsed().as_secs_f64() * 1e3,
            "outputs acknowledged"
        );
        let settled = self.in_flight.take_settled_through(epoch);
        if settled.is_empty() {
            // The same transaction goes on, with the next epoch's batches.
            self.gate.open(epoch + 1);
            return Ok(false);
        }
        // The changelog records acknowledged before the commit: commit_transaction would flush
        // them itself, but its flush polls in 100 ms steps while the producer's own thread
        // takes the delivery reports, so every commit took 100 ms more (measured).
        let states = std::mem::take(&mut changelog.written.states);
        self.finish_changelog(changelog)
            .map_err(CommitError::Abortable)?;
        // Again, now with their episodes, the aircraft whose episodes the outputs just
        // acknowledged changed (few: alerts are rare; the later record wins at restore); their
        // state as of this epoch (later events may have been applied since).
        let pending = self.start_changelog(
            &settled.dirty,
            changelog::Parts::AlertsChanged,
            Some(&states),
        );
        self.finish_changelog(pending)
            .map_err(CommitError::Abortable)?;
        let t0 = Instant::now();
        if !settled.offsets.is_empty() {
            let metadata = metadata.ok_or_else(|| {
                CommitError::Fatal("the consumer has no group metadata".to_owned())
            })?;
            let offsets = next_offsets(&settled)?;
            let metadata = Arc::new(metadata);
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
        self.begin()?;
        self.gate.open(epoch + 1);
        Ok(true)
    }

    /// At-least-once: waits for every output handed over, writes the changelog, then commits
    /// the offsets.
    fn commit_at_least_once<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        wait: Duration,
        mode: CommitMode,
    ) -> Result<(), CommitError> {
        let started = Instant::now();
        let wait = wait.min(self.ack_timeout());
        // Every epoch (there is only the first: the gate stays open).
        self.in_flight
            .drain_through(u64::MAX, wait)
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
        let settled = self.in_flight.take_settled_through(u64::MAX);
        if settled.is_empty() {
            return Ok(());
        }
        let result = self.commit_offsets(consumer, &settled, mode);
        metrics::histogram!(names::COMMIT_DURATION).record(started.elapsed().as_secs_f64());
        if result.is_ok() {
            self.aborts_in_a_row = 0;
            metrics::counter!(names::COMMITS, "outcome" => "committed").increment(1);
        }
        result
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
        let pending = self.start_changelog(&settled.dirty, changelog::Parts::All, None);
        self.finish_changelog(pending).map_err(CommitError::Fatal)?;
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

    /// Produces the changelog records (`parts`) of `dirty` (their state from `states` when
    /// there, else as it is now: see [`changelog::write`]); acknowledged by
    /// [`Committer::finish_changelog`].
    fn start_changelog(
        &self,
        dirty: &HashMap<String, i32>,
        parts: changelog::Parts,
        states: Option<&HashMap<String, Vec<u8>>>,
    ) -> PendingChangelog {
        let wake = Arc::new(Wakeup::default());
        let written = changelog::write(
            &self.producers.current(),
            &self.changelog_topic,
            &self.store,
            dirty,
            parts,
            states,
            Arc::clone(&wake),
        );
        PendingChangelog { written, wake }
    }

    /// Waits (at most the acknowledgement timeout) for the records of
    /// [`Committer::start_changelog`].
    fn finish_changelog(&self, pending: PendingChangelog) -> Result<(), String> {
        let PendingChangelog { written, wake } = pending;
        let Some(tracker) = written.tracker else {
            return Ok(());
        };
        let deadline = Instant::now() + self.ack_timeout();
        loop {
            let seen = wake.seen();
            if tracker.is_done() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "changelog writes not acknowledged within {} ms",
                    self.ack_timeout().as_millis()
                ));
            }
            wake.wait_past(seen, left);
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
        // A prepared commit is not finished, or failed: its epoch is aborted with the rest.
        self.pending = None;
        self.status.busy.store(false, Ordering::Release);
        self.status.take_failure();
        // The batches handed over and not produced yet are dropped unproduced.
        self.gate.abandon_handed_over();
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
        if self.aborts_in_a_row >= MAX_ABORTS_IN_A_ROW {
            return Err(CommitError::Fatal(format!(
                "{} commits in a row aborted; the last because: {why}",
                self.aborts_in_a_row
            )));
        }
        self.begin()?;
        self.gate.restart();
        Ok(())
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
