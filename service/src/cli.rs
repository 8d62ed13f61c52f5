//! The `fleetscore` command line.

pub mod features;
pub mod import;

use clap::{Parser, Subcommand};

/// Real-time ML scoring for airline fleets.
#[derive(Debug, Parser)]
#[command(name = "fleetscore", version, about, long_about = None)]
pub struct Cli {
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
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Import(cmd) => cmd.run(),
            Command::Features(args) => args.run(),
        }
    }
}
