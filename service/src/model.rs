//! Models: packages on disk, scoring backends, validation and the hot-swapping registry.
//!
//! A package (`models/<name>/<version>/`, see `models/README.md`) is turned into a
//! [`LoadedModel`] only after every check passes ([`package::load`]); the [`Registry`] keeps
//! the serving and shadow model of each name behind an `ArcSwap`, so a scorer that loaded a
//! model finishes its batch on it while a new version is swapped in.
//!
//! # Layout
//!
//! - [`manifest`], [`package`]: the package format and loading it with every check;
//!   [`profile`]: the package's drift reference (`profile.json`).
//! - [`backend`]: ONNX Runtime and tract behind one [`Backend`].
//! - [`validate`]: validation in a child process (`fleetscore model validate`).
//! - [`interval`]: prediction intervals from two quantile models of the registry.
//! - [`registry`]: scanning the directory, choosing versions (pins, stages, routes), its watch
//!   thread; [`serving`]: what scores a name (serving + shadow); [`status`]: what each version
//!   is, as the API shows it; [`versions`]: the order of versions.

use std::path::Path;
use std::sync::Arc;

pub mod backend;
pub mod interval;
pub mod manifest;
pub mod package;
pub mod profile;
pub mod registry;
pub mod remote;
pub mod serving;
pub mod status;
pub mod validate;
pub mod versions;

pub use backend::{Backend, BackendKind};
pub use manifest::{Manifest, Stage};
pub use package::LoadedModel;
pub use profile::Profile;
pub use registry::{Registry, RegistryConfig};
pub use serving::{ModelScores, ServingSet};
pub use status::{ModelState, ModelStatus};

/// The error underneath a [`ModelError`], kept (not flattened to text) so the log can walk the
/// chain and callers can look at it (an I/O error's kind, say); shared so that `ModelError`
/// stays `Clone` (a failed batch's error goes to every row of it).
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Why a model version cannot serve, or why scoring failed. `Display` gives the context and
/// the underlying error's text on one line, paths included (what logs and dead letters show);
/// `source()` gives the underlying error itself; [`ModelError::reason`] a short sentence with
/// neither paths nor a backend's own words (what `GET /models` shows).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("a file of the package is outside its directory: `{file}` {}",
        .resolved.as_deref().map_or("is not a plain file name".to_owned(), |to| format!("resolves to {to}")))]
    PathOutsidePackage {
        file: String,
        /// Where it leads (a symlink's target), if it is a plain name at all.
        resolved: Option<String>,
    },
    /// Boxed: a scoring error travels with every row of a failed batch, so the enum stays small.
    #[error("{} changed or incomplete: sha256 is {}, the manifest says {}", .0.file, .0.actual, .0.expected)]
    Checksum(Box<ChecksumMismatch>),
    #[error("files changed less than a moment ago (still being copied?): {0}")]
    Incomplete(String),
    #[error("backend {backend} is not available: {message}")]
    BackendUnavailable {
        backend: &'static str,
        message: String,
    },
    #[error("the model does not load: {}", joined(.context, .source.as_ref()))]
    Load {
        context: String,
        #[source]
        source: Option<Source>,
    },
    #[error("input does not match the manifest: {0}")]
    Input(String),
    #[error("features do not match the service's: {0}")]
    Features(String),
    #[error("output does not match the manifest: {0}")]
    Output(String),
    #[error("golden set: {0}")]
    Golden(String),
    /// The drift reference profile does not parse or does not fit the manifest.
    #[error("profile: {0}")]
    Profile(String),
    #[error("non-finite output: {0}")]
    NonFinite(String),
    #[error("validator process: {what}{}", .stderr.as_deref().map(|s| format!(": {s}")).unwrap_or_default())]
    Validator {
        what: String,
        /// The end of the child's standard error, for the log.
        stderr: Option<String>,
    },
    #[error("scoring failed: {}", joined(.context, .source.as_ref()))]
    Scoring {
        context: String,
        #[source]
        source: Option<Source>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// A package file whose SHA-256 is not the manifest's.
#[derive(Debug, Clone)]
pub struct ChecksumMismatch {
    /// The package's file (`model.onnx`, `profile.json`).
    pub file: String,
    pub expected: String,
    pub actual: String,
}

impl ModelError {
    /// Stable snake_case class, for metrics labels and `GET /models`.
    pub fn class(&self) -> &'static str {
        match self {
            ModelError::Manifest(_) => "manifest",
            ModelError::PathOutsidePackage { .. } => "path_outside_package",
            ModelError::Checksum(_) => "checksum_mismatch",
            ModelError::Incomplete(_) => "incomplete",
            ModelError::BackendUnavailable { .. } => "backend_unavailable",
            ModelError::Load { .. } => "load_failed",
            ModelError::Input(_) => "input_mismatch",
            ModelError::Features(_) => "feature_mismatch",
            ModelError::Output(_) => "output_mismatch",
            ModelError::Golden(_) => "golden_mismatch",
            ModelError::Profile(_) => "profile_invalid",
            ModelError::NonFinite(_) => "non_finite_output",
            ModelError::Validator { .. } => "validator_failed",
            ModelError::Scoring { .. } => "scoring_failed",
            ModelError::Io { .. } => "io",
        }
    }

    /// Why a version is rejected, for clients: one sentence naming files relative to the
    /// package in `package` and none of the backend's own words (the protobuf decoder's, ONNX
    /// Runtime's, a validator child's standard error) — `Display` has those, for the log.
    pub fn reason(&self, package: &Path) -> String {
        match self {
            ModelError::PathOutsidePackage { file, resolved } => match resolved {
                Some(_) => format!("`{file}` leads outside the package directory"),
                None => format!("`{file}` is not a plain file name"),
            },
            ModelError::BackendUnavailable { backend, .. } => {
                format!("backend {backend} is not available on this instance")
            }
            // The context is ours (which file, which step); the source is the backend's.
            ModelError::Load { context, .. } => format!("the model does not load: {context}"),
            ModelError::Scoring { context, .. } if context.is_empty() => {
                "scoring failed in the backend".to_owned()
            }
            ModelError::Scoring { context, .. } => format!("scoring failed: {context}"),
            ModelError::Validator { what, .. } => format!("validator process: {what}"),
            ModelError::Io { path, source } => match relative_to(Path::new(path), package) {
                Some(file) => format!("{}: {source}", file.display()),
                None => format!("I/O error: {source}"),
            },
            ModelError::Manifest(_)
            | ModelError::Checksum(_)
            | ModelError::Incomplete(_)
            | ModelError::Input(_)
            | ModelError::Features(_)
            | ModelError::Output(_)
            | ModelError::Golden(_)
            | ModelError::Profile(_)
            | ModelError::NonFinite(_) => self.to_string(),
        }
    }

    /// The same error, about `file` (a name in the package): a load failure says which file.
    pub(crate) fn in_file(self, file: &str) -> Self {
        match self {
            ModelError::Load { context, source } => ModelError::Load {
                context: if context.is_empty() {
                    file.to_owned()
                } else {
                    format!("{file}: {context}")
                },
                source,
            },
            other => other,
        }
    }

    pub(crate) fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        ModelError::Io {
            path: path.display().to_string(),
            source: Arc::new(err),
        }
    }

    /// The model does not load because of `source`.
    pub(crate) fn load(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ModelError::Load {
            context: context.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    /// The model does not load, for a reason of our own.
    pub(crate) fn load_msg(context: impl Into<String>) -> Self {
        ModelError::Load {
            context: context.into(),
            source: None,
        }
    }

    /// Scoring failed because of `source`.
    pub(crate) fn scoring(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ModelError::Scoring {
            context: context.into(),
            source: Some(Arc::from(source.into())),
        }
    }

    /// Scoring failed, for a reason of our own.
    pub(crate) fn scoring_msg(context: impl Into<String>) -> Self {
        ModelError::Scoring {
            context: context.into(),
            source: None,
        }
    }
}

/// Equal when of the same class with the same text (the sources are not comparable).
impl PartialEq for ModelError {
    fn eq(&self, other: &Self) -> bool {
        self.class() == other.class() && self.to_string() == other.to_string()
    }
}

/// `path` relative to the package directory `package` (as given or canonical), if inside it.
fn relative_to<'a>(path: &'a Path, package: &Path) -> Option<&'a Path> {
    path.strip_prefix(package).ok().or_else(|| {
        let canonical = package.canonicalize().ok()?;
        path.strip_prefix(canonical).ok()
    })
}

/// `context: source: its source...`, the whole chain on one line.
fn joined(context: &str, source: Option<&Source>) -> String {
    let mut text = context.to_owned();
    let mut next: Option<&(dyn std::error::Error + 'static)> =
        source.map(|s| s.as_ref() as &(dyn std::error::Error + 'static));
    while let Some(error) = next {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&error.to_string());
        next = error.source();
    }
    text
}
