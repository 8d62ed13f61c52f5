//! What the long-running service's parts share: the model registry, the live state,
//! readiness, configuration. Its lifecycle is [`crate::lifecycle`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::model::Registry;
use crate::store::StateStore;

#[derive(Debug)]
pub struct AppContext {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub store: Arc<StateStore>,
    pub readiness: Arc<Readiness>,
}

/// Ready means: every model routed from a feature set is serving and, when streaming, the consumer holds its
/// partition assignment with state ready for each partition.
#[derive(Debug)]
pub struct Readiness {
    streaming: bool,
    partitions_ready: AtomicBool,
}

impl Readiness {
    pub fn new(streaming: bool) -> Self {
        Self {
            streaming,
            partitions_ready: AtomicBool::new(false),
        }
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
        (!missing.is_empty()).then(|| format!("no model serving {}", missing.join(", ")))
    }

    /// Why the service is not ready, or `None` when it is.
    pub fn not_ready_reason(&self, registry: &Registry) -> Option<String> {
        if let Some(why) = self.models_missing(registry) {
            return Some(why);
        }
        if self.streaming && !self.partitions_ready.load(Ordering::Acquire) {
            return Some("waiting for a partition assignment".to_owned());
        }
        None
    }
}
