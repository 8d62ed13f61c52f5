//! The `fleetscore` command line.

#[cfg(feature = "lake")]
pub mod backfill;
pub mod demo;
pub mod drift;
pub mod events;
pub mod features;
pub mod import;
pub mod model;
pub mod produce;
pub mod replay;
pub mod serve;

use clap::{Parser, Subcommand};

/// Real-time ML scoring for airline fleets.
#[derive(Debug, Parser)]
#[command(name = "fleetscore", version, about, long_about = None)]
pub struct Cli {
    /// How log lines are written on stderr: text, or JSON lines carrying the trace and span
    /// ids when tracing is on.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "FLEETSCORE_LOG_FORMAT"
    )]
    pub log_format: crate::telemetry::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert a public data set into an event file (JSON lines, event-time order).
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Run an event file through the online state and feature code; write feature rows (CSV).
    Features(features::FeaturesArgs),
    /// Print the feature sets (name, version, ordered features with definitions) as JSON.
    FeatureSets,
    /// Validate and list model packages.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Run events through state, features and the registry's models; write prediction records.
    Replay(replay::ReplayArgs),
    /// Measure how far a batch of events has drifted from a model's reference profile (PSI and
    /// Jensen-Shannon distance per feature and for the output; a table, or JSON).
    Drift(drift::DriftArgs),
    /// Run the service: models, HTTP API and the Kafka pipeline.
    Serve(serve::ServeArgs),
    /// Produce an event file onto the input topics (keyed by tail, optionally rate-limited).
    Produce(produce::ProduceArgs),
    /// Historical events through the online state and features to a Parquet training table
    /// with labels (built with the `lake` feature).
    #[cfg(feature = "lake")]
    Backfill(backfill::BackfillArgs),
    /// The whole service on an embedded Kafka mock cluster, replaying real data, with a live
    /// summary.
    Demo(demo::DemoArgs),
}

impl Cli {
    /// Runs the command; returns the process exit code.
    pub fn run(self) -> anyhow::Result<i32> {
        match self.command {
            Command::Import(cmd) => cmd.run().map(|()| 0),
            Command::Features(args) => args.run().map(|()| 0),
            Command::FeatureSets => features::print_feature_sets().map(|()| 0),
            Command::Model(cmd) => cmd.run(),
            Command::Replay(args) => args.run().map(|()| 0),
            Command::Drift(args) => args.run().map(|()| 0),
            Command::Serve(args) => args.run().map(|()| 0),
            Command::Produce(args) => args.run().map(|()| 0),
            Command::Demo(args) => args.run().map(|()| 0),
            #[cfg(feature = "lake")]
            Command::Backfill(args) => args.run().map(|()| 0),
        }
    }
}
