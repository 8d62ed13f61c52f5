//! Feature sets: ordered, named feature vectors computed from a [`TailState`].
//!
//! Each set lists its features with a one-line definition; the set's version is a hash of those
//! definitions (and of [`FORMULA_REVISION`]), so changing a window length, a smoothing factor or
//! the list of features changes the version and a model trained on the old vectors is refused.
//!
//! **The list of sets is declared once**, in the `feature_sets!` call below: the
//! [`FeatureSetId`] enum, [`FeatureSetId::ALL`], [`FeatureSetId::COUNT`], names, definitions
//! and computations all derive from it, and so does every per-set table of the service
//! ([`PerFeatureSet`]). Adding a set is one line there plus its module; the compiler then
//! asks for the one `match` that decides which events it is scored on ([`FeatureSet::for_event`]).

mod delay_risk;
mod engine_health;
#[cfg(feature = "test-feature-set")]
mod test_events;

use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use crate::error::{Error, Result};
use crate::event::{Event, ScheduleKind};
use crate::state::TailState;

/// Bump when the code computing a feature changes while its definition text stays the same.
pub const FORMULA_REVISION: u32 = 1;

/// Declares the feature sets: `Variant => "name", module;`. Each module has
/// `definitions() -> Vec<(String, String)>` and
/// `compute(&TailState, engine: Option<u8>, &mut Vec<f32>) -> Result<()>`.
macro_rules! feature_sets {
    ($( $(#[doc = $doc:literal])* $(#[cfg($cfg:meta)])* $id:ident => $name:literal, $module:ident; )+) => {
        /// Which feature set; the streaming path picks it from the event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FeatureSetId {
            $( $(#[doc = $doc])* $(#[cfg($cfg)])* $id, )+
        }

        impl FeatureSetId {
            /// Every set, in declaration order (`ALL[id.index()] == id`).
            pub const ALL: &'static [FeatureSetId] = &[$( $(#[cfg($cfg)])* FeatureSetId::$id, )+];

            /// The set's name on the wire, in manifests and in configuration.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $(#[cfg($cfg)])* FeatureSetId::$id => $name, )+
                }
            }
        }

        fn definitions(id: FeatureSetId) -> Vec<(String, String)> {
            match id {
                $( $(#[cfg($cfg)])* FeatureSetId::$id => $module::definitions(), )+
            }
        }

        fn compute(
            id: FeatureSetId,
            state: &TailState,
            engine: Option<u8>,
            out: &mut Vec<f32>,
        ) -> Result<()> {
            match id {
                $( $(#[cfg($cfg)])* FeatureSetId::$id => $module::compute(state, engine, out), )+
            }
        }
    };
}

feature_sets! {
    /// Per-engine telemetry health, scored on every telemetry event.
    EngineHealth => "engine-health", engine_health;
    /// Departure-delay risk of the aircraft's next flight, scored on every `scheduled` event.
    DelayRisk => "delay-risk", delay_risk;
    /// A third set that exists only in test builds (feature `test-feature-set`), so that the
    /// tests can show that nothing else assumes how many sets there are.
    #[cfg(feature = "test-feature-set")]
    TestEvents => "test-events", test_events;
}

impl FeatureSetId {
    /// How many sets there are.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`FeatureSetId::ALL`]: the index of every per-set table.
    pub const fn index(self) -> usize {
        self as usize
    }
}

// `index()` relies on the enum's discriminants following `ALL`.
const _: () = {
    let mut i = 0;
    while i < FeatureSetId::COUNT {
        assert!(FeatureSetId::ALL[i] as usize == i);
        i += 1;
    }
};

/// One value per feature set, indexed by [`FeatureSetId`]: what a per-set table is, so that no
/// table is sized or indexed by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct PerFeatureSet<T>([T; FeatureSetId::COUNT]);

impl<T> PerFeatureSet<T> {
    pub fn from_fn(mut f: impl FnMut(FeatureSetId) -> T) -> Self {
        Self(std::array::from_fn(|i| f(FeatureSetId::ALL[i])))
    }

    pub fn iter(&self) -> impl Iterator<Item = (FeatureSetId, &T)> {
        FeatureSetId::ALL.iter().copied().zip(&self.0)
    }
}

impl<T: Default> Default for PerFeatureSet<T> {
    fn default() -> Self {
        Self::from_fn(|_| T::default())
    }
}

impl<T> std::ops::Index<FeatureSetId> for PerFeatureSet<T> {
    type Output = T;

    fn index(&self, id: FeatureSetId) -> &T {
        &self.0[id.index()]
    }
}

impl<T> std::ops::IndexMut<FeatureSetId> for PerFeatureSet<T> {
    fn index_mut(&mut self, id: FeatureSetId) -> &mut T {
        &mut self.0[id.index()]
    }
}

/// An ordered list of named features with a version derived from their definitions.
#[derive(Debug)]
pub struct FeatureSet {
    id: FeatureSetId,
    version: String,
    names: Vec<String>,
    definitions: Vec<String>,
}

static SETS: LazyLock<PerFeatureSet<FeatureSet>> =
    LazyLock::new(|| PerFeatureSet::from_fn(FeatureSet::new));

impl FeatureSet {
    fn new(id: FeatureSetId) -> Self {
        let name = id.name();
        let defs = definitions(id);
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
            version,
            names,
            definitions,
        }
    }

    pub fn get(id: FeatureSetId) -> &'static FeatureSet {
        &SETS[id]
    }

    /// Looks a set up by its name (`engine-health`, `delay-risk`).
    pub fn by_name(name: &str) -> Result<&'static FeatureSet> {
        Self::all()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::UnknownFeatureSet(name.to_owned()))
    }

    /// Every set, in [`FeatureSetId::ALL`] order.
    pub fn all() -> impl Iterator<Item = &'static FeatureSet> {
        FeatureSetId::ALL.iter().map(|&id| Self::get(id))
    }

    /// The set an event is scored with, if any: telemetry by `engine-health`, a `scheduled`
    /// flight by `delay-risk`. Other schedule events only update the state.
    pub fn for_event(event: &Event) -> Option<&'static FeatureSet> {
        let id = match event {
            Event::Telemetry(_) => FeatureSetId::EngineHealth,
            Event::Schedule(s) if s.kind == ScheduleKind::Scheduled => FeatureSetId::DelayRisk,
            Event::Schedule(_) => return None,
        };
        Some(Self::get(id))
    }

    pub fn id(&self) -> FeatureSetId {
        self.id
    }

    pub fn name(&self) -> &'static str {
        self.id.name()
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
        compute(self.id, state, None, out)?;
        debug_assert_eq!(out.len(), self.len());
        Ok(())
    }

    /// `engine-health` of a given engine position instead of the one that reported last.
    pub fn compute_engine(&self, state: &TailState, engine: u8, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        compute(self.id, state, Some(engine), out)
    }
}
