//! tract: a pure-Rust ONNX runtime, for graphs of standard (neural-network) ops.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::unimpl::UnimplementedOp;

use super::{Backend, BackendKind, OutputSelector, select_column};
use crate::model::ModelError;

/// An optimized plan with a symbolic batch dimension; `run` takes `&self`, so scorers share it.
#[derive(Debug)]
pub struct TractBackend {
    plan: Arc<TypedRunnableModel>,
    column: usize,
}

impl TractBackend {
    pub fn new(
        model: &[u8],
        input: &str,
        width: usize,
        output: OutputSelector,
    ) -> Result<Self, ModelError> {
        let load = |e: TractError| ModelError::load("tract cannot load it", e);
        let mut graph = tract_onnx::onnx()
            .model_for_read(&mut &*model)
            .map_err(load)?;
        let unimplemented: Vec<String> = graph
            .nodes()
            .iter()
            .filter(|n| n.op_is::<UnimplementedOp>())
            .map(|n| n.op().name().to_string())
            .collect();
        if !unimplemented.is_empty() {
            return Err(ModelError::load_msg(format!(
                "tract does not implement {unimplemented:?}"
            )));
        }
        let input_index = graph
            .input_outlets()
            .map_err(load)?
            .iter()
            .position(|o| graph.node(o.node).name == input)
            .ok_or_else(|| ModelError::Input(format!("tract finds no input `{input}`")))?;
        let batch = graph.symbols.sym("N");
        graph
            .set_input_fact(
                input_index,
                f32::fact([batch.to_dim(), width.to_dim()]).into(),
            )
            .map_err(|e| {
                ModelError::load(
                    format!("tract cannot take `{input}` as a float32 [N, {width}] input"),
                    e,
                )
            })?;
        let outlet = graph
            .output_outlets()
            .map_err(load)?
            .iter()
            .find(|o| graph.outlet_label(**o) == Some(output.name.as_str()))
            .copied()
            .ok_or_else(|| {
                ModelError::Output(format!("tract finds no output `{}`", output.name))
            })?;
        graph.select_output_outlets(&[outlet]).map_err(|e| {
            ModelError::load(format!("tract cannot select output `{}`", output.name), e)
        })?;
        let plan = graph
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(load)?;
        if plan.model().inputs.len() != 1 {
            return Err(ModelError::Input(format!(
                "the graph has {} inputs; one is supported",
                plan.model().inputs.len()
            )));
        }
        Ok(Self {
            plan,
            column: output.column,
        })
    }
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn score(&self, rows: &[f32], width: usize, out: &mut Vec<f32>) -> Result<(), ModelError> {
        let n = rows.len() / width;
        let scoring = |e: TractError| ModelError::scoring("", e);
        let input = Tensor::from_shape(&[n, width], rows).map_err(scoring)?;
        let outputs = self.plan.run(tvec!(input.into_tvalue())).map_err(scoring)?;
        let output = &outputs[0];
        let data = output
            .try_as_plain_ram()
            .and_then(|ram| ram.as_slice::<f32>())
            .map_err(|e| ModelError::Output(format!("{e:#}")))?;
        select_column(data, output.shape(), n, self.column, out)
    }
}
