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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use metrics::{Counter, Histogram};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use super::delivery::{BatchTracker, DeliveryContext};
use super::headers;
use super::stats::PipelineStats;
use crate::app::AppContext;
use crate::config::KafkaConfig;
use crate::prediction::Prediction;
use crate::store::SourceRef;

/// What a row carries through scoring: where it came from and what to dead-letter it with.
#[derive(Debug)]
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
}

/// A scored batch for the output thread.
pub(super) struct ScoredBatch {
    pub(super) scored: Vec<(Prediction, Meta)>,
    pub(super) failures: Vec<(Meta, &'static str, String)>,
    /// The batch's decoding dead letters.
    pub(super) outputs: Vec<OutputRecord>,
    pub(super) tracker: Arc<BatchTracker>,
    pub(super) rows: usize,
}

/// The output thread: builds the records of scored batches (prediction JSON, headers, dead
/// letters), updates the aircraft's latest predictions and produces the records, in batch
/// order, so that the scoring thread only scores.
pub(super) struct Emitter {
    ctx: Arc<AppContext>,
    predictions_topic: String,
    deadletter_topic: String,
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    stats: Arc<PipelineStats>,
    /// `fleetscore_event_lag_seconds{stage="produced"}`.
    lag_produced: Histogram,
    /// `fleetscore_predictions_total` by model.
    predictions_counters: Vec<(String, Counter)>,
}

impl Emitter {
    pub(super) fn new(
        ctx: Arc<AppContext>,
        config: &KafkaConfig,
        producer: Arc<ThreadedProducer<DeliveryContext>>,
        stats: Arc<PipelineStats>,
    ) -> Self {
        Self {
            ctx,
            predictions_topic: config.predictions_topic.clone(),
            deadletter_topic: config.deadletter_topic.clone(),
            producer,
            stats,
            lag_produced: metrics::histogram!("fleetscore_event_lag_seconds", "stage" => "produced"),
            predictions_counters: Vec::new(),
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

    fn run(mut self, scored: &mpsc::Receiver<ScoredBatch>) {
        while let Ok(batch) = scored.recv() {
            self.emit(batch);
        }
    }

    /// Builds a scored batch's predictions and dead letters and produces every output with the
    /// batch's tracker.
    fn emit(&mut self, batch: ScoredBatch) {
        let ScoredBatch {
            scored,
            failures,
            mut outputs,
            tracker,
            rows,
        } = batch;
        let expected = outputs.len() + rows;
        for (meta, class, message) in failures {
            outputs.push(dead_letter(
                &self.stats,
                meta.key,
                meta.value,
                meta.headers.as_ref(),
                &meta.source,
                class,
                &message,
            ));
        }
        for (prediction, meta) in scored {
            let traceparent = meta
                .headers
                .as_ref()
                .and_then(|h| headers::find(h, headers::TRACEPARENT));
            let headers = headers::prediction(&prediction, &meta.source, traceparent);
            let value = serde_json::to_vec(&prediction).expect("predictions serialize");
            crate::metrics::cached(&mut self.predictions_counters, &prediction.model, |model| {
                metrics::counter!("fleetscore_predictions_total", "model" => model.to_owned())
            })
            .increment(1);
            self.stats.predictions.fetch_add(1, Ordering::Relaxed);
            if let Some(lag) = lag_since(meta.timestamp_ms) {
                self.lag_produced.record(lag);
            }
            let tail = prediction.tail.clone();
            let slot = match prediction.feature_set.as_str() {
                "delay-risk" => 1,
                _ => 0,
            };
            self.ctx
                .store
                .with_entry(&tail, |entry| entry.predictions[slot] = Some(prediction));
            outputs.push(OutputRecord::Prediction {
                tail,
                value,
                headers,
            });
        }
        if rows > 0 {
            metrics::histogram!("fleetscore_batch_rows").record(rows as f64);
        }
        // Every row gives one outcome; should one ever be missing, the batch fails rather than
        // waiting for an acknowledgement that cannot come.
        for _ in outputs.len()..expected {
            tracker.abandon("a row of the batch produced no output".to_owned());
        }
        for output in outputs {
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
            };
            let mut record = BaseRecord::with_opaque_to(topic, Arc::clone(&tracker))
                .payload(&value)
                .headers(headers);
            if let Some(key) = &key {
                record = record.key(key);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The producer's thread is draining the queue; give it a moment.
                        record = back;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err((e, _)) => {
                        tracker.abandon(e.to_string());
                        break;
                    }
                }
            }
        }
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
    metrics::counter!("fleetscore_dead_letters_total", "class" => class.to_owned()).increment(1);
    stats.dead_letters.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(topic = %source.topic, partition = source.partition, offset = source.offset, %class, %message, "dead letter");
    OutputRecord::DeadLetter {
        key,
        value,
        headers: headers::dead_letter(original, source, class, message),
    }
}
