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

/// What one look at the models directory found.
#[derive(Debug, Default)]
struct Listing {
    /// Every published version and its directory.
    found: Vec<((String, String), PathBuf)>,
    /// Model names (or `None`: the whole directory) that could not be read this time: their
    /// known versions are kept as they are, not taken for removed.
    unreadable: Vec<Option<String>>,
}

impl Listing {
    fn keeps(&self, key: &(String, String)) -> bool {
        self.found.iter().any(|(k, _)| k == key)
            || self
                .unreadable
                .iter()
                .any(|n| n.as_ref().is_none_or(|n| *n == key.0))
    }
}

impl Registry {
    /// Looks at the directory once: validates new or changed versions, forgets removed ones,
    /// and swaps in the resulting choice of models. Returns whether the choice changed.
    ///
    /// An I/O error is never taken for a removal: a directory that cannot be read (no file
    /// descriptors left, a disk hiccup) keeps what was known of it, and a loaded version whose
    /// files stop validating keeps its loaded model (marked damaged). Only a version directory
    /// (or its manifest) that is really gone is forgotten.
    pub fn rescan(&self) -> bool {
        let now = SystemTime::now();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let listing = self.list_versions();
        known.retain(|key, _| listing.keeps(key));

        let mut pending: BTreeMap<(String, String), String> = BTreeMap::new();
        for (key, dir) in &listing.found {
            let fingerprint = match fingerprint(dir) {
                Ok(fingerprint) => fingerprint,
                Err(e) => {
                    scan_error(dir, &e);
                    continue; // what was known stays as it was
                }
            };
            let newest = fingerprint.iter().map(|f| f.2).max().unwrap_or(now);
            let age = now.duration_since(newest).unwrap_or_default();
            if age < self.config.settle {
                pending.insert(
                    key.clone(),
                    format!("files changed {} ms ago", age.as_millis()),
                );
                continue;
            }
            if known
                .get(key)
                .is_some_and(|k| k.fingerprint == fingerprint && !k.retry)
            {
                continue;
            }
            let outcome = self.validate_and_load(dir);
            let previous = known.get(key).and_then(|k| k.outcome.as_ref().ok());
            // Clients see the short reason (`GET /models`); the log gets the whole error.
            let entry = match (outcome, previous) {
                (Ok(model), _) => {
                    tracing::info!(
                        model = %key.0, version = %key.1, backend = model.backend.kind().as_str(),
                        sha256 = %model.sha256, "model version validated"
                    );
                    Known {
                        fingerprint,
                        outcome: Ok(model),
                        damaged: None,
                        retry: false,
                    }
                }
                (
                    Err(Rejection {
                        class,
                        reason,
                        detail,
                    }),
                    Some(loaded),
                ) => {
                    tracing::warn!(model = %key.0, version = %key.1, dir = %dir.display(), reason = %class,
                        message = %detail,
                        "files of a loaded model version changed and no longer validate; the loaded model stays");
                    metrics::counter!(names::MODEL_DAMAGED,
                        "model" => key.0.clone(), "reason" => class.clone())
                    .increment(1);
                    Known {
                        fingerprint,
                        outcome: Ok(Arc::clone(loaded)),
                        retry: class == IO_CLASS,
                        damaged: Some((class, reason)),
                    }
                }
                (
                    Err(Rejection {
                        class,
                        reason,
                        detail,
                    }),
                    None,
                ) => {
                    tracing::warn!(model = %key.0, version = %key.1, dir = %dir.display(), reason = %class,
                        message = %detail, "model version rejected");
                    metrics::counter!(names::MODEL_REJECTIONS,
                        "model" => key.0.clone(), "reason" => class.clone())
                    .increment(1);
                    Known {
                        fingerprint,
                        retry: class == IO_CLASS,
                        outcome: Err((class, reason)),
                        damaged: None,
                    }
                }
            };
            known.insert(key.clone(), entry);
        }

        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = pending.clone();
        self.publish(&known, &pending)
    }

    fn validate_and_load(&self, dir: &Path) -> Result<Arc<LoadedModel>, Rejection> {
        let reject = |e: ModelError| Rejection {
            class: e.class().to_owned(),
            reason: e.reason(dir),
            detail: e.to_string(),
        };
        if let Some(validator) = &self.config.validator {
            let report = validator.validate(dir).map_err(reject)?;
            if !report.ok {
                return Err(Rejection {
                    class: report
                        .class
                        .unwrap_or_else(|| "validator_failed".to_owned()),
                    reason: report
                        .reason
                        .unwrap_or_else(|| "rejected by the validator process".to_owned()),
                    detail: report.message.unwrap_or_default(),
                });
            }
        }
        package::load(dir).map(Arc::new).map_err(reject)
    }

    /// Every published version, and what could not be read.
    fn list_versions(&self) -> Listing {
        let mut listing = Listing::default();
        let names = match std::fs::read_dir(&self.config.dir) {
            Ok(names) => names,
            Err(e) => {
                scan_error(&self.config.dir, &e);
                listing.unreadable.push(None);
                return listing;
            }
        };
        for name in names {
            let name = match name.and_then(|entry| visible_dir_name(&entry).map(|n| (entry, n))) {
                Ok((entry, Some(name))) => (entry, name),
                Ok((_, None)) => continue,
                Err(e) => {
                    scan_error(&self.config.dir, &e);
                    listing.unreadable.push(None);
                    continue;
                }
            };
            let (entry, name_str) = name;
            let versions = match std::fs::read_dir(entry.path()) {
                Ok(versions) => versions,
                Err(e) => {
                    scan_error(&entry.path(), &e);
                    listing.unreadable.push(Some(name_str));
                    continue;
                }
            };
            for version in versions {
                let published = version.and_then(|version| {
                    let Some(version_str) = visible_dir_name(&version)? else {
                        return Ok(None);
                    };
                    match std::fs::metadata(version.path().join(MANIFEST_FILE)) {
                        Ok(meta) if meta.is_file() => Ok(Some((version_str, version.path()))),
                        Ok(_) => Ok(None),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                });
                match published {
                    Ok(Some((version_str, dir))) => {
                        listing.found.push(((name_str.clone(), version_str), dir));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        scan_error(&entry.path(), &e);
                        listing.unreadable.push(Some(name_str.clone()));
                    }
                }
            }
        }
        listing.found.sort();
        listing
    }
}

/// Why a version was not loaded.
#[derive(Debug)]
struct Rejection {
    class: String,
    /// For clients: no paths, no backend's words ([`ModelError::reason`]).
    reason: String,
    /// The whole error, for the log.
    detail: String,
}

/// The class of a verdict that came from an I/O error rather than from the files.
const IO_CLASS: &str = "io";

/// A directory of the scan could not be read: logged and counted; what was known of it stays.
fn scan_error(path: &Path, error: &std::io::Error) {
    tracing::warn!(path = %path.display(), %error,
        "models directory not readable; keeping the models loaded from it");
    metrics::counter!(names::REGISTRY_SCAN_ERRORS).increment(1);
}

/// The directory name of an entry, if it is a visible directory (not `.x` or `x.tmp`).
fn visible_dir_name(entry: &std::fs::DirEntry) -> std::io::Result<Option<String>> {
    let Ok(name) = entry.file_name().into_string() else {
        return Ok(None);
    };
    let is_dir = entry.file_type()?.is_dir();
    Ok((is_dir && !name.starts_with('.') && !name.ends_with(".tmp")).then_some(name))
}

/// Name, size and modification time of every file in a version directory.
fn fingerprint(dir: &Path) -> std::io::Result<Vec<(String, u64, SystemTime)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // just removed
            Err(e) => return Err(e),
        };
        if meta.is_file() {
            files.push((
                entry.file_name().to_string_lossy().into_owned(),
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    files.sort();
    Ok(files)
}
