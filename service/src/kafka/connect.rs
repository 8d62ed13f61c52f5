//! The start-up check: a broker must answer a metadata request within `startup_timeout_ms`,
//! else start-up fails with an error naming the brokers (librdkafka itself would retry
//! forever, and the service would look alive while doing nothing).

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::log_limit::ClientErrors;
use super::settings;
use crate::config::KafkaConfig;

/// How often the wait looks at `cancelled` (one metadata request waits at most this long).
const SLICE: Duration = Duration::from_millis(250);
/// The least time between two attempts, when a request fails at once.
const RETRY: Duration = Duration::from_millis(100);

/// The check client's errors (connection refused, all brokers down) at a bounded log rate.
struct CheckContext(ClientErrors);

impl ClientContext for CheckContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.0.report(&error, reason);
    }
}

impl ConsumerContext for CheckContext {}

/// Blocks until a broker of `config.brokers` answers a metadata request: `Ok(true)`; or until
/// `cancelled()` (checked at least every 250 ms): `Ok(false)`; or until `startup_timeout_ms`
/// has passed: an error naming the brokers and the last error seen. Warns about missing input
/// topics (the consumer then waits for them) and output topics (none is created).
pub fn wait_for_brokers(
    config: &KafkaConfig,
    cancelled: &dyn Fn() -> bool,
) -> anyhow::Result<bool> {
    // The consumer's settings (security and the like come through the pass-through), without
    // the group: this client only asks for metadata, and closes without leaving a group.
    let mut client_config = settings::consumer(config)?;
    client_config.remove("group.id");
    let client: BaseConsumer<CheckContext> = client_config
        .create_with_context(CheckContext(ClientErrors::new("start-up check", None)))
        .context("creating the Kafka client for the start-up check")?;
    let timeout = Duration::from_millis(config.startup_timeout_ms);
    let started = Instant::now();
    loop {
        if cancelled() {
            return Ok(false);
        }
        let attempt = Instant::now();
        let left = timeout.saturating_sub(started.elapsed());
        match client.fetch_metadata(None, left.min(SLICE)) {
            Ok(metadata) => {
                tracing::info!(
                    brokers = %config.brokers,
                    cluster_brokers = metadata.brokers().len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "Kafka reachable"
                );
                let found = |topic: &str| {
                    metadata
                        .topics()
                        .iter()
                        .any(|t| t.name() == topic && t.error().is_none())
                };
                for topic in [&config.telemetry_topic, &config.schedule_topic] {
                    if !found(topic) {
                        tracing::warn!(%topic, "input topic not found: the consumer waits for it (topics are not created)");
                    }
                }
                let outputs = [
                    &config.predictions_topic,
                    &config.deadletter_topic,
                    &config.alerts_topic,
                ];
                for topic in outputs {
                    if !found(topic) {
                        tracing::warn!(%topic, "output topic not found: writing to it fails until it is created (topics are not created)");
                    }
                }
                return Ok(true);
            }
            Err(e) => {
                if started.elapsed() >= timeout {
                    anyhow::bail!(
                        "no Kafka broker answered at {} within {} ms ([kafka] startup_timeout_ms): {e}",
                        config.brokers,
                        config.startup_timeout_ms
                    );
                }
                // A request refused at once (not a timeout) is retried after a short pause.
                let pause = RETRY
                    .saturating_sub(attempt.elapsed())
                    .min(timeout.saturating_sub(started.elapsed()));
                std::thread::sleep(pause);
            }
        }
    }
}
