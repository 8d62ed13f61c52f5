//! What the long-running service's parts share: the model registry, the live state,
//! readiness, configuration. Its lifecycle is [`crate::lifecycle`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::config::Config;
use crate::drift::DriftMonitor;
use crate::model::Registry;
use crate::model::remote::{RemoteModels, SourceStatus};
use crate::store::StateStore;

#[derive(Debug)]
pub struct AppContext {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub store: Arc<StateStore>,
    pub readiness: Arc<Readiness>,
    /// The drift windows of the serving models (`crate::drift::monitor`), fed by the stream.
    pub drift: Arc<DriftMonitor>,
}

/// Ready means: every model routed from a feature set is serving and, when streaming, a broker
/// has answered and the consumer holds its partition assignment with state ready for each
/// partition.
#[derive(Debug)]
pub struct Readiness {
    streaming: bool,
    partitions_ready: AtomicBool,
    /// The input partitions assigned to this instance now.
    owned: Mutex<Vec<i32>>,
    /// Where the models come from, when that is object storage.
    models_source: OnceLock<Arc<RemoteModels>>,
    /// Why Kafka cannot be used yet (e.g. "connecting to Kafka at ..."), while start-up waits.
    kafka_waiting: Mutex<Option<String>>,
}

impl Readiness {
    pub fn new(streaming: bool) -> Self {
        Self {
            streaming,
            partitions_ready: AtomicBool::new(false),
            owned: Mutex::new(Vec::new()),
            models_source: OnceLock::new(),
            kafka_waiting: Mutex::new(None),
        }
    }

    /// Sets (or clears, with `None`) the reason start-up is still waiting for Kafka.
    pub fn set_kafka_waiting(&self, why: Option<String>) {
        *self.kafka_waiting.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// The object storage the models are synced from.
    pub fn set_models_source(&self, source: Arc<RemoteModels>) {
        let _ = self.models_source.set(source);
    }

    /// How the last sync from object storage went, when the models come from there.
    pub fn models_source(&self) -> Option<SourceStatus> {
        self.models_source.get().map(|s| s.status())
    }

    /// Records the input partitions assigned to this instance now.
    pub fn set_owned(&self, partitions: impl IntoIterator<Item = i32>) {
        *self.owned.lock().unwrap_or_else(|p| p.into_inner()) = partitions.into_iter().collect();
    }

    /// The input partitions assigned to this instance now, in order.
    pub fn owned(&self) -> Vec<i32> {
        self.owned.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_partitions_ready(&self, ready: bool) {
        self.partitions_ready.store(ready, Ordering::Release);
    }

    /// Which routed models have no version serving their feature set, if any.
    pub fn models_missing(&self, registry: &Registry) -> Option<String> {
        let missing: Vec<String> = registry
            .unserved_routes()
            .into_iter()
            .map(|(set, model)| format!("{} ({model})", set.name()))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let source = match self.models_source() {
            Some(SourceStatus {
                url,
                ok: false,
                error: Some(error),
                ..
            }) => format!(" (model source {url}: {error})"),
            _ => String::new(),
        };
        Some(format!("no model serving {}{source}", missing.join(", ")))
    }

    /// Why the service is not ready, or `None` when it is.
    pub fn not_ready_reason(&self, registry: &Registry) -> Option<String> {
        let kafka = self
            .kafka_waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(why) = kafka {
            return Some(why);
        }
        if let Some(why) = self.models_missing(registry) {
            return Some(why);
        }
        if self.streaming && !self.partitions_ready.load(Ordering::Acquire) {
            return Some("waiting for a partition assignment".to_owned());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegistryConfig;

    #[test]
    fn readiness_says_when_it_waits_for_kafka() {
        let registry = Registry::new(RegistryConfig::new("/nonexistent"));
        let readiness = Readiness::new(true);
        readiness.set_kafka_waiting(Some("connecting to Kafka at 127.0.0.1:1".to_owned()));
        assert_eq!(
            readiness.not_ready_reason(&registry).as_deref(),
            Some("connecting to Kafka at 127.0.0.1:1")
        );
        readiness.set_kafka_waiting(None);
        assert_ne!(
            readiness.not_ready_reason(&registry).as_deref(),
            Some("connecting to Kafka at 127.0.0.1:1")
        );
    }
}
