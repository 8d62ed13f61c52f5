//! Models: packages on disk, scoring backends, validation and the hot-swapping registry.
//!
//! A package (`models/<name>/<version>/`, see `models/README.md`) is turned into a
//! [`LoadedModel`] only after every check passes ([`package::load`]); the [`Registry`] keeps
//! the serving and shadow model of each name behind an `ArcSwap`, so a scorer that loaded a
//! model finishes its batch on it while a new version is swapped in.
//!
//! # Layout
//!
//! - [`manifest`], [`package`]: the package format and loading it with every check.
//! - [`backend`]: ONNX Runtime and tract behind one [`Backend`].
//! - [`validate`]: validation in a child process (`fleetscore model validate`).
//! - [`registry`]: scanning the directory, choosing versions (pins, stages, routes), its watch
//!   thread; [`serving`]: what scores a name (serving + shadow); [`status`]: what each version
//!   is, as the API shows it; [`versions`]: the order of versions.

pub mod backend;
pub mod manifest;
pub mod package;
pub mod registry;
pub mod serving;
pub mod status;
pub mod validate;
pub mod versions;

pub use backend::{Backend, BackendKind};
pub use manifest::{Manifest, Stage};
pub use package::LoadedModel;
pub use registry::{Registry, RegistryConfig};
pub use serving::{ModelScores, ServingSet};
pub use status::{ModelState, ModelStatus};

/// Why a model version cannot serve, or why scoring failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("a file of the package is outside its directory: {0}")]
    PathOutsidePackage(String),
    #[error("model file changed or incomplete: sha256 is {actual}, the manifest says {expected}")]
    Checksum { expected: String, actual: String },
    #[error("files changed less than a moment ago (still being copied?): {0}")]
    Incomplete(String),
    #[error("backend {backend} is not available: {message}")]
    BackendUnavailable {
        backend: &'static str,
        message: String,
    },
    #[error("the model does not load: {0}")]
    Load(String),
    #[error("input does not match the manifest: {0}")]
    Input(String),
    #[error("features do not match the service's: {0}")]
    Features(String),
    #[error("output does not match the manifest: {0}")]
    Output(String),
    #[error("golden set: {0}")]
    Golden(String),
    #[error("non-finite output: {0}")]
    NonFinite(String),
    #[error("validator process: {0}")]
    Validator(String),
    #[error("scoring failed: {0}")]
    Scoring(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

impl ModelError {
    /// Stable snake_case class, for metrics labels and `GET /models`.
    pub fn class(&self) -> &'static str {
        match self {
            ModelError::Manifest(_) => "manifest",
            ModelError::PathOutsidePackage(_) => "path_outside_package",
            ModelError::Checksum { .. } => "checksum_mismatch",
            ModelError::Incomplete(_) => "incomplete",
            ModelError::BackendUnavailable { .. } => "backend_unavailable",
            ModelError::Load(_) => "load_failed",
            ModelError::Input(_) => "input_mismatch",
            ModelError::Features(_) => "feature_mismatch",
            ModelError::Output(_) => "output_mismatch",
            ModelError::Golden(_) => "golden_mismatch",
            ModelError::NonFinite(_) => "non_finite_output",
            ModelError::Validator(_) => "validator_failed",
            ModelError::Scoring(_) => "scoring_failed",
            ModelError::Io { .. } => "io",
        }
    }

    pub(crate) fn io(path: &std::path::Path, err: &std::io::Error) -> Self {
        ModelError::Io {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }
}
