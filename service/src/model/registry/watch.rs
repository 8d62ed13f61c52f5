//! The registry's watch thread: rescans on every change in the models directory (debounced)
//! and at least every interval, until its [`Watcher`] is stopped or dropped. The service
//! supervises it as an essential task ([`Watcher::finished`]): it ends only when stopped, so
//! an end before that (a panic) stops the service.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::EventKind;
use notify::event::{AccessKind, AccessMode};

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
                if event.is_ok_and(|event| is_change(&event.kind)) {
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

/// Whether a file event may change what the directory holds. Reads are not changes: the
/// rescan's own reads (opening the directories and manifests it looks at) are reported as
/// `Access(Open)` and `Access(Close(Read))`, and taking them for changes made every scan
/// trigger the next: an idle service rescanned about ten times a second, forever. A file
/// closed after writing is a change (a package being copied in).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use notify::Watcher as _;

    use super::is_change;
    use crate::model::registry::{Registry, RegistryConfig};

    /// What a scan does to the directory (list it, read the manifests, load the model) makes
    /// no event that counts as a change; what publishing does (a file written) does. Events
    /// arrive in order, so every event before the marker's is one the scan made.
    #[test]
    fn a_scan_is_not_a_change_and_a_written_file_is() {
        let root = tempfile::tempdir().unwrap();
        let models = root.path().join("models");
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models/engine-rul/1");
        let dst = models.join("engine-rul/1");
        std::fs::create_dir_all(&dst).unwrap();
        for entry in std::fs::read_dir(&fixture).unwrap().flatten() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .unwrap();
        watcher
            .watch(&models, notify::RecursiveMode::Recursive)
            .unwrap();
        let mut config = RegistryConfig::new(&models);
        config.settle = Duration::ZERO;
        let registry = Registry::new(config);
        registry.rescan();
        registry.rescan();
        assert!(
            registry.serving_by_name("engine-rul").is_some(),
            "the scan loaded the model"
        );
        let marker = models.join("engine-rul/marker");
        std::fs::write(&marker, b"x").unwrap();

        let mut scan_events = Vec::new();
        let marker_kind = loop {
            let event = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the marker's events arrive")
                .unwrap();
            if event.paths.contains(&marker) {
                break event.kind;
            }
            scan_events.push(event.kind);
        };
        assert!(!scan_events.is_empty(), "the scans made file events");
        let changes: Vec<_> = scan_events.iter().filter(|k| is_change(k)).collect();
        assert!(
            changes.is_empty(),
            "events of a scan taken for changes: {changes:?}"
        );
        assert!(
            is_change(&marker_kind),
            "creating a file is a change: {marker_kind:?}"
        );
    }
}
