//! The streaming loop: one thread, one consumer, micro-batches.
//!
//! ```text
//! poll what is queued (≤ batch_max_records) ─> decode ─(bad)──────────────────> dead letter ─┐
//!   hand over: TailState::apply ─> features ─> batch                                          │
//! flush: one scoring call per model ─> prediction (or dead letter on NaN/Inf) ─────────────────┤
//! every output carries the batch's tracker ─> acknowledged ─> offsets and changed aircraft    │
//! every commit_interval_ms: changelog of the changed aircraft + offsets (+ transaction) <──────┘
//! ```
//!
//! Four threads: the pipeline thread (this module) polls, decodes, and when it hands a batch
//! over, applies its events and builds features; a scoring thread ([`super::scoring_stage`])
//! scores each finished batch; an output thread ([`super::output`]) builds the prediction
//! records and produces them; under exactly-once a commit thread finishes each commit the
//! pipeline thread prepared, while the next transaction's batches go on ([`super::commit`]). Batch k+1 is decoded while batch k is scored and batch k-1
//! produced, each stage in batch order (channels of capacity 1 between them). A batch is
//! registered as in flight (with the number of outputs it will have: one per row, plus its
//! dead letters) before it is handed over.
//!
//! Events are applied to the state only when their batch is handed over, so the state never
//! holds an event that a commit does not cover: a commit (on the interval, on revocation, at
//! shutdown; [`super::commit`]) waits for what was handed over, writes the changed aircraft to
//! the changelog and commits their offsets, under exactly-once in one transaction. Records
//! polled but not handed over when their partition is revoked are dropped (the next owner
//! reads them). An abortable commit error aborts and rewinds: the assigned partitions' state
//! is restored from the changelog and the consumer seeks back to the committed offsets.
//!
//! Stopping is bounded by `shutdown_timeout_ms` whatever the broker does: the consume loop
//! checks the stop flag on every poll result (errors too) and while waiting for back-pressure;
//! the final commit waits at most the timeout; the close (librdkafka's takes no timeout) runs
//! on a thread of its own that is left behind once the time is up.
//!
//! The intake (decoding, then applying at hand-over: [`super::intake`]) and the rewind after
//! an abort ([`super::rewind`]) live in modules of their own; here are the loop, the
//! hand-over to the scoring thread and the bounded stop; the commits in [`commits`].

mod commits;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};

use super::assignment::Assignment;
use super::commit::{CommitParts, CommitStatus, Committer};
use super::in_flight::InFlight;
use super::intake::Intake;
use super::lock;
use super::log_limit::{self, ClientErrors, LogLimit};
use super::output::{Emitter, Meta};
use super::producer::ProducerSlot;
use super::rebalance::{RebalanceContext, Signals};
use super::rewind;
use super::scoring_stage::{ScoringStage, Work};
use super::settings;
use super::stages::{BatchClock, Stage};
use super::stats::PipelineStats;
use super::txn_gate::TxnGate;
use super::watchdog::{self, Step, Steps};
use crate::app::AppContext;
use crate::config::{Guarantee, KafkaConfig};
use crate::metrics::names;
use crate::scoring::Batcher;
use crate::supervisor::ThreadEnd;

/// A running pipeline; stop it to drain, commit and join.
#[derive(Debug)]
pub struct PipelineHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// Told when the pipeline thread ends, however it ends (a panic too).
    ended: ThreadEnd,
    pub stats: Arc<PipelineStats>,
}

impl PipelineHandle {
    /// Whether the pipeline thread has ended (after an error, or a stop).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Completes when the pipeline thread has ended (after an error, or a stop); for the async
    /// side, which must not poll. Any number of waiters, any number of times (the supervisor
    /// and the stop both wait).
    pub async fn finished(&self) {
        if !self.is_finished() {
            self.ended.ended().await;
        }
    }

    /// Asks the pipeline to drain, commit and close, and waits for it at most `timeout`; past
    /// that the thread is left behind and this is an error (the caller is about to exit).
    pub async fn stop_within(mut self, timeout: Duration) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Release);
        if tokio::time::timeout(timeout, self.finished())
            .await
            .is_err()
        {
            self.thread.take(); // detached
            anyhow::bail!(
                "the Kafka pipeline did not stop within {} ms (shutdown_timeout_ms and a margin); \
                 what was not committed is processed again after a restart",
                timeout.as_millis()
            );
        }
        match self.thread.take() {
            // Finished: the join does not wait.
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for PipelineHandle {
    /// Asks the pipeline to stop, without waiting for it: a handle dropped on an error path
    /// must not block the async side.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

type InputConsumer = BaseConsumer<RebalanceContext>;

pub struct Pipeline {
    ctx: Arc<AppContext>,
    config: KafkaConfig,
    in_flight: Arc<InFlight>,
    committer: Arc<Mutex<Committer>>,
    /// Whether a commit is being finished off this thread, and how the last one failed.
    commit_status: Arc<CommitStatus>,
    /// The epoch of the batches handed over ([`super::txn_gate`]).
    gate: Arc<TxnGate>,
    /// Wakes the commit thread for a prepared commit (exactly-once).
    commit_wake: Option<mpsc::Sender<()>>,
    commit_thread: Option<JoinHandle<()>>,
    /// When the last commit started, and how often one does.
    last_commit: Instant,
    commit_interval: Duration,
    assignment: Arc<Mutex<Assignment>>,
    signals: Arc<Signals>,
    /// Polled records, applied and turned into the batch when it is handed over.
    intake: Intake,
    stats: Arc<PipelineStats>,
    /// Batches to the scoring thread (capacity 1: at most one waits while one is scored).
    work: Option<mpsc::SyncSender<Work>>,
    /// Emptied batchers coming back, to be reused.
    spare: mpsc::Receiver<Batcher<Meta>>,
    scorer: Option<JoinHandle<()>>,
    /// Consumer errors: each counted, identical ones logged once per interval.
    errors: LogLimit,
    /// The step this thread is in, for the watchdog.
    steps: Arc<Steps>,
}

/// The final commit and the close get at least this long, even when draining used up
/// `shutdown_timeout_ms` (with a live broker they take milliseconds).
const CLOSE_FLOOR: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Checks (or creates) the changelog topic, connects, initialises transactions, subscribes
    /// and starts the loop on a thread of its own. The blocking Kafka calls run off the async
    /// workers.
    pub async fn start(ctx: Arc<AppContext>) -> anyhow::Result<PipelineHandle> {
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || Self::start_blocking(ctx, &runtime))
            .await
            .context("starting the pipeline")?
    }

    fn start_blocking(
        ctx: Arc<AppContext>,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<PipelineHandle> {
        crate::metrics::install(); // before the metric handles below are taken
        let config = ctx.config.kafka.clone();
        super::changelog::ensure_topic(&config, runtime)?;
        let stats = Arc::new(PipelineStats::default());
        let assignment = Arc::new(Mutex::new(Assignment::default()));
        let in_flight = Arc::new(InFlight::new(Arc::clone(&assignment), Arc::clone(&stats)));
        let producers = Arc::new(ProducerSlot::create(&config)?);
        let gate = Arc::new(TxnGate::default());
        let commit_status = Arc::new(CommitStatus::default());
        let committer = Arc::new(Mutex::new(Committer::start(
            &config,
            CommitParts {
                producers: Arc::clone(&producers),
                in_flight: Arc::clone(&in_flight),
                store: Arc::clone(&ctx.store),
                gate: Arc::clone(&gate),
                status: Arc::clone(&commit_status),
            },
        )?));
        // Only exactly-once commits are finished off the pipeline thread.
        let (commit_wake, commit_thread) = match config.guarantee {
            Guarantee::ExactlyOnce => {
                let (wake, thread) = commits::start_commit_thread(
                    Arc::clone(&committer),
                    Duration::from_millis(config.transaction_timeout_ms),
                )?;
                (Some(wake), Some(thread))
            }
            Guarantee::AtLeastOnce => (None, None),
        };
        let signals = Arc::new(Signals::default());
        let stop = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(Steps::default());
        let consumer: BaseConsumer<RebalanceContext> = settings::consumer(&config)?
            .create_with_context(RebalanceContext {
                config: config.clone(),
                store: Arc::clone(&ctx.store),
                readiness: Arc::clone(&ctx.readiness),
                committer: Arc::clone(&committer),
                assignment: Arc::clone(&assignment),
                held: Arc::new(Mutex::new(BTreeSet::new())),
                signals: Arc::clone(&signals),
                stop: Arc::clone(&stop),
                steps: Arc::clone(&steps),
                drain_timeout: Duration::from_millis(config.shutdown_timeout_ms),
                errors: ClientErrors::new(
                    "consumer",
                    Some(metrics::counter!(names::CONSUMER_ERRORS)),
                ),
            })
            .context("creating the Kafka consumer")?;
        consumer
            .subscribe(&[&config.telemetry_topic, &config.schedule_topic])
            .context("subscribing")?;
        let scoring = ScoringStage::start(Emitter::new(
            Arc::clone(&ctx),
            &config,
            Arc::clone(&producers),
            Arc::clone(&gate),
            Arc::clone(&stats),
        ))?;
        let commit_interval = Duration::from_millis(config.commit_interval_ms);
        let mut pipeline = Pipeline {
            intake: Intake::new(
                Arc::clone(&ctx),
                Arc::clone(&assignment),
                Arc::clone(&stats),
            ),
            ctx,
            config,
            in_flight,
            committer,
            commit_status,
            gate,
            commit_wake,
            commit_thread,
            last_commit: Instant::now(),
            commit_interval,
            assignment,
            signals,
            stats: Arc::clone(&stats),
            work: Some(scoring.work),
            spare: scoring.spare,
            scorer: Some(scoring.thread),
            errors: LogLimit::new(log_limit::INTERVAL),
            steps: Arc::clone(&steps),
        };
        watchdog::start(&steps, Arc::clone(&stop)).context("starting the pipeline watchdog")?;
        let stop_flag = Arc::clone(&stop);
        let ended = ThreadEnd::default();
        let guard = ended.guard();
        let thread = std::thread::Builder::new()
            .name("kafka-pipeline".to_owned())
            .spawn(move || {
                let _guard = guard;
                pipeline.run(consumer, &stop_flag)
            })
            .context("starting the pipeline thread")?;
        Ok(PipelineHandle {
            stop,
            thread: Some(thread),
            ended,
            stats,
        })
    }

    fn run(&mut self, consumer: InputConsumer, stop: &AtomicBool) -> anyhow::Result<()> {
        tracing::info!(
            brokers = %self.config.brokers, group = %self.config.group_id,
            topics = ?[&self.config.telemetry_topic, &self.config.schedule_topic],
            guarantee = self.config.guarantee.name(),
            changelog = %self.config.changelog(),
            "pipeline started"
        );
        let result = self.main_loop(&consumer, stop);
        // Drain even after an error: whatever was acknowledged gets committed.
        let drained = self.shut_down(consumer);
        result.and(drained)
    }

    fn main_loop(&mut self, consumer: &InputConsumer, stop: &AtomicBool) -> anyhow::Result<()> {
        let max_wait = Duration::from_millis(self.config.batch_max_ms);
        let idle_poll = Duration::from_millis(100);
        while !stop.load(Ordering::Acquire) {
            let mut rows = 0usize;
            let mut first_at: Option<Instant> = None;
            while rows < self.config.batch_max_records.max(1) {
                // Records already queued are always taken (up to the batch size); the window
                // only bounds how long to wait for more once the queue is empty.
                let wait = match first_at {
                    None => idle_poll,
                    Some(t) => max_wait.saturating_sub(t.elapsed()),
                };
                let polled = consumer.poll(wait);
                // The rebalance callbacks run inside the poll.
                if let Some(reason) = self.signals.fatal() {
                    anyhow::bail!(reason);
                }
                if self.signals.take_rewind() {
                    self.rewind(consumer, stop)?;
                    break;
                }
                match polled {
                    None => {
                        // Idle: what was handed over still commits on the interval.
                        if first_at.is_some() || stop.load(Ordering::Acquire) || self.commit_due() {
                            break;
                        }
                        if let Err(e) = self.in_flight.settle() {
                            let failure = self.in_flight_failed(e)?;
                            self.commit_failed(consumer, failure, stop)?;
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        metrics::counter!(names::CONSUMER_ERRORS).increment(1);
                        if let Some((code, reason)) = consumer.client().fatal_error() {
                            anyhow::bail!("fatal Kafka consumer error ({code:?}): {reason}");
                        }
                        let error = e.to_string();
                        if let Some(suppressed) = self.errors.check(&error, Instant::now()) {
                            // `suppressed`: identical errors since the last line, not logged.
                            tracing::warn!(%error, suppressed, "consumer error");
                        }
                        // An unreachable broker reports errors back to back: they must not keep
                        // the loop from stopping, nor a started batch from being dispatched.
                        if stop.load(Ordering::Acquire)
                            || first_at.is_some_and(|t| t.elapsed() >= max_wait)
                        {
                            break;
                        }
                    }
                    Some(Ok(message)) => {
                        first_at.get_or_insert_with(Instant::now);
                        rows += 1;
                        self.intake.handle(&message);
                    }
                }
            }
            self.dispatch()?;
            // Back-pressure: never more than max_in_flight_batches unacknowledged.
            let settled = {
                let _step = self.steps.enter(Step::BackPressure);
                self.in_flight
                    .settle_to(self.config.max_in_flight_batches.max(1), stop)
            };
            if let Err(e) = settled {
                let failure = self.in_flight_failed(e)?;
                self.commit_failed(consumer, failure, stop)?;
            } else if let Some(failure) = self.commit_status.take_failure() {
                self.commit_failed(consumer, failure, stop)?;
            } else if self.commit_due() {
                self.commit(consumer, stop)?;
            }
        }
        Ok(())
    }

    /// After an abort: what was polled since the last commit is dropped, and the partitions
    /// go back to the committed state ([`super::rewind`]).
    fn rewind(&mut self, consumer: &InputConsumer, stop: &AtomicBool) -> anyhow::Result<()> {
        let _step = self.steps.enter(Step::Rewinding);
        self.intake.clear();
        rewind::to_committed(
            consumer,
            &self.config,
            &self.assignment,
            &self.signals,
            stop,
        )
    }

    /// Builds the batch, registers it in flight (offsets, changed aircraft and a tracker for
    /// all its outputs), then hands it to the scoring thread.
    fn dispatch(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut clock = BatchClock::start(self.intake.take_first_taken().unwrap_or(started));
        self.intake.build();
        if self.intake.is_empty() {
            return Ok(());
        }
        clock.lap_at(Stage::Batching, started);
        clock.lap(Stage::Apply);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        // One output per row (a prediction or a dead letter), plus the decoding dead letters.
        let outputs = self.intake.output_count();
        let (offsets, dirty) = self.intake.take_progress();
        let epoch = self.gate.dispatch_epoch();
        let tracker = self.in_flight.register(epoch, outputs, offsets, dirty);
        if outputs == 0 {
            return Ok(()); // only duplicates and late events: nothing to produce
        }
        let spare = self.spare.try_recv().unwrap_or_else(|_| {
            Batcher::with_drift(Arc::clone(&self.ctx.registry), Arc::clone(&self.ctx.drift))
        });
        let (batcher, outputs, span) = self.intake.take_outputs(spare);
        let work = Work {
            batcher,
            outputs,
            tracker,
            epoch,
            span,
            clock,
        };
        // Waits while the scoring thread is busy and one batch already waits for it
        // (`to_scoring`: high when scoring is the bottleneck).
        let _step = self.steps.enter(Step::HandingOver);
        self.work
            .as_ref()
            .context("the scoring thread was already stopped")?
            .send(work)
            .map_err(|_| anyhow::anyhow!("the scoring thread has stopped"))
    }

    /// Lets the scoring thread finish what it was given, and joins it.
    fn stop_scorer(&mut self) {
        self.work = None;
        if let Some(scorer) = self.scorer.take()
            && scorer.join().is_err()
        {
            tracing::error!("the scoring thread panicked");
        }
    }

    /// Hands over what is buffered, commits it (waiting, bounded, for acknowledgements) and
    /// closes the consumer, all within `shutdown_timeout_ms` (the close at least
    /// [`CLOSE_FLOOR`]).
    fn shut_down(&mut self, consumer: InputConsumer) -> anyhow::Result<()> {
        let timeout = Duration::from_millis(self.config.shutdown_timeout_ms);
        let started = Instant::now();
        let left = || timeout.saturating_sub(started.elapsed());
        // After a fatal error nothing more may be written.
        let fatal = self.signals.fatal().is_some();
        let dispatched = if fatal { Ok(()) } else { self.dispatch() };
        let committed = if fatal {
            // Batches waiting for a transaction that will not begin are dropped.
            self.gate.abandon_handed_over();
            Ok(())
        } else {
            // Finishes a prepared commit first. At-least-once: the close waits for the
            // asynchronous offset commit.
            let outcome = lock(&self.committer).commit(&consumer, left(), CommitMode::Async);
            outcome.map_err(|e| anyhow::anyhow!("final commit: {e}"))
        };
        if committed.is_err() {
            let _ = lock(&self.committer).abort("the final commit failed");
        }
        self.stop_scorer();
        self.stop_commit_thread();
        close(consumer, left().max(CLOSE_FLOOR));
        tracing::info!(
            consumed = self.stats.consumed.load(Ordering::Relaxed),
            predictions = self.stats.predictions.load(Ordering::Relaxed),
            dead_letters = self.stats.dead_letters.load(Ordering::Relaxed),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pipeline stopped"
        );
        dispatched.and(committed)
    }
}

/// Closes the consumer (leaving the group), waiting at most `timeout`. librdkafka's close
/// takes no timeout (it waits for an asynchronous commit still under way, and with the group
/// coordinator unreachable for longer), so it runs on a thread of its own, left behind when the
/// time is up: the process is about to exit, and the group then notices the departure after its
/// session timeout.
fn close(consumer: InputConsumer, timeout: Duration) {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".to_owned())
        .spawn(move || {
            drop(consumer);
            let _ = tx.send(());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for the close: consumer left open");
        return;
    }
    if rx.recv_timeout(timeout).is_err() {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "Kafka consumer not closed in time: leaving it (the group notices after its session timeout)"
        );
    }
}
