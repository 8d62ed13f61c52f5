//! The model registry: watches the models directory, validates every new version, and swaps
//! the serving (and shadow) model of each name atomically.
//!
//! Each feature set feeds a list of models (its *route*: by default the one model of
//! [`default_routes`]). Readers call [`Registry::routed`] or [`Registry::serving_by_name`] (one
//! atomic load, `Arc` clones) and score on what they got: a swap never disturbs a batch in flight, and a failed load never replaces a good model.
//! A version directory is *published* once it holds `manifest.json`; it is considered only when
//! none of its files changed for [`RegistryConfig::settle`] (so a copy in progress is left
//! alone), validated in a child process when a [`ChildValidator`] is configured, then loaded.
//! A rejected version stays rejected until one of its files changes.

mod choose;
mod scan;
mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use fleet_features::{FeatureSetId, PerFeatureSet};

use super::LoadedModel;
use super::interval::{IntervalModels, IntervalSpec, default_intervals};
use super::serving::ServingSet;
use super::status::ModelStatus;
use super::validate::ChildValidator;
use super::versions::natural_cmp;

pub use watch::Watcher;

/// How long a version's files must be unchanged before it is considered, unless configured.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);

/// The models each feature set feeds unless `[models.routes]` says otherwise.
pub fn default_routes() -> PerFeatureSet<Vec<String>> {
    PerFeatureSet::from_fn(|id| {
        let model = match id {
            FeatureSetId::EngineHealth => "engine-rul",
            FeatureSetId::DelayRisk => "delay-risk",
            #[cfg(feature = "test-feature-set")]
            FeatureSetId::TestEvents => "test-events",
        };
        vec![model.to_owned()]
    })
}

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The models directory: `<dir>/<name>/<version>/`.
    pub dir: PathBuf,
    /// Model name -> version to serve instead of the greatest valid one (rollback).
    pub pins: BTreeMap<String, String>,
    /// Feature set -> the models it feeds, in order ([`default_routes`] unless configured).
    pub routes: PerFeatureSet<Vec<String>>,
    /// Validate in a child process first (recommended: ONNX Runtime can crash on bad input).
    pub validator: Option<ChildValidator>,
    /// Files must be unchanged this long before a version is considered.
    pub settle: Duration,
    /// Model name -> the models of its prediction interval ([`default_intervals`] unless
    /// configured).
    pub intervals: BTreeMap<String, IntervalSpec>,
}

impl RegistryConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            pins: BTreeMap::new(),
            routes: default_routes(),
            validator: None,
            settle: DEFAULT_SETTLE,
            intervals: default_intervals(),
        }
    }
}

/// The models a feature set feeds, as published: those serving, and the routed names that are
/// not (readiness lists them).
#[derive(Debug, Clone, Default)]
struct Route {
    models: Arc<[ServingSet]>,
    unserved: Vec<String>,
}

#[derive(Debug, Default)]
struct Snapshot {
    by_name: BTreeMap<String, ServingSet>,
    /// Every valid (loaded) version, by name and version.
    valid: BTreeMap<(String, String), Arc<LoadedModel>>,
    routes: PerFeatureSet<Route>,
    statuses: Vec<ModelStatus>,
}

/// What a scan remembers about a version directory.
#[derive(Debug)]
struct Known {
    fingerprint: Vec<(String, u64, SystemTime)>,
    /// The loaded model, or why not (class, the short reason `GET /models` shows).
    outcome: Result<Arc<LoadedModel>, (String, String)>,
    /// The version loaded once, then its files changed and no longer validate (class,
    /// reason): the loaded model stays (`outcome` keeps it) until a valid replacement or the
    /// version's removal; the status says why.
    damaged: Option<(String, String)>,
    /// The verdict came from an I/O error (out of file descriptors, say), not from the files:
    /// try again at the next scan even if nothing changed.
    retry: bool,
}

#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    current: ArcSwap<Snapshot>,
    known: Mutex<BTreeMap<(String, String), Known>>,
    /// Versions still settling at the last scan; guarded by `known`'s lock in practice (written
    /// only while it is held), so a re-choice after a pin shows them as the scan did.
    pending: Mutex<BTreeMap<(String, String), String>>,
    /// Model name -> pinned version: the configured pins, changed at run time by
    /// [`Registry::set_pin`] (admin calls). Not persisted.
    pins: Mutex<BTreeMap<String, String>>,
    /// Woken whenever a new choice or new statuses are published.
    published: tokio::sync::Notify,
}

/// Why a version cannot be pinned or asked for by name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("no version of model `{0}` is known")]
    UnknownModel(String),
    #[error("model `{name}` has no version `{version}`")]
    UnknownVersion { name: String, version: String },
    #[error("version `{version}` of model `{name}` cannot serve: {reason}")]
    NotValid {
        name: String,
        version: String,
        reason: String,
    },
}

impl Registry {
    /// A registry with nothing loaded yet; call [`Registry::rescan`] or [`Registry::watch`].
    pub fn new(config: RegistryConfig) -> Self {
        // Nothing serves yet: every routed model is unserved (readiness says so).
        let empty = Snapshot {
            routes: PerFeatureSet::from_fn(|id| Route {
                models: Arc::from([]),
                unserved: config.routes[id].clone(),
            }),
            ..Snapshot::default()
        };
        Self {
            current: ArcSwap::from_pointee(empty),
            known: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(BTreeMap::new()),
            pins: Mutex::new(config.pins.clone()),
            published: tokio::sync::Notify::new(),
            config,
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Completes when the registry next publishes a choice or statuses; create it (and
    /// `enable` it) before looking at the current state, so nothing is missed in between.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.published.notified()
    }

    /// The models a feature set feeds that are serving, in route order.
    pub fn routed(&self, set: FeatureSetId) -> Arc<[ServingSet]> {
        Arc::clone(&self.current.load().routes[set].models)
    }

    /// The first serving model a feature set feeds (its primary model), if any.
    pub fn serving(&self, set: FeatureSetId) -> Option<ServingSet> {
        self.current.load().routes[set].models.first().cloned()
    }

    /// Routed model names with no version serving their feature set: `(set, model)`.
    pub fn unserved_routes(&self) -> Vec<(FeatureSetId, String)> {
        let current = self.current.load();
        current
            .routes
            .iter()
            .flat_map(|(id, route)| route.unserved.iter().map(move |m| (id, m.clone())))
            .collect()
    }

    /// The models of a name, if one is serving.
    pub fn serving_by_name(&self, name: &str) -> Option<ServingSet> {
        self.current.load().by_name.get(name).cloned()
    }

    /// The bound models of `name`'s prediction interval, if it has one and both serve.
    pub fn interval_models(&self, name: &str) -> Option<IntervalModels> {
        let spec = self.config.intervals.get(name)?;
        let current = self.current.load();
        Some(IntervalModels {
            level: spec.level,
            lower: current.by_name.get(&spec.lower)?.clone(),
            upper: current.by_name.get(&spec.upper)?.clone(),
        })
    }

    /// One version of a model, if it is valid (serving, shadow or standby): what the Open
    /// Inference Protocol's versioned calls use.
    pub fn version(&self, name: &str, version: &str) -> Result<Arc<LoadedModel>, VersionError> {
        let current = self.current.load();
        if let Some(model) = current.valid.get(&(name.to_owned(), version.to_owned())) {
            return Ok(Arc::clone(model));
        }
        let mut of_name = current
            .statuses
            .iter()
            .filter(|s| s.name == name)
            .peekable();
        if of_name.peek().is_none() {
            return Err(VersionError::UnknownModel(name.to_owned()));
        }
        match of_name.find(|s| s.version == version) {
            Some(status) => Err(VersionError::NotValid {
                name: name.to_owned(),
                version: version.to_owned(),
                reason: status
                    .reason
                    .clone()
                    .unwrap_or_else(|| status.state.to_string()),
            }),
            None => Err(VersionError::UnknownVersion {
                name: name.to_owned(),
                version: version.to_owned(),
            }),
        }
    }

    /// The valid versions of a model, greatest first.
    pub fn valid_versions(&self, name: &str) -> Vec<String> {
        let current = self.current.load();
        let mut versions: Vec<String> = current
            .valid
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect();
        versions.sort_by(|a, b| natural_cmp(b, a));
        versions
    }

    /// Every version seen, with its state.
    pub fn statuses(&self) -> Vec<ModelStatus> {
        self.current.load().statuses.clone()
    }

    /// The pins in force: the configured ones as changed by [`Registry::set_pin`].
    pub fn pins(&self) -> BTreeMap<String, String> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Pins `name` to `version` (it must have been validated), or removes its pin (`None`:
    /// the greatest valid version with stage `serving` serves again), and swaps the resulting
    /// choice in at once. Waits for a scan in progress to finish. Lasts until the process
    /// ends; `[models.pins]` in the configuration is the persistent form.
    pub fn set_pin(&self, name: &str, version: Option<&str>) -> Result<(), VersionError> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(version) = version {
            if !known.keys().any(|(n, _)| n == name) {
                return Err(VersionError::UnknownModel(name.to_owned()));
            }
            match known.get(&(name.to_owned(), version.to_owned())) {
                None => {
                    return Err(VersionError::UnknownVersion {
                        name: name.to_owned(),
                        version: version.to_owned(),
                    });
                }
                Some(Known {
                    outcome: Err((class, _)),
                    ..
                }) => {
                    return Err(VersionError::NotValid {
                        name: name.to_owned(),
                        version: version.to_owned(),
                        reason: class.clone(),
                    });
                }
                Some(_) => {}
            }
        }
        {
            let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
            match version {
                Some(v) => pins.insert(name.to_owned(), v.to_owned()),
                None => pins.remove(name),
            };
        }
        tracing::info!(model = %name, version = version.unwrap_or("none"), "pin set");
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.publish(&known, &pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Registry, RegistryConfig, VersionError};
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    /// Copies the tract fixture (no ONNX Runtime needed) to `root/engine-rul-mlp/<version>`.
    fn publish_mlp(root: &Path, version: &str) {
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/engine-rul-mlp/1");
        let dst = root.join("engine-rul-mlp").join(version);
        std::fs::create_dir_all(&dst).unwrap();
        for file in ["model.onnx", "golden.json"] {
            std::fs::copy(src.join(file), dst.join(file)).unwrap();
        }
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
        manifest["version"] = version.into();
        std::fs::write(dst.join("manifest.json"), manifest.to_string()).unwrap();
        let past = SystemTime::now() - Duration::from_secs(60);
        for entry in std::fs::read_dir(&dst).unwrap().flatten() {
            let file = std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap();
            file.set_modified(past).unwrap();
        }
    }

    fn serving(registry: &Registry) -> String {
        registry
            .serving_by_name("engine-rul-mlp")
            .map(|s| s.serving.version().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn runtime_pins_switch_versions_at_once_and_refuse_what_cannot_serve() {
        let root = tempfile::tempdir().unwrap();
        publish_mlp(root.path(), "1");
        publish_mlp(root.path(), "2");
        std::fs::create_dir_all(root.path().join("engine-rul-mlp/3")).unwrap();
        std::fs::write(root.path().join("engine-rul-mlp/3/manifest.json"), "{}").unwrap();
        let mut config = RegistryConfig::new(root.path());
        config.settle = Duration::ZERO;
        let registry = Registry::new(config);
        registry.rescan();
        assert_eq!(serving(&registry), "2");

        registry.set_pin("engine-rul-mlp", Some("1")).unwrap();
        assert_eq!(serving(&registry), "1", "the pin applies without a rescan");
        let pinned: Vec<_> = registry
            .statuses()
            .into_iter()
            .filter(|s| s.pinned)
            .collect();
        assert_eq!(pinned.len(), 1);
        assert_eq!(
            (pinned[0].version.as_str(), pinned[0].state.as_str()),
            ("1", "serving")
        );
        assert_eq!(
            registry.pins().get("engine-rul-mlp").map(String::as_str),
            Some("1")
        );
        registry.rescan();
        assert_eq!(serving(&registry), "1", "a rescan keeps the runtime pin");

        let err = registry.set_pin("engine-rul-mlp", Some("3")).unwrap_err();
        assert!(
            matches!(&err, VersionError::NotValid { reason, .. } if reason == "manifest"),
            "{err}"
        );
        assert!(matches!(
            registry.set_pin("engine-rul-mlp", Some("9")),
            Err(VersionError::UnknownVersion { .. })
        ));
        assert!(matches!(
            registry.set_pin("nope", Some("1")),
            Err(VersionError::UnknownModel(_))
        ));
        assert_eq!(serving(&registry), "1", "a refused pin changes nothing");

        registry.set_pin("engine-rul-mlp", None).unwrap();
        assert_eq!(serving(&registry), "2");
        assert!(registry.pins().is_empty());
        assert!(registry.statuses().iter().all(|s| !s.pinned));
    }
}
