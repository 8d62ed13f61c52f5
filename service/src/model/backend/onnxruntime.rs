//! ONNX Runtime through `ort`, with the shared library loaded at run time.
//!
//! The library is found from `ORT_DYLIB_PATH`, else in the project's Python environment (the
//! `onnxruntime` wheel ships `libonnxruntime.so.<version>`): `$FLEETSCORE_VENV`, then `.venv`
//! in the working directory or above the executable. ONNX Runtime allows one environment per
//! process, so it is initialised once and shared.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, TryLockError};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use super::{Backend, BackendKind, OutputSelector, select_column};
use crate::model::ModelError;

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// Where `libonnxruntime.so` is, or why it cannot be found.
pub fn ort_library_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ORT_DYLIB_PATH={} does not exist", path.display()))
        };
    }
    let mut venvs: Vec<PathBuf> = std::env::var_os("FLEETSCORE_VENV")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(cwd) = std::env::current_dir() {
        venvs.extend(cwd.ancestors().map(|d| d.join(".venv")));
    }
    if let Ok(exe) = std::env::current_exe() {
        venvs.extend(exe.ancestors().skip(1).map(|d| d.join(".venv")));
    }
    for venv in &venvs {
        if let Some(found) = find_in_venv(venv) {
            return Ok(found);
        }
    }
    Err(
        "libonnxruntime.so not found: set ORT_DYLIB_PATH, or install the Python environment \
         (scripts/python-env.sh) whose onnxruntime wheel ships it"
            .to_owned(),
    )
}

fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(lib).ok()?.flatten() {
        let capi = entry.path().join("site-packages/onnxruntime/capi");
        let Ok(files) = std::fs::read_dir(&capi) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            if name.to_string_lossy().starts_with("libonnxruntime.so") {
                return Some(file.path());
            }
        }
    }
    None
}

fn environment() -> Result<&'static Environment, ModelError> {
    let env = ENVIRONMENT.get_or_init(|| {
        let path = ort_library_path()?;
        let builder = ort::init_from(&path).map_err(|e| {
            let detail = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{e}{detail}")
        })?;
        builder
            .with_name("fleetscore")
            .build()
            .map_err(|e| format!("initialising {}: {e}", path.display()))
    });
    env.as_ref()
        .map_err(|message| ModelError::BackendUnavailable {
            backend: "ort",
            message: message.clone(),
        })
}

/// A session per model. `Session::run` needs `&mut`, so concurrent callers take turns; the
/// streaming path scores from one thread per partition set, so the lock is uncontended there.
#[derive(Debug)]
pub struct OrtBackend {
    session: Mutex<Session>,
    input: String,
    output: OutputSelector,
}

impl OrtBackend {
    pub fn new(model: &[u8], input: &str, output: OutputSelector) -> Result<Self, ModelError> {
        let env = environment()?;
        let session = build_session(env, model)
            .map_err(|e| ModelError::load("ONNX Runtime cannot load it", e))?;
        if !session.inputs().iter().any(|i| i.name() == input) {
            return Err(ModelError::Input(format!(
                "ONNX Runtime finds no input `{input}`"
            )));
        }
        if !session.outputs().iter().any(|o| o.name() == output.name) {
            return Err(ModelError::Output(format!(
                "ONNX Runtime finds no output `{}`",
                output.name
            )));
        }
        Ok(Self {
            session: Mutex::new(session),
            input: input.to_owned(),
            output,
        })
    }
}

fn build_session(env: &Environment, model: &[u8]) -> ort::Result<Session> {
    Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_intra_threads(1)?
        .with_inter_threads(1)?
        .commit_from_memory(model)
}

impl Backend for OrtBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ort
    }

    fn score(&self, rows: &[f32], width: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
        let n = rows.len() / width;
        let scoring = |e: ort::Error| ModelError::scoring("", e);
        let tensor = TensorRef::from_array_view(([n, width], rows)).map_err(scoring)?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| ModelError::scoring_msg("a previous scoring call panicked"))?;
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(scoring)?;
        let (shape, data) = outputs[self.output.name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Output(e.to_string()))?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        select_column(data, &shape, n, self.output.column, out)
    }

    fn takes_turns(&self) -> bool {
        true
    }

    fn busy(&self) -> bool {
        matches!(self.session.try_lock(), Err(TryLockError::WouldBlock))
    }
}
