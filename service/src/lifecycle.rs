//! The long-running service's lifecycle, which `serve` and `demo` run alike: start the registry
//! watcher, the shared state, the signal handler and the HTTP server ([`Running`]); wait for
//! models; run the Kafka pipeline until shutdown or failure; stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{AppContext, Readiness};
use crate::config::Config;
use crate::kafka::Pipeline;
use crate::model::registry::Watcher;
use crate::model::{Registry, RegistryConfig};
use crate::store::StateStore;

/// What `serve` and `demo` run alike: the model registry and its directory watcher, the shared
/// state, the signal handler and the HTTP server, listening.
pub struct Running {
    pub ctx: Arc<AppContext>,
    /// Cancelled by SIGINT/SIGTERM, or by [`Running::stop`].
    pub shutdown: CancellationToken,
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
    pub async fn start(
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
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.http.await.context("HTTP task")??;
        self.watcher.stop();
        Ok(())
    }
}

/// Waits until a model serves every feature set (consuming before that would dead-letter good
/// events); false if shutdown came first.
pub async fn wait_for_models(ctx: &AppContext, shutdown: &CancellationToken) -> bool {
    let mut waiting_logged = false;
    loop {
        // Registered before the check, so a choice published in between is not missed.
        let changed = ctx.registry.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let Some(why) = ctx.readiness.models_missing(&ctx.registry) else {
            return true;
        };
        if !waiting_logged {
            tracing::info!(reason = %why, "waiting for models before consuming");
            waiting_logged = true;
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = changed => {}
        }
    }
}

/// Waits for models, runs the pipeline until shutdown or failure, then drains and commits.
pub async fn run_pipeline(
    ctx: &Arc<AppContext>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    if !wait_for_models(ctx, shutdown).await {
        return Ok(());
    }
    let handle = Pipeline::start(Arc::clone(ctx))?;
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = handle.finished() => {}
    }
    tracing::info!("stopping the pipeline: draining and committing");
    tokio::task::spawn_blocking(move || handle.stop())
        .await
        .context("pipeline thread")?
}
