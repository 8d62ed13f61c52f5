//! The registry's watch thread: rescans on every change in the models directory (debounced)
//! and at least every interval, until its [`Watcher`] is stopped or dropped.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::Registry;
use crate::model::ModelError;
use crate::model::status::ModelState;

impl Registry {
    /// Rescans on every change in the directory (debounced) and at least every `interval`,
    /// on a thread of its own until the returned handle is stopped or dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> Result<Watcher, ModelError> {
        use notify::Watcher as _;
        let (tx, rx) = mpsc::channel::<Signal>();
        let events = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    let _ = events.send(Signal::Changed);
                }
            })
            .map_err(|e| ModelError::io(&self.config.dir, std::io::Error::other(e)))?;
        watcher
            .watch(&self.config.dir, notify::RecursiveMode::Recursive)
            .map_err(|e| ModelError::io(&self.config.dir, std::io::Error::other(e)))?;
        let registry = Arc::clone(self);
        let settle = self.config.settle;
        let thread = std::thread::Builder::new()
            .name("model-registry".to_owned())
            .spawn(move || {
                let _watcher = watcher; // dropped (and unwatched) when the loop ends
                registry.rescan();
                loop {
                    let pending = registry
                        .statuses()
                        .iter()
                        .any(|s| s.state == ModelState::Pending);
                    let wait = if pending {
                        settle.max(Duration::from_millis(50))
                    } else {
                        interval
                    };
                    match rx.recv_timeout(wait) {
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                        Ok(Signal::Changed) => {
                            // Debounce a burst of file events into one scan.
                            while let Ok(signal) = rx.recv_timeout(Duration::from_millis(100)) {
                                if matches!(signal, Signal::Stop) {
                                    return;
                                }
                            }
                            registry.rescan();
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            registry.rescan();
                        }
                    }
                }
            })
            .map_err(|e| ModelError::io(Path::new("model-registry thread"), e))?;
        Ok(Watcher {
            stop: tx,
            thread: Some(thread),
        })
    }
}

enum Signal {
    Changed,
    Stop,
}

/// Stops the registry's watch thread when stopped or dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: mpsc::Sender<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Changed => "Changed",
            Signal::Stop => "Stop",
        })
    }
}
