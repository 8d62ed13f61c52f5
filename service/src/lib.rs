//! The fleet scoring service: wiring around the pure feature code of `fleet-features`.
//!
//! # Layout
//!
//! - [`cli`]: the `fleetscore` command line (subcommands and their arguments).
//! - [`cli::import`]: `fleetscore import cmapss|nycflights`, public data sets to event files.
//! - [`cli::features`]: `fleetscore features`, an event file through the online state and
//!   feature code to feature rows.
//! - [`cli::replay`]: `fleetscore replay`, events through state, features and models to
//!   prediction records, without Kafka.
//! - [`config`]: the typed TOML configuration.
//! - [`scoring`]: micro-batched scoring shared by replay and the streaming path;
//!   [`prediction`]: the prediction record it produces.
//! - [`cli::serve`]: `fleetscore serve`, the long-running service; [`app`]: what its parts
//!   share; [`lifecycle`]: starting, running and stopping them; [`supervisor`]: the essential
//!   tasks, one ending ends the service; [`shutdown`]: SIGINT/SIGTERM handling; [`http`]: the
//!   HTTP API.
//! - [`drift`]: how far live rows moved from a model's reference profile (PSI, Jensen-Shannon);
//!   [`cli::drift`]: `fleetscore drift` on a batch of events.
//! - [`kafka`]: the streaming pipeline (consume, score, produce, dead-letter, commit).
//! - [`alerts`]: alert rules, episodes and the alert events they raise.
//! - `lake` (feature `lake`): the offline backfill to Parquet, `fleetscore backfill`.
//! - [`store`]: the live per-tail state shared by the streaming path and the HTTP API.
//! - [`telemetry`]: log lines (text or JSON) and OpenTelemetry traces (OTLP), off unless an
//!   endpoint is configured.
//! - [`metrics`]: the Prometheus recorder behind every metric, rendered by `GET /metrics`.
//! - [`model`]: model packages, the ONNX backends (ONNX Runtime, tract), validation (also in a
//!   child process) and the hot-swapping [`model::Registry`].
//! - `fault` (feature `fault-injection`, tests only): faults injected on demand
//!   (`FLEETSCORE_FAULT`), such as a panicking HTTP accept loop.
//!
//! The streaming path (Kafka in and out), the model registry and the HTTP API land here as
//! their own modules; see the README for what works today.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod config;
pub mod drift;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fleet;
pub mod http;
pub mod kafka;
#[cfg(feature = "lake")]
pub mod lake;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod prediction;
pub mod scoring;
pub mod shutdown;
pub mod store;
pub mod supervisor;
pub mod telemetry;
#[cfg(all(test, feature = "test-feature-set"))]
mod third_feature_set;
