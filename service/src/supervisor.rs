//! The supervisor of the service's essential tasks (the HTTP server, the Kafka side, the model
//! registry's watch thread): one that ends, fails or panics before shutdown was asked for ends
//! the service, named in the log and in the error; at shutdown, the others get a bounded time
//! to end. Threads take part through a [`ThreadEnd`], which tells the async side when they end.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// The tasks the service cannot run without (the HTTP server, the Kafka side, the registry's
/// watch thread), each named.
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
    format!("panicked: {}", panic_message(&*e.into_panic()))
}

/// The message of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// When a thread ends, for the async side, which must not block on a join: the thread holds
/// the [`EndGuard`] of [`ThreadEnd::guard`], which marks the end when dropped — after the
/// thread's function returns, and while a panic unwinds too.
#[derive(Debug, Default)]
pub struct ThreadEnd(Arc<EndState>);

#[derive(Debug, Default)]
struct EndState {
    ended: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl ThreadEnd {
    /// The guard to move into the thread (one per thread).
    pub fn guard(&self) -> EndGuard {
        EndGuard(Arc::clone(&self.0))
    }

    /// Completes once the guard has been dropped (at once if it already was), for any number
    /// of waiters, any number of times.
    pub async fn ended(&self) {
        use std::sync::atomic::Ordering;
        loop {
            // Created before the check: a notification between the two is not missed.
            let notified = self.0.notify.notified();
            if self.0.ended.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Marks its [`ThreadEnd`] when dropped.
#[derive(Debug)]
pub struct EndGuard(Arc<EndState>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0
            .ended
            .store(true, std::sync::atomic::Ordering::Release);
        self.0.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
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

    /// The registry's watch thread, supervised as `serve` does it: when it panics, the service
    /// stops with its name and the panic; at shutdown it is stopped, and that is no error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_registry_watch_thread_ending_ends_the_service_with_its_name() {
        use crate::lifecycle::{WATCHER_TASK, supervise_watcher};
        use crate::model::{Registry, RegistryConfig};

        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::new(RegistryConfig::new(dir.path())));
        let shutdown = CancellationToken::new();
        let stopped = Arc::new(AtomicBool::new(false));
        let watcher = registry.watch(Duration::from_secs(3600)).unwrap();
        let mut tasks = Essentials::default();
        tasks.spawn("http", well_behaved(&shutdown, &stopped));
        watcher.inject_panic();
        tasks.spawn(WATCHER_TASK, supervise_watcher(watcher, shutdown.clone()));
        let err = tasks
            .supervise(&shutdown, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "essential task `registry-watcher`: the model registry's watch thread panicked: \
             injected into the watch thread"
        );
        assert!(stopped.load(Ordering::Acquire), "the others are stopped");

        let shutdown = CancellationToken::new();
        let watcher = registry.watch(Duration::from_secs(3600)).unwrap();
        let mut tasks = Essentials::default();
        tasks.spawn(WATCHER_TASK, supervise_watcher(watcher, shutdown.clone()));
        shutdown.cancel();
        tasks
            .supervise(&shutdown, Duration::from_secs(10))
            .await
            .unwrap();
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
}
