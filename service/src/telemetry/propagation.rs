//! W3C trace context in and out of Kafka headers and HTTP headers.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rdkafka::message::Headers;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The upstream span context in a record's headers (`traceparent`, `tracestate`) if it was
/// sampled upstream. The flags are read first (the last two hex digits of `traceparent`), so
/// that the records of unsampled traces, most of them under head sampling, cost a header
/// lookup and no parse.
pub(crate) fn sampled_upstream(headers: &impl Headers) -> Option<SpanContext> {
    let carrier = KafkaExtractor(headers);
    let traceparent = carrier.get(super::TRACEPARENT)?;
    let flags = traceparent.get(traceparent.len().checked_sub(2)?..)?;
    if u8::from_str_radix(flags, 16).ok()? & 1 == 0 {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    let upstream = context.span().span_context().clone();
    (upstream.is_valid() && upstream.is_sampled()).then_some(upstream)
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

#[cfg(test)]
mod tests {
    use rdkafka::message::{Header, OwnedHeaders};

    use super::*;

    fn headers(traceparent: &str) -> OwnedHeaders {
        OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(traceparent.as_bytes()),
        })
    }

    #[test]
    fn only_a_sampled_valid_upstream_context_is_taken() {
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let sampled = sampled_upstream(&headers(&format!("00-{trace}-b7ad6b7169203331-01")))
            .expect("a sampled context");
        assert_eq!(sampled.trace_id().to_string(), trace);
        assert_eq!(sampled.span_id().to_string(), "b7ad6b7169203331");
        for unsampled in [
            format!("00-{trace}-b7ad6b7169203331-00"),
            format!("00-{trace}-0000000000000000-01"),
            "00-zz-01".to_owned(),
            "01".to_owned(),
            String::new(),
        ] {
            assert!(
                sampled_upstream(&headers(&unsampled)).is_none(),
                "{unsampled}"
            );
        }
        assert!(sampled_upstream(&OwnedHeaders::new()).is_none());
    }
}
