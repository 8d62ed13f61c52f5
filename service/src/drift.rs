//! Drift: how far live rows have moved from a model's reference profile
//! ([`crate::model::profile`], written at training time into the package).
//!
//! # Layout
//!
//! - [`measure`]: the measures on one entry's bins (population stability index, Jensen-Shannon
//!   distance) and the thresholds that turn them into a [`Level`], defined once.
//! - `coder`: a profile's bins laid out for coding a row's values fast.
//! - [`counts`]: [`BinCounts`], live rows counted into the profile's bins; rows can be added
//!   and removed (a sliding window keeps one up to date at O(features) per row).
//! - [`report`]: [`DriftReport`], per feature and for the output, worst first.
//! - [`window`]: [`Window`], the last N rows counted, each kept as its bins.
//! - [`monitor`]: [`DriftMonitor`], the service's window per serving model, fed by
//!   [`crate::scoring::Batcher`] (the stream, replay), its report every
//!   `[drift] evaluate_every_rows` rows published for `GET /models/{name}/drift` and the
//!   gauges, and the open episodes of `on = "drift"` alert rules.
//!
//! `fleetscore drift` ([`crate::cli::drift`]) fills one [`BinCounts`] with a batch of events
//! and prints its report.

mod coder;
pub mod counts;
pub mod measure;
pub mod monitor;
pub mod report;
pub mod window;

pub use counts::BinCounts;
pub use measure::{Band, Level, Measure, THRESHOLDS, Thresholds};
pub use monitor::{DriftMonitor, DriftStatus, Evaluation, ModelDrift};
pub use report::{DriftReport, EntryDrift};
pub use window::Window;
