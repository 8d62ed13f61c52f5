//! `manifest.json`: what a model package says about itself (format in `models/README.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::backend::BackendKind;

pub const MANIFEST_FILE: &str = "manifest.json";
/// Manifests are small; anything bigger is not one.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Candidate for producing the predictions.
    Serving,
    /// Scores the same rows beside the serving model; never changes a prediction.
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub version: String,
    pub model_file: String,
    pub sha256: String,
    #[serde(default)]
    pub backend: Option<BackendKind>,
    pub stage: Stage,
    pub feature_set: FeatureSetRef,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub golden: GoldenSpec,
    /// The drift reference profile (`profile.json`), if the package has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileSpec>,
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    #[serde(default)]
    pub column: usize,
    pub meaning: String,
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenSpec {
    pub file: String,
    pub tolerance: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    pub file: String,
    /// SHA-256 of `file`.
    pub sha256: String,
}

/// 64 hex digits.
fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Manifest {
    /// Reads and checks `dir/manifest.json` on its own (files are checked by the loader).
    pub fn read(dir: &std::path::Path) -> Result<Self, ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let meta = std::fs::metadata(&path).map_err(|e| ModelError::io(&path, e))?;
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(ModelError::Manifest(format!(
                "{} bytes, the limit is {MAX_MANIFEST_BYTES}",
                meta.len()
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ModelError::Manifest(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Manifest(m));
        if self.format != 1 {
            return bad(format!(
                "format {} is not supported (expected 1)",
                self.format
            ));
        }
        let name_ok = |s: &str, extra: &[u8]| {
            (1..=64).contains(&s.len())
                && s.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || extra.contains(&b)
                })
        };
        if !name_ok(&self.name, b"") {
            return bad(format!("name `{}` is not 1-64 of [a-z0-9-]", self.name));
        }
        let version_ok = (1..=64).contains(&self.version.len())
            && self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !self.version.starts_with('.');
        if !version_ok {
            return bad(format!(
                "version `{}` is not 1-64 of [A-Za-z0-9._-]",
                self.version
            ));
        }
        if !is_sha256(&self.sha256) {
            return bad("sha256 must be 64 hex digits".to_owned());
        }
        if self.profile.as_ref().is_some_and(|p| !is_sha256(&p.sha256)) {
            return bad("profile.sha256 must be 64 hex digits".to_owned());
        }
        if !(self.golden.tolerance.is_finite() && self.golden.tolerance >= 0.0) {
            return bad("golden.tolerance must be a non-negative number".to_owned());
        }
        if self.input.features.is_empty() {
            return bad("input.features is empty".to_owned());
        }
        Ok(())
    }
}
