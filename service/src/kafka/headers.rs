//! Provenance headers.
//!
//! Predictions carry the model (name, version, SHA-256), the source record (topic, partition,
//! offset) and a W3C `traceparent`: with tracing on, the batch's `send` span
//! ([`crate::telemetry::messaging`]); off, the source's when it had one. Dead letters carry the
//! original key, value and headers plus Kafka Connect's error headers
//! (`__connect.errors.topic`, `.partition`, `.offset`, `.exception.class.name`,
//! `.exception.message`), so existing DLQ tooling reads them as is.

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::drift::Evaluation;
use crate::prediction::Prediction;
use crate::store::SourceRef;

pub const MODEL_NAME: &str = "fleet.model.name";
pub const MODEL_VERSION: &str = "fleet.model.version";
pub const MODEL_SHA256: &str = "fleet.model.sha256";
pub const SOURCE_TOPIC: &str = "fleet.source.topic";
pub const SOURCE_PARTITION: &str = "fleet.source.partition";
pub const SOURCE_OFFSET: &str = "fleet.source.offset";
pub use crate::telemetry::TRACEPARENT;

pub const DLQ_TOPIC: &str = "__connect.errors.topic";
pub const DLQ_PARTITION: &str = "__connect.errors.partition";
pub const DLQ_OFFSET: &str = "__connect.errors.offset";
pub const DLQ_CLASS: &str = "__connect.errors.exception.class.name";
pub const DLQ_MESSAGE: &str = "__connect.errors.exception.message";

fn add(headers: OwnedHeaders, key: &str, value: &[u8]) -> OwnedHeaders {
    headers.insert(Header {
        key,
        value: Some(value),
    })
}

/// Headers of a prediction record.
pub fn prediction(p: &Prediction, source: &SourceRef, traceparent: Option<&[u8]>) -> OwnedHeaders {
    provenance(
        [&p.model, &p.model_version, &p.model_sha256],
        source,
        traceparent,
    )
}

/// Headers of a drift alert: its model, and the source record of the row that completed the
/// window's evaluation.
pub fn drift_alert(e: &Evaluation, source: &SourceRef, traceparent: Option<&[u8]>) -> OwnedHeaders {
    provenance([&e.model, &e.version, &e.sha256], source, traceparent)
}

/// The model (name, version, SHA-256), the source record and the trace.
fn provenance(
    [model, version, sha256]: [&str; 3],
    source: &SourceRef,
    traceparent: Option<&[u8]>,
) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(7);
    h = add(h, MODEL_NAME, model.as_bytes());
    h = add(h, MODEL_VERSION, version.as_bytes());
    h = add(h, MODEL_SHA256, sha256.as_bytes());
    h = add(h, SOURCE_TOPIC, source.topic.as_bytes());
    h = add(h, SOURCE_PARTITION, source.partition.to_string().as_bytes());
    h = add(h, SOURCE_OFFSET, source.offset.to_string().as_bytes());
    if let Some(tp) = traceparent {
        h = add(h, TRACEPARENT, tp);
    }
    h
}

/// A copy of `headers` whose `traceparent` is `traceparent`.
pub fn with_traceparent(headers: &OwnedHeaders, traceparent: &[u8]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(headers.count());
    for header in headers.iter().filter(|h| h.key != TRACEPARENT) {
        h = h.insert(header);
    }
    add(h, TRACEPARENT, traceparent)
}

/// Headers of a dead letter: the original headers, then the error headers.
pub fn dead_letter(
    original: Option<&OwnedHeaders>,
    source: &SourceRef,
    class: &str,
    message: &str,
) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(original.map_or(0, Headers::count) + 5);
    if let Some(original) = original {
        for header in original.iter() {
            h = h.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    h = add(h, DLQ_TOPIC, source.topic.as_bytes());
    h = add(h, DLQ_PARTITION, source.partition.to_string().as_bytes());
    h = add(h, DLQ_OFFSET, source.offset.to_string().as_bytes());
    h = add(h, DLQ_CLASS, class.as_bytes());
    h = add(h, DLQ_MESSAGE, message.as_bytes());
    h
}

/// The value of the first header named `key`.
pub fn find<'h>(headers: &'h impl Headers, key: &str) -> Option<&'h [u8]> {
    headers.iter().find(|h| h.key == key).and_then(|h| h.value)
}
