//! `fleetscore serve`: the long-running service — model registry, HTTP API and (unless
//! `--no-kafka`) the Kafka pipeline — until SIGINT or SIGTERM, or until one of its essential
//! tasks (the HTTP server, the Kafka side) ends: then it stops the rest and exits non-zero.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::lifecycle::{KAFKA_TASK, Running, run_pipeline};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTP listen address, HOST:PORT (overrides the configuration).
    #[arg(long)]
    pub http_addr: Option<String>,
    /// HTTP only: no Kafka consumer or producer.
    #[arg(long)]
    pub no_kafka: bool,
}

impl ServeArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(addr) = self.http_addr {
            config.http.addr = addr;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("fleetscore-rt")
            .build()
            .context("starting the async runtime")?;
        let result = runtime.block_on(serve(config, !self.no_kafka));
        // Whatever was left behind (a blocking task past its deadline) must not hold the exit.
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

async fn serve(config: Config, kafka: bool) -> anyhow::Result<()> {
    if kafka {
        config.kafka.validate()?;
    }
    let registry = config.models.registry()?;
    let mut running = Running::start(config, registry, kafka).await?;
    if kafka {
        let task = run_pipeline(Arc::clone(&running.ctx), running.shutdown.clone());
        running.spawn_essential(KAFKA_TASK, task);
    }
    running.supervise().await?;
    tracing::info!("stopped");
    Ok(())
}
