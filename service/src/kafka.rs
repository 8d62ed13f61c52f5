//! The Kafka path: consume telemetry and schedule events, score them, produce predictions and
//! dead letters, keep every aircraft's state in a changelog topic, and commit outputs, state and
//! offsets together (exactly-once by default).
//!
//! - [`pipeline`]: the consume → decode → state → features → score → produce loop, on a
//!   thread of its own (all of it is CPU work; nothing there needs an async runtime).
//! - [`assignment`]: the partitions owned, and which polled records are still ours to process.
//! - [`changelog`]: the state changelog topic: created at start, written at commits, read back
//!   (restored) on assignment.
//! - [`commit`]: outputs, changelog and offsets committed together (a transaction under
//!   exactly-once).
//! - [`connect`]: the start-up check that a broker answers, within `startup_timeout_ms`.
//! - [`delivery`]: acknowledgements of produced records, tracked per micro-batch.
//! - [`intake`]: polled records decoded, then applied and turned into the batch when it is
//!   handed over.
//! - [`in_flight`]: the batches awaiting acknowledgement, oldest first; their offsets and
//!   changed aircraft go to the next commit only when every output of the batch is on the
//!   broker, in batch order.
//! - [`output`]: the output thread: prediction records and dead letters, produced with their
//!   batch's tracker.
//! - [`log_limit`]: repeated consumer errors logged at a bounded rate.
//! - [`producer`]: the producer of outputs and changelog, replaced when a transaction call
//!   never returns.
//! - [`rewind`]: back to the committed state after an abort.
//! - [`rebalance`]: partition assignment (restore) and revocation (commit, or abort when lost).
//! - [`headers`]: provenance headers on predictions and dead letters.
//! - [`scoring_stage`]: the scoring thread: one backend call per model for each batch.
//! - [`settings`]: librdkafka settings for the consumer and producer.
//! - [`stages`]: where a micro-batch's time goes, stage by stage (a histogram per stage).
//! - [`stats`]: the pipeline's counters, shared by its threads.
//! - [`watchdog`]: the step the pipeline thread is in, and a warning when one lasts long.

pub mod assignment;
pub mod changelog;
pub mod commit;
pub mod connect;
pub mod delivery;
pub mod headers;
pub mod in_flight;
pub mod intake;
pub mod log_limit;
pub mod output;
pub mod pipeline;
pub mod producer;
pub mod rebalance;
pub mod rewind;
pub mod scoring_stage;
pub mod settings;
pub mod stages;
pub mod stats;
pub mod txn_gate;
pub mod watchdog;

pub use pipeline::{Pipeline, PipelineHandle};
pub use stats::PipelineStats;

/// Locks `m`, taking over a lock poisoned by a panicked thread: the pipeline's shared state
/// (assignment, committer, held partitions) stays usable, and the panic is reported where it
/// happened.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
