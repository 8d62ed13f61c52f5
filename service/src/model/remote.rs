//! Model packages from object storage (`[models] dir = "s3://bucket/prefix"`, any
//! S3-compatible store): mirrored into a local cache directory that the registry reads exactly
//! as it reads a local models directory — so a package from the bucket is held to the same
//! rules (complete packages only, checksums, golden outputs, child validation) and every
//! replica validates and serves the same versions without a shared writable disk.
//!
//! A data scientist publishes as locally: upload the package's files under
//! `<prefix>/<name>/<version>/`, `manifest.json` last. Each sync (at start, then every
//! `[models] rescan_seconds`) lists the bucket and, for each version with a manifest whose
//! objects differ from the cached copy, downloads every object of the version into a staging
//! directory (the manifest last) and moves it into the cache in one rename; a version without
//! its manifest (still uploading) is left alone, and a version gone from the bucket is removed
//! from the cache (the registry then rolls back, as for a local removal). When the bucket
//! cannot be reached the cache is kept as it is: the models that serve go on serving, and
//! readiness and the metrics say that the source is failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::metrics::names;

/// Written beside a synced version's files: the objects it was made from.
const SYNC_RECORD: &str = ".fleetscore-sync.json";
const MANIFEST: &str = "manifest.json";

/// How the last sync went, for readiness and `GET /readyz`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceStatus {
    /// The bucket and prefix (`s3://bucket/prefix`).
    pub url: String,
    /// Whether the last sync reached the bucket.
    pub ok: bool,
    /// Why the last sync failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub last_success: Option<DateTime<Utc>>,
    /// Versions in the cache after the last successful sync.
    pub versions: usize,
}

/// The objects of one version in the bucket: file name -> (size, ETag).
type Objects = BTreeMap<String, (u64, Option<String>)>;

/// What one sync did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub downloaded: Vec<String>,
    pub removed: Vec<String>,
    /// Versions with objects but no manifest yet.
    pub incomplete: Vec<String>,
}

/// A bucket mirrored into `cache/packages`.
pub struct RemoteModels {
    url: String,
    store: Box<dyn ObjectStore>,
    prefix: ObjectPath,
    cache: PathBuf,
    status: Mutex<SourceStatus>,
}

impl std::fmt::Debug for RemoteModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModels")
            .field("url", &self.url)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl RemoteModels {
    /// The store at `url` (`s3://bucket/prefix`; endpoint, region and credentials from the
    /// standard `AWS_*` environment variables), mirrored under `cache`.
    pub fn new(url: &str, cache: &Path) -> anyhow::Result<Self> {
        let (bucket_and_prefix, prefix) = match url.strip_prefix("s3://") {
            Some(rest) => (rest, rest.split_once('/').map_or("", |(_, p)| p)),
            None => anyhow::bail!("`{url}`: only s3:// addresses are supported"),
        };
        if bucket_and_prefix.is_empty() || bucket_and_prefix.starts_with('/') {
            anyhow::bail!("`{url}`: no bucket");
        }
        // A bucket that does not answer must fail a sync within seconds, not the default
        // minutes of retries: the cache keeps serving meanwhile.
        let store = AmazonS3Builder::from_env()
            .with_url(url)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
            })
            // Set key by key: client options as a whole would replace those of the
            // environment (`AWS_ALLOW_HTTP`).
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "30s")
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            )
            .build()
            .with_context(|| format!("object storage at {url}"))?;
        std::fs::create_dir_all(cache.join("packages"))
            .with_context(|| format!("creating {}", cache.display()))?;
        Ok(Self {
            url: url.to_owned(),
            store: Box::new(store),
            prefix: ObjectPath::from(prefix.trim_end_matches('/')),
            cache: cache.to_owned(),
            status: Mutex::new(SourceStatus {
                url: url.to_owned(),
                ok: false,
                error: Some("not synced yet".to_owned()),
                last_success: None,
                versions: 0,
            }),
        })
    }

    /// The directory the registry reads.
    pub fn packages(&self) -> PathBuf {
        self.cache.join("packages")
    }

    pub fn status(&self) -> SourceStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One sync; records its outcome in [`Self::status`] and the metrics.
    pub async fn sync(&self) -> anyhow::Result<Synced> {
        let outcome = self.sync_inner().await;
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match &outcome {
            Ok(_) => {
                status.ok = true;
                status.error = None;
                status.last_success = Some(Utc::now());
                status.versions = cached_versions(&self.packages()).len();
                metrics::counter!(names::MODEL_SYNCS, "outcome" => "ok").increment(1);
                metrics::gauge!(names::MODEL_SYNC_LAST_SUCCESS)
                    .set(Utc::now().timestamp_millis() as f64 / 1000.0);
            }
            Err(e) => {
                status.ok = false;
                status.error = Some(brief(e));
                metrics::counter!(names::MODEL_SYNCS, "outcome" => "error").increment(1);
            }
        }
        metrics::gauge!(names::MODEL_SYNC_OK).set(if status.ok { 1.0 } else { 0.0 });
        outcome
    }

    async fn sync_inner(&self) -> anyhow::Result<Synced> {
        let listed: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .with_context(|| format!("listing {}", self.url))?;
        let remote = self.by_version(&listed);
        let packages = self.packages();
        let mut synced = Synced::default();
        for ((name, version), objects) in &remote {
            let key = format!("{name}/{version}");
            if !objects.contains_key(MANIFEST) {
                synced.incomplete.push(key);
                continue;
            }
            let dir = packages.join(name).join(version);
            if read_record(&dir).as_ref() == Some(objects) {
                continue;
            }
            self.download(name, version, objects).await?;
            synced.downloaded.push(key);
        }
        for (name, version) in cached_versions(&packages) {
            if !remote.contains_key(&(name.clone(), version.clone())) {
                remove_version(&packages, &name, &version)?;
                synced.removed.push(format!("{name}/{version}"));
            }
        }
        Ok(synced)
    }

    /// Every object under the prefix at `<name>/<version>/<file>`, by version.
    fn by_version(&self, listed: &[ObjectMeta]) -> BTreeMap<(String, String), Objects> {
        let mut versions: BTreeMap<(String, String), Objects> = BTreeMap::new();
        for meta in listed {
            let Some(parts) = meta.location.prefix_match(&self.prefix) else {
                continue;
            };
            let parts: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
            let [name, version, file @ ..] = parts.as_slice() else {
                continue;
            };
            if file.is_empty() || !safe(name) || !safe(version) || !file.iter().all(|f| safe(f)) {
                continue;
            }
            versions
                .entry((name.clone(), version.clone()))
                .or_default()
                .insert(file.join("/"), (meta.size, meta.e_tag.clone()));
        }
        versions
    }

    /// Downloads a version into staging, the manifest last, then renames it into the cache.
    async fn download(&self, name: &str, version: &str, objects: &Objects) -> anyhow::Result<()> {
        let staging = self.cache.join("staging");
        std::fs::create_dir_all(&staging)?;
        let tmp = staging.join(format!("{name}-{version}-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        let files = objects
            .keys()
            .filter(|f| f.as_str() != MANIFEST)
            .chain(std::iter::once(&MANIFEST.to_owned()))
            .cloned()
            .collect::<Vec<_>>();
        for file in &files {
            let location = self.prefix.clone().join(name).join(version);
            let location = file.split('/').fold(location, |l, part| l.join(part));
            let bytes = self
                .store
                .get(&location)
                .await
                .with_context(|| format!("reading {location}"))?
                .bytes()
                .await
                .with_context(|| format!("reading {location}"))?;
            let path = tmp.join(file);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        std::fs::write(tmp.join(SYNC_RECORD), serde_json::to_vec(objects)?)?;
        let target = self.packages().join(name).join(version);
        std::fs::create_dir_all(target.parent().expect("a version has a parent"))?;
        if target.exists() {
            // Replaced in the bucket: the old copy goes first (the registry sees the version
            // disappear and come back, and validates the new files).
            let old = staging.join(format!("old-{name}-{version}-{}", std::process::id()));
            std::fs::rename(&target, &old)?;
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(&tmp, &target)
            .with_context(|| format!("moving {name}/{version} into {}", target.display()))?;
        tracing::info!(model = name, version, source = %self.url, "model package synced");
        Ok(())
    }

    /// Syncs every `every` until `shutdown`, the first time `every` from now (start-up
    /// synced once already); failures are logged (once per change of error) and the cache is
    /// kept.
    pub async fn run(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error: Option<String> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.sync().await {
                Ok(synced) => {
                    if last_error.take().is_some() {
                        tracing::info!(source = %self.url, "model source reachable again");
                    }
                    for version in &synced.removed {
                        tracing::info!(version, source = %self.url, "model package gone from the source: removed");
                    }
                }
                Err(e) => {
                    let error = brief(&e);
                    if last_error.as_ref() != Some(&error) {
                        tracing::warn!(source = %self.url, %error, "model source unreachable; the cached models keep serving");
                    }
                    last_error = Some(error);
                }
            }
        }
    }
}

/// What went wrong, in one line: what was being done and the innermost cause (the object
/// store's errors repeat their chain in every layer).
fn brief(e: &anyhow::Error) -> String {
    let root = e.root_cause().to_string();
    let top = e.to_string();
    if top == root {
        top
    } else {
        format!("{top}: {root}")
    }
}

/// A file or directory name the cache may hold (no `..`, nothing hidden).
fn safe(part: &str) -> bool {
    !part.is_empty() && !part.starts_with('.') && !part.contains(['/', '\\'])
}

/// The `(name, version)` directories in the cache.
fn cached_versions(packages: &Path) -> BTreeSet<(String, String)> {
    let mut versions = BTreeSet::new();
    let Ok(names) = std::fs::read_dir(packages) else {
        return versions;
    };
    for name in names.flatten() {
        let Ok(dir) = std::fs::read_dir(name.path()) else {
            continue;
        };
        for version in dir.flatten() {
            if version.path().join(SYNC_RECORD).is_file()
                && let (Some(n), Some(v)) =
                    (name.file_name().to_str(), version.file_name().to_str())
            {
                versions.insert((n.to_owned(), v.to_owned()));
            }
        }
    }
    versions
}

fn remove_version(packages: &Path, name: &str, version: &str) -> anyhow::Result<()> {
    let dir = packages.join(name).join(version);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    // The model's directory goes too once it has no version left.
    let _ = std::fs::remove_dir(packages.join(name));
    Ok(())
}

/// The objects a cached version was made from (its sync record).
fn read_record(dir: &Path) -> Option<Objects> {
    let bytes = std::fs::read(dir.join(SYNC_RECORD)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    fn remote(cache: &Path) -> RemoteModels {
        RemoteModels {
            url: "s3://test/models".to_owned(),
            store: Box::new(InMemory::new()),
            prefix: ObjectPath::from("models"),
            cache: cache.to_owned(),
            status: Mutex::new(SourceStatus {
                url: "s3://test/models".to_owned(),
                ok: false,
                error: None,
                last_success: None,
                versions: 0,
            }),
        }
    }

    async fn put(r: &RemoteModels, path: &str, body: &str) {
        r.store
            .put(
                &ObjectPath::from(format!("models/{path}")),
                PutPayload::from(body.to_owned()),
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn complete_versions_are_mirrored_incomplete_left_alone_removed_ones_removed() {
        let cache = tempfile::tempdir().unwrap();
        let r = remote(cache.path());
        std::fs::create_dir_all(r.packages()).unwrap();
        put(&r, "m/1/model.onnx", "one").await;
        put(&r, "m/1/manifest.json", "{}").await;
        put(&r, "m/2/model.onnx", "two").await; // no manifest yet
        put(&r, ".hidden/1/manifest.json", "{}").await;
        let synced = r.sync().await.unwrap();
        assert_eq!(synced.downloaded, ["m/1"]);
        assert_eq!(synced.incomplete, ["m/2"]);
        let one = r.packages().join("m/1");
        assert_eq!(
            std::fs::read_to_string(one.join("model.onnx")).unwrap(),
            "one"
        );
        assert!(!r.packages().join("m/2").exists());
        assert!(r.status().ok);
        assert_eq!(r.status().versions, 1);

        // Nothing changed: nothing downloaded.
        assert_eq!(r.sync().await.unwrap().downloaded, Vec::<String>::new());
        // The manifest arrives; then version 1 is replaced, then deleted.
        put(&r, "m/2/manifest.json", "{}").await;
        put(&r, "m/1/model.onnx", "one, again").await;
        let synced = r.sync().await.unwrap();
        assert_eq!(synced.downloaded, ["m/1", "m/2"]);
        assert_eq!(
            std::fs::read_to_string(one.join("model.onnx")).unwrap(),
            "one, again"
        );
        for file in ["model.onnx", "manifest.json"] {
            r.store
                .delete(&ObjectPath::from(format!("models/m/1/{file}")))
                .await
                .unwrap();
        }
        let synced = r.sync().await.unwrap();
        assert_eq!(synced.removed, ["m/1"]);
        assert!(!one.exists());
        assert!(r.packages().join("m/2/model.onnx").is_file());
    }

    #[test]
    fn only_s3_addresses_with_a_bucket() {
        let cache = tempfile::tempdir().unwrap();
        assert!(RemoteModels::new("gs://b/p", cache.path()).is_err());
        assert!(RemoteModels::new("s3://", cache.path()).is_err());
        let r = RemoteModels::new("s3://bucket/some/prefix/", cache.path()).unwrap();
        assert_eq!(r.prefix.as_ref(), "some/prefix");
    }
}
