//! The streaming path's spans, named and attributed after the OpenTelemetry messaging
//! semantic conventions for Kafka (semconv 1.44: `messaging.operation.type`,
//! `messaging.destination.partition.id`, `messaging.consumer.group.name`, `messaging.kafka.offset`,
//! `messaging.batch.message_count`; README "Observability").
//!
//! One trace per micro-batch: a `process {topic}` span (CONSUMER) with a **link** to each input
//! record's upstream context (the batch's records are not each other's parents), a `score`
//! child on the scoring thread, and a `send {topic}` child (PRODUCER) per output topic whose
//! context every record it produces carries in its `traceparent` header. Every attribute name
//! is written here and nowhere else.

use opentelemetry::KeyValue;
use opentelemetry::trace::SpanContext;
use rdkafka::message::OwnedHeaders;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TARGET;

/// Where the broker is, for `server.address` and `server.port`: the first bootstrap server.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    address: String,
    port: Option<u16>,
}

impl Server {
    pub(crate) fn from_brokers(brokers: &str) -> Self {
        let first = brokers.split(',').next().unwrap_or_default().trim();
        let first = first.rsplit_once("://").map_or(first, |(_, rest)| rest);
        match first.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => Self {
                address: host.trim_matches(['[', ']']).to_owned(),
                port: port.parse().ok(),
            },
            _ => Self {
                address: first.to_owned(),
                port: None,
            },
        }
    }
}

/// What a micro-batch's `process` span says of its records, gathered as they are applied.
#[derive(Debug, Default)]
pub(crate) struct ProcessTrace {
    links: Vec<(SpanContext, Vec<KeyValue>)>,
    topic: Single<String>,
    partition: Single<i32>,
    records: usize,
}

impl ProcessTrace {
    /// Notes one record of the batch: a link to its upstream context if it carries one that
    /// was sampled. Links to unsampled contexts would name spans no backend has; leaving them
    /// out keeps tracing's cost under 5 % when producers send a context with every record
    /// (BENCHMARKS.md 2026-11-30, session 10).
    pub(crate) fn record(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        headers: Option<&OwnedHeaders>,
    ) {
        self.records += 1;
        self.topic.see(topic, str::to_owned);
        self.partition.see(&partition, |p| *p);
        let Some(upstream) = headers.and_then(super::propagation::sampled_upstream) else {
            return;
        };
        self.links.push((
            upstream,
            vec![
                KeyValue::new("messaging.destination.name", topic.to_owned()),
                KeyValue::new("messaging.destination.partition.id", partition.to_string()),
                KeyValue::new("messaging.kafka.offset", offset),
            ],
        ));
    }

    /// The batch's `process` span: links and attributes set before it starts, so that the
    /// sampler sees them ([`super::sampler`]).
    pub(crate) fn start(self, group: &str, server: &Server) -> Span {
        let name = match &self.topic {
            Single::One(topic) => format!("process {topic}"),
            _ => "process".to_owned(),
        };
        let span = tracing::info_span!(target: TARGET, "process",
            otel.name = %name,
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.operation.name = "process",
            messaging.operation.type = "process",
            messaging.destination.name = Empty,
            messaging.destination.partition.id = Empty,
            messaging.consumer.group.name = %group,
            messaging.batch.message_count = self.records as i64,
            server.address = %server.address,
            server.port = Empty,
        );
        if let Single::One(topic) = &self.topic {
            span.record("messaging.destination.name", topic.as_str());
        }
        if let Single::One(partition) = self.partition {
            span.record(
                "messaging.destination.partition.id",
                partition.to_string().as_str(),
            );
        }
        if let Some(port) = server.port {
            span.record("server.port", i64::from(port));
        }
        for (context, attributes) in self.links {
            span.add_link_with_attributes(context, attributes);
        }
        span
    }
}

/// The `score` span of a batch, on the scoring thread.
pub(crate) fn score(batch: &Span, rows: usize) -> Span {
    tracing::info_span!(target: TARGET, parent: batch, "score",
        otel.kind = "internal",
        fleetscore.batch.rows = rows as i64,
    )
}

/// A batch's `send {topic}` spans, one per output topic it produces to, created when its
/// first record is built; each span's context is the `traceparent` of the records it sends.
#[derive(Debug)]
pub(crate) struct Sends {
    batch: Span,
    server: Server,
    topics: Vec<Send>,
}

#[derive(Debug)]
struct Send {
    topic: String,
    span: Span,
    traceparent: Option<String>,
    records: usize,
}

impl Sends {
    pub(crate) fn new(batch: Span, server: Server) -> Self {
        Self {
            batch,
            server,
            topics: Vec::new(),
        }
    }

    /// Counts a record for `topic` and returns the `traceparent` it carries (none if the span
    /// has no valid context).
    pub(crate) fn record(&mut self, topic: &str) -> Option<&str> {
        let i = match self.topics.iter().position(|s| s.topic == topic) {
            Some(i) => i,
            None => {
                let span = send(&self.batch, topic, &self.server);
                self.topics.push(Send {
                    topic: topic.to_owned(),
                    traceparent: super::propagation::traceparent(&span),
                    span,
                    records: 0,
                });
                self.topics.len() - 1
            }
        };
        let send = &mut self.topics[i];
        send.records += 1;
        send.traceparent.as_deref()
    }
}

impl Drop for Sends {
    /// The spans end once the batch's records are handed to the producer.
    fn drop(&mut self) {
        for send in &self.topics {
            send.span
                .record("messaging.batch.message_count", send.records as i64);
        }
    }
}

fn send(batch: &Span, topic: &str, server: &Server) -> Span {
    let span = tracing::info_span!(target: TARGET, parent: batch, "send",
        otel.name = %format_args!("send {topic}"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.operation.name = "send",
        messaging.operation.type = "send",
        messaging.destination.name = %topic,
        messaging.batch.message_count = Empty,
        server.address = %server.address,
        server.port = Empty,
    );
    if let Some(port) = server.port {
        span.record("server.port", i64::from(port));
    }
    span
}

/// A value that is the same for every record of a batch, or not.
#[derive(Debug, Default)]
enum Single<T> {
    #[default]
    None,
    One(T),
    Many,
}

impl<T> Single<T> {
    fn see<V: ?Sized + PartialEq<T>>(&mut self, value: &V, own: impl FnOnce(&V) -> T) {
        *self = match std::mem::take(self) {
            Single::None => Single::One(own(value)),
            Single::One(seen) if *value == seen => Single::One(seen),
            _ => Single::Many,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bootstrap_server_names_the_broker() {
        let s = Server::from_brokers("b1.example:9093,b2.example:9093");
        assert_eq!((s.address.as_str(), s.port), ("b1.example", Some(9093)));
        let s = Server::from_brokers("PLAINTEXT://[::1]:9092");
        assert_eq!((s.address.as_str(), s.port), ("::1", Some(9092)));
        let s = Server::from_brokers("localhost");
        assert_eq!((s.address.as_str(), s.port), ("localhost", None));
    }

    #[test]
    fn a_batch_names_its_topic_and_partition_only_when_it_has_one() {
        let mut one = Single::default();
        one.see("a", str::to_owned);
        one.see("a", str::to_owned);
        assert!(matches!(one, Single::One(ref t) if t == "a"));
        one.see("b", str::to_owned);
        assert!(matches!(one, Single::Many));
        one.see("a", str::to_owned);
        assert!(matches!(one, Single::Many));
    }
}
