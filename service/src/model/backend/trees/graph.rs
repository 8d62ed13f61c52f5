//! Which tree-ensemble node computes the selected output, and what the graph does to it after.
//!
//! Exporters put a few nodes around the ensemble: `Identity` renames, onnxmltools multiplies a
//! LightGBM classifier's probabilities by a constant 1, others `Cast` the label. Only the path
//! from the graph's input to the selected output matters; on it this backend accepts the
//! ensemble itself, `Identity`, `Cast` to float and `Mul` by a one-element float constant (done
//! in float, as ONNX Runtime does). Anything else on the path, and the model stays with ONNX
//! Runtime.

use std::collections::HashMap;

use tract_onnx::pb;

use super::Unsupported;

/// The selected output, traced back to its ensemble.
#[derive(Debug)]
pub(super) struct Path<'a> {
    pub node: &'a pb::NodeProto,
    /// Multiplications applied after the ensemble, in order.
    pub scales: Vec<f32>,
}

const FLOAT: i32 = pb::tensor_proto::DataType::Float as i32;

pub(super) fn trace<'a>(
    graph: &'a pb::GraphProto,
    input: &str,
    output: &str,
) -> Result<Path<'a>, Unsupported> {
    let producers: HashMap<&str, &pb::NodeProto> = graph
        .node
        .iter()
        .flat_map(|node| node.output.iter().map(move |o| (o.as_str(), node)))
        .collect();
    let constants: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();

    let mut scales = Vec::new();
    let mut tensor = output;
    for _ in 0..=graph.node.len() {
        let node = producers
            .get(tensor)
            .ok_or_else(|| Unsupported(format!("no node computes `{tensor}`")))?;
        match (node.domain.as_str(), node.op_type.as_str()) {
            (domain, op_type) if super::is_tree_op(domain, op_type) => {
                // The scores: the regressor's only output, the classifier's second.
                let scores = usize::from(node.op_type == "TreeEnsembleClassifier");
                if node.output.get(scores).map(String::as_str) != Some(tensor) {
                    return Err(Unsupported(format!(
                        "`{output}` is the ensemble's label, not its scores"
                    )));
                }
                if node.input.first().map(String::as_str) != Some(input) {
                    return Err(Unsupported(format!(
                        "the ensemble does not read the graph input `{input}` directly"
                    )));
                }
                scales.reverse();
                return Ok(Path { node, scales });
            }
            ("" | "ai.onnx", "Identity") => tensor = first_input(node)?,
            ("" | "ai.onnx", "Cast") if cast_to(node) == Some(FLOAT) => tensor = first_input(node)?,
            ("" | "ai.onnx", "Mul") if node.input.len() == 2 => {
                let (data, constant) = match (
                    constants.get(node.input[0].as_str()),
                    constants.get(node.input[1].as_str()),
                ) {
                    (None, Some(c)) => (&node.input[0], c),
                    (Some(c), None) => (&node.input[1], c),
                    _ => return Err(Unsupported("a Mul of two computed tensors".into())),
                };
                scales.push(scalar(constant).ok_or_else(|| {
                    Unsupported("a Mul by a constant that is not one float".into())
                })?);
                tensor = data;
            }
            (domain, op) => {
                return Err(Unsupported(format!(
                    "`{output}` passes through {domain}:{op}, which this backend does not run"
                )));
            }
        }
    }
    Err(Unsupported("the graph has a cycle".into()))
}

fn first_input(node: &pb::NodeProto) -> Result<&str, Unsupported> {
    node.input
        .first()
        .map(String::as_str)
        .ok_or_else(|| Unsupported(format!("{} without an input", node.op_type)))
}

fn cast_to(node: &pb::NodeProto) -> Option<i32> {
    node.attribute
        .iter()
        .find(|a| a.name == "to")
        .and_then(|a| i32::try_from(a.i).ok())
}

/// The value of a one-element float tensor.
fn scalar(t: &pb::TensorProto) -> Option<f32> {
    if t.data_type != FLOAT || t.dims.iter().product::<i64>() != 1 || t.data_location == Some(1) {
        return None;
    }
    match (t.float_data.as_slice(), t.raw_data.as_slice()) {
        ([v], []) => Some(*v),
        ([], raw) if raw.len() == 4 => Some(f32::from_le_bytes(raw.try_into().ok()?)),
        _ => None,
    }
}
