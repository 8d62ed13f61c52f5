//! The producer of outputs and changelog records, replaceable while the service runs.
//!
//! Under exactly-once the producer is transactional, and a transaction call can block past its
//! timeout: librdkafka's `send_offsets_to_transaction` waits for the group coordinator, and
//! when that coordinator's broker is gone (killed, so removed from the metadata and its client
//! thread decommissioned) the request may never be sent again (librdkafka issues #5456, the
//! timeout not checked, and #5511, the stale coordinator; both open in 2.14). Seen here as a
//! service that went quiet for good after a broker was killed. [`super::commit`] therefore
//! runs transaction calls with a deadline of its own, and when one is exceeded it replaces the
//! producer: a new one with the same settings (and transactional id) fences the stuck one,
//! whose open transaction the broker aborts, and the pipeline rewinds to the committed state.
//!
//! Everyone who produces takes the current producer from the [`ProducerSlot`] for each batch
//! (the output thread) or each commit (the changelog), never keeps one.

use std::sync::{Arc, RwLock};

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::producer::ThreadedProducer;

use super::delivery::DeliveryContext;
use super::log_limit::ClientErrors;
use super::settings;
use crate::config::KafkaConfig;

pub type OutputProducer = ThreadedProducer<DeliveryContext>;

/// The current producer, and the settings to make another like it.
pub struct ProducerSlot {
    /// Made once: the transactional id stays the same for every producer of this instance.
    settings: ClientConfig,
    current: RwLock<Arc<OutputProducer>>,
}

impl std::fmt::Debug for ProducerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerSlot").finish_non_exhaustive()
    }
}

impl ProducerSlot {
    /// The first producer (transactions not initialised yet).
    pub fn create(config: &KafkaConfig) -> anyhow::Result<Self> {
        let settings = settings::producer(config)?;
        let first = Self::make(&settings)?;
        Ok(Self {
            settings,
            current: RwLock::new(Arc::new(first)),
        })
    }

    fn make(settings: &ClientConfig) -> anyhow::Result<OutputProducer> {
        settings
            .create_with_context(DeliveryContext {
                errors: ClientErrors::new("producer", None),
            })
            .context("creating the Kafka producer")
    }

    /// The producer to use now.
    pub fn current(&self) -> Arc<OutputProducer> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// A new producer with the same settings, not yet in use.
    pub fn fresh(&self) -> anyhow::Result<OutputProducer> {
        Self::make(&self.settings)
    }

    /// Puts `next` in use and hands back the one it replaces.
    pub fn replace(&self, next: Arc<OutputProducer>) -> Arc<OutputProducer> {
        std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|p| p.into_inner()),
            next,
        )
    }
}
