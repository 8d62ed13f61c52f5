//! The long-running service: what its parts share (the model registry, the live state,
//! readiness, configuration) and its lifecycle ([`Running`]: start, wait for models, run the
//! pipeline, stop), which `serve` and `demo` run alike.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::task::{JoinError, JoinSet};
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

/// Ready means: every model routed from a feature set is serving and, when streaming, a broker
/// has answered and the consumer holds its partition assignment with state ready for each
/// partition.
#[derive(Debug)]
pub struct Readiness {
    streaming: bool,
    partitions_ready: AtomicBool,
    /// Why Kafka cannot be used yet (e.g. "connecting to Kafka at ..."), while start-up waits.
    kafka_waiting: Mutex<Option<String>>,
}

impl Readiness {
    pub fn new(streaming: bool) -> Self {
        Self {
            streaming,
            partitions_ready: AtomicBool::new(false),
            kafka_waiting: Mutex::new(None),
        }
    }

    /// Sets (or clears, with `None`) the reason start-up is still waiting for Kafka.
    pub fn set_kafka_waiting(&self, why: Option<String>) {
        *self.kafka_waiting.lock().unwrap_or_else(|p| p.into_inner()) = why;
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
        let kafka = self
            .kafka_waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(why) = kafka {
            return Some(why);
        }
        if let Some(why) = self.models_missing(registry) {
            return Some(why);
        }
        if self.streaming && !self.partitions_ready.load(Ordering::Acquire) {
            return Some("waiting for a partition assignment".to_owned());
        }
        None
    }
}

/// Beyond `shutdown_timeout_ms`, how long the pipeline may take to stop (its drain, commit and
/// close are bounded by `shutdown_timeout_ms` already; this covers the threads' ends).
const PIPELINE_STOP_MARGIN: Duration = Duration::from_secs(3);
/// Beyond the pipeline's bound, how long the supervisor waits for the essential tasks before
/// leaving them behind.
const SUPERVISOR_MARGIN: Duration = Duration::from_secs(2);
/// How long stopping the registry's watch thread may take (it may be in the middle of a scan).
const WATCHER_STOP: Duration = Duration::from_secs(2);

/// What `serve` and `demo` run alike: the model registry and its directory watcher, the shared
/// state, the signal handler and the HTTP server, listening; and the essential tasks that
/// [`Running::supervise`] watches.
pub struct Running {
    pub ctx: Arc<AppContext>,
    /// Cancelled by SIGINT/SIGTERM, by [`Running::stop`], or when an essential task ends.
    pub shutdown: CancellationToken,
    watcher: Watcher,
    tasks: Essentials,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").finish_non_exhaustive()
    }
}

impl Running {
    /// Starts everything but the Kafka pipeline; the HTTP server is the essential task `http`.
    /// `kafka`: readiness also waits for the pipeline's first assignment.
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
        let mut tasks = Essentials::default();
        let http = crate::http::serve(Arc::clone(&ctx), listener, shutdown.clone());
        tasks.spawn("http", async move { http.await.context("HTTP server") });
        Ok(Self {
            ctx,
            shutdown,
            watcher,
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
    /// [`Essentials::supervise`]), then stops the watcher. Bounded: everything stops within
    /// `shutdown_timeout_ms` and a few seconds, or is left behind with an error.
    pub async fn supervise(self) -> anyhow::Result<()> {
        let grace = Duration::from_millis(self.ctx.config.kafka.shutdown_timeout_ms)
            + PIPELINE_STOP_MARGIN
            + SUPERVISOR_MARGIN;
        let result = self.tasks.supervise(&self.shutdown, grace).await;
        stop_watcher(self.watcher).await;
        result
    }

    /// Asks everything to stop and waits for it (as [`Running::supervise`] does).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.supervise().await
    }
}

/// Stops the registry's watch thread, waiting at most [`WATCHER_STOP`].
async fn stop_watcher(watcher: Watcher) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("watcher-stop".to_owned())
        .spawn(move || {
            watcher.stop();
            let _ = tx.send(());
        });
    if spawned.is_err() || tokio::time::timeout(WATCHER_STOP, rx).await.is_err() {
        tracing::warn!(
            timeout_ms = WATCHER_STOP.as_millis() as u64,
            "the model registry's watch thread did not stop in time; leaving it"
        );
    }
}

/// The tasks the service cannot run without (the HTTP server, the Kafka side), each named.
#[derive(Default)]
pub struct Essentials {
    set: JoinSet<anyhow::Result<()>>,
    names: HashMap<tokio::task::Id, &'static str>,
}

impl std::fmt::Debug for Essentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names.values()).finish()
    }
}

impl Essentials {
    /// Starts `task` (on the current runtime) under `name`.
    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits until every task has ended. A task that ends (returns, fails or panics) before
    /// `shutdown` is cancelled ends the service: it is logged as an error with its name
    /// (`task = "http"`), `shutdown` is cancelled so the others stop, and the result is an
    /// error saying so. A task failing during shutdown is an error too. Once `shutdown` is
    /// cancelled the others get `grace` to end; those still running then are logged, left
    /// behind (aborted at their next await) and make the result an error.
    pub async fn supervise(
        mut self,
        shutdown: &CancellationToken,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let mut failure: Option<anyhow::Error> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let ended = tokio::select! {
                ended = self.set.join_next_with_id() => ended,
                () = shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(tokio::time::Instant::now() + grace);
                    continue;
                }
                () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    let mut late: Vec<&str> = self.names.values().copied().collect();
                    late.sort_unstable();
                    for task in &late {
                        tracing::error!(task, grace_ms = grace.as_millis() as u64, "essential task did not stop in time; leaving it");
                    }
                    self.set.abort_all();
                    let late = anyhow::anyhow!(
                        "{} did not stop within {} ms of shutdown",
                        late.join(", "),
                        grace.as_millis()
                    );
                    return Err(failure.map_or(late, |first| first.context("and then: the shutdown overran")));
                }
            };
            let Some(ended) = ended else {
                break;
            };
            let (id, outcome) = match ended {
                Ok((id, outcome)) => (id, outcome),
                Err(e) => (e.id(), Err(anyhow::anyhow!("{}", join_error(e)))),
            };
            let name = self.names.remove(&id).unwrap_or("unnamed");
            let expected = shutdown.is_cancelled();
            match outcome {
                Ok(()) if expected => tracing::debug!(task = name, "stopped"),
                Ok(()) => {
                    tracing::error!(
                        task = name,
                        "essential task ended unexpectedly: stopping the service"
                    );
                    failure.get_or_insert_with(|| {
                        anyhow::anyhow!("essential task `{name}` ended unexpectedly")
                    });
                }
                Err(e) => {
                    tracing::error!(task = name, error = %format!("{e:#}"), "essential task failed: stopping the service");
                    failure.get_or_insert_with(|| e.context(format!("essential task `{name}`")));
                }
            }
            // Whatever ended, the rest of the service goes down with it.
            shutdown.cancel();
        }
        failure.map_or(Ok(()), Err)
    }
}

/// A task's panic message (or that it was cancelled).
fn join_error(e: JoinError) -> String {
    if !e.is_panic() {
        return "cancelled".to_owned();
    }
    let panic = e.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    format!("panicked: {message}")
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
    let handle = Pipeline::start(Arc::clone(&ctx))?;
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A task that runs until shutdown, then sets `stopped`.
    fn well_behaved(
        shutdown: &CancellationToken,
        stopped: &Arc<AtomicBool>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'static {
        let (shutdown, stopped) = (shutdown.clone(), Arc::clone(stopped));
        async move {
            shutdown.cancelled().await;
            stopped.store(true, Ordering::Release);
            Ok(())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_ends_the_service_with_its_name_and_stops_the_others() {
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Essentials::default();
        tasks.spawn("kafka", well_behaved(&shutdown, &stopped));
        tasks.spawn("http", async {
            tokio::task::yield_now().await;
            panic!("listener gone");
        });
        let err = tasks
            .supervise(&shutdown, Duration::from_secs(10))
            .await
            .unwrap_err();
        let err = format!("{err:#}");
        assert!(err.contains("essential task `http`"), "{err}");
        assert!(err.contains("panicked: listener gone"), "{err}");
        assert!(shutdown.is_cancelled(), "the others are asked to stop");
        assert!(stopped.load(Ordering::Acquire), "and waited for");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_that_returns_or_fails_before_shutdown_is_an_error() {
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Essentials::default();
        tasks.spawn("http", well_behaved(&shutdown, &stopped));
        tasks.spawn("kafka", async { Ok(()) });
        let err = tasks
            .supervise(&shutdown, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "essential task `kafka` ended unexpectedly");
        assert!(stopped.load(Ordering::Acquire));

        let shutdown = CancellationToken::new();
        let mut tasks = Essentials::default();
        tasks.spawn("http", well_behaved(&shutdown, &stopped));
        tasks.spawn("kafka", async { anyhow::bail!("no broker") });
        let err = tasks
            .supervise(&shutdown, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "essential task `kafka`: no broker");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_ends_cleanly_and_a_task_ignoring_it_is_left_behind_in_time() {
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let mut tasks = Essentials::default();
        tasks.spawn("http", well_behaved(&shutdown, &stopped));
        tasks.spawn("kafka", well_behaved(&shutdown, &stopped));
        shutdown.cancel();
        tasks
            .supervise(&shutdown, Duration::from_secs(10))
            .await
            .unwrap();

        let shutdown = CancellationToken::new();
        let mut tasks = Essentials::default();
        tasks.spawn("http", well_behaved(&shutdown, &stopped));
        tasks.spawn("kafka", std::future::pending());
        shutdown.cancel();
        let started = Instant::now();
        let err = tasks
            .supervise(&shutdown, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            err.to_string(),
            "kafka did not stop within 200 ms of shutdown"
        );
    }

    #[test]
    fn readiness_says_when_it_waits_for_kafka() {
        let registry = Registry::new(RegistryConfig::new("/nonexistent"));
        let readiness = Readiness::new(true);
        readiness.set_kafka_waiting(Some("connecting to Kafka at 127.0.0.1:1".to_owned()));
        assert_eq!(
            readiness.not_ready_reason(&registry).as_deref(),
            Some("connecting to Kafka at 127.0.0.1:1")
        );
        readiness.set_kafka_waiting(None);
        assert_ne!(
            readiness.not_ready_reason(&registry).as_deref(),
            Some("connecting to Kafka at 127.0.0.1:1")
        );
    }
}
