//! Partition assignment and revocation.
//!
//! On revocation the consumer first settles what is acknowledged (waiting, within a bound, for
//! the outputs in flight), stores and commits those offsets. Rows of a revoked partition that
//! are still in the current micro-batch are scored and published, but their offsets are not
//! stored, so the next owner processes them again (at-least-once: a duplicate, never a gap).
//!
//! The revoked partitions' aircraft are forgotten once the new assignment is known, and only
//! for the partitions that did not come back: with the eager `range` assignor every member gives
//! up all its partitions at each rebalance and gets most of them back, and their state is still
//! exact (it reflects every event up to the committed offset; events redelivered after it are
//! recognised as already applied). Partitions that moved are rebuilt by their new owner from
//! the committed offset onwards (restoring state from a changelog is a later step).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::in_flight::InFlight;
use super::log_limit::ClientErrors;
use crate::app::Readiness;
use crate::store::StateStore;

#[derive(Debug)]
pub struct RebalanceContext {
    pub(crate) store: Arc<StateStore>,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) in_flight: Arc<InFlight>,
    /// `(topic, partition)` currently assigned to this consumer.
    pub(crate) assigned: Arc<Mutex<HashSet<(String, i32)>>>,
    /// Partition numbers revoked since the last assignment: their aircraft are dropped then,
    /// unless the partition came back.
    pub(crate) revoked: Mutex<HashSet<i32>>,
    pub(crate) drain_timeout: Duration,
    /// The client's error callback, at a bounded log rate.
    pub(crate) errors: ClientErrors,
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

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked = partitions(tpl);
        if let Err(e) = self.in_flight.drain(consumer, self.drain_timeout) {
            tracing::error!(error = %e, "outputs not acknowledged before revocation; their offsets stay uncommitted");
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing stored since the last commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {}
            Err(e) => tracing::warn!(error = %e, "commit on revocation failed"),
        }
        let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
        for p in &revoked {
            assigned.remove(p);
        }
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(revoked.iter().map(|(_, p)| *p));
        if assigned.is_empty() {
            self.readiness.set_partitions_ready(false);
        }
        tracing::info!(revoked = ?revoked, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let added = partitions(tpl);
                let mut assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
                assigned.extend(added.iter().cloned());
                // A partition number stays while either input topic's partition of that number
                // is ours (the topics are co-partitioned by tail).
                let mut gone: Vec<i32> =
                    std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|p| p.into_inner()))
                        .into_iter()
                        .filter(|n| !assigned.iter().any(|(_, p)| p == n))
                        .collect();
                gone.sort_unstable();
                let dropped = self.store.drop_partitions(&gone);
                self.readiness.set_partitions_ready(!assigned.is_empty());
                tracing::info!(assigned = ?added, moved_away = ?gone, tails_dropped = dropped, "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance error"),
        }
    }
}
