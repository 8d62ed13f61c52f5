//! Exactly-once commits that do not stop the pipeline: prepared on the pipeline thread
//! ([`Committer::prepare_pending`]), finished by the commit thread
//! ([`Committer::finish_pending`]) or by the next synchronous commit, whichever comes first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata};
use rdkafka::producer::Producer;

use super::{CommitError, Committer, PendingChangelog, next_offsets};
use crate::kafka::changelog;
use crate::metrics::names;

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
    pub(super) busy: AtomicBool,
    pub(super) failure: Mutex<Option<CommitError>>,
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

impl Committer {
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

    pub(super) fn prepare<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> CommitJob {
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
    pub(super) fn finish(&mut self, job: CommitJob, wait: Duration) -> Result<(), CommitError> {
        let started = job.started;
        let result = self.finish_inner(job, wait);
        match &result {
            Ok(true) => self.committed(started),
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
        let acknowledged = Instant::now();
        tracing::debug!(
            drain_ms = (acknowledged - started).as_secs_f64() * 1e3,
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
        step("outputs", acknowledged - started);
        step("changelog", t0 - acknowledged);
        if !settled.offsets.is_empty() {
            let metadata = metadata.ok_or_else(|| {
                CommitError::Fatal("the consumer has no group metadata".to_owned())
            })?;
            let offsets = next_offsets(&settled)?;
            self.retrying(Arc::new(move |p, t| {
                #[cfg(feature = "fault-injection")]
                crate::fault::maybe_hang_offsets_call();
                p.send_offsets_to_transaction(&offsets, &metadata, t)
            }))?;
        }
        let t1 = Instant::now();
        self.retrying(Arc::new(|p, t| p.commit_transaction(t)))?;
        let (offsets, commit) = (t1 - t0, t1.elapsed());
        step("offsets", offsets);
        step("commit", commit);
        tracing::debug!(
            offsets_ms = offsets.as_secs_f64() * 1e3,
            commit_ms = commit.as_secs_f64() * 1e3,
            "transaction committed"
        );
        self.open = false;
        self.begin()?;
        self.gate.open(epoch + 1);
        Ok(true)
    }
}

/// Records how long one step of a commit took (`fleetscore_commit_step_seconds`).
fn step(name: &'static str, took: Duration) {
    metrics::histogram!(names::COMMIT_STEP, "step" => name).record(took.as_secs_f64());
}
