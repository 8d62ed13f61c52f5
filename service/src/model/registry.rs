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

mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use fleet_features::{FeatureSetId, PerFeatureSet};

use super::manifest::{MANIFEST_FILE, Stage};
use super::serving::ServingSet;
use super::status::{ModelState, ModelStatus};
use super::validate::ChildValidator;
use super::versions::natural_cmp;
use super::{LoadedModel, ModelError, package};
use crate::metrics::names;

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
}

impl RegistryConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            pins: BTreeMap::new(),
            routes: default_routes(),
            validator: None,
            settle: DEFAULT_SETTLE,
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
    outcome: Result<Arc<LoadedModel>, (String, String)>,
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

    /// Looks at the directory once: validates new or changed versions, forgets removed ones,
    /// and swaps in the resulting choice of models. Returns whether the choice changed.
    pub fn rescan(&self) -> bool {
        let now = SystemTime::now();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let found = self.list_versions();
        known.retain(|key, _| found.iter().any(|(k, _)| k == key));

        let mut pending: BTreeMap<(String, String), String> = BTreeMap::new();
        for (key, dir) in &found {
            let fingerprint = fingerprint(dir);
            let newest = fingerprint.iter().map(|f| f.2).max().unwrap_or(now);
            let age = now.duration_since(newest).unwrap_or_default();
            if age < self.config.settle {
                pending.insert(
                    key.clone(),
                    format!("files changed {} ms ago", age.as_millis()),
                );
                continue;
            }
            if known.get(key).is_some_and(|k| k.fingerprint == fingerprint) {
                continue;
            }
            let outcome = self.validate_and_load(dir);
            match &outcome {
                Ok(model) => tracing::info!(
                    model = %key.0, version = %key.1, backend = model.backend.kind().as_str(),
                    sha256 = %model.sha256, "model version validated"
                ),
                Err((class, message)) => {
                    tracing::warn!(model = %key.0, version = %key.1, reason = %class, %message, "model version rejected");
                    metrics::counter!(names::MODEL_REJECTIONS,
                        "model" => key.0.clone(), "reason" => class.clone())
                    .increment(1);
                }
            }
            known.insert(
                key.clone(),
                Known {
                    fingerprint,
                    outcome,
                },
            );
        }

        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = pending.clone();
        self.publish(&known, &pending)
    }

    /// Chooses the models from what the scans found and swaps the choice in if it changed.
    /// Returns whether the serving or shadow models changed.
    fn publish(
        &self,
        known: &BTreeMap<(String, String), Known>,
        pending: &BTreeMap<(String, String), String>,
    ) -> bool {
        let next = self.choose(known, pending);
        let previous = self.current.load();
        let changed = !same_choice(&previous, &next);
        if changed {
            for (name, set) in &next.by_name {
                let before = previous.by_name.get(name);
                if before.is_none_or(|b| !Arc::ptr_eq(&b.serving, &set.serving)) {
                    tracing::info!(model = %name, version = %set.serving.version(),
                        previous = before.map(|b| b.serving.version()).unwrap_or("none"),
                        "model version now serving");
                }
            }
        }
        if changed || previous.statuses != next.statuses {
            self.current.store(Arc::new(next));
            self.published.notify_waiters();
        }
        changed
    }

    fn validate_and_load(&self, dir: &Path) -> Result<Arc<LoadedModel>, (String, String)> {
        let reject = |e: ModelError| (e.class().to_owned(), e.to_string());
        if let Some(validator) = &self.config.validator {
            let report = validator.validate(dir).map_err(reject)?;
            if !report.ok {
                return Err((
                    report
                        .class
                        .unwrap_or_else(|| "validator_failed".to_owned()),
                    report.message.unwrap_or_default(),
                ));
            }
        }
        package::load(dir).map(Arc::new).map_err(reject)
    }

    /// `(name, version)` and directory of every published version.
    fn list_versions(&self) -> Vec<((String, String), PathBuf)> {
        let mut out = Vec::new();
        let Ok(names) = std::fs::read_dir(&self.config.dir) else {
            return out;
        };
        for name in names.flatten() {
            let Some(name_str) = visible_dir_name(&name) else {
                continue;
            };
            let Ok(versions) = std::fs::read_dir(name.path()) else {
                continue;
            };
            for version in versions.flatten() {
                let Some(version_str) = visible_dir_name(&version) else {
                    continue;
                };
                if version.path().join(MANIFEST_FILE).is_file() {
                    out.push(((name_str.clone(), version_str), version.path()));
                }
            }
        }
        out.sort();
        out
    }

    fn choose(
        &self,
        known: &BTreeMap<(String, String), Known>,
        pending: &BTreeMap<(String, String), String>,
    ) -> Snapshot {
        let pins = self.pins();
        // Valid versions by name, greatest first.
        let mut valid: BTreeMap<&str, Vec<&Arc<LoadedModel>>> = BTreeMap::new();
        for ((name, _), k) in known {
            if let Ok(model) = &k.outcome {
                valid.entry(name.as_str()).or_default().push(model);
            }
        }
        let mut by_name = BTreeMap::new();
        for (name, mut models) in valid {
            models.sort_by(|a, b| natural_cmp(b.version(), a.version()));
            let pin = pins.get(name);
            let pinned = pin.and_then(|v| models.iter().find(|m| m.version() == v));
            if let (Some(v), None) = (pin, pinned) {
                tracing::warn!(model = %name, version = %v, "pinned version is not valid; serving the greatest valid one");
            }
            let serving = pinned
                .or_else(|| models.iter().find(|m| m.manifest.stage == Stage::Serving))
                .copied();
            let Some(serving) = serving else { continue };
            let shadow = models
                .iter()
                .find(|m| m.manifest.stage == Stage::Shadow && !Arc::ptr_eq(m, serving))
                .map(|m| Arc::clone(m));
            by_name.insert(
                name.to_owned(),
                ServingSet {
                    serving: Arc::clone(serving),
                    shadow,
                },
            );
        }

        let routes = PerFeatureSet::from_fn(|id| {
            let mut models = Vec::new();
            let mut unserved = Vec::new();
            for name in &self.config.routes[id] {
                match by_name
                    .get(name)
                    .filter(|s: &&ServingSet| s.serving.feature_set.id() == id)
                {
                    Some(set) => models.push(set.clone()),
                    None => unserved.push(name.clone()),
                }
            }
            Route {
                models: models.into(),
                unserved,
            }
        });

        let mut statuses = Vec::new();
        for ((name, version), k) in known {
            let pinned = pins.get(name) == Some(version);
            let status = match &k.outcome {
                Ok(model) => {
                    let set = by_name.get(name);
                    let state = match set {
                        Some(s) if Arc::ptr_eq(&s.serving, model) => ModelState::Serving,
                        Some(s) if s.shadow.as_ref().is_some_and(|m| Arc::ptr_eq(m, model)) => {
                            ModelState::Shadow
                        }
                        _ => ModelState::Standby,
                    };
                    ModelStatus {
                        name: name.clone(),
                        version: version.clone(),
                        state,
                        stage: Some(model.manifest.stage),
                        backend: Some(model.backend.kind().as_str()),
                        sha256: Some(model.sha256.clone()),
                        feature_set: Some(format!(
                            "{}@{}",
                            model.feature_set.name(),
                            model.feature_set.version()
                        )),
                        reason: None,
                        message: None,
                        pinned,
                    }
                }
                Err((class, message)) => ModelStatus {
                    name: name.clone(),
                    version: version.clone(),
                    state: ModelState::Rejected,
                    stage: None,
                    backend: None,
                    sha256: None,
                    feature_set: None,
                    reason: Some(class.clone()),
                    message: Some(message.clone()),
                    pinned,
                },
            };
            statuses.push(status);
        }
        for ((name, version), why) in pending {
            if known.contains_key(&(name.clone(), version.clone())) {
                continue; // still shown with its last verdict until the new files settle
            }
            statuses.push(ModelStatus {
                name: name.clone(),
                version: version.clone(),
                state: ModelState::Pending,
                stage: None,
                backend: None,
                sha256: None,
                feature_set: None,
                reason: Some("incomplete".to_owned()),
                message: Some(why.clone()),
                pinned: pins.get(name) == Some(version),
            });
        }
        statuses.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| natural_cmp(&b.version, &a.version))
        });
        let valid = known
            .iter()
            .filter_map(|(key, k)| {
                k.outcome
                    .as_ref()
                    .ok()
                    .map(|m| (key.clone(), Arc::clone(m)))
            })
            .collect();
        Snapshot {
            by_name,
            valid,
            routes,
            statuses,
        }
    }
}

fn visible_dir_name(entry: &std::fs::DirEntry) -> Option<String> {
    let name = entry.file_name().into_string().ok()?;
    let is_dir = entry.file_type().ok()?.is_dir();
    (is_dir && !name.starts_with('.') && !name.ends_with(".tmp")).then_some(name)
}

/// Name, size and modification time of every file in a version directory.
fn fingerprint(dir: &Path) -> Vec<(String, u64, SystemTime)> {
    let mut files: Vec<(String, u64, SystemTime)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| {
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                )
            })
        })
        .collect();
    files.sort();
    files
}

fn same_choice(a: &Snapshot, b: &Snapshot) -> bool {
    a.by_name.len() == b.by_name.len()
        && a.by_name
            .iter()
            .zip(&b.by_name)
            .all(|((n, x), (m, y))| n == m && x.same_as(y))
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
