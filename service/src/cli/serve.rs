//! `fleetscore serve`: the long-running service — model registry, HTTP API and (unless
//! `--no-kafka`) the Kafka pipeline — until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::lifecycle::{Running, run_pipeline};

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
        runtime.block_on(serve(config, !self.no_kafka))
    }
}

async fn serve(config: Config, kafka: bool) -> anyhow::Result<()> {
    let registry = config.models.registry()?;
    let running = Running::start(config, registry, kafka).await?;
    let result = if kafka {
        // When the pipeline ends (stop or failure), the HTTP server goes down with it.
        run_pipeline(&running.ctx, &running.shutdown).await
    } else {
        running.shutdown.cancelled().await;
        Ok(())
    };
    running.stop().await?;
    tracing::info!("stopped");
    result
}
