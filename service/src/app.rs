//! The long-running service: what its parts share (the model registry, the live state,
//! readiness, configuration) and its lifecycle ([`Running`]: start, wait for models, run the
//! pipeline, stop), which `serve` and `demo` run alike.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::kafka::Pipeline;
use crate::model::registry::Watcher;
use crate::model::{Registry, RegistryConfig};
use crate::store::StateStore;

#[derive(Debug)]
pub struct AppContext {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub store: Arc<StateStore>,
    pub readiness: Arc<Readiness>,
}

/// Ready means: every model routed from a feature set is serving and, when streaming, the consumer holds its
/// partition assignment with state ready for each partition.
#[derive(Debug)]
pub struct Readiness {
    streaming: bool,
    partitions_ready: AtomicBool,
}

impl Readiness {
    pub fn new(streaming: bool) -> Self {
        Self {
            streaming,
            partitions_ready: AtomicBool::new(false),
        }
    }

    pub fn set_partitions_ready(&self, ready: bool) {
        self.partitions_ready.store(ready, Ordering::Release);
    }

    /// Which routed models have no version serving their feature set, if any.
    pub fn models_missing(&self, registry: &Registry) -> Option<String> {
        let missing: Vec<String> = registry
            .unserved_routes()
            .into_iter()
            .map(|(set, model)| format!("{} ({model})", set.name()))
            .collect();
        (!missing.is_empty()).then(|| format!("no model serving {}", missing.join(", ")))
    }

    /// Why the service is not ready, or `None` when it is.
    pub fn not_ready_reason(&self, registry: &Registry) -> Option<String> {
        if let Some(why) = self.models_missing(registry) {
            return Some(why);
        }
        if self.streaming && !self.partitions_ready.load(Ordering::Acquire) {
            return Some("waiting for a partition assignment".to_owned());
        }
        None
    }
}

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
