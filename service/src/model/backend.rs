//! Scoring backends behind one small trait, and a cheap look at an ONNX graph before loading.

mod onnxruntime;
mod tract;
mod trees;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

pub use onnxruntime::{OrtBackend, ort_library_path};
pub use tract::TractBackend;
pub use trees::{TreesBackend, Unsupported};

use super::ModelError;

/// Scores batches of feature rows.
///
/// `rows` holds `rows.len() / width` rows of `width` features, row-major. The backend writes one
/// prediction per row (the manifest's output column) to `out`, replacing its contents.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> BackendKind;
    fn score(&self, rows: &[f32], width: usize, out: &mut Vec<f32>) -> Result<(), ModelError>;

    /// Whether calls take turns (ONNX Runtime: one session behind a lock). The HTTP scorer
    /// scores a cheap request on the worker that holds it only for a backend that does not;
    /// for one that does, cheap requests go to its scoring task, which batches them: with
    /// ONNX Runtime, one-row requests scored each on its worker cost 16 % more CPU per request
    /// at 20,000 req/s than batches, which share out the per-call cost (BENCHMARKS.md, issue
    /// #20).
    fn takes_turns(&self) -> bool {
        false
    }

    /// Whether a call made now would wait for another one to finish. A hint, true or false
    /// only for the moment it is asked: the HTTP scoring task leaves a batch to the scoring
    /// thread rather than block its worker on a session another thread holds.
    fn busy(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// ONNX Runtime, loaded at run time from `libonnxruntime.so`.
    Ort,
    /// tract, pure Rust.
    Tract,
    /// The native tree-ensemble evaluator (`backend/trees.rs`), pure Rust.
    Trees,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ort => "ort",
            BackendKind::Tract => "tract",
            BackendKind::Trees => "trees",
        }
    }
}

/// Which output of the graph, and which column of it, is the prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSelector {
    pub name: String,
    pub column: usize,
}

/// A tensor's declared element type and dimensions (`None` for a symbolic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub is_f32: bool,
    pub dims: Option<Vec<Option<i64>>>,
}

/// What the graph declares, read from the protobuf without building a runtime model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// `domain:op_type` of every node, sub-graphs included.
    pub ops: BTreeSet<String>,
}

impl GraphInfo {
    pub fn parse(bytes: &[u8]) -> Result<Self, ModelError> {
        let proto: pb::ModelProto = tract_onnx::onnx()
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| ModelError::load("not a valid ONNX model", e))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| ModelError::load_msg("the model has no graph"))?;
        let initializers: BTreeSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|v| !initializers.contains(v.name.as_str()))
            .map(tensor_info)
            .collect();
        let outputs = graph.output.iter().map(tensor_info).collect();
        let mut ops = BTreeSet::new();
        collect_ops(graph, &mut ops, 0);
        Ok(Self {
            inputs,
            outputs,
            ops,
        })
    }

    /// Whether the graph has an ONNX-ML tree-ensemble op (the native backend's to try first).
    pub fn has_tree_ensemble(&self) -> bool {
        self.ops.iter().any(|op| {
            op.split_once(':')
                .is_some_and(|(domain, op_type)| trees::is_tree_op(domain, op_type))
        })
    }

    /// Ops tract has no implementation for.
    pub fn unsupported_by_tract(&self) -> Vec<String> {
        let registry = tract_onnx::onnx().op_register;
        self.ops
            .iter()
            .filter(|op| {
                let op_type = op.rsplit(':').next().unwrap_or(op);
                // tract's ML-domain tree classifier exists but is ~1000x slower than ONNX
                // Runtime on gradient-boosted trees (measured: 4.7 ms vs 6 µs per row).
                !registry.0.contains_key(op_type) || op_type.starts_with("TreeEnsemble")
            })
            .cloned()
            .collect()
    }
}

fn tensor_info(value: &pb::ValueInfoProto) -> TensorInfo {
    use pb::tensor_shape_proto::dimension::Value;
    let tensor = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => Some(t),
        _ => None,
    };
    TensorInfo {
        name: value.name.clone(),
        is_f32: tensor.is_some_and(|t| t.elem_type == pb::tensor_proto::DataType::Float as i32),
        dims: tensor.and_then(|t| t.shape.as_ref()).map(|shape| {
            shape
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(Value::DimValue(v)) if *v > 0 => Some(*v),
                    _ => None,
                })
                .collect()
        }),
    }
}

fn collect_ops(graph: &pb::GraphProto, ops: &mut BTreeSet<String>, depth: usize) {
    if depth > 16 {
        return; // pathological nesting: what we have is enough to decide
    }
    for node in &graph.node {
        ops.insert(format!("{}:{}", node.domain, node.op_type));
        for attr in &node.attribute {
            if let Some(g) = &attr.g {
                collect_ops(g, ops, depth + 1);
            }
            for g in &attr.graphs {
                collect_ops(g, ops, depth + 1);
            }
        }
    }
}

/// Copies column `column` of a row-major `[rows, k]` output (or a `[rows]` one) into `out`.
pub(crate) fn select_column(
    data: &[f32],
    shape: &[usize],
    rows: usize,
    column: usize,
    out: &mut Vec<f32>,
) -> Result<(), ModelError> {
    out.clear();
    let k = match shape {
        [n] if *n == rows => 1,
        [n, k] if *n == rows => *k,
        _ => {
            return Err(ModelError::Output(format!(
                "output shape {shape:?} for a batch of {rows} rows"
            )));
        }
    };
    if column >= k {
        return Err(ModelError::Output(format!(
            "column {column} of an output with {k} columns"
        )));
    }
    out.extend(data.iter().skip(column).step_by(k).take(rows));
    Ok(())
}
