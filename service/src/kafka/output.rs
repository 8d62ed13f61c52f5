//! The output thread: turns scored batches into records and produces them.
//!
//! For each [`ScoredBatch`], in the order they come: a prediction record (JSON value, provenance
//! headers) per scored row, a dead letter per row that could not be scored, the aircraft's
//! latest predictions updated, and every record of the batch (the decoding dead letters too)
//! produced with the batch's [`BatchTracker`], so that its offsets are stored only once all of
//! them are acknowledged.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use metrics::{Counter, Histogram};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::BaseRecord;

use super::delivery::{self, BatchTracker};
use super::headers;
use super::producer::ProducerSlot;
use super::stages::{BatchClock, Stage};
use super::stats::PipelineStats;
use super::txn_gate::{Pass, TxnGate};
use crate::alerts::Alerting;
use crate::app::AppContext;
use crate::config::KafkaConfig;
use crate::drift::Evaluation;
use crate::metrics::names;
use crate::prediction::Prediction;
use crate::scoring::{Outcome, Verdict};
use crate::store::SourceRef;
use crate::telemetry::{self, messaging};

/// What a row carries through scoring: where it came from and what to dead-letter it with.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) source: SourceRef,
    /// The source record's Kafka timestamp (ms).
    pub(super) timestamp_ms: Option<i64>,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Vec<u8>,
    pub(super) headers: Option<OwnedHeaders>,
}

/// One output record.
#[derive(Debug)]
pub(super) enum OutputRecord {
    Prediction {
        tail: String,
        value: Vec<u8>,
        headers: OwnedHeaders,
    },
    DeadLetter {
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        headers: OwnedHeaders,
    },
    /// An alert event (`crate::alerts`), keyed by tail (a drift alert: by its subject,
    /// `model:<name>`), with the prediction's headers (a drift alert: its model's and those
    /// of the source record of the row that completed the evaluation).
    Alert {
        key: String,
        value: Vec<u8>,
        headers: OwnedHeaders,
    },
}

/// A scored batch for the output thread.
pub(super) struct ScoredBatch {
    /// Every row with a verdict per model its feature set feeds.
    pub(super) scored: Vec<Outcome<Meta>>,
    /// The batch's decoding dead letters.
    pub(super) outputs: Vec<OutputRecord>,
    pub(super) tracker: Arc<BatchTracker>,
    pub(super) rows: usize,
    /// The epoch of its transaction ([`super::txn_gate`]).
    pub(super) epoch: u64,
    /// Its `process` span ([`crate::telemetry::messaging`]).
    pub(super) span: tracing::Span,
    /// Its stage times ([`super::stages`]).
    pub(super) clock: BatchClock,
}

/// The output thread: builds the records of scored batches (prediction JSON, headers, dead
/// letters), updates the aircraft's latest predictions and produces the records, in batch
/// order, so that the scoring thread only scores.
pub(super) struct Emitter {
    ctx: Arc<AppContext>,
    predictions_topic: String,
    deadletter_topic: String,
    alerts_topic: String,
    alerting: Alerting,
    producers: Arc<ProducerSlot>,
    gate: Arc<TxnGate>,
    stats: Arc<PipelineStats>,
    /// `server.address` and `server.port` of the `send` spans.
    server: messaging::Server,
    /// `fleetscore_event_lag_seconds{stage="produced"}`.
    lag_produced: Histogram,
    /// `fleetscore_predictions_total` by model.
    predictions_counters: Vec<(String, Counter)>,
    /// The records of the batch being emitted; kept between batches so that its memory is
    /// reused rather than grown from empty for every batch.
    records: Vec<OutputRecord>,
}

impl Emitter {
    pub(super) fn new(
        ctx: Arc<AppContext>,
        config: &KafkaConfig,
        producers: Arc<ProducerSlot>,
        gate: Arc<TxnGate>,
        stats: Arc<PipelineStats>,
    ) -> Self {
        Self {
            alerting: Alerting::new(ctx.config.alerts.clone()),
            ctx,
            predictions_topic: config.predictions_topic.clone(),
            deadletter_topic: config.deadletter_topic.clone(),
            alerts_topic: config.alerts_topic.clone(),
            server: messaging::Server::from_brokers(&config.brokers),
            producers,
            gate,
            stats,
            lag_produced: metrics::histogram!(names::EVENT_LAG, "stage" => "produced"),
            predictions_counters: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Starts the output thread. It produces what it is sent until the sender is dropped.
    pub(super) fn start(self) -> anyhow::Result<(mpsc::SyncSender<ScoredBatch>, JoinHandle<()>)> {
        // Capacity 1: at most one scored batch waits while one is being produced.
        let (scored_tx, scored_rx) = mpsc::sync_channel::<ScoredBatch>(1);
        let thread = std::thread::Builder::new()
            .name("kafka-output".to_owned())
            .spawn(move || self.run(&scored_rx))
            .context("starting the output thread")?;
        Ok((scored_tx, thread))
    }

    /// The record of a prediction, which also becomes the aircraft's latest of its model (and
    /// joins its recent ones, `crate::fleet::history`, labelled `label`), followed by the alert events it causes (the aircraft's episodes are marked changed:
    /// the commit writes them to the changelog once these records are acknowledged). Their
    /// `traceparent` names the batch's `send` span when tracing is on, and is the source
    /// record's otherwise.
    fn prediction(
        &mut self,
        prediction: Prediction,
        label: Option<&str>,
        meta: &Meta,
        outputs: &mut Vec<OutputRecord>,
        mut sends: Option<&mut messaging::Sends>,
    ) {
        let traceparent = match sends.as_deref_mut() {
            Some(sends) => sends.record(&self.predictions_topic).map(str::as_bytes),
            None => meta
                .headers
                .as_ref()
                .and_then(|h| headers::find(h, headers::TRACEPARENT)),
        };
        let headers = headers::prediction(&prediction, &meta.source, traceparent);
        let value = prediction.to_json();
        crate::metrics::cached(
            &mut self.predictions_counters,
            &prediction.model,
            |model| metrics::counter!(names::PREDICTIONS, "model" => model.to_owned()),
        )
        .increment(1);
        self.stats.predictions.fetch_add(1, Ordering::Relaxed);
        if let Some(lag) = lag_since(meta.timestamp_ms) {
            self.lag_produced.record(lag);
        }
        let tail = prediction.tail.clone();
        let alerting = &self.alerting;
        let history_points = self.ctx.config.fleet_view.history_points;
        let alerts = self.ctx.store.with_recent(&tail, |entry, recent| {
            let mut events = Vec::new();
            if alerting.watches(&prediction.model) {
                events = alerting.evaluate(&mut entry.alerts, &prediction);
            }
            // The commit writes the changed episodes to the changelog.
            entry.alerts_changed |= !events.is_empty();
            recent.push(history_points, &prediction, label);
            entry.set_latest(prediction);
            events
        });
        if alerts.is_empty() {
            outputs.push(OutputRecord::Prediction {
                tail,
                value,
                headers,
            });
            return;
        }
        outputs.push(OutputRecord::Prediction {
            tail: tail.clone(),
            value,
            headers: headers.clone(),
        });
        for event in alerts {
            metrics::counter!(names::ALERTS, "rule" => event.rule.clone(),
                "kind" => event.kind.clone(), "severity" => event.severity.as_str())
            .increment(1);
            let headers = match sends.as_deref_mut() {
                Some(sends) => match sends.record(&self.alerts_topic) {
                    Some(traceparent) => {
                        headers::with_traceparent(&headers, traceparent.as_bytes())
                    }
                    None => headers.clone(),
                },
                None => headers.clone(),
            };
            outputs.push(OutputRecord::Alert {
                key: tail.clone(),
                value: serde_json::to_vec(&event).expect("alert events serialize"),
                headers,
            });
        }
    }

    /// The alert events of the instance's drift episodes under the `drift` rules on
    /// `evaluation`'s model, which the row of `meta` completed: produced right after that
    /// row's predictions, in the same batch (and transaction). The episodes change only here,
    /// in a batch whose transaction is open: an aborted batch's evaluation changes none.
    fn drift_alerts(
        &mut self,
        evaluation: &Evaluation,
        meta: &Meta,
        outputs: &mut Vec<OutputRecord>,
        mut sends: Option<&mut messaging::Sends>,
    ) {
        if !self.alerting.watches_drift(&evaluation.model) {
            return;
        }
        for event in self.ctx.drift.alert(&self.alerting, evaluation) {
            metrics::counter!(names::ALERTS, "rule" => event.rule.clone(),
                "kind" => event.kind.clone(), "severity" => event.severity.as_str())
            .increment(1);
            let traceparent = match sends.as_deref_mut() {
                Some(sends) => sends.record(&self.alerts_topic).map(str::as_bytes),
                None => meta
                    .headers
                    .as_ref()
                    .and_then(|h| headers::find(h, headers::TRACEPARENT)),
            };
            tracing::info!(rule = %event.rule, kind = %event.kind, severity = event.severity.as_str(),
                model = %event.model, feature = event.feature.as_deref().unwrap_or(""), value = event.value,
                "drift alert");
            outputs.push(OutputRecord::Alert {
                key: event.key().to_owned(),
                headers: headers::drift_alert(evaluation, &meta.source, traceparent),
                value: serde_json::to_vec(&event).expect("alert events serialize"),
            });
        }
    }

    fn run(mut self, scored: &mpsc::Receiver<ScoredBatch>) {
        while let Ok(batch) = scored.recv() {
            self.emit(batch);
        }
    }

    /// Builds a scored batch's predictions and dead letters and produces every output with the
    /// batch's tracker, once its transaction is open; a batch whose transaction was aborted
    /// meanwhile is dropped unproduced (nothing of it applied: no latest prediction, no
    /// alert episode).
    fn emit(&mut self, batch: ScoredBatch) {
        let ScoredBatch {
            scored,
            outputs: mut dead_letters,
            tracker,
            rows,
            epoch,
            span,
            mut clock,
        } = batch;
        clock.lap(Stage::ToOutput);
        if self.gate.wait(epoch) == Pass::Abandoned {
            tracker.abandon_rest("its transaction was aborted before it was produced".to_owned());
            return;
        }
        clock.lap(Stage::TxnGate);
        // Ends (with its record counts) once every record below is handed to the producer.
        let mut sends =
            telemetry::enabled().then(|| messaging::Sends::new(span, self.server.clone()));
        let expected = dead_letters.len() + rows;
        let mut outputs = std::mem::take(&mut self.records);
        outputs.reserve(expected);
        outputs.append(&mut dead_letters);
        for Outcome {
            info,
            meta,
            verdicts,
            drift,
        } in scored
        {
            let mut failures: Vec<(&'static str, String)> = Vec::new();
            if verdicts.is_empty() {
                failures.push((
                    "no_model",
                    format!("no model serves the features of event {}", info.event_id),
                ));
            }
            for verdict in verdicts {
                match verdict {
                    Verdict::Scored(prediction) => {
                        let label = info.label.as_deref();
                        self.prediction(prediction, label, &meta, &mut outputs, sends.as_mut());
                    }
                    Verdict::NonFinite { model, value } => failures.push((
                        "non_finite_prediction",
                        format!("model {model} returned {value}"),
                    )),
                    Verdict::Failed { model, error } => {
                        failures.push(("scoring_failed", format!("model {model}: {error}")));
                    }
                }
            }
            for evaluation in &drift {
                self.drift_alerts(evaluation, &meta, &mut outputs, sends.as_mut());
            }
            // One dead letter per failing model; the last takes the record's bytes.
            let mut meta = Some(meta);
            let last = failures.len();
            for (i, (class, message)) in failures.into_iter().enumerate() {
                let original = if i + 1 == last {
                    meta.take().expect("taken once")
                } else {
                    meta.as_ref().expect("not taken yet").clone()
                };
                outputs.push(dead_letter(
                    &self.stats,
                    original.key,
                    original.value,
                    original.headers.as_ref(),
                    &original.source,
                    class,
                    &message,
                ));
            }
        }
        if rows > 0 {
            metrics::histogram!(names::BATCH_ROWS).record(rows as f64);
        }
        // A row feeding several models has an output per model: the tracker waits for them
        // too. Every row gives at least one output; should one ever be missing, the batch
        // fails rather than waiting for an acknowledgement that cannot come.
        if outputs.len() > expected {
            tracker.expect_more(outputs.len() - expected);
        }
        for _ in outputs.len()..expected {
            tracker.abandon("a row of the batch produced no output".to_owned());
        }
        // The producer of the moment, for the whole batch (see `super::producer`).
        let producer = self.producers.current();
        for output in outputs.drain(..) {
            // Headers move into the record; key and value are copied by librdkafka on send.
            let (topic, key, value, headers) = match output {
                OutputRecord::Prediction {
                    tail,
                    value,
                    headers,
                } => (
                    self.predictions_topic.as_str(),
                    Some(tail.into_bytes()),
                    value,
                    headers,
                ),
                OutputRecord::DeadLetter {
                    key,
                    value,
                    headers,
                } => (self.deadletter_topic.as_str(), key, value, headers),
                OutputRecord::Alert {
                    key,
                    value,
                    headers,
                } => (
                    self.alerts_topic.as_str(),
                    Some(key.into_bytes()),
                    value,
                    headers,
                ),
            };
            let mut record = BaseRecord::with_opaque_to(topic, Arc::clone(&tracker))
                .payload(&value)
                .headers(headers);
            if let Some(key) = &key {
                record = record.key(key);
            }
            delivery::send(&producer, record);
        }
        clock.lap(Stage::Produce);
        self.records = outputs;
    }
}

/// Seconds from a record's Kafka timestamp to now (zero if the clocks disagree).
pub(super) fn lag_since(timestamp_ms: Option<i64>) -> Option<f64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let lag_ms = now.as_millis() as i64 - timestamp_ms?;
    Some(lag_ms.max(0) as f64 / 1000.0)
}

/// A dead-letter record: the original key, value and headers plus the Connect error headers.
pub(super) fn dead_letter(
    stats: &PipelineStats,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    original: Option<&OwnedHeaders>,
    source: &SourceRef,
    class: &str,
    message: &str,
) -> OutputRecord {
    metrics::counter!(names::DEAD_LETTERS, "class" => class.to_owned()).increment(1);
    stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(topic = %source.topic, partition = source.partition, offset = source.offset, %class, %message, "dead letter");
    OutputRecord::DeadLetter {
        key,
        value,
        headers: headers::dead_letter(original, source, class, message),
    }
}
