//! The intake: records polled and decoded, then, when their batch is handed over, applied to
//! the aircraft's state and turned into the batch's feature rows and dead letters.
//!
//! Events are applied only when their batch is handed over ([`Intake::build`]), so the state
//! never holds an event that a commit does not cover; records of a partition revoked since
//! they were polled are dropped then (the next owner reads them again).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use fleet_features::{ApplyOutcome, Event, FeatureSet};
use metrics::{Counter, Histogram};
use rdkafka::message::{Message, OwnedHeaders};

use super::assignment::Assignment;
use super::lock;
use super::output::{Meta, OutputRecord, dead_letter, lag_since};
use super::stats::PipelineStats;
use crate::app::AppContext;
use crate::metrics::names;
use crate::scoring::{Batcher, RowInfo};
use crate::store::{SourceRef, TailEntry};
use crate::telemetry::{self, messaging};

/// A record polled and decoded, waiting for its batch to be handed over.
struct Received {
    /// The assignment epoch it was polled in ([`Assignment::still_ours`]).
    epoch: u64,
    item: Item,
}

// Nearly every record is an event: boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Item {
    Event {
        event: Event,
        meta: Meta,
    },
    Undecodable {
        source: SourceRef,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        headers: Option<OwnedHeaders>,
        reason: &'static str,
        message: String,
    },
}

impl Item {
    fn source(&self) -> &SourceRef {
        match self {
            Item::Event { meta, .. } => &meta.source,
            Item::Undecodable { source, .. } => source,
        }
    }
}

/// Polled records and the batch they become.
pub(super) struct Intake {
    ctx: Arc<AppContext>,
    assignment: Arc<Mutex<Assignment>>,
    stats: Arc<PipelineStats>,
    /// Polled, not yet handed over.
    received: Vec<Received>,
    /// When the first of `received` was taken from the consumer (`super::stages`).
    first_taken: Option<Instant>,
    batcher: Batcher<Meta>,
    outputs: Vec<OutputRecord>,
    /// Highest offset per `(topic, partition)` of the batch being built.
    offsets: HashMap<(String, i32), i64>,
    /// Aircraft changed by the batch being built, with their partition.
    dirty: HashMap<String, i32>,
    vector: Vec<f32>,
    /// The built batch's `process` span (disabled when tracing is off).
    span: tracing::Span,
    /// `server.address` and `server.port` of its spans.
    server: messaging::Server,
    /// `fleetscore_event_lag_seconds{stage="consumed"}`.
    lag_consumed: Histogram,
    /// `fleetscore_events_consumed_total` by topic.
    consumed_counters: Vec<(String, Counter)>,
}

impl Intake {
    pub(super) fn new(
        ctx: Arc<AppContext>,
        assignment: Arc<Mutex<Assignment>>,
        stats: Arc<PipelineStats>,
    ) -> Self {
        Self {
            batcher: Batcher::with_drift(Arc::clone(&ctx.registry), Arc::clone(&ctx.drift)),
            server: messaging::Server::from_brokers(&ctx.config.kafka.brokers),
            ctx,
            assignment,
            stats,
            received: Vec::new(),
            first_taken: None,
            outputs: Vec::new(),
            offsets: HashMap::new(),
            dirty: HashMap::new(),
            vector: Vec::new(),
            span: tracing::Span::none(),
            lag_consumed: metrics::histogram!(names::EVENT_LAG, "stage" => "consumed"),
            consumed_counters: Vec::new(),
        }
    }

    /// Drops what was polled and not handed over (a rewind reads it again).
    pub(super) fn clear(&mut self) {
        self.received.clear();
        self.first_taken = None;
        self.offsets.clear();
        self.dirty.clear();
    }

    /// Whether the built batch covers nothing (no offset, no output).
    pub(super) fn is_empty(&self) -> bool {
        self.offsets.is_empty() && self.outputs.is_empty() && self.batcher.is_empty()
    }

    /// The built batch's outputs: one per row (a prediction or a dead letter), plus the
    /// decoding dead letters.
    pub(super) fn output_count(&self) -> usize {
        self.outputs.len() + self.batcher.len()
    }

    /// What the built batch covers: its offsets and the aircraft it changed.
    pub(super) fn take_progress(&mut self) -> (HashMap<(String, i32), i64>, HashMap<String, i32>) {
        (
            std::mem::take(&mut self.offsets),
            std::mem::take(&mut self.dirty),
        )
    }

    /// The built batch's rows, dead letters and span; `spare` (empty) takes the rows' place.
    pub(super) fn take_outputs(
        &mut self,
        spare: Batcher<Meta>,
    ) -> (Batcher<Meta>, Vec<OutputRecord>, tracing::Span) {
        (
            std::mem::replace(&mut self.batcher, spare),
            std::mem::take(&mut self.outputs),
            std::mem::replace(&mut self.span, tracing::Span::none()),
        )
    }

    /// When the first record of the batch being gathered was taken from the consumer; the next
    /// batch starts afresh.
    pub(super) fn take_first_taken(&mut self) -> Option<Instant> {
        self.first_taken.take()
    }

    /// Decodes a polled record and keeps it for the batch; nothing is applied yet.
    pub(super) fn handle(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let topic = message.topic();
        let partition = message.partition();
        let epoch = {
            let assignment = lock(&self.assignment);
            if !assignment.owns(topic, partition) {
                return; // revoked while buffered: the new owner has it
            }
            assignment.epoch()
        };
        self.first_taken.get_or_insert_with(Instant::now);
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
            offset: message.offset(),
        };
        let timestamp_ms = message.timestamp().to_millis();
        if let Some(lag) = lag_since(timestamp_ms) {
            self.lag_consumed.record(lag);
        }
        let payload = message.payload().unwrap_or_default();
        let key = message.key().map(<[u8]>::to_vec);
        let headers = message.headers().map(|h| h.detach());
        let item = match Event::decode(payload) {
            Ok(event) => Item::Event {
                event,
                meta: Meta {
                    source,
                    timestamp_ms,
                    key,
                    value: payload.to_vec(),
                    headers,
                },
            },
            Err(e) => Item::Undecodable {
                source,
                key,
                value: payload.to_vec(),
                headers,
                reason: e.reason.as_str(),
                message: e.to_string(),
            },
        };
        self.received.push(Received { epoch, item });
    }

    /// Applies an event to its aircraft and adds its features to the batch.
    fn apply(&mut self, event: &Event, meta: Meta) {
        let partition = meta.source.partition;
        let now = Utc::now();
        let vector = &mut self.vector;
        let (outcome, scored) = self
            .ctx
            .store
            .with_entry(event.tail(), |entry: &mut TailEntry| {
                entry.partition = Some(partition);
                let outcome = entry.state.apply(event);
                let mut scored = None;
                if outcome == ApplyOutcome::Applied {
                    entry.last_source = Some(meta.source.clone());
                    entry.last_applied_at = Some(now);
                    if let Some(set) = FeatureSet::for_event(event)
                        && set.compute(&entry.state, vector).is_ok()
                    {
                        scored = Some(set);
                    }
                }
                (outcome, scored)
            });
        match outcome {
            ApplyOutcome::Applied => {
                if !self.dirty.contains_key(event.tail()) {
                    self.dirty.insert(event.tail().to_owned(), partition);
                }
            }
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
            self.batcher
                .push(set.id(), &self.vector, RowInfo::of(event), meta);
        }
    }

    /// Applies the records polled for the batch (those still this consumer's to process) and
    /// builds its features and dead letters.
    pub(super) fn build(&mut self) {
        let mut received = std::mem::take(&mut self.received);
        {
            let assignment = lock(&self.assignment);
            received.retain(|r| {
                let source = r.item.source();
                assignment.still_ours(&source.topic, source.partition, r.epoch)
            });
        }
        if telemetry::enabled() {
            let mut trace = messaging::ProcessTrace::default();
            for Received { item, .. } in &received {
                let (source, headers) = match item {
                    Item::Event { meta, .. } => (&meta.source, meta.headers.as_ref()),
                    Item::Undecodable {
                        source, headers, ..
                    } => (source, headers.as_ref()),
                };
                trace.record(&source.topic, source.partition, source.offset, headers);
            }
            self.span = trace.start(&self.ctx.config.kafka.group_id, &self.server);
        }
        // Applying the events is part of processing the batch.
        let span = self.span.clone();
        let _processing = span.enter();
        for Received { item, .. } in received.drain(..) {
            let source = item.source();
            match self
                .offsets
                .iter_mut()
                .find(|((t, p), _)| *p == source.partition && *t == source.topic)
            {
                Some((_, stored)) => *stored = (*stored).max(source.offset),
                None => {
                    self.offsets
                        .insert((source.topic.clone(), source.partition), source.offset);
                }
            }
            match item {
                Item::Event { event, meta } => self.apply(&event, meta),
                Item::Undecodable {
                    source,
                    key,
                    value,
                    headers,
                    reason,
                    message,
                } => self.outputs.push(dead_letter(
                    &self.stats,
                    key,
                    value,
                    headers.as_ref(),
                    &source,
                    reason,
                    &message,
                )),
            }
        }
        self.received = received; // keeps its capacity
    }
}
