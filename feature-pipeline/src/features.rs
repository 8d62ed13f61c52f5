//! Feature sets: ordered, named feature vectors computed from a [`TailState`].
//!
//! Each set lists its features with a one-line definition; the set's version is a hash of those
//! definitions (and of [`FORMULA_REVISION`]), so changing a window length, a smoothing factor or
//! the list of features changes the version and a model trained on the old vectors is refused.

mod delay_risk;
mod engine_health;

use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use crate::error::{Error, Result};
use crate::event::{Event, ScheduleKind};
use crate::state::TailState;

/// Bump when the code computing a feature changes while its definition text stays the same.
pub const FORMULA_REVISION: u32 = 1;

/// Which feature set; the streaming path picks it from the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureSetId {
    /// Per-engine telemetry health, scored on every telemetry event.
    EngineHealth,
    /// Departure-delay risk of the aircraft's next flight, scored on every `scheduled` event.
    DelayRisk,
}

/// An ordered list of named features with a version derived from their definitions.
#[derive(Debug)]
pub struct FeatureSet {
    id: FeatureSetId,
    name: &'static str,
    version: String,
    names: Vec<String>,
    definitions: Vec<String>,
}

static ENGINE_HEALTH: LazyLock<FeatureSet> = LazyLock::new(|| {
    FeatureSet::new(
        FeatureSetId::EngineHealth,
        "engine-health",
        engine_health::definitions(),
    )
});
static DELAY_RISK: LazyLock<FeatureSet> = LazyLock::new(|| {
    FeatureSet::new(
        FeatureSetId::DelayRisk,
        "delay-risk",
        delay_risk::definitions(),
    )
});

impl FeatureSet {
    fn new(id: FeatureSetId, name: &'static str, defs: Vec<(String, String)>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(format!("{name}\nrevision {FORMULA_REVISION}\n"));
        for (feature, definition) in &defs {
            hasher.update(format!("{feature} = {definition}\n"));
        }
        let digest = hasher.finalize();
        let version = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        let (names, definitions) = defs.into_iter().unzip();
        Self {
            id,
            name,
            version,
            names,
            definitions,
        }
    }

    pub fn get(id: FeatureSetId) -> &'static FeatureSet {
        match id {
            FeatureSetId::EngineHealth => &ENGINE_HEALTH,
            FeatureSetId::DelayRisk => &DELAY_RISK,
        }
    }

    /// Looks a set up by its name (`engine-health`, `delay-risk`).
    pub fn by_name(name: &str) -> Result<&'static FeatureSet> {
        Self::all()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::UnknownFeatureSet(name.to_owned()))
    }

    pub fn all() -> [&'static FeatureSet; 2] {
        [&ENGINE_HEALTH, &DELAY_RISK]
    }

    /// The set an event is scored with, if any: telemetry by `engine-health`, a `scheduled`
    /// flight by `delay-risk`. Other schedule events only update the state.
    pub fn for_event(event: &Event) -> Option<&'static FeatureSet> {
        match event {
            Event::Telemetry(_) => Some(&ENGINE_HEALTH),
            Event::Schedule(s) if s.kind == ScheduleKind::Scheduled => Some(&DELAY_RISK),
            Event::Schedule(_) => None,
        }
    }

    pub fn id(&self) -> FeatureSetId {
        self.id
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// 12 hex digits of the SHA-256 of the definitions.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn definitions(&self) -> &[String] {
        &self.definitions
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Computes the feature vector of `state`, replacing the contents of `out`.
    pub fn compute(&self, state: &TailState, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        out.reserve(self.len());
        match self.id {
            FeatureSetId::EngineHealth => engine_health::compute(state, None, out)?,
            FeatureSetId::DelayRisk => delay_risk::compute(state, out)?,
        }
        debug_assert_eq!(out.len(), self.len());
        Ok(())
    }

    /// `engine-health` of a given engine position instead of the one that reported last.
    pub fn compute_engine(&self, state: &TailState, engine: u8, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        match self.id {
            FeatureSetId::EngineHealth => engine_health::compute(state, Some(engine), out),
            FeatureSetId::DelayRisk => delay_risk::compute(state, out),
        }
    }
}
