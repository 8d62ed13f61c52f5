//! Scanning the models directory: which version directories are published, whether their files
//! settled or changed, and validating and loading the new ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{Known, Registry};
use crate::metrics::names;
use crate::model::manifest::MANIFEST_FILE;
use crate::model::{LoadedModel, ModelError, package};

impl Registry {
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
