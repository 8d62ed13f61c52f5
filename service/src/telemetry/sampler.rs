//! The default sampler for spans that start a trace: sampled when a record they link to was
//! sampled upstream, otherwise by trace-id ratio.
//!
//! A micro-batch's `process` span has no parent (the records' contexts are links, not
//! parents, as the messaging conventions ask), so a plain parent-based sampler would drop
//! the batch that carries an event its producer chose to trace. Following the links keeps the
//! producer's decision: an event sampled upstream can always be followed through the service.

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

/// Samples if a link is sampled, else as `ratio` does.
#[derive(Debug, Clone)]
pub(super) struct LinkedOrRatio {
    ratio: Sampler,
}

impl LinkedOrRatio {
    pub(super) fn new(ratio: f64) -> Self {
        Self {
            ratio: Sampler::TraceIdRatioBased(ratio),
        }
    }
}

impl ShouldSample for LinkedOrRatio {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        if links.iter().any(|link| link.span_context.is_sampled()) {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: Default::default(),
            };
        }
        self.ratio
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    use super::*;

    fn link(sampled: bool) -> Link {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let context = SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            flags,
            true,
            TraceState::default(),
        );
        Link::with_context(context)
    }

    fn decide(sampler: &LinkedOrRatio, links: &[Link]) -> SamplingDecision {
        sampler
            .should_sample(
                None,
                TraceId::from(u128::MAX / 3),
                "process",
                &SpanKind::Consumer,
                &[],
                links,
            )
            .decision
    }

    #[test]
    fn a_sampled_link_samples_whatever_the_ratio() {
        let never = LinkedOrRatio::new(0.0);
        assert_eq!(
            decide(&never, &[link(false), link(true)]),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(decide(&never, &[link(false)]), SamplingDecision::Drop);
        assert_eq!(decide(&never, &[]), SamplingDecision::Drop);
        let always = LinkedOrRatio::new(1.0);
        assert_eq!(decide(&always, &[]), SamplingDecision::RecordAndSample);
    }
}
