//! The pipeline's commits ([`super::super::commit`]): when one is due, prepared here and
//! finished by the commit thread under exactly-once, or here and now under at-least-once; a
//! failure, found here or by the commit thread, aborts and rewinds.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::CommitMode;

use super::{InputConsumer, Pipeline};
use crate::config::Guarantee;
use crate::kafka::commit::{CommitError, Committer};
use crate::kafka::lock;
use crate::kafka::watchdog::Step;

impl Pipeline {
    /// A batch failed in flight. Under exactly-once that is mostly a commit finished by the
    /// commit thread that failed and abandoned the batches handed over after it: its failure
    /// (recorded before the thread lets go of the committer) is what to act on. Otherwise the
    /// batch's own error.
    pub(super) fn in_flight_failed(&self, error: anyhow::Error) -> anyhow::Result<CommitError> {
        drop(lock(&self.committer));
        self.commit_status.take_failure().ok_or(error)
    }

    /// Whether the commit interval has passed since the last commit started.
    pub(super) fn commit_due(&self) -> bool {
        self.last_commit.elapsed() >= self.commit_interval
    }

    /// Commits what was handed over (see [`super::commit`]). Exactly-once: prepared here and
    /// finished by the commit thread while this one goes on (when the previous commit is still
    /// being finished, at the next round); at-least-once: here and now. An abortable failure
    /// aborts and rewinds, a fatal one is an error.
    pub(super) fn commit(
        &mut self,
        consumer: &InputConsumer,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        if self.config.guarantee == Guarantee::ExactlyOnce {
            if self.commit_status.busy() {
                return Ok(());
            }
            self.last_commit = Instant::now();
            {
                let _step = self.steps.enter(Step::Committing);
                lock(&self.committer).prepare_pending(consumer);
            }
            if let Some(wake) = &self.commit_wake {
                // The thread gone (it panicked), the next synchronous commit finishes it.
                let _ = wake.send(());
            }
            return Ok(());
        }
        self.last_commit = Instant::now();
        let wait = Duration::from_millis(self.config.transaction_timeout_ms);
        let outcome = {
            let _step = self.steps.enter(Step::Committing);
            lock(&self.committer).commit(consumer, wait, CommitMode::Async)
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(failure) => self.commit_failed(consumer, failure, stop),
        }
    }

    /// A failed commit: an abortable failure aborts and rewinds, a fatal one is an error.
    pub(super) fn commit_failed(
        &mut self,
        consumer: &InputConsumer,
        failure: CommitError,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        match failure {
            CommitError::Fatal(why) => anyhow::bail!(why),
            CommitError::Abortable(why) => {
                {
                    let _step = self.steps.enter(Step::Rewinding);
                    lock(&self.committer)
                        .abort(&why)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                self.rewind(consumer, stop)
            }
        }
    }

    /// Lets the commit thread finish what it was given, and joins it.
    pub(super) fn stop_commit_thread(&mut self) {
        self.commit_wake = None;
        if let Some(thread) = self.commit_thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the commit thread panicked");
        }
    }
}

/// Starts the commit thread: it finishes each prepared commit it is woken for
/// ([`Committer::finish_pending`]), waiting at most `wait` for acknowledgements, until the
/// sender is dropped.
pub(super) fn start_commit_thread(
    committer: Arc<Mutex<Committer>>,
    wait: Duration,
) -> anyhow::Result<(mpsc::Sender<()>, JoinHandle<()>)> {
    let (wake, woken) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("kafka-commit".to_owned())
        .spawn(move || {
            while woken.recv().is_ok() {
                lock(&committer).finish_pending(wait);
            }
        })
        .context("starting the commit thread")?;
    Ok((wake, thread))
}
