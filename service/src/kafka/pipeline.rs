//! The streaming loop: one thread, one consumer, micro-batches.
//!
//! ```text
//! poll what is queued (≤ batch_max_records) ─> decode ─(bad)───────────> dead letter ─┐
//!                                                └─> TailState::apply ─> features ─> batch  │
//! flush: one scoring call per model ─> prediction (or dead letter on NaN/Inf) ───────────┤
//! every output carries the batch's tracker ─> acknowledged by the broker ─> store offsets
//! ```
//!
//! Three threads: the pipeline thread (this module) polls, decodes, applies and builds
//! features; a scoring thread ([`super::scoring_stage`]) scores each finished batch; an output
//! thread ([`super::output`]) builds the prediction records and produces them. Batch k+1 is
//! decoded while batch k is scored and batch k-1 produced, each stage in batch order (channels
//! of capacity 1 between them). A batch is registered as in flight (with the number of outputs
//! it will have: one per row, plus its dead letters) before it is handed over, so revocation
//! and shutdown wait for batches that are still being scored.
//!
//! Offsets are stored ([`super::in_flight`]; then committed by librdkafka's auto-commit, or
//! synchronously on revocation and shutdown) only after every output of their batch is
//! acknowledged, in batch order. A failed delivery stops the pipeline with an error and without
//! storing the batch's offsets: after a restart the batch is processed again (at-least-once).
//!
//! Stopping is bounded by `shutdown_timeout_ms` whatever the broker does: the consume loop
//! checks the stop flag on every poll result (errors too) and while waiting for back-pressure;
//! the drain waits at most the timeout; the final commit and the close (librdkafka's take no
//! timeout) run on a thread of their own that is left behind once the time is up.
//!
//! Over 400 lines: the consume loop and its bounded stop read as one story (poll, hand over,
//! settle, stop); splitting the stop out is the next step if it grows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use fleet_features::{ApplyOutcome, Event, FeatureSet};
use metrics::{Counter, Histogram};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::delivery::DeliveryContext;
use super::in_flight::InFlight;
use super::log_limit::{self, ClientErrors, LogLimit};
use super::output::{Emitter, Meta, OutputRecord, dead_letter, lag_since};
use super::rebalance::RebalanceContext;
use super::scoring_stage::{ScoringStage, Work};
use super::settings;
use super::stats::PipelineStats;
use crate::app::AppContext;
use crate::config::KafkaConfig;
use crate::metrics::names;
use crate::scoring::{Batcher, RowInfo};
use crate::store::{SourceRef, TailEntry};
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
    /// side, which must not poll. Only one waiter is woken.
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
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    in_flight: Arc<InFlight>,
    assigned: Arc<Mutex<HashSet<(String, i32)>>>,
    batcher: Batcher<Meta>,
    outputs: Vec<OutputRecord>,
    offsets: HashMap<(String, i32), i64>,
    vector: Vec<f32>,
    stats: Arc<PipelineStats>,
    /// Batches to the scoring thread (capacity 1: at most one waits while one is scored).
    work: Option<mpsc::SyncSender<Work>>,
    /// Emptied batchers coming back, to be reused.
    spare: mpsc::Receiver<Batcher<Meta>>,
    scorer: Option<JoinHandle<()>>,
    /// `fleetscore_event_lag_seconds{stage="consumed"}`.
    lag_consumed: Histogram,
    /// `fleetscore_events_consumed_total` by topic.
    consumed_counters: Vec<(String, Counter)>,
    /// Consumer errors: each counted, identical ones logged once per interval.
    errors: LogLimit,
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
    /// Connects, subscribes and starts the loop on a thread of its own.
    pub fn start(ctx: Arc<AppContext>) -> anyhow::Result<PipelineHandle> {
        crate::metrics::install(); // before the metric handles below are taken
        let config = ctx.config.kafka.clone();
        let stats = Arc::new(PipelineStats::default());
        let assigned = Arc::new(Mutex::new(HashSet::new()));
        let in_flight = Arc::new(InFlight::new(Arc::clone(&assigned), Arc::clone(&stats)));
        let producer: ThreadedProducer<DeliveryContext> = settings::producer(&config)?
            .create_with_context(DeliveryContext {
                errors: ClientErrors::new("producer", None),
            })
            .context("creating the Kafka producer")?;
        let consumer: BaseConsumer<RebalanceContext> = settings::consumer(&config)?
            .create_with_context(RebalanceContext {
                store: Arc::clone(&ctx.store),
                readiness: Arc::clone(&ctx.readiness),
                in_flight: Arc::clone(&in_flight),
                assigned: Arc::clone(&assigned),
                revoked: Mutex::default(),
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
        let producer = Arc::new(producer);
        let scoring = ScoringStage::start(Emitter::new(
            Arc::clone(&ctx),
            &config,
            Arc::clone(&producer),
            Arc::clone(&stats),
        ))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut pipeline = Pipeline {
            batcher: Batcher::new(Arc::clone(&ctx.registry)),
            ctx,
            config,
            producer,
            in_flight,
            assigned,
            outputs: Vec::new(),
            offsets: HashMap::new(),
            vector: Vec::new(),
            stats: Arc::clone(&stats),
            work: Some(scoring.work),
            lag_consumed: metrics::histogram!(names::EVENT_LAG, "stage" => "consumed"),
            consumed_counters: Vec::new(),
            spare: scoring.spare,
            scorer: Some(scoring.thread),
            errors: LogLimit::new(log_limit::INTERVAL),
        };
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
                match consumer.poll(wait) {
                    None => {
                        if first_at.is_some() || stop.load(Ordering::Acquire) {
                            break;
                        }
                        self.in_flight.settle(consumer)?;
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
                        self.handle(&message);
                    }
                }
            }
            self.dispatch()?;
            // Back-pressure: never more than max_in_flight_batches unacknowledged.
            self.in_flight
                .settle_to(consumer, self.config.max_in_flight_batches.max(1), stop)?;
        }
        Ok(())
    }

    fn handle(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let topic = message.topic();
        let partition = message.partition();
        let offset = message.offset();
        {
            let assigned = self.assigned.lock().unwrap_or_else(|p| p.into_inner());
            if !assigned.iter().any(|(t, p)| *p == partition && t == topic) {
                return; // revoked while buffered: the new owner has it
            }
        }
        match self
            .offsets
            .iter_mut()
            .find(|((t, p), _)| *p == partition && t == topic)
        {
            Some((_, stored)) => *stored = offset,
            None => {
                self.offsets.insert((topic.to_owned(), partition), offset);
            }
        }
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        crate::metrics::cached(
            &mut self.consumed_counters,
            topic,
            |topic| metrics::counter!(names::EVENTS_CONSUMED, "topic" => topic.to_owned()),
        )
        .increment(1);
        let source = SourceRef {
            topic: topic.to_owned(),
            partition,
            offset,
        };
        let timestamp_ms = message.timestamp().to_millis();
        if let Some(lag) = lag_since(timestamp_ms) {
            self.lag_consumed.record(lag);
        }
        let payload = message.payload().unwrap_or_default();
        let event = match Event::decode(payload) {
            Ok(event) => event,
            Err(e) => {
                self.outputs.push(dead_letter(
                    &self.stats,
                    message.key().map(<[u8]>::to_vec),
                    payload.to_vec(),
                    message.headers().map(|h| h.detach()).as_ref(),
                    &source,
                    e.reason.as_str(),
                    &e.to_string(),
                ));
                return;
            }
        };
        let now = Utc::now();
        let vector = &mut self.vector;
        let (outcome, scored) = self
            .ctx
            .store
            .with_entry(event.tail(), |entry: &mut TailEntry| {
                entry.partition = Some(partition);
                let outcome = entry.state.apply(&event);
                let mut scored = None;
                if outcome == ApplyOutcome::Applied {
                    entry.last_source = Some(source.clone());
                    entry.last_applied_at = Some(now);
                    if let Some(set) = FeatureSet::for_event(&event)
                        && set.compute(&entry.state, vector).is_ok()
                    {
                        scored = Some(set);
                    }
                }
                (outcome, scored)
            });
        match outcome {
            ApplyOutcome::Applied => {}
            ApplyOutcome::Duplicate => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::EVENTS_IGNORED, "reason" => "duplicate").increment(1);
            }
            ApplyOutcome::Late(why) => {
                self.stats.late.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::EVENTS_IGNORED, "reason" => why.as_str()).increment(1);
            }
        }
        if let Some(set) = scored {
            let info = RowInfo::of(&event);
            let meta = Meta {
                source,
                timestamp_ms,
                key: message.key().map(<[u8]>::to_vec),
                value: payload.to_vec(),
                headers: message.headers().map(|h| h.detach()),
            };
            self.batcher.push(set.id(), &self.vector, info, meta);
        }
    }

    /// Registers the batch in flight (offsets and a tracker for all its outputs), then hands
    /// it to the scoring thread.
    fn dispatch(&mut self) -> anyhow::Result<()> {
        if self.offsets.is_empty() && self.outputs.is_empty() && self.batcher.is_empty() {
            return Ok(());
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        // One output per row (a prediction or a dead letter), plus the decoding dead letters.
        let tracker = self.in_flight.register(
            self.outputs.len() + self.batcher.len(),
            std::mem::take(&mut self.offsets),
        );
        if self.outputs.is_empty() && self.batcher.is_empty() {
            return Ok(()); // only duplicates and late events: nothing to produce
        }
        let spare = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Batcher::new(Arc::clone(&self.ctx.registry)));
        let work = Work {
            batcher: std::mem::replace(&mut self.batcher, spare),
            outputs: std::mem::take(&mut self.outputs),
            tracker,
        };
        let waiting = Instant::now();
        let sent = self
            .work
            .as_ref()
            .context("the scoring thread was already stopped")?
            .send(work)
            .map_err(|_| anyhow::anyhow!("the scoring thread has stopped"));
        // Time spent waiting for the scoring thread: high when scoring is the bottleneck.
        metrics::histogram!(names::HANDOVER_WAIT).record(waiting.elapsed().as_secs_f64());
        sent
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

    /// Produces what is buffered, waits (bounded) for acknowledgements, stores, commits and
    /// closes the consumer, all within `shutdown_timeout_ms` (the commit and close at least
    /// [`CLOSE_FLOOR`]).
    fn shut_down(&mut self, consumer: InputConsumer) -> anyhow::Result<()> {
        let timeout = Duration::from_millis(self.config.shutdown_timeout_ms);
        let started = Instant::now();
        let left = || timeout.saturating_sub(started.elapsed());
        let dispatched = self.dispatch();
        self.stop_scorer();
        let _ = self.producer.flush(left());
        let drained = self.in_flight.drain(&consumer, left());
        commit_and_close(consumer, left().max(CLOSE_FLOOR));
        tracing::info!(
            consumed = self.stats.consumed.load(Ordering::Relaxed),
            predictions = self.stats.predictions.load(Ordering::Relaxed),
            dead_letters = self.stats.dead_letters.load(Ordering::Relaxed),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pipeline stopped"
        );
        dispatched.and(drained)
    }
}

/// Commits what is stored and closes the consumer (leaving the group), waiting at most
/// `timeout`. librdkafka's synchronous commit and close take no timeout (with the group
/// coordinator unreachable, a commit waits up to the session timeout and the close longer), so
/// both run on a thread of their own, left behind when the time is up: the process is about to
/// exit, and the group then notices the departure after its session timeout.
fn commit_and_close(consumer: InputConsumer, timeout: Duration) {
    enum Step {
        Committed(Result<(), KafkaError>),
        Closed,
    }
    let deadline = Instant::now() + timeout;
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".to_owned())
        .spawn(move || {
            let _ = tx.send(Step::Committed(
                consumer.commit_consumer_state(CommitMode::Sync),
            ));
            drop(consumer);
            let _ = tx.send(Step::Closed);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for the final commit and close: consumer left open");
        return;
    }
    let next = || rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    match next() {
        Ok(Step::Committed(
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)),
        )) => {}
        Ok(Step::Committed(Err(e))) => tracing::warn!(error = %e, "final commit failed"),
        Ok(Step::Closed) | Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "final commit not done in time: leaving it (what it would have committed is processed again after a restart)"
            );
            return;
        }
    }
    if !matches!(next(), Ok(Step::Closed)) {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "Kafka consumer not closed in time: leaving it (the group notices after its session timeout)"
        );
    }
}
