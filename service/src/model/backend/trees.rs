//! A native backend for tree ensembles (`ai.onnx.ml` `TreeEnsembleRegressor` and
//! `TreeEnsembleClassifier`, and opset 5's `TreeEnsemble`): the trees are read from the ONNX graph at load time, laid out for
//! branch-free evaluation, and scored in Rust with the same float operations, in the same order,
//! as ONNX Runtime, so the outputs are ONNX Runtime's to the bit (the parity tests hold it to
//! that on a corpus of LightGBM, XGBoost and scikit-learn exports).
//!
//! Why by hand: tree ensembles are most of the published models and most of the service's CPU
//! per event, and no maintained Rust crate evaluates ONNX tree ensembles (tract's is about 1,000
//! times slower than ONNX Runtime on gradient-boosted trees; lleaves and treelite compile
//! LightGBM's own text format through LLVM or C, not ONNX graphs).
//!
//! Layout: [`graph`] finds the ensemble behind the selected output, [`ensemble`] reads its
//! attributes into trees with ONNX Runtime's meaning, [`packed`] lays them out for the AVX2
//! kernels of `simd`, [`compiled`] scores rows with them (or walks the trees), [`aggregate`]
//! turns the leaves reached into the output row.

mod aggregate;
mod compiled;
mod ensemble;
mod graph;
mod packed;
#[cfg(target_arch = "x86_64")]
mod simd;

use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use super::{Backend, BackendKind, OutputSelector};
use crate::model::ModelError;
use compiled::Compiled;
use ensemble::Ensemble;

/// The `ai.onnx.ml` ops this backend reads (opsets 1-3, then opset 5's single op).
pub(crate) const TREE_OPS: [&str; 3] = [
    "TreeEnsembleRegressor",
    "TreeEnsembleClassifier",
    "TreeEnsemble",
];

/// The domain of [`TREE_OPS`].
pub(crate) const TREE_DOMAIN: &str = "ai.onnx.ml";

/// Whether a node of this domain and type is one of [`TREE_OPS`].
pub(crate) fn is_tree_op(domain: &str, op_type: &str) -> bool {
    domain == TREE_DOMAIN && TREE_OPS.contains(&op_type)
}

/// Why a model is not for this backend: it then runs on ONNX Runtime, with this logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unsupported(pub String);

#[derive(Debug)]
pub struct TreesBackend {
    compiled: Compiled,
    column: usize,
    /// Constant multiplications the graph applies after the ensemble.
    scales: Vec<f32>,
}

impl TreesBackend {
    /// Compiles the ensemble behind `output` for rows of `width` features read from `input`.
    pub fn new(
        model: &[u8],
        input: &str,
        width: usize,
        output: &OutputSelector,
    ) -> Result<Self, Unsupported> {
        Self::build(model, input, width, output, true)
    }

    /// The same model with every row walked tree by tree, as on a processor without AVX2 (the
    /// parity tests hold that path to ONNX Runtime too).
    pub fn walking(
        model: &[u8],
        input: &str,
        width: usize,
        output: &OutputSelector,
    ) -> Result<Self, Unsupported> {
        Self::build(model, input, width, output, false)
    }

    fn build(
        model: &[u8],
        input: &str,
        width: usize,
        output: &OutputSelector,
        kernel: bool,
    ) -> Result<Self, Unsupported> {
        let proto: pb::ModelProto = tract_onnx::onnx()
            .proto_model_for_read(&mut &*model)
            .map_err(|e| Unsupported(format!("not a valid ONNX model: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| Unsupported("the model has no graph".into()))?;
        let path = graph::trace(graph, input, &output.name)?;
        let ensemble = match path.node.op_type.as_str() {
            "TreeEnsemble" => Ensemble::from_v5(path.node)?,
            _ => Ensemble::from_node(path.node)?,
        };
        if ensemble.max_feature as usize >= width {
            return Err(Unsupported(format!(
                "a branch reads feature {} of rows of {width}",
                ensemble.max_feature
            )));
        }
        if output.column >= ensemble.outputs {
            return Err(Unsupported(format!(
                "column {} of an output with {} columns",
                output.column, ensemble.outputs
            )));
        }
        Ok(Self {
            compiled: Compiled::new(ensemble, kernel),
            column: output.column,
            scales: path.scales,
        })
    }

    /// Why the branch-free layout does not apply to this model (it is then walked tree by tree,
    /// as ONNX Runtime does); `None` when it does.
    pub fn slow_reason(&self) -> Option<&str> {
        self.compiled.slow_reason.as_deref()
    }

    pub fn trees(&self) -> usize {
        self.compiled.ensemble.trees.len()
    }
}

impl Backend for TreesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Trees
    }

    fn score(&self, rows: &[f32], width: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
        let n = rows.len() / width;
        let columns = self.compiled.ensemble.outputs;
        out.clear();
        if columns == 1 {
            out.resize(n, 0.0);
            self.compiled.score(rows, width, out);
        } else {
            let mut all = vec![0.0f32; n * columns];
            self.compiled.score(rows, width, &mut all);
            out.extend(all.iter().skip(self.column).step_by(columns));
        }
        for &scale in &self.scales {
            out.iter_mut().for_each(|v| *v *= scale);
        }
        Ok(())
    }
}
