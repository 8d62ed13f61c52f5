//! Choosing what serves from what the scans found: per name the pinned version, else the
//! greatest valid one with stage `serving` (and a shadow), then each feature set's route and
//! every version's status; published with one atomic swap.

use std::collections::BTreeMap;
use std::sync::Arc;

use fleet_features::PerFeatureSet;

use super::{Known, Registry, Route, Snapshot};
use crate::model::LoadedModel;
use crate::model::manifest::Stage;
use crate::model::serving::ServingSet;
use crate::model::status::{ModelState, ModelStatus};
use crate::model::versions::natural_cmp;

impl Registry {
    /// Chooses the models from what the scans found and swaps the choice in if it changed.
    /// Returns whether the serving or shadow models changed.
    pub(super) fn publish(
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
                        reason: k.damaged.as_ref().map(|(class, _)| class.clone()),
                        message: k.damaged.as_ref().map(|(_, message)| {
                            format!(
                                "its files changed and no longer validate ({message}); the model \
                                 loaded before keeps serving until a valid version replaces it \
                                 or its directory is removed"
                            )
                        }),
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

fn same_choice(a: &Snapshot, b: &Snapshot) -> bool {
    a.by_name.len() == b.by_name.len()
        && a.by_name
            .iter()
            .zip(&b.by_name)
            .all(|((n, x), (m, y))| n == m && x.same_as(y))
}
