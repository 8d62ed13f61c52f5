//! The long-running service's lifecycle, which `serve` and `demo` run alike: start the registry
//! watcher, the shared state, the signal handler and the HTTP server ([`Running`]), the first
//! and the last as essential tasks; wait for a broker and for models; run the Kafka pipeline as
//! an essential task; supervise; stop, within bounds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{AppContext, Readiness};
use crate::config::Config;
use crate::kafka::Pipeline;
use crate::model::registry::Watcher;
use crate::model::remote::RemoteModels;
use crate::model::{Registry, RegistryConfig};
use crate::store::StateStore;
use crate::supervisor::{Essentials, panic_message};

/// Beyond `shutdown_timeout_ms`, how long the pipeline may take to stop (its drain, commit and
/// close are bounded by `shutdown_timeout_ms` already; this covers the threads' ends).
const PIPELINE_STOP_MARGIN: Duration = Duration::from_secs(3);
/// Beyond the pipeline's bound, how long the supervisor waits for the essential tasks before
/// leaving them behind.
const SUPERVISOR_MARGIN: Duration = Duration::from_secs(2);
/// How long stopping the registry's watch thread may take (it may be in the middle of a scan).
const WATCHER_STOP: Duration = Duration::from_secs(2);

/// The essential task names, as the log's `task` field shows them.
pub const HTTP_TASK: &str = "http";
pub const KAFKA_TASK: &str = "kafka";
pub const WATCHER_TASK: &str = "registry-watcher";
pub const MODEL_SYNC_TASK: &str = "model-sync";

/// What `serve` and `demo` run alike: the model registry and its directory watcher, the shared
/// state, the signal handler and the HTTP server, listening; and the essential tasks that
/// [`Running::supervise`] watches.
pub struct Running {
    pub ctx: Arc<AppContext>,
    /// Cancelled by SIGINT/SIGTERM, by [`Running::stop`], or when an essential task ends.
    pub shutdown: CancellationToken,
    /// Where HTTP listens (the port chosen, for an address with port 0).
    pub http_addr: std::net::SocketAddr,
    tasks: Essentials,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// Starts everything but the Kafka pipeline; the HTTP server is the essential task `http`,
    /// the registry's watch thread `registry-watcher`. `kafka`: readiness also waits for the
    /// pipeline's first assignment.
    pub async fn start(
        config: Config,
        registry: RegistryConfig,
        kafka: bool,
    ) -> anyhow::Result<Self> {
        // Packages from object storage: mirrored into the directory the registry reads, once
        // before it first scans (so a start with a reachable bucket serves at once), then
        // every rescan interval.
        let remote = match config.models.remote() {
            Some(url) => Some(Arc::new(
                RemoteModels::new(url, &config.models.cache())
                    .context("reading models from object storage")?,
            )),
            None => None,
        };
        if let Some(remote) = &remote
            && let Err(e) = remote.sync().await
        {
            tracing::warn!(source = %remote.status().url, error = %e.root_cause(), "model source unreachable at start; serving what the cache holds");
        }
        let registry = Arc::new(Registry::new(registry));
        let watcher = registry
            .watch(Duration::from_secs(config.models.rescan_seconds.max(1)))
            .context("watching the models directory")?;
        let ctx = Arc::new(AppContext {
            registry,
            store: Arc::new(StateStore::new()),
            readiness: Arc::new({
                let readiness = Readiness::new(kafka);
                if let Some(remote) = &remote {
                    readiness.set_models_source(Arc::clone(remote));
                }
                readiness
            }),
            drift: Arc::new(crate::drift::DriftMonitor::new(config.drift.clone())),
            config,
        });
        let shutdown = crate::shutdown::on_signal();
        let listener = tokio::net::TcpListener::bind(&ctx.config.http.addr)
            .await
            .with_context(|| format!("binding HTTP to {}", ctx.config.http.addr))?;
        let http_addr = listener.local_addr()?;
        tracing::info!(addr = %http_addr, page = %page_url(http_addr), "HTTP listening");
        let mut tasks = Essentials::default();
        tasks.spawn(WATCHER_TASK, supervise_watcher(watcher, shutdown.clone()));
        if let Some(remote) = remote {
            let every = Duration::from_secs(ctx.config.models.rescan_seconds.max(1));
            let sync = remote.run(every, shutdown.clone());
            tasks.spawn(MODEL_SYNC_TASK, async move {
                sync.await;
                Ok(())
            });
        }
        let http = crate::http::serve(Arc::clone(&ctx), listener, shutdown.clone());
        tasks.spawn(HTTP_TASK, async move { http.await.context("HTTP server") });
        Ok(Self {
            ctx,
            shutdown,
            http_addr,
            tasks,
        })
    }

    /// Adds an essential task: one that ends only when shutdown is asked for.
    pub fn spawn_essential(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.spawn(name, task);
    }

    /// Runs until shutdown is asked for or an essential task ends (see
    /// [`Essentials::supervise`]). Bounded: everything stops within `shutdown_timeout_ms` and a
    /// few seconds, or is left behind with an error.
    pub async fn supervise(self) -> anyhow::Result<()> {
        let grace = Duration::from_millis(self.ctx.config.kafka.shutdown_timeout_ms)
            + PIPELINE_STOP_MARGIN
            + SUPERVISOR_MARGIN;
        self.tasks.supervise(&self.shutdown, grace).await
    }

    /// Asks everything to stop and waits for it (as [`Running::supervise`] does).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.supervise().await
    }
}

/// The fleet view's address when HTTP listens on `addr` (on every interface: the loopback's).
pub fn page_url(addr: std::net::SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}/", addr.port())
}

/// The registry's watch thread as an essential task: until shutdown, then it stops the thread
/// (waiting at most [`WATCHER_STOP`]). The thread ends only when stopped, so an end before
/// shutdown (a panic) is an error with the panic's message.
pub(crate) async fn supervise_watcher(
    watcher: Watcher,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let asked = tokio::select! {
        () = shutdown.cancelled() => true,
        () = watcher.finished() => false,
    };
    if asked {
        stop_watcher(watcher).await;
        return Ok(());
    }
    // It has ended: the join does not wait.
    match watcher.stop() {
        Err(panic) => anyhow::bail!(
            "the model registry's watch thread panicked: {}",
            panic_message(&*panic)
        ),
        Ok(()) => anyhow::bail!("the model registry's watch thread ended"),
    }
}

/// Stops the registry's watch thread, waiting at most [`WATCHER_STOP`].
async fn stop_watcher(watcher: Watcher) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("watcher-stop".to_owned())
        .spawn(move || {
            if let Err(panic) = watcher.stop() {
                tracing::warn!(
                    panic = panic_message(&*panic),
                    "the model registry's watch thread had panicked"
                );
            }
            let _ = tx.send(());
        });
    if spawned.is_err() || tokio::time::timeout(WATCHER_STOP, rx).await.is_err() {
        tracing::warn!(
            timeout_ms = WATCHER_STOP.as_millis() as u64,
            "the model registry's watch thread did not stop in time; leaving it"
        );
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

/// Waits until a broker answers (at most `startup_timeout_ms`; readiness says so meanwhile);
/// false if shutdown came first.
pub async fn wait_for_kafka(
    ctx: &AppContext,
    shutdown: &CancellationToken,
) -> anyhow::Result<bool> {
    let kafka = ctx.config.kafka.clone();
    let why = format!("connecting to Kafka at {}", kafka.brokers);
    tracing::info!(brokers = %kafka.brokers, timeout_ms = kafka.startup_timeout_ms, "connecting to Kafka");
    ctx.readiness.set_kafka_waiting(Some(why));
    let token = shutdown.clone();
    let reachable = tokio::task::spawn_blocking(move || {
        crate::kafka::connect::wait_for_brokers(&kafka, &|| token.is_cancelled())
    })
    .await
    .context("the Kafka start-up check")??;
    if reachable {
        ctx.readiness.set_kafka_waiting(None);
    }
    Ok(reachable)
}

/// The Kafka side, as an essential task: checks that a broker answers while waiting for
/// models, runs the pipeline until shutdown or failure, then has it drain, commit and close
/// within `shutdown_timeout_ms` and a margin. `Ok` only when shutdown came first and the stop
/// went well; a pipeline that ends by itself is an error even if it reports none.
pub async fn run_pipeline(ctx: Arc<AppContext>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (reachable, models) = tokio::try_join!(wait_for_kafka(&ctx, &shutdown), async {
        Ok::<_, anyhow::Error>(wait_for_models(&ctx, &shutdown).await)
    })?;
    if !(reachable && models) {
        return Ok(()); // shutdown came first
    }
    let handle = Pipeline::start(Arc::clone(&ctx)).await?;
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = handle.finished() => {}
    }
    let asked = shutdown.is_cancelled();
    tracing::info!(
        asked,
        "stopping the pipeline: draining, committing and closing"
    );
    let timeout =
        Duration::from_millis(ctx.config.kafka.shutdown_timeout_ms) + PIPELINE_STOP_MARGIN;
    handle.stop_within(timeout).await?;
    anyhow::ensure!(asked, "the Kafka pipeline ended without being asked to");
    Ok(())
}
