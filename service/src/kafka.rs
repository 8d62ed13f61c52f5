//! The Kafka path: consume telemetry and schedule events, score them, produce predictions and
//! dead letters, and commit only what has been acknowledged.
//!
//! - [`pipeline`]: the consume → decode → state → features → score → produce loop, on a
//!   thread of its own (all of it is CPU work; nothing there needs an async runtime).
//! - [`delivery`]: acknowledgements of produced records, tracked per micro-batch, so offsets
//!   are stored only when every output of the batch is on the broker.
//! - [`rebalance`]: partition assignment and revocation (commit, drop state).
//! - [`headers`]: provenance headers on predictions and dead letters.
//! - [`settings`]: librdkafka settings for the consumer and producer.

pub mod delivery;
pub mod headers;
pub mod pipeline;
pub mod rebalance;
pub mod settings;

pub use pipeline::{Pipeline, PipelineHandle, PipelineStats};
