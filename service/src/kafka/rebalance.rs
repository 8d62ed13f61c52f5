//! Partition assignment and revocation.
//!
//! **Revocation** commits what was handed over (its outputs, the changelog of the aircraft it
//! changed, its offsets: see [`super::commit`]); records of the revoked partitions polled but
//! not yet handed over are dropped ([`super::assignment`]): the next owner reads them again.
//! When the assignment was *lost* (this instance was thrown out of the group, e.g. after a
//! stall), or the commit fails abortably, the open transaction is aborted instead and the
//! partitions' aircraft are forgotten: their state is ahead of their committed offsets.
//!
//! **Assignment** restores the aircraft of every partition this instance does not hold exactly
//! from the changelog ([`super::changelog::restore`]), after waiting for the partitions'
//! committed offsets to be stable (no transaction of a former owner pending), and before any of
//! their events is processed: the callback runs inside the consumer's poll, which returns
//! records only afterwards. Readiness is false while restoring. Partitions that were revoked
//! and came back (the eager protocol revokes everything at each rebalance) keep their state:
//! it was committed with their offsets at the revocation.
//!
//! A fatal error inside a callback (fenced, a changelog record that does not decode) cannot be
//! returned from it: it goes to [`Signals`], which the pipeline checks after every poll.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::assignment::Assignment;
use super::changelog;
use super::commit::{CommitError, Committer};
use super::lock;
use super::log_limit::ClientErrors;
use super::watchdog::{Step, Steps};
use crate::app::Readiness;
use crate::config::KafkaConfig;
use crate::store::StateStore;

/// What the rebalance callbacks tell the pipeline.
#[derive(Debug, Default)]
pub struct Signals {
    fatal: Mutex<Option<String>>,
    failed: AtomicBool,
    /// Partitions still assigned lost their uncommitted work (an abort): rewind them.
    rewind: AtomicBool,
}

impl Signals {
    pub fn fail(&self, reason: String) {
        tracing::error!(%reason, "the pipeline cannot go on");
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
        self.failed.store(true, Ordering::Release);
    }

    /// The first fatal error reported, if any.
    pub fn fatal(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn take_rewind(&self) -> bool {
        self.rewind.swap(false, Ordering::AcqRel)
    }
}

pub struct RebalanceContext {
    pub(crate) config: KafkaConfig,
    pub(crate) store: Arc<StateStore>,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) committer: Arc<Mutex<Committer>>,
    pub(crate) assignment: Arc<Mutex<Assignment>>,
    /// Partition numbers whose aircraft this instance holds, exactly as committed.
    pub(crate) held: Arc<Mutex<BTreeSet<i32>>>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) stop: Arc<AtomicBool>,
    /// The pipeline thread's step (the callbacks run on it, inside its poll).
    pub(crate) steps: Arc<Steps>,
    pub(crate) drain_timeout: Duration,
    /// The client's error callback, at a bounded log rate.
    pub(crate) errors: ClientErrors,
}

impl std::fmt::Debug for RebalanceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RebalanceContext").finish_non_exhaustive()
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for RebalanceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl RebalanceContext {
    /// Forgets the aircraft of `numbers` (their state is not the committed one any more).
    pub(crate) fn forget(&self, numbers: &[i32]) -> usize {
        lock(&self.held).retain(|p| !numbers.contains(p));
        self.store.drop_partitions(numbers)
    }

    /// Restores the aircraft of every assigned partition not held, marking them held.
    pub(crate) fn restore_missing<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) {
        let assigned = lock(&self.assignment).numbers();
        let missing: Vec<i32> = assigned
            .iter()
            .filter(|p| !lock(&self.held).contains(p))
            .copied()
            .collect();
        if missing.is_empty() {
            self.readiness.set_partitions_ready(!assigned.is_empty());
            return;
        }
        self.readiness.set_partitions_ready(false);
        let _step = self.steps.enter(Step::Restoring);
        wait_for_stable_offsets(consumer, &self.config);
        match changelog::restore(&self.config, &self.store, &missing, &self.stop) {
            Ok(_) => {
                lock(&self.held).extend(missing.iter().copied());
                self.readiness.set_partitions_ready(!assigned.is_empty());
            }
            Err(e) if self.stop.load(Ordering::Acquire) => {
                tracing::info!(error = %e, "restore interrupted by shutdown");
            }
            Err(e) => self
                .signals
                .fail(format!("restoring partitions {missing:?}: {e:#}")),
        }
    }
}

/// The committed offsets of a partition are unstable while a transaction that commits them
/// is pending (a former owner's); librdkafka's offset fetch (read_committed) waits for it.
/// Waiting here first means the changelog read next includes that transaction's writes.
fn wait_for_stable_offsets<C: ConsumerContext>(consumer: &BaseConsumer<C>, config: &KafkaConfig) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let timeout = Duration::from_millis(config.transaction_timeout_ms) + Duration::from_secs(5);
    if let Err(e) = consumer.committed_offsets(assignment, timeout) {
        tracing::warn!(error = %e, "committed offsets not readable before restoring; restoring anyway");
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked = partitions(tpl);
        let numbers: Vec<i32> = revoked.iter().map(|(_, p)| *p).collect();
        let lost = consumer.assignment_lost();
        // After a fatal error nothing more is written: the pipeline is stopping.
        if self.signals.fatal().is_none() {
            let _step = self.steps.enter(Step::Committing);
            let mut committer = lock(&self.committer);
            let outcome = if lost {
                Err(CommitError::Abortable(
                    "the assignment was lost (this instance left the group)".to_owned(),
                ))
            } else {
                committer.commit(consumer, self.drain_timeout, CommitMode::Sync)
            };
            match outcome {
                Ok(()) => {}
                Err(CommitError::Abortable(why)) => {
                    if let Err(e) = committer.abort(&why) {
                        self.signals.fail(e.to_string());
                    }
                    let held: Vec<i32> = lock(&self.held).iter().copied().collect();
                    let dropped = self.forget(&held);
                    tracing::warn!(partitions = ?held, tails_dropped = dropped, "uncommitted state forgotten");
                    // Partitions that stay assigned restart from their committed offsets.
                    self.signals.rewind.store(true, Ordering::Release);
                }
                Err(CommitError::Fatal(why)) => self.signals.fail(why),
            }
        }
        let mut assignment = lock(&self.assignment);
        assignment.revoke(&revoked);
        self.readiness.set_owned(assignment.numbers());
        if assignment.is_empty() {
            self.readiness.set_partitions_ready(false);
        }
        tracing::info!(revoked = ?revoked, lost, partitions = ?numbers, "partitions revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let added = partitions(tpl);
                let assigned = {
                    let mut assignment = lock(&self.assignment);
                    assignment.assign(&added);
                    assignment.numbers()
                };
                self.readiness.set_owned(assigned.iter().copied());
                // Partitions held but no longer assigned moved away: their new owner restores.
                let gone: Vec<i32> = lock(&self.held)
                    .iter()
                    .filter(|p| !assigned.contains(p))
                    .copied()
                    .collect();
                let dropped = self.forget(&gone);
                tracing::info!(assigned = ?added, moved_away = ?gone, tails_dropped = dropped, "partitions assigned");
                self.restore_missing(consumer);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }
}
