//! `fleetscore model`: what a data scientist runs before publishing, and what the service runs
//! in a child process before loading a new version.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::model::validate::{limit_memory, validate_here};
use crate::model::{Registry, RegistryConfig};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Validate one model package directory; exit 0 if it would be accepted, 1 if not.
    Validate(ValidateArgs),
    /// Scan a models directory once and show every version's state.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The version directory, `models/<name>/<version>`.
    pub dir: PathBuf,
    /// Print one JSON report line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Cap this process's address space (MiB) before loading anything.
    #[arg(long)]
    pub memory_limit_mb: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The models directory (default: the configuration's, `FLEETSCORE_MODELS_DIR` or `models`).
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ModelCommand {
    /// Runs the command; returns the process exit code.
    pub fn run(self) -> anyhow::Result<i32> {
        match self {
            ModelCommand::Validate(args) => {
                if let Some(mb) = args.memory_limit_mb {
                    limit_memory(mb)?;
                }
                let report = validate_here(&args.dir);
                if args.json {
                    println!("{}", serde_json::to_string(&report)?);
                } else if report.ok {
                    println!(
                        "OK {}/{} (backend {}, sha256 {})",
                        report.name.as_deref().unwrap_or("?"),
                        report.version.as_deref().unwrap_or("?"),
                        report.backend.as_deref().unwrap_or("?"),
                        report.sha256.as_deref().unwrap_or("?"),
                    );
                } else {
                    println!(
                        "REJECTED {}: {} ({})",
                        report.dir,
                        report.message.as_deref().unwrap_or(""),
                        report.class.as_deref().unwrap_or("")
                    );
                }
                Ok(if report.ok { 0 } else { 1 })
            }
            ModelCommand::List(args) => {
                let dir = match args.models_dir {
                    Some(dir) => dir,
                    None => crate::config::Config::load(None)?.models.dir,
                };
                let mut config = RegistryConfig::new(dir);
                config.settle = std::time::Duration::ZERO;
                let registry = Registry::new(config);
                registry.rescan();
                let statuses = registry.statuses();
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&statuses)?);
                } else {
                    for s in &statuses {
                        println!(
                            "{:<16} {:<16} {:<9} {:<6} {}",
                            s.name,
                            s.version,
                            s.state,
                            s.backend.unwrap_or("-"),
                            s.message
                                .as_deref()
                                .or(s.feature_set.as_deref())
                                .unwrap_or("")
                        );
                    }
                }
                Ok(0)
            }
        }
    }
}
