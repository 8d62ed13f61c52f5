//! The pipeline's counters, shared by its threads (consume loop, output thread, settling).

use std::sync::atomic::AtomicU64;

/// Counters for summaries and tests (Prometheus gets the same through `metrics`).
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub consumed: AtomicU64,
    pub predictions: AtomicU64,
    pub dead_letters: AtomicU64,
    pub duplicates: AtomicU64,
    pub late: AtomicU64,
    pub batches: AtomicU64,
    /// Batches whose outputs were acknowledged and offsets stored.
    pub settled_batches: AtomicU64,
}
