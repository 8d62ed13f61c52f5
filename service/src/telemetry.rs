//! Logs and OpenTelemetry traces: the process-wide `tracing` subscriber.
//!
//! Tracing is **off** unless an OTLP endpoint is configured, the standard way:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), with
//! `OTEL_SERVICE_NAME` (default `fleetscore`), `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`,
//! `OTEL_EXPORTER_OTLP_HEADERS`/`_TIMEOUT`, `OTEL_BSP_*` and `OTEL_SDK_DISABLED=true` honoured.
//! Off, no OpenTelemetry layer is installed: our spans (target [`TARGET`]) interest no
//! subscriber, so creating one is a cached branch, and records keep the upstream `traceparent`
//! unchanged. On, spans go out over OTLP/HTTP (protobuf) from a background thread.
//!
//! # Layout
//!
//! - [`messaging`]: the streaming path's `process`, `score` and `send` spans.
//! - [`http`]: the HTTP API's server spans.
//! - [`propagation`]: `traceparent` in and out of Kafka and HTTP headers.
//! - [`sampler`]: the default sampler (a sampled upstream record samples its batch).
//! - [`export`]: the OTLP/HTTP client.
//! - [`log_format`]: text or JSON log lines, with the trace and span ids.

mod export;
pub(crate) mod http;
mod log_format;
pub(crate) mod messaging;
pub(crate) mod propagation;
mod sampler;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithHttpConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

pub use log_format::LogFormat;

/// The target of every span that is exported (and of no log line).
pub const TARGET: &str = "fleetscore::otel";

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
const SERVICE_NAME: &str = "fleetscore";

/// The share of traces started here that are sampled, unless `OTEL_TRACES_SAMPLER_ARG` says
/// otherwise: all of them. A trace is one micro-batch (three spans for a few hundred events)
/// or one HTTP request; BENCHMARKS.md measures the cost.
const DEFAULT_SAMPLING_RATIO: f64 = 1.0;

/// Links per span: a batch links to each of its records (`kafka.batch_max_records`, 512 by
/// default), where the SDK keeps 128 unless `OTEL_SPAN_LINK_COUNT_LIMIT` says otherwise.
const MAX_LINKS_PER_SPAN: u32 = 8192;

/// How long the exporter waits for the endpoint per request, unless
/// `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: code that only prepares a span (reads headers, collects links)
/// checks this first.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The installed subscriber; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[derive(Debug)]
#[must_use = "spans still queued are lost unless shut down"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global subscriber: log lines on stderr in `format`, filtered by `RUST_LOG`
    /// (default `info`), and the OpenTelemetry layer when an endpoint is configured.
    pub fn init(format: LogFormat) -> anyhow::Result<Self> {
        let provider = provider()?;
        let logs = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info"))
            .add_directive(format!("{TARGET}=off").parse().expect("a valid directive"));
        let ansi =
            format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let fmt = fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
        let fmt = match format {
            LogFormat::Text => fmt
                .event_format(log_format::WithTraceIds {
                    inner: fmt::format().with_ansi(ansi),
                    json: false,
                })
                .with_filter(logs)
                .boxed(),
            LogFormat::Json => fmt
                .fmt_fields(fmt::format::JsonFields::new())
                .event_format(log_format::WithTraceIds {
                    inner: fmt::format().json(),
                    json: true,
                })
                .with_filter(logs)
                .boxed(),
        };
        let otel = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(SERVICE_NAME))
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE))
        });
        tracing_subscriber::registry()
            .with(fmt)
            .with(otel)
            .try_init()
            .context("installing the log subscriber")?;
        ENABLED.store(provider.is_some(), Ordering::Relaxed);
        Ok(Self { provider })
    }

    /// Exports what is still queued (bounded by the exporter's timeout) and stops exporting.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            ENABLED.store(false, Ordering::Relaxed);
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "flushing the last spans");
            }
        }
    }
}

/// The tracer provider, if an OTLP endpoint is configured and the SDK is not disabled.
fn provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    let set = |key: &str| std::env::var_os(key).is_some_and(|v| !v.is_empty());
    let disabled =
        std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if disabled
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(
            export::HyperExportClient::new(EXPORT_TIMEOUT)
                .context("starting the OTLP exporter's runtime")?,
        )
        .build()
        .context("configuring the OTLP span exporter (OTEL_EXPORTER_OTLP_*)")?;
    let mut resource = Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    let mut builder = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build());
    if !set("OTEL_SPAN_LINK_COUNT_LIMIT") {
        builder = builder.with_max_links_per_span(MAX_LINKS_PER_SPAN);
    }
    if !set("OTEL_TRACES_SAMPLER") {
        let ratio = match std::env::var("OTEL_TRACES_SAMPLER_ARG") {
            Ok(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .with_context(|| {
                    format!("OTEL_TRACES_SAMPLER_ARG={arg:?}: expected a ratio from 0 to 1")
                })?,
            Err(_) => DEFAULT_SAMPLING_RATIO,
        };
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(
            sampler::LinkedOrRatio::new(ratio),
        )));
    }
    Ok(Some(builder.build()))
}
