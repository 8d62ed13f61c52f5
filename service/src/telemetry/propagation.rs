//! W3C trace context in and out of Kafka headers and HTTP headers.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::Headers;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The upstream span context in a record's headers (`traceparent`, `tracestate`); invalid if
/// there is none or it does not parse.
pub(crate) fn extract_kafka(headers: &impl Headers) -> SpanContext {
    let context = TraceContextPropagator::new().extract(&KafkaExtractor(headers));
    context.span().span_context().clone()
}

/// The `traceparent` value naming `span`, if it has a valid context (tracing on).
pub(crate) fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = Traceparent(None);
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// Makes `span` a child of the context in an HTTP request's headers, if they carry one.
pub(crate) fn continue_http(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    let context =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    if context.span().span_context().is_valid() {
        // Fails only once the span has started, which it has not.
        let _ = span.set_parent(context);
    }
}

struct KafkaExtractor<'h, H: Headers>(&'h H);

impl<H: Headers> Extractor for KafkaExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

/// Keeps only `traceparent`: our spans carry no trace state of their own.
struct Traceparent(Option<String>);

impl Injector for Traceparent {
    fn set(&mut self, key: &str, value: String) {
        if key == super::TRACEPARENT {
            self.0 = Some(value);
        }
    }
}
