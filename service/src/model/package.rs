//! Loading a model package: every check of `models/README.md`, in order, before anything serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fleet_features::FeatureSet;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::ModelError;
use super::backend::{
    Backend, BackendKind, GraphInfo, OrtBackend, OutputSelector, TractBackend, TreesBackend,
};
use super::manifest::Manifest;
use super::profile::{MAX_PROFILE_BYTES, Profile};

/// Model files larger than this are refused before they are read.
const MAX_MODEL_BYTES: u64 = 1 << 30;
const MAX_GOLDEN_BYTES: u64 = 64 << 20;
const MAX_GOLDEN_ROWS: usize = 1000;

/// A validated model, ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub feature_set: &'static FeatureSet,
    /// SHA-256 of the model file (as checked against the manifest).
    pub sha256: String,
    pub backend: Box<dyn Backend>,
    pub loaded_at: SystemTime,
    /// The drift reference (`profile.json`, checked), if the package has one.
    pub profile: Option<Arc<Profile>>,
    /// What scoring one row alone costs: the fastest of [`COST_CALLS`] one-row calls on the
    /// golden rows at load. The HTTP scorer keeps cheap requests off its thread with it.
    pub row_cost: Duration,
}

impl LoadedModel {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    /// `name/version`, as logs, errors and dead letters name a model.
    pub fn label(&self) -> String {
        format!("{}/{}", self.name(), self.version())
    }

    pub fn width(&self) -> usize {
        self.manifest.input.features.len()
    }

    /// Scores `rows` (row-major, `width()` features each) into `out`, one value per row.
    pub fn score(&self, rows: &[f32], out: &mut Vec<f32>) -> Result<(), ModelError> {
        let width = self.width();
        if !rows.len().is_multiple_of(width) {
            return Err(ModelError::scoring_msg(format!(
                "{} values are not whole rows of {width}",
                rows.len()
            )));
        }
        if rows.is_empty() {
            out.clear();
            return Ok(());
        }
        self.backend.score(rows, width, out)
    }
}

/// `golden.json`: input rows and the outputs the model must give on them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Golden {
    pub(crate) inputs: Vec<Vec<f32>>,
    pub(crate) outputs: Vec<f32>,
}

/// Loads and validates the package in `dir`: manifest, paths, checksum, feature set, drift
/// profile (checksum and contents), graph inputs and outputs, backend, golden set, finite
/// outputs. Any failure is the reason the
/// version is rejected.
pub fn load(dir: &Path) -> Result<LoadedModel, ModelError> {
    let manifest = Manifest::read(dir)?;
    let dir = dir.canonicalize().map_err(|e| ModelError::io(dir, e))?;
    check_dir_names(&dir, &manifest)?;

    let model_path = inside(&dir, &manifest.model_file)?;
    let golden_path = inside(&dir, &manifest.golden.file)?;
    let model = read_limited(&model_path, MAX_MODEL_BYTES)?;
    let in_model = |e: ModelError| e.in_file(&manifest.model_file);
    let sha256 = checksum(&manifest.model_file, &model, &manifest.sha256)?;

    let feature_set = FeatureSet::by_name(&manifest.feature_set.name)
        .map_err(|e| ModelError::Features(e.to_string()))?;
    if manifest.feature_set.version != feature_set.version() {
        return Err(ModelError::Features(format!(
            "trained on {} version {}, the service computes version {}",
            feature_set.name(),
            manifest.feature_set.version,
            feature_set.version()
        )));
    }
    if manifest.input.features != feature_set.names() {
        let diff = first_difference(&manifest.input.features, feature_set.names());
        return Err(ModelError::Features(format!(
            "input.features differ from {}: {diff}",
            feature_set.name()
        )));
    }

    let profile = match &manifest.profile {
        Some(spec) => {
            let bytes = read_limited(&inside(&dir, &spec.file)?, MAX_PROFILE_BYTES)?;
            checksum(&spec.file, &bytes, &spec.sha256)?;
            Some(Arc::new(Profile::parse(&bytes, &manifest)?))
        }
        None => None,
    };

    let graph = GraphInfo::parse(&model).map_err(in_model)?;
    check_graph(&graph, &manifest)?;
    let width = manifest.input.features.len();
    let selector = OutputSelector {
        name: manifest.output.name.clone(),
        column: manifest.output.column,
    };
    let backend = backend_for(&manifest, &graph, &model, width, selector).map_err(in_model)?;

    let mut loaded = LoadedModel {
        manifest,
        dir,
        feature_set,
        sha256,
        backend,
        loaded_at: SystemTime::now(),
        profile,
        row_cost: Duration::ZERO,
    };
    let golden_rows = check_golden(&loaded, &golden_path)?;
    loaded.row_cost = one_row_cost(&loaded, &golden_rows);
    Ok(loaded)
}

/// One-row calls timed at load; the fastest is the cost (the first warms the caches, a
/// preempted one is not the model's cost).
const COST_CALLS: usize = 8;

/// The fastest of [`COST_CALLS`] one-row calls, on successive rows of `rows`.
fn one_row_cost(model: &LoadedModel, rows: &[f32]) -> Duration {
    let mut out = Vec::with_capacity(1);
    rows.chunks_exact(model.width())
        .cycle()
        .take(COST_CALLS)
        .map(|row| {
            let started = Instant::now();
            let _ = model.score(row, &mut out);
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// The manifest's backend, else the native trees for a tree ensemble, else tract when it runs
/// every op, else ONNX Runtime. A model the trees backend cannot run goes to ONNX Runtime, with
/// the reason logged.
fn backend_for(
    manifest: &Manifest,
    graph: &GraphInfo,
    model: &[u8],
    width: usize,
    selector: OutputSelector,
) -> Result<Box<dyn Backend>, ModelError> {
    let input = &manifest.input.name;
    let kind = match manifest.backend {
        Some(kind) => kind,
        None if graph.has_tree_ensemble() => BackendKind::Trees,
        None if graph.unsupported_by_tract().is_empty() => BackendKind::Tract,
        None => BackendKind::Ort,
    };
    Ok(match kind {
        BackendKind::Trees => match TreesBackend::new(model, input, width, &selector) {
            Ok(trees) => {
                if let Some(why) = trees.slow_reason() {
                    tracing::info!(model = %manifest.name, version = %manifest.version, trees = trees.trees(),
                        "native trees backend walks the trees one by one: {why}");
                }
                Box::new(trees)
            }
            Err(why) => {
                tracing::warn!(model = %manifest.name, version = %manifest.version,
                    "native trees backend cannot run this model, ONNX Runtime scores it: {why}");
                Box::new(OrtBackend::new(model, input, selector)?)
            }
        },
        BackendKind::Ort => Box::new(OrtBackend::new(model, input, selector)?),
        BackendKind::Tract => Box::new(TractBackend::new(model, input, width, selector)?),
    })
}

/// The SHA-256 of `bytes` (the package's `file`), if it is the manifest's `expected`.
fn checksum(file: &str, bytes: &[u8], expected: &str) -> Result<String, ModelError> {
    let actual = hex(&Sha256::digest(bytes));
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(ModelError::Checksum(Box::new(super::ChecksumMismatch {
            file: file.to_owned(),
            expected: expected.to_ascii_lowercase(),
            actual,
        })));
    }
    Ok(actual)
}

/// The package must sit at `<root>/<name>/<version>/`.
fn check_dir_names(dir: &Path, manifest: &Manifest) -> Result<(), ModelError> {
    let version_dir = dir.file_name().and_then(|n| n.to_str());
    let name_dir = dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    if version_dir != Some(manifest.version.as_str()) || name_dir != Some(manifest.name.as_str()) {
        return Err(ModelError::Manifest(format!(
            "name/version {}/{} do not match the directories {}/{}",
            manifest.name,
            manifest.version,
            name_dir.unwrap_or("?"),
            version_dir.unwrap_or("?")
        )));
    }
    Ok(())
}

/// Resolves a file named by the manifest, refusing anything that leaves the package directory
/// (separators, `..`, absolute paths, symlinks pointing elsewhere).
fn inside(dir: &Path, file: &str) -> Result<PathBuf, ModelError> {
    let plain = !file.is_empty()
        && !file.contains(['/', '\\'])
        && file != "."
        && file != ".."
        && !file.contains('\0');
    if !plain {
        return Err(ModelError::PathOutsidePackage {
            file: file.to_owned(),
            resolved: None,
        });
    }
    let path = dir.join(file);
    let resolved = path.canonicalize().map_err(|e| ModelError::io(&path, e))?;
    if resolved.parent() != Some(dir) {
        return Err(ModelError::PathOutsidePackage {
            file: file.to_owned(),
            resolved: Some(resolved.display().to_string()),
        });
    }
    Ok(resolved)
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
    if !meta.is_file() {
        return Err(ModelError::io(
            path,
            std::io::Error::other("not a regular file"),
        ));
    }
    if meta.len() > limit {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        return Err(ModelError::load_msg(format!(
            "{name} is {} bytes, the limit is {limit}",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| ModelError::io(path, e))
}

fn check_graph(graph: &GraphInfo, manifest: &Manifest) -> Result<(), ModelError> {
    let width = manifest.input.features.len() as i64;
    if graph.inputs.len() != 1 {
        return Err(ModelError::Input(format!(
            "the graph has {} inputs; exactly one is supported",
            graph.inputs.len()
        )));
    }
    let input = &graph.inputs[0];
    if input.name != manifest.input.name {
        return Err(ModelError::Input(format!(
            "the graph's input is `{}`, the manifest says `{}`",
            input.name, manifest.input.name
        )));
    }
    if !input.is_f32 {
        return Err(ModelError::Input(format!(
            "`{}` is not a float32 tensor",
            input.name
        )));
    }
    match input.dims.as_deref() {
        Some([_, Some(w)]) if *w == width => {}
        Some([_, None]) => {}
        dims => {
            return Err(ModelError::Input(format!(
                "`{}` has shape {}, expected [N, {width}]",
                input.name,
                show_dims(dims)
            )));
        }
    }
    let output = graph
        .outputs
        .iter()
        .find(|o| o.name == manifest.output.name)
        .ok_or_else(|| {
            let names: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
            ModelError::Output(format!(
                "no output `{}` (the graph has {names:?})",
                manifest.output.name
            ))
        })?;
    if !output.is_f32 {
        return Err(ModelError::Output(format!(
            "`{}` is not a float32 tensor",
            output.name
        )));
    }
    Ok(())
}

fn show_dims(dims: Option<&[Option<i64>]>) -> String {
    match dims {
        None => "unknown".to_owned(),
        Some(d) => format!(
            "[{}]",
            d.iter()
                .map(|x| x.map_or("?".to_owned(), |v| v.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Checks the golden set's outputs; returns its input rows (row-major).
fn check_golden(model: &LoadedModel, path: &Path) -> Result<Vec<f32>, ModelError> {
    let bytes = read_limited(path, MAX_GOLDEN_BYTES)?;
    let golden: Golden =
        serde_json::from_slice(&bytes).map_err(|e| ModelError::Golden(e.to_string()))?;
    let width = model.width();
    if golden.inputs.is_empty() || golden.inputs.len() > MAX_GOLDEN_ROWS {
        return Err(ModelError::Golden(format!(
            "{} rows; between 1 and {MAX_GOLDEN_ROWS} are required",
            golden.inputs.len()
        )));
    }
    if golden.inputs.len() != golden.outputs.len() {
        return Err(ModelError::Golden(format!(
            "{} input rows but {} outputs",
            golden.inputs.len(),
            golden.outputs.len()
        )));
    }
    if let Some(i) = golden.inputs.iter().position(|r| r.len() != width) {
        return Err(ModelError::Golden(format!(
            "row {i} has {} values, the model takes {width}",
            golden.inputs[i].len()
        )));
    }
    let rows: Vec<f32> = golden.inputs.concat();
    let mut got = Vec::with_capacity(golden.outputs.len());
    model.score(&rows, &mut got)?;
    if got.len() != golden.outputs.len() {
        return Err(ModelError::Output(format!(
            "{} predictions for {} rows",
            got.len(),
            golden.outputs.len()
        )));
    }
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        return Err(ModelError::NonFinite(format!(
            "golden row {i} scores {}",
            got[i]
        )));
    }
    let tolerance = model.manifest.golden.tolerance;
    for (i, (g, want)) in got.iter().zip(&golden.outputs).enumerate() {
        let diff = f64::from(*g) - f64::from(*want);
        if diff.is_nan() || diff.abs() > tolerance {
            return Err(ModelError::Golden(format!(
                "row {i}: the model gives {g}, the golden set expects {want} (tolerance {tolerance})"
            )));
        }
    }
    Ok(rows)
}

fn first_difference(got: &[String], want: &[String]) -> String {
    if got.len() != want.len() {
        return format!("{} features, expected {}", got.len(), want.len());
    }
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!("feature {i} is `{}`, expected `{}`", got[i], want[i]),
        None => "identical".to_owned(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
