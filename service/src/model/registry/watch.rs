//! The registry's watch thread: rescans on every change in the models directory (debounced)
//! and at least every interval, until its [`Watcher`] is stopped or dropped. The service
//! supervises it as an essential task ([`Watcher::finished`]): it ends only when stopped, so
//! an end before that (a panic) stops the service.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use super::Registry;
use crate::model::ModelError;
use crate::model::status::ModelState;
use crate::supervisor::ThreadEnd;

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
        let ended = ThreadEnd::default();
        let guard = ended.guard();
        let thread = std::thread::Builder::new()
            .name("model-registry".to_owned())
            .spawn(move || {
                let _guard = guard; // dropped last, however the thread ends
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
                        #[cfg(test)]
                        Ok(Signal::Panic) => panic!("injected into the watch thread"),
                        Ok(Signal::Changed) => {
                            // Debounce a burst of file events into one scan.
                            while let Ok(signal) = rx.recv_timeout(Duration::from_millis(100)) {
                                match signal {
                                    Signal::Stop => return,
                                    // Not swallowed with the burst (the rescan's own directory
                                    // reads are file events: a test hung on that once).
                                    #[cfg(test)]
                                    Signal::Panic => panic!("injected into the watch thread"),
                                    Signal::Changed => {}
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
            ended,
        })
    }
}

#[derive(Debug)]
enum Signal {
    Changed,
    Stop,
    /// Makes the thread panic (the supervisor's tests).
    #[cfg(test)]
    Panic,
}

/// The registry's watch thread; stops it when stopped or dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: mpsc::Sender<Signal>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Told when the thread ends, however it ends (a panic too).
    ended: ThreadEnd,
}

impl Watcher {
    /// Whether the thread has ended (it ends only when stopped, or by a panic).
    pub fn is_finished(&self) -> bool {
        self.thread
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished)
    }

    /// Completes when the thread has ended; for the async side, which must not poll. Only one
    /// waiter is woken.
    pub async fn finished(&self) {
        if !self.is_finished() {
            self.ended.ended().await;
        }
    }

    /// Stops the thread and waits for it (it may be in the middle of a scan); `Err` with the
    /// panic's payload if it had panicked.
    pub fn stop(mut self) -> std::thread::Result<()> {
        self.shutdown()
    }

    /// Makes the thread panic, as a bug in a scan would.
    #[cfg(test)]
    pub(crate) fn inject_panic(&self) {
        let _ = self.stop.send(Signal::Panic);
    }

    fn shutdown(&mut self) -> std::thread::Result<()> {
        let _ = self.stop.send(Signal::Stop);
        match self.thread.take() {
            Some(thread) => thread.join(),
            None => Ok(()),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
