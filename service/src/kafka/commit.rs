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
//! workers, each bounded ([`calls`]): a call that has not returned in time (librdkafka can
//! block past its timeout, see [`super::producer`]) is left behind and the producer replaced
//! (the caller rewinds). Errors are classified as librdkafka does: a retriable one is retried
//! until the deadline, an abortable one aborts the transaction (the caller rewinds to the
//! committed state), a fatal one (fenced: another instance owns the transactional id, or the
//! transaction timed out) ends the pipeline with an error.

mod calls;
mod pipelined;

pub use pipelined::{CommitJob, CommitStatus};

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::changelog;
use super::delivery::Wakeup;
use super::in_flight::{InFlight, Settled};
use super::producer::ProducerSlot;
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

/// Changelog records on their way: their tracker (`None`: nothing to write), its wake-up,
/// and the state snapshots they hold.
struct PendingChangelog {
    written: changelog::Written,
    wake: Arc<Wakeup>,
}

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
                .map_err(calls::classify)?;
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
        if result.is_ok() {
            self.committed(started);
        }
        result
    }

    /// A commit started at `started` went through: counted and timed, and the aborts in a
    /// row start again from none.
    fn committed(&mut self, started: Instant) {
        metrics::histogram!(names::COMMIT_DURATION).record(started.elapsed().as_secs_f64());
        metrics::counter!(names::COMMITS, "outcome" => "committed").increment(1);
        self.aborts_in_a_row = 0;
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
        let Ok(pending) = wake.wait_for(self.ack_timeout(), || {
            Ok::<_, Infallible>(usize::from(!tracker.is_done()))
        });
        if pending > 0 {
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
}

/// The offsets to commit: one past the last processed record of each partition.
fn next_offsets(settled: &Settled) -> Result<TopicPartitionList, CommitError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in &settled.offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
            .map_err(|e| CommitError::Fatal(e.to_string()))?;
    }
    Ok(tpl)
}
