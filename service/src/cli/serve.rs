//! `fleetscore serve`: the long-running service — model registry, HTTP API and (unless
//! `--no-kafka`) the Kafka pipeline — until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{AppContext, Readiness};
use crate::config::Config;
use crate::kafka::Pipeline;
use crate::model::registry::Watcher;
use crate::model::{Registry, RegistryConfig};
use crate::store::StateStore;

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

/// What `serve` and `demo` run alike: the model registry and its directory watcher, the shared
/// state, the signal handler and the HTTP server, listening.
pub(crate) struct Running {
    pub(crate) ctx: Arc<AppContext>,
    /// Cancelled by SIGINT/SIGTERM, or by [`Running::stop`].
    pub(crate) shutdown: CancellationToken,
    watcher: Watcher,
    http: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// Starts everything but the Kafka pipeline. `kafka`: readiness also waits for the
    /// pipeline's first assignment.
    pub(crate) async fn start(
        config: Config,
        registry: RegistryConfig,
        kafka: bool,
    ) -> anyhow::Result<Self> {
        let registry = Arc::new(Registry::new(registry));
        let watcher = registry
            .watch(Duration::from_secs(config.models.rescan_seconds.max(1)))
            .context("watching the models directory")?;
        let ctx = Arc::new(AppContext {
            registry,
            store: Arc::new(StateStore::new()),
            readiness: Arc::new(Readiness::new(kafka)),
            config,
        });
        let shutdown = crate::shutdown::on_signal();
        let listener = tokio::net::TcpListener::bind(&ctx.config.http.addr)
            .await
            .with_context(|| format!("binding HTTP to {}", ctx.config.http.addr))?;
        tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
        let http = tokio::spawn(crate::http::serve(
            Arc::clone(&ctx),
            listener,
            shutdown.clone(),
        ));
        Ok(Self {
            ctx,
            shutdown,
            watcher,
            http,
        })
    }

    /// Takes the HTTP server down (draining open requests) and stops the watcher.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.http.await.context("HTTP task")??;
        self.watcher.stop();
        Ok(())
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

/// Waits until a model serves every feature set (consuming before that would dead-letter good
/// events); false if shutdown came first.
pub(crate) async fn wait_for_models(ctx: &AppContext, shutdown: &CancellationToken) -> bool {
    let mut waiting_logged = false;
    while let Some(why) = ctx.readiness.models_missing(&ctx.registry) {
        if !waiting_logged {
            tracing::info!(reason = %why, "waiting for models before consuming");
            waiting_logged = true;
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    true
}

/// Waits for models, runs the pipeline until shutdown or failure, then drains and commits.
async fn run_pipeline(ctx: &Arc<AppContext>, shutdown: &CancellationToken) -> anyhow::Result<()> {
    if !wait_for_models(ctx, shutdown).await {
        return Ok(());
    }
    let handle = Pipeline::start(Arc::clone(ctx))?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => if handle.is_finished() { break },
        }
    }
    tracing::info!("stopping the pipeline: draining and committing");
    tokio::task::spawn_blocking(move || handle.stop())
        .await
        .context("pipeline thread")?
}
